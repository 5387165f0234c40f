// doctest entry point shared by every test binary. It checks ZT_TEST_DEVICE (tests/test_device.h)
// first: an unknown value is an error (exit 2); `cuda` without a CUDA backend or device skips the
// whole binary with ctest's skip code 77, so the *_cuda entries report "skipped" on CI.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/backend.h"
#include "tests/test_device.h"

int main(int argc, char** argv) {
  const char* text = std::getenv("ZT_TEST_DEVICE");
  const std::optional<zt::Device> device = zt::test::parse_test_device(text);
  if (!device) {
    std::fprintf(stderr, "ZT_TEST_DEVICE=%s: unknown device (expected cpu or cuda)\n", text);
    return 2;
  }
  if (device->is_cuda()) {
    // The backend registers itself only when this build has it and the machine has a GPU.
    const bool present = zt::has_backend(zt::DeviceType::CUDA) &&
                         zt::backend_for(zt::DeviceType::CUDA).device_count() > device->index;
    if (!present) {
      std::printf("ZT_TEST_DEVICE=cuda: no CUDA backend or device here (a build without CUDA, or no GPU); "
                  "skipping these tests\n");
      return 77;
    }
    std::printf("ZT_TEST_DEVICE=cuda: tests run on %s\n", device->str().c_str());
  }
  doctest::Context context(argc, argv);
  return context.run();
}
