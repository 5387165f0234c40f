// zt-report: --json is one JSON object with the keys scripts rely on, consistent with how this
// build was configured; the plain output has every section.
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "apps/app_runner.h"

using zt::test::run_app;

TEST_CASE("zt-report --json parses and names the build, MPI, BLAS and GPUs") {
  auto r = run_app("zt-report", "--json");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  nlohmann::json j;
  REQUIRE_NOTHROW(j = nlohmann::json::parse(r.output));
  REQUIRE(j.is_object());
  for (const char* key : {"cuda_compiled", "gpus", "nccl_version", "mpi_version", "compiler", "openblas_config",
                          "cuda_runtime_version", "cublas_version", "cudnn_version"}) {
    CAPTURE(key);
    CHECK(j.contains(key));
  }
  REQUIRE(j["cuda_compiled"].is_boolean());
  REQUIRE(j["gpus"].is_array());
  // The MPI library names itself (Open MPI or MPICH), and OpenBLAS its version.
  const std::string mpi = j["mpi_version"].get<std::string>();
  CHECK((mpi.find("Open MPI") != std::string::npos || mpi.find("MPICH") != std::string::npos));
  CHECK(j["openblas_config"].get<std::string>().find("OpenBLAS") != std::string::npos);
#ifdef ZT_HAVE_CUDA
  CHECK(j["cuda_compiled"].get<bool>());
  CHECK(j["nccl_version"].is_string());
  for (const auto& g : j["gpus"]) {
    CHECK(g["name"].is_string());
    CHECK(g["memory_bytes"].get<int64_t>() > 0);
    CHECK(g["compute_capability"].is_string());
  }
#else
  // A CPU-only build reports no CUDA and no GPUs, whatever the machine has.
  CHECK_FALSE(j["cuda_compiled"].get<bool>());
  CHECK(j["gpus"].empty());
  CHECK(j["nccl_version"].is_null());
#endif
}

TEST_CASE("zt-report prints its sections") {
  auto r = run_app("zt-report", "");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  for (const char* section : {"[build]", "[cpu]", "[mpi]", "[cuda]", "[gpus]"}) {
    CAPTURE(section);
    CHECK(r.output.find(section) != std::string::npos);
  }
  CHECK(r.output.find("CUDA compiled in") != std::string::npos);
  CHECK(r.output.find("OpenBLAS") != std::string::npos);
#ifndef ZT_HAVE_CUDA
  CHECK(r.output.find("none (CUDA not compiled in)") != std::string::npos);
#endif
}

TEST_CASE("zt-report rejects an unknown flag with a hint") {
  auto r = run_app("zt-report", "--jsn");
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("--json") != std::string::npos);
}
