// zt-consolidate: turns a checkpoint (per-rank shards + index, any number of ranks) into one
// safetensors file of full f32 weights, named as the model's state_dict (docs/checkpoints.md).
//   zt-consolidate runs/gpt --out gpt.safetensors
//   zt-consolidate runs/gpt --tag global_step100 --out gpt_step100.safetensors
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/args.h"
#include "runtime/checkpoint.h"
#include "runtime/safetensors.h"

int main(int argc, char** argv) {
  std::string dir, tag, out;
  zt::ArgParser args("zt-consolidate",
                     "Write the full f32 weights of a checkpoint into one safetensors file:\n"
                     "  zt-consolidate CHECKPOINT_DIR [--tag TAG] --out FILE.safetensors");
  args.add("--checkpoint", &dir, "checkpoint folder (the one holding `latest`); may also be given "
                                 "as the first argument");
  args.add("--tag", &tag, "checkpoint tag to read (default: the one `latest` names)");
  args.add("--out", &out, "safetensors file to write");
  try {
    // The checkpoint folder may come first without a flag, as in `zt-consolidate DIR --out F`.
    std::vector<const char*> flags{argv[0]};
    for (int i = 1; i < argc; ++i) {
      if (i == 1 && argv[i][0] != '-') {
        dir = argv[i];
      } else {
        flags.push_back(argv[i]);
      }
    }
    if (!args.parse(int(flags.size()), flags.data())) return 0;
    ZT_CHECK(!dir.empty(), "no checkpoint folder given: expected zt-consolidate CHECKPOINT_DIR --out FILE (see --help)");
    ZT_CHECK(!out.empty(), "no output file given: expected --out FILE.safetensors (see --help)");
    const std::string resolved = tag.empty() ? zt::read_latest_tag(dir) : tag;
    const zt::TensorDict weights = zt::consolidate(dir, resolved);
    zt::save_safetensors(out, weights, {{"format", "pt"}, {"source", "zerotrain checkpoint " + resolved}});
    int64_t elements = 0;
    for (const auto& [name, t] : weights) elements += t.numel();
    std::printf("zt-consolidate: wrote %zu tensors (%lld elements) of %s/%s to %s\n", weights.size(),
                (long long)elements, dir.c_str(), resolved.c_str(), out.c_str());
    return 0;
  } catch (const zt::Error& e) {
    std::fprintf(stderr, "zt-consolidate: %s\n", e.what());
    return 1;
  }
}
