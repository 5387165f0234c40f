// zt_fault_probe: a small MPI program for the watchdog tests (tests/apps/test_parallel_launch.cpp),
// run under mpirun. Modes:
//   ok    every rank joins an all_reduce; rank 0 prints "sum N"
//   kill  rank 1 raises SIGKILL on itself; the others wait in an all_reduce that can never finish
//   hang  rank 1 sleeps instead of joining; the others' all_reduce hits the watchdog timeout
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "core/factory.h"
#include "parallel/mpi_runtime.h"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    zt::MpiRuntime runtime;
    auto world = runtime.world();
    world->barrier();
    const bool faulty = world->rank() == 1;
    if (mode == "kill" && faulty) std::raise(SIGKILL);
    if (mode == "hang" && faulty) {
      std::this_thread::sleep_for(std::chrono::seconds(120));
      return 0;
    }
    ZT_CHECK(mode == "ok" || mode == "kill" || mode == "hang", "expected mode ok, kill or hang, found '", mode, "'");
    zt::Tensor x = zt::full({4}, 1.0);
    world->all_reduce(x);
    if (world->rank() == 0) std::printf("sum %g\n", double(x.to_vector<float>()[0]));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt_fault_probe: error: %s\n", e.what());
    return 1;
  }
}
