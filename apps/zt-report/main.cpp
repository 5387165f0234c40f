// zt-report: what this build of zerotrain was compiled with and what it finds on this machine,
// like DeepSpeed's ds_report: compiler and build options, MPI, OpenBLAS, OpenMP, and (CUDA
// builds) the CUDA runtime and driver, cuBLAS, cuDNN, NCCL and the GPUs seen. --json prints the
// same as one JSON object for scripts (keys include cuda_compiled, gpus, nccl_version,
// mpi_version; what does not apply to this build is null).
#include <mpi.h>
#include <omp.h>

#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/args.h"

#ifdef ZT_HAVE_CUDA
#include "cuda/report.h"
#endif

// OpenBLAS's own introspection (its cblas.h is not on the apps' include path; these are its
// stable C entry points).
extern "C" {
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_num_threads(void);
}

namespace {

using nlohmann::json;

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown compiler";
#endif
}

// The instruction-set extensions the CPU kernels were compiled for.
std::string cpu_features() {
  std::string f;
  [[maybe_unused]] auto add = [&f](const char* name) { f += (f.empty() ? "" : " ") + std::string(name); };
#ifdef __SSE4_2__
  add("sse4.2");
#endif
#ifdef __AVX__
  add("avx");
#endif
#ifdef __AVX2__
  add("avx2");
#endif
#ifdef __FMA__
  add("fma");
#endif
#ifdef __AVX512F__
  add("avx512f");
#endif
#ifdef __AVX512BF16__
  add("avx512bf16");
#endif
  return f.empty() ? "baseline" : f;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// MPI-3 allows both queries before MPI_Init, so the report never starts an MPI world.
json mpi_section() {
  char library[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0, major = 0, minor = 0;
  MPI_Get_library_version(library, &length);
  MPI_Get_version(&major, &minor);
  return {{"library", trimmed(std::string(library, size_t(length)))},
          {"standard", std::to_string(major) + "." + std::to_string(minor)}};
}

json cpu_section() {
  return {{"compiler", compiler()},
          {"cxx_standard", long(__cplusplus)},
#ifdef NDEBUG
          {"build", "release (NDEBUG)"},
#else
          {"build", "debug (assertions on)"},
#endif
          {"cpu_features", cpu_features()},
          {"hardware_threads", std::thread::hardware_concurrency()},
          {"openmp", std::to_string(_OPENMP)},
          {"openmp_max_threads", omp_get_max_threads()},
          {"openblas_config", trimmed(openblas_get_config())},
          {"openblas_core", trimmed(openblas_get_corename())},
          {"openblas_threads", openblas_get_num_threads()}};
}

// The CUDA keys, null where this build has no CUDA.
json cuda_section() {
  json c = {{"cuda_compiled", false}, {"cuda_arch", nullptr},          {"cuda_toolkit", nullptr},
            {"cuda_runtime_version", nullptr}, {"cuda_driver_version", nullptr}, {"cublas_version", nullptr},
            {"cudnn_version", nullptr},        {"cudnn_header_version", nullptr}, {"nccl_version", nullptr},
            {"nccl_header_version", nullptr},  {"gpus", json::array()},          {"gpu_error", nullptr}};
#ifdef ZT_HAVE_CUDA
  const zt::cuda::CudaReport r = zt::cuda::cuda_report();
  c["cuda_compiled"] = true;
  c["cuda_arch"] = r.architectures;
  c["cuda_toolkit"] = r.toolkit_version;
  c["cuda_runtime_version"] = r.runtime_version;
  c["cuda_driver_version"] = r.driver_version;
  c["cublas_version"] = r.cublas_version;
  c["cudnn_version"] = r.cudnn_version;
  c["cudnn_header_version"] = r.cudnn_header;
  c["nccl_version"] = r.nccl_version;
  c["nccl_header_version"] = r.nccl_header;
  for (const auto& g : r.gpus)
    c["gpus"].push_back({{"index", g.index},
                         {"name", g.name},
                         {"memory_bytes", g.total_memory},
                         {"compute_capability", std::to_string(g.major) + "." + std::to_string(g.minor)},
                         {"multiprocessors", g.multiprocessors}});
  if (!r.gpu_error.empty()) c["gpu_error"] = r.gpu_error;
#endif
  return c;
}

json make_report() {
  json r = cpu_section();
  const json mpi = mpi_section();
  r["mpi_version"] = mpi.at("library");
  r["mpi_standard"] = mpi.at("standard");
  const json cuda = cuda_section();  // named: items() refers into it
  for (const auto& [key, value] : cuda.items()) r[key] = value;
  return r;
}

std::string text(const json& v) { return v.is_null() ? "n/a" : v.is_string() ? v.get<std::string>() : v.dump(); }

void print_row(const char* label, const json& v) { std::printf("  %-22s %s\n", label, text(v).c_str()); }

void print_report(const json& r) {
  std::printf("zerotrain report\n\n[build]\n");
  print_row("compiler", r["compiler"]);
  print_row("C++ standard", r["cxx_standard"]);
  print_row("build", r["build"]);
  print_row("CPU features", r["cpu_features"]);
  print_row("CUDA compiled in", r["cuda_compiled"]);
  print_row("CUDA architectures", r["cuda_arch"]);
  print_row("CUDA toolkit (headers)", r["cuda_toolkit"]);
  std::printf("\n[cpu]\n");
  print_row("hardware threads", r["hardware_threads"]);
  print_row("OpenMP", r["openmp"]);
  print_row("OpenMP max threads", r["openmp_max_threads"]);
  print_row("OpenBLAS", r["openblas_config"]);
  print_row("OpenBLAS core", r["openblas_core"]);
  print_row("OpenBLAS threads", r["openblas_threads"]);
  std::printf("\n[mpi]\n");
  print_row("library", r["mpi_version"]);
  print_row("standard", r["mpi_standard"]);
  std::printf("\n[cuda]\n");
  print_row("runtime", r["cuda_runtime_version"]);
  print_row("driver", r["cuda_driver_version"]);
  print_row("cuBLAS", r["cublas_version"]);
  print_row("cuDNN", r["cudnn_version"]);
  print_row("cuDNN (headers)", r["cudnn_header_version"]);
  print_row("NCCL", r["nccl_version"]);
  print_row("NCCL (headers)", r["nccl_header_version"]);
  std::printf("\n[gpus]\n");
  if (r["gpus"].empty()) {
    const std::string why = !r["cuda_compiled"].get<bool>() ? "CUDA not compiled in"
                            : r["gpu_error"].is_null()      ? "no GPU visible"
                                                            : r["gpu_error"].get<std::string>();
    std::printf("  none (%s)\n", why.c_str());
  }
  for (const auto& g : r["gpus"])
    std::printf("  %lld: %s, %.1f GiB, compute capability %s, %lld SMs\n", g["index"].get<long long>(),
                g["name"].get<std::string>().c_str(), double(g["memory_bytes"].get<int64_t>()) / (1 << 30),
                g["compute_capability"].get<std::string>().c_str(), g["multiprocessors"].get<long long>());
}

}  // namespace

int main(int argc, char** argv) {
  bool as_json = false;
  zt::ArgParser args("zt-report",
                     "Prints the versions and options this zerotrain was built with and the MPI, BLAS\n"
                     "and GPUs it finds on this machine (like DeepSpeed's ds_report).");
  args.add_switch("--json", &as_json, "print one JSON object instead of the sections");
  try {
    if (!args.parse(argc, argv)) return 0;
    const json report = make_report();
    if (as_json) std::printf("%s\n", report.dump(2).c_str());
    else print_report(report);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-report: error: %s\n", e.what());
    return 1;
  }
}
