// The communication watchdog (Note [Communication watchdog] in parallel/watchdog.h).
#include "parallel/watchdog.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace zt {

double comm_timeout_from_env() {
  const char* text = std::getenv("ZT_COMM_TIMEOUT");
  if (!text || !*text) return kDefaultCommTimeoutSeconds;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  ZT_CHECK(end && *end == '\0' && v > 0, "ZT_COMM_TIMEOUT: expected a positive number of seconds, "
           "found '", text, "'");
  return v;
}

void abort_job(const std::string& what) {
  std::fprintf(stderr, "zt: error: %s\n", what.c_str());
  std::fflush(stderr);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, 1);
  // MPI_Abort does not return; without MPI (never initialised) there is no job to end, and the
  // caller gets an error instead.
  ZT_FAIL(what);
}

double monotonic_seconds() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

}  // namespace zt
