// zt-config: checks a DeepSpeed-style config (JSON or YAML) and prints every resolved value with
// where it came from, or prints the generated reference page (docs/config.md).
//   zt-config --check ds_config.json --world-size 8
//   zt-config --docs > docs/config.md
#include <cstdio>

#include "core/error.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/config_schema.h"

int main(int argc, char** argv) {
  std::string check;
  int64_t world_size = 1;
  bool docs = false;
  zt::ArgParser args("zt-config", "Validate a zerotrain/DeepSpeed config, or print its reference.");
  args.add("--check", &check, "config file to validate and resolve (JSON or YAML)");
  args.add("--world-size", &world_size, "data-parallel size used by the batch-size rule");
  args.add_switch("--docs", &docs, "print the configuration reference (docs/config.md) and exit");
  try {
    if (!args.parse(argc, argv)) return 0;
    if (docs) {
      std::fputs(zt::config_reference_markdown().c_str(), stdout);
      return 0;
    }
    ZT_CHECK(!check.empty(), "nothing to do: give --check FILE or --docs (see --help)");
    const zt::Config config = zt::load_config(check, world_size);
    std::printf("%s: valid (data-parallel size %lld)\n", check.c_str(), (long long)world_size);
    std::fputs(config.describe().c_str(), stdout);
    return 0;
  } catch (const zt::Error& e) {
    std::fprintf(stderr, "zt-config: %s\n", e.what());
    return 1;
  }
}
