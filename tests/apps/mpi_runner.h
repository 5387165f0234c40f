// Runs a command line under mpirun from a test (the test process itself never initialises MPI):
// the mpirun prefix with the flags this machine needs, and the wall time of the run.
#pragma once
#include <unistd.h>

#include <chrono>
#include <string>

#include "apps/app_runner.h"

namespace zt::test {

// "mpirun -np N --oversubscribe -x OMP_NUM_THREADS=1 [--allow-run-as-root]": oversubscribed because
// CI has 2 cores; one OpenMP thread per rank so ranks do not fight over them.
inline std::string mpirun_prefix(int np) {
  std::string cmd = "mpirun -np " + std::to_string(np) + " --oversubscribe -x OMP_NUM_THREADS=1";
  if (geteuid() == 0) cmd += " --allow-run-as-root";  // Open MPI refuses root without it
  return cmd;
}

struct TimedRun {
  AppRun run;
  double seconds = 0;
};

// Runs `command` through the shell (stdout and stderr captured together).
inline TimedRun run_command(const std::string& command) {
  const auto start = std::chrono::steady_clock::now();
  TimedRun t;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe) {
    char buf[4096];
    while (fgets(buf, sizeof buf, pipe)) t.run.output += buf;
    const int status = pclose(pipe);
    t.run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return t;
}

}  // namespace zt::test
