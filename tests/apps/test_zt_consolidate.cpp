// zt-consolidate: a checkpoint saved by 2 ranks (flat master fragments, bf16 model replica)
// becomes one safetensors file whose f32 weights equal the master weights and load back into a
// model; --help and bad arguments.
#include <doctest/doctest.h>

#include "temp_dir.h"

#include <stdlib.h>

#include <memory>
#include <string>

#include "app_runner.h"
#include "core/ops.h"
#include "nn/linear.h"
#include "runtime/checkpoint.h"
#include "runtime/checkpoint_io.h"
#include "runtime/safetensors.h"

using namespace zt;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("zt_consolidate") {}
};

std::string bytes_of(const Tensor& t) {
  const Tensor c = raw::contiguous(t);
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

// Rank r of 2 holds the flat half r of each f32 master weight; rank 0 also the bf16 replica.
CheckpointState rank_state(const Linear& master, int rank) {
  CheckpointState s;
  Linear replica(5, 3);
  replica.load_state_dict(master.state_dict());
  replica.to(DType::bf16);
  if (rank == 0) s.model = replica.state_dict();
  for (const auto& [name, p] : master.named_parameters()) {
    const int64_t half = p.numel() / 2, begin = rank == 0 ? 0 : half, len = rank == 0 ? half : p.numel() - half;
    s.fragments.push_back({"master/" + name, p.shape(), begin,
                           raw::clone(raw::narrow(raw::reshape(p, {p.numel()}), 0, begin, len))});
  }
  return s;
}

}  // namespace

TEST_CASE("zt-consolidate writes the master weights of a 2-rank checkpoint as one f32 file") {
  TempDir dir;
  Linear master(5, 3);  // randomly initialised f32 weights: not representable in bf16
  write_rank_files(dir.path, "global_step7", 0, 2, rank_state(master, 0));
  write_rank_files(dir.path, "global_step7", 1, 2, rank_state(master, 1));
  publish_checkpoint(dir.path, "global_step7", 2);

  const std::string out = dir.path + "/model.safetensors";
  const auto run = zt::test::run_app("zt-consolidate", dir.path + " --out " + out);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(run.output.find("wrote 2 tensors (18 elements)") != std::string::npos);

  const SafetensorsFile f = load_safetensors(out);
  CHECK(f.metadata.at("source") == "zerotrain checkpoint global_step7");
  REQUIRE(f.tensors.size() == 2);
  CHECK(f.tensors.at("weight").dtype() == DType::f32);
  CHECK(bytes_of(f.tensors.at("weight")) == bytes_of(master.weight()));
  CHECK(bytes_of(f.tensors.at("bias")) == bytes_of(master.parameter("bias")));

  Linear loaded(5, 3);
  load_safetensors_into(loaded, out);
  CHECK(bytes_of(loaded.weight()) == bytes_of(master.weight()));

  const auto tagged = zt::test::run_app("zt-consolidate", "--checkpoint " + dir.path + " --tag global_step7 --out " + out);
  CHECK(tagged.exit_code == 0);
}

TEST_CASE("zt-consolidate explains its arguments and its errors") {
  const auto help = zt::test::run_app("zt-consolidate", "--help");
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("CHECKPOINT_DIR") != std::string::npos);
  CHECK(help.output.find("--out") != std::string::npos);

  TempDir dir;
  const auto no_out = zt::test::run_app("zt-consolidate", dir.path);
  CHECK(no_out.exit_code == 1);
  CHECK(no_out.output.find("no output file given") != std::string::npos);

  const auto no_latest = zt::test::run_app("zt-consolidate", dir.path + " --out " + dir.path + "/x.safetensors");
  CHECK(no_latest.exit_code == 1);
  CHECK(no_latest.output.find("no checkpoint to resume from") != std::string::npos);

  const auto typo = zt::test::run_app("zt-consolidate", dir.path + " --otu x");
  CHECK(typo.exit_code == 1);
  CHECK(typo.output.find("did you mean --out") != std::string::npos);
}
