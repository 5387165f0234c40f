// A scratch folder every rank of a communicator sees (checkpoint tests under mpirun): rank 0
// creates it and broadcasts its name; remove_shared_temp_dir waits for every rank, then rank 0
// deletes it.
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "core/factory.h"
#include "parallel/communicator.h"

namespace zt::test {

// `prefix` names the folder under /tmp ("zt_zero3_ckpt" -> /tmp/zt_zero3_ckpt_XXXXXX).
inline std::string shared_temp_dir(Communicator& comm, const std::string& prefix) {
  Tensor name = zeros({256}, DType::u8);
  if (comm.rank() == 0) {
    std::string tmpl = "/tmp/" + prefix + "_XXXXXX";
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    std::memcpy(name.raw_data(), tmpl.c_str(), tmpl.size());
  }
  comm.broadcast(name, 0);
  return std::string(static_cast<const char*>(name.raw_data()));
}

inline void remove_shared_temp_dir(Communicator& comm, const std::string& dir) {
  comm.barrier();  // every rank is done with it
  if (comm.rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace zt::test
