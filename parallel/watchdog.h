// The communication watchdog: how long a collective may wait before the job is ended, and the
// one function that ends it.
//
// Note [Communication watchdog]
// A collective only completes when every rank of the communicator joins it. When a rank has died
// (killed, out of memory, crashed) or stopped calling collectives (an exception on one rank, a
// data-dependent branch), the others would wait forever, holding GPUs and a job slot. MPI offers
// no way to cancel a collective in flight, so throwing an exception on the waiting rank cannot
// help: the operation stays pending and the other ranks stay stuck. The only way to free every
// rank is to end the whole job, which MPI_Abort does through the launcher (mpirun kills all
// ranks on every node). So every wait on communication polls with a deadline (ZT_COMM_TIMEOUT
// seconds, default 300) and, past it, prints which operation hung on which rank and calls
// abort_job(). This is the single place where zerotrain ends a process itself: it is the
// launcher-level failsafe, not error handling, which stays with zt::Error everywhere else.
// Creating communicators (MPI_Comm_dup, MPI_Comm_split) has no non-blocking form and is not
// covered; it happens once at start-up, where mpirun notices a dead rank itself.
#pragma once
#include <string>

namespace zt {

inline constexpr double kDefaultCommTimeoutSeconds = 300.0;

// ZT_COMM_TIMEOUT from the environment (seconds, > 0), else the default. A malformed value is an
// error naming it.
double comm_timeout_from_env();

// Prints "zt: error: ..." with `what` to stderr and aborts every rank of the job (MPI_Abort on
// MPI_COMM_WORLD). Never returns.
[[noreturn]] void abort_job(const std::string& what);

// Seconds since an arbitrary fixed point (steady clock), for deadlines.
double monotonic_seconds();

}  // namespace zt
