// OffloadGradientStream (zero/offload_grad_stream.h): the host accumulator that ZeRO-2 streams
// every micro-step's gradient chunks into. First chunks are written, later ones added in the
// accumulator's dtype with the rounding of the device's in-place add (bitwise equal to
// raw::binary_ add, in the order received); fewer staging slots than chunks in flight make
// receive() wait for the worker; bad chunks give clear errors; how ZeRO-2 sizes buckets and slots.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "tests/error_of.h"
#include "zero/offload_grad_stream.h"

namespace zt::test {
namespace {

std::vector<uint16_t> bits16(const Tensor& t) {
  std::vector<uint16_t> out(size_t(t.numel()));
  std::memcpy(out.data(), t.raw_data(), out.size() * sizeof(uint16_t));
  return out;
}

}  // namespace

TEST_CASE("OffloadGradientStream: writes first chunks and adds later ones as the in-place bf16 add does") {
  manual_seed(11);
  const int64_t S = 1000, chunk = 96;  // 11 chunks, the last one short
  for (int slots : {1, 3}) {
    CAPTURE(slots);
    const Tensor acc = empty({S}, TensorOptions(DType::bf16, Device::cpu()));
    const Tensor want = zeros({S}, TensorOptions(DType::bf16, Device::cpu()));
    {
      OffloadGradientStream stream(acc, chunk, slots, nullptr);
      for (int micro = 0; micro < 4; ++micro) {
        for (int64_t lo = 0; lo < S; lo += chunk) {  // the last chunk first, as backward finishes it first
          const int64_t begin = S - lo - std::min(chunk, S - lo), n = std::min(chunk, S - lo);
          // Values of mixed magnitude, so the bf16 sums round.
          const Tensor g = raw::to(raw::mul(randn({n}), micro == 2 ? 1e3 : 1.0), DType::bf16);
          stream.receive(g, begin, micro == 0);
          const Tensor w = raw::narrow(want, 0, begin, n);
          if (micro == 0) raw::copy_(w, g);
          else raw::binary_(BinaryOp::add, w, g);
        }
        if (micro == 1) stream.drain();  // a drain between micro-steps changes nothing
      }
      stream.drain();
      CHECK(stream.staging_bytes() == slots * chunk * 2);
    }
    CHECK(bits16(acc) == bits16(want));
  }
}

TEST_CASE("OffloadGradientStream: a chunk that does not fit, or of another dtype, is a clear error") {
  const Tensor acc = zeros({64}, TensorOptions(DType::f32, Device::cpu()));
  OffloadGradientStream stream(acc, 16, 2, nullptr);
  CHECK(error_of([&] { stream.receive(zeros({32}), 0, false); }).find("does not fit") != std::string::npos);
  CHECK(error_of([&] { stream.receive(zeros({16}), 56, true); }).find("does not fit") != std::string::npos);
  CHECK(error_of([&] { stream.receive(zeros({16}, TensorOptions(DType::bf16, Device::cpu())), 0, true); })
            .find("does not fit") != std::string::npos);
  stream.receive(raw::add(zeros({32}), 1.0), 0, true);  // a first chunk may exceed a slot: it needs none
  stream.receive(raw::add(zeros({16}), 2.0), 16, false);
  stream.drain();
  CHECK(raw::sum(acc).item() == doctest::Approx(32 + 32));
  CHECK(error_of([] { OffloadGradientStream(zeros({4, 4}), 16, 2, nullptr); }).find("1-D host accumulator") !=
        std::string::npos);
}

TEST_CASE("stream_layout: buckets of at most 2^26 elements, staging for four configured buckets, one slot per bucket") {
  // GPT 1.5B on one rank with DeepSpeed's default reduce_bucket_size (5e8): 24 buckets of 2^26,
  // and room for all of them (four buckets of 5e8 would take 30 slots).
  StreamLayout l = stream_layout(1'557'686'400, 500'000'000);
  CHECK(l.bucket == int64_t(1) << 26);
  CHECK(l.slots == 24);
  l = stream_layout(10'000'000'000, 500'000'000);  // a larger shard: the four configured buckets bound it
  CHECK(l.slots == 30);
  l = stream_layout(131'584, 50'000);  // small buckets stay as configured
  CHECK(l.bucket == 50'000);
  CHECK(l.slots == 3);
  l = stream_layout(100, 100);
  CHECK(l.bucket == 100);
  CHECK(l.slots == 1);
  CHECK(error_of([] { stream_layout(0, 16); }).find("positive shard") != std::string::npos);
}

}  // namespace zt::test
