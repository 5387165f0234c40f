// The MPI runtime shared by the tests of one test_parallel process: created on first use and
// finalized at exit. Under `mpirun -np N` every rank runs every test case in the same order, so
// collectives inside test cases match up; run alone it is a world of one.
#pragma once
#include "parallel/mpi_runtime.h"

namespace zt::test {

inline MpiRuntime& mpi_runtime() {
  static MpiRuntime runtime;
  return runtime;
}
inline const std::shared_ptr<Communicator>& world() { return mpi_runtime().world(); }

}  // namespace zt::test
