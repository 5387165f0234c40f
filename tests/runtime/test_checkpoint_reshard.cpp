// Checkpoint fragments and crash safety: synthetic flat partitions saved by 2 ranks and
// reassembled by 1 and by 4 readers (ranges that cross the saved boundaries), the errors of
// fragments that do not tile a tensor, and saves interrupted by an exception at every file or by
// SIGKILL, after which `latest` still names a loadable checkpoint.
#include <doctest/doctest.h>

#include "temp_dir.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "runtime/checkpoint.h"
#include "runtime/checkpoint_io.h"

using namespace zt;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("zt_reshard") {}
};

std::vector<double> values(const Tensor& t) { return raw::to(raw::contiguous(t), DType::f64).to_vector<double>(); }

// w: (3, 5) f32 = 0.5 i - 3; m: (7,) bf16 = i - 3 (exact in bf16).
Tensor full_w() {
  std::vector<float> v(15);
  for (int i = 0; i < 15; ++i) v[size_t(i)] = 0.5f * float(i) - 3.0f;
  return from_vector(v, {3, 5});
}
Tensor full_m() { return raw::to(raw::add(arange(0, 7, 1, DType::f32), -3.0), DType::bf16); }

Tensor flat_range(const Tensor& t, int64_t offset, int64_t length) {
  return raw::clone(raw::narrow(raw::reshape(t, {t.numel()}), 0, offset, length));
}

// Rank 0 holds w[0, 7) and m[0, 3) plus the model replica; rank 1 holds w[7, 15), m[3, 5), m[5, 7).
CheckpointState rank_state(int rank) {
  CheckpointState s;
  const Tensor w = full_w(), m = full_m();
  if (rank == 0) {
    s.model.set("w", raw::to(w, DType::bf16));
    s.fragments.push_back({"master/w", {3, 5}, 0, flat_range(w, 0, 7)});
    s.fragments.push_back({"optim/state.0.0.exp_avg", {7}, 0, flat_range(m, 0, 3)});
  } else {
    s.fragments.push_back({"master/w", {3, 5}, 7, flat_range(w, 7, 8)});
    s.fragments.push_back({"optim/state.0.0.exp_avg", {7}, 5, flat_range(m, 5, 2)});
    s.fragments.push_back({"optim/state.0.0.exp_avg", {7}, 3, flat_range(m, 3, 2)});
  }
  s.scalars = {{"rank_marker", rank}};
  return s;
}

void save_two_ranks(const std::string& dir, const std::string& tag) {
  write_rank_files(dir, tag, 1, 2, rank_state(1));
  write_rank_files(dir, tag, 0, 2, rank_state(0));
  publish_checkpoint(dir, tag, 2);
}

// The flat range [begin, end) of n elements that reader r of `readers` owns (uneven last part).
std::pair<int64_t, int64_t> partition(int64_t n, int r, int readers) {
  const int64_t chunk = (n + readers - 1) / readers;
  const int64_t begin = std::min(n, chunk * r);
  return {begin, std::min(n, begin + chunk)};
}

CheckpointState small_state(float value) {
  CheckpointState s;
  s.model.set("w", full({4, 4}, value));
  s.scalars = {{"value", value}};
  return s;
}

// `latest` names a checkpoint that loads and holds `value`.
void check_latest_holds(const std::string& dir, const std::string& tag, float value) {
  CHECK(read_latest_tag(dir) == tag);
  const CheckpointState s = load_checkpoint_files(dir, "", 0, 1);
  CHECK(values(s.model.at("w")) == std::vector<double>(16, double(value)));
  CHECK(s.scalars["value"].get<float>() == value);
}

}  // namespace

TEST_CASE("fragments saved by 2 ranks reassemble at 1 and at 4 readers") {
  TempDir dir;
  save_two_ranks(dir.path, "two");

  SUBCASE("one reader gets every full tensor") {
    const CheckpointState s = load_checkpoint_files(dir.path, "", 0, 1);
    CHECK(s.master.at("w").shape() == Shape{3, 5});
    CHECK(values(s.master.at("w")) == values(full_w()));
    const Tensor& m = s.optimizer.tensors.at("state.0.0.exp_avg");
    CHECK(m.dtype() == DType::bf16);
    CHECK(values(m) == std::vector<double>{-3, -2, -1, 0, 1, 2, 3});
    CHECK(values(s.model.at("w")) == values(raw::to(full_w(), DType::bf16)));
    CHECK(s.scalars["rank_marker"] == 0);
  }
  SUBCASE("four readers each read their flat range across the saved boundaries") {
    for (const char* name : {"master/w", "optim/state.0.0.exp_avg"}) {
      CAPTURE(name);
      const Tensor expected = std::string(name) == "master/w" ? full_w() : full_m();
      std::vector<double> joined;
      for (int r = 0; r < 4; ++r) {
        CheckpointReader reader(dir.path + "/two");  // each reader on its own, as separate ranks
        CHECK(reader.saved_world() == 2);
        const auto [begin, end] = partition(expected.numel(), r, 4);
        const Tensor part = reader.read_range(name, begin, end - begin);
        CHECK(part.shape() == Shape{end - begin});
        CHECK(values(part) == values(flat_range(expected, begin, end - begin)));
        const auto v = values(part);
        joined.insert(joined.end(), v.begin(), v.end());
      }
      CHECK(joined == values(expected));
    }
  }
  SUBCASE("ranks the saved run had keep their own scalars; new ranks take rank 0's") {
    CHECK(load_checkpoint_files(dir.path, "", 1, 4).scalars["rank_marker"] == 1);
    CHECK(load_checkpoint_files(dir.path, "", 3, 4).scalars["rank_marker"] == 0);
  }
  SUBCASE("a range outside the tensor is an error") {
    CheckpointReader reader(dir.path + "/two");
    CHECK_THROWS_WITH_AS(reader.read_range("master/w", 10, 6), doctest::Contains("range [10, 16)"), Error);
  }
}

TEST_CASE("publishing refuses fragments that do not tile each tensor") {
  TempDir dir;
  CheckpointState r0 = rank_state(0), r1 = rank_state(1);
  SUBCASE("a rank that has not finished") {
    write_rank_files(dir.path, "t", 0, 2, r0);
    CHECK_THROWS_WITH_AS(publish_checkpoint(dir.path, "t", 2), doctest::Contains("rank 1 of 2 has not finished writing"), Error);
  }
  SUBCASE("a gap") {
    r1.fragments[0] = {"master/w", {3, 5}, 8, flat_range(full_w(), 8, 7)};
    write_rank_files(dir.path, "t", 0, 2, r0);
    write_rank_files(dir.path, "t", 1, 2, r1);
    CHECK_THROWS_WITH_AS(publish_checkpoint(dir.path, "t", 2),
                         doctest::Contains("entry 'master/w' elements [7, 8) are held by no fragment"), Error);
  }
  SUBCASE("an overlap") {
    r1.fragments[0] = {"master/w", {3, 5}, 6, flat_range(full_w(), 6, 9)};
    write_rank_files(dir.path, "t", 0, 2, r0);
    write_rank_files(dir.path, "t", 1, 2, r1);
    CHECK_THROWS_WITH_AS(publish_checkpoint(dir.path, "t", 2), doctest::Contains("entry 'master/w' fragments overlap"), Error);
  }
  SUBCASE("ranks disagree on the dtype") {
    r1.fragments[0].data = raw::to(r1.fragments[0].data, DType::f64);
    write_rank_files(dir.path, "t", 0, 2, r0);
    write_rank_files(dir.path, "t", 1, 2, r1);
    CHECK_THROWS_WITH_AS(publish_checkpoint(dir.path, "t", 2), doctest::Contains("rank 1 holds 'master/w' as \"F64\""), Error);
  }
  SUBCASE("a fragment larger than its tensor") {
    r1.fragments[0] = {"master/w", {3, 5}, 10, zeros({7})};
    CHECK_THROWS_WITH_AS(write_rank_files(dir.path, "t", 1, 2, r1), doctest::Contains("does not fit its full shape (3, 5)"), Error);
  }
  CHECK(!path_exists(dir.path + "/latest"));
}

TEST_CASE("a save interrupted at any file leaves the previous checkpoint as latest") {
  TempDir dir;
  save_checkpoint_files(dir.path, "step1", 0, 1, small_state(1.0f));
  // Files of a save, in order: shard, state JSON, fragment list, index.json, latest.
  for (int fail_after = 0; fail_after < 4; ++fail_after) {
    CAPTURE(fail_after);
    int written = 0;
    auto hook = [&](const std::string& path) {
      if (written++ == fail_after) throw std::runtime_error("injected failure after " + path);
    };
    CHECK_THROWS_AS(save_checkpoint_files(dir.path, "step2", 0, 1, small_state(2.0f), nullptr, hook),
                    std::runtime_error);
    CHECK(!path_exists(dir.path + "/step2"));
    check_latest_holds(dir.path, "step1", 1.0f);
  }
  // The next save of the same tag clears the leftovers and succeeds.
  save_checkpoint_files(dir.path, "step2", 0, 1, small_state(2.0f));
  check_latest_holds(dir.path, "step2", 2.0f);
  CHECK(!path_exists(dir.path + "/.step2.partial"));
  // Saving a tag again replaces it whole.
  save_checkpoint_files(dir.path, "step2", 0, 1, small_state(3.0f));
  check_latest_holds(dir.path, "step2", 3.0f);
}

TEST_CASE("a process killed during save leaves the previous checkpoint loadable") {
  TempDir dir;
  save_checkpoint_files(dir.path, "step1", 0, 1, small_state(1.0f));
  // A large checkpoint (64 MiB), so the child is still writing when the parent acts.
  CheckpointState big = small_state(2.0f);
  big.model.set("big_a", zeros({4096, 2048}));
  big.model.set("big_b", zeros({4096, 2048}));

  SUBCASE("killed right after its first file is durable") {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        save_checkpoint_files(dir.path, "step2", 0, 1, big, nullptr, [&](const std::string&) {
          (void)!write(fds[1], "x", 1);
          pause();  // wait for SIGKILL
        });
      } catch (...) {
      }
      _exit(3);
    }
    char c = 0;
    REQUIRE(read(fds[0], &c, 1) == 1);
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    close(fds[0]);
    close(fds[1]);
    CHECK(path_exists(dir.path + "/.step2.partial/rank0.safetensors"));
    CHECK(!path_exists(dir.path + "/step2"));
    check_latest_holds(dir.path, "step1", 1.0f);
  }
  SUBCASE("killed as soon as its staging folder appears, mid-write") {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        save_checkpoint_files(dir.path, "step2", 0, 1, big);
      } catch (...) {
        _exit(3);
      }
      _exit(0);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!path_exists(dir.path + "/.step2.partial") && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    // Wherever it died, `latest` names a checkpoint that loads: step1, unless the save finished.
    if (WIFSIGNALED(status) && read_latest_tag(dir.path) == "step1") {
      check_latest_holds(dir.path, "step1", 1.0f);
    } else {
      check_latest_holds(dir.path, "step2", 2.0f);
    }
  }
  // A later save of the same tag succeeds over the leftovers.
  save_checkpoint_files(dir.path, "step2", 0, 1, small_state(5.0f));
  check_latest_holds(dir.path, "step2", 5.0f);
}
