// cuBLASLt matmul with a cached heuristic choice: see cuda/gemm_lt.h.
#include "cuda/gemm_lt.h"

#include <cublasLt.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device.h"

namespace zt::cuda {
namespace {

// The largest power of two (up to 256, cuBLASLt's default assumption) dividing the address:
// the heuristic then offers only algorithms that can work with it.
uint32_t alignment_of(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && address % a != 0) a /= 2;
  return a;
}

// Algorithms the heuristic is asked for: its first is used, or with ZT_CUBLASLT_AUTOTUNE=1 the
// fastest of them on the first call.
constexpr int kCandidates = 8;

// Descriptors and the chosen algorithm of one problem key (never destroyed: a training run has
// a handful of GEMM shapes, and cublasLtMatmul reads them on every call).
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  std::vector<cublasLtMatmulAlgo_t> candidates;  // in the heuristic's order; empty: none usable
  cublasLtMatmulAlgo_t algo{};                   // the one in use
  bool tuned = false;                            // algo is the timed fastest candidate
};

// device, type, compute, op_a, op_b, m, n, k, lda, ldb, ldd, alignments of A, B, C, D, workspace,
// epilogue. C's alignment is its own once C is apart from D (a residual): an algorithm chosen
// for a 16-byte aligned C must not run on a misaligned one.
using PlanKey = std::tuple<int, int, int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t,
                           uint32_t, uint32_t, uint32_t, size_t, int>;

template <typename V>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, V value) {
  ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

void set_desc_pointer(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void* p) {
  ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &p, sizeof(p)));
}

cublasLtEpilogue_t lt_epilogue(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case LtEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case LtEpilogue::gelu_aux_bias: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case LtEpilogue::bgradb: return CUBLASLT_EPILOGUE_BGRADB;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// The call's vector and aux pointers into the plan's descriptor (the heuristic also reads them
// for their alignment).
void set_epilogue_pointers(cublasLtMatmulDesc_t desc, const LtGemm& g) {
  if (g.vec) set_desc_pointer(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.vec);
  if (g.aux) set_desc_pointer(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, g.aux);
}

template <typename V>
void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, V value) {
  ZT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
}

Plan make_plan(cublasLtHandle_t handle, const LtGemm& g, uint32_t align_a, uint32_t align_b, uint32_t align_c,
               uint32_t align_d, size_t workspace_bytes) {
  Plan p;
  ZT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, g.compute, CUDA_R_32F));
  set_desc(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, int32_t(g.op_a));
  set_desc(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, int32_t(g.op_b));
  if (g.epilogue != LtEpilogue::none) {
    set_desc(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_epilogue(g.epilogue));
    set_desc(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(g.type));
    if (g.aux) {
      set_desc(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, int64_t(g.ldd));
      set_desc(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, int32_t(g.type));
    }
    set_epilogue_pointers(p.desc, g);  // set again on every call
  }
  // Stored shapes: op_a(A) is (m, k), so A is (m, k) untransposed or (k, m) transposed.
  const bool ta = g.op_a != CUBLAS_OP_N, tb = g.op_b != CUBLAS_OP_N;
  ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, g.type, uint64_t(ta ? g.k : g.m), uint64_t(ta ? g.m : g.k), g.lda));
  ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, g.type, uint64_t(tb ? g.n : g.k), uint64_t(tb ? g.k : g.n), g.ldb));
  ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, g.type, uint64_t(g.m), uint64_t(g.n), g.ldd));
  cublasLtMatmulPreference_t pref = nullptr;
  ZT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(workspace_bytes));
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
  cublasLtMatmulHeuristicResult_t results[kCandidates];
  std::memset(results, 0, sizeof(results));
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.d, p.d, pref, kCandidates, results, &found);
  ZT_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  // No algorithm comes back as NOT_SUPPORTED or as found == 0: the caller falls back.
  if (status != CUBLAS_STATUS_NOT_SUPPORTED) ZT_CUBLAS_CHECK(status);
  for (int i = 0; status == CUBLAS_STATUS_SUCCESS && i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= workspace_bytes)
      p.candidates.push_back(results[i].algo);
  if (!p.candidates.empty()) p.algo = p.candidates.front();
  return p;
}

bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  return v ? std::strcmp(v, "0") != 0 : fallback;
}

cublasStatus_t run_plan(cublasLtHandle_t handle, const Plan& p, const cublasLtMatmulAlgo_t& algo, const LtGemm& g,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const void* c = g.c ? g.c : g.d;  // a separate C has D's layout
  return cublasLtMatmul(handle, p.desc, &g.alpha, g.a, p.a, g.b, p.b, &g.beta, c, p.d, g.d, p.d, &algo, workspace,
                        workspace_bytes, stream);
}

// Times every candidate of `p` on g (3 calls after one untimed call, CUDA events on `stream`,
// a host wait) and keeps the fastest. Only for beta == 0 or a C apart from D: the trial calls
// overwrite D, which the real call then overwrites again.
void autotune(cublasLtHandle_t handle, Plan& p, const LtGemm& g, void* workspace, size_t workspace_bytes,
              cudaStream_t stream) {
  cudaEvent_t start = nullptr, stop = nullptr;
  ZT_CUDA_CHECK(cudaEventCreate(&start));
  ZT_CUDA_CHECK(cudaEventCreate(&stop));
  float best = -1;
  for (const cublasLtMatmulAlgo_t& algo : p.candidates) {
    if (run_plan(handle, p, algo, g, workspace, workspace_bytes, stream) != CUBLAS_STATUS_SUCCESS) continue;
    ZT_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int i = 0; i < 3; ++i) ZT_CUBLAS_CHECK(run_plan(handle, p, algo, g, workspace, workspace_bytes, stream));
    ZT_CUDA_CHECK(cudaEventRecord(stop, stream));
    ZT_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    ZT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (best < 0 || ms < best) {
      best = ms;
      p.algo = algo;
    }
  }
  ZT_CUDA_CHECK(cudaEventDestroy(start));
  ZT_CUDA_CHECK(cudaEventDestroy(stop));
  p.tuned = true;
}

struct LtState {
  std::mutex mutex;
  std::vector<cublasLtHandle_t> handles;  // per device, created on first use
  std::map<PlanKey, Plan> plans;
};

LtState& state() {
  static LtState* s = new LtState;  // never destroyed: handles may be used during exit
  return *s;
}

}  // namespace

bool lt_enabled() {
  static const bool enabled = env_flag("ZT_CUBLASLT", true);
  return enabled;
}

bool lt_bgradb_enabled() {
  static const bool enabled = env_flag("ZT_CUBLASLT_BGRADB", true);
  return enabled;
}

bool lt_matmul(int device, cudaStream_t stream, const LtGemm& g, void* workspace, size_t workspace_bytes) {
  const uint32_t align_a = alignment_of(g.a), align_b = alignment_of(g.b), align_d = alignment_of(g.d);
  const uint32_t align_c = g.c ? alignment_of(g.c) : align_d;
  const PlanKey key{device, int(g.type), int(g.compute), int(g.op_a), int(g.op_b), g.m, g.n, g.k, g.lda, g.ldb,
                    g.ldd, align_a, align_b, align_c, align_d, workspace_bytes, int(g.epilogue)};
  LtState& s = state();
  static const bool tune = env_flag("ZT_CUBLASLT_AUTOTUNE", false);
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  {
    // Held through the call: the epilogue's pointers live in the plan's shared descriptor.
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.handles.empty()) s.handles.assign(size_t(device_count()), nullptr);
    ZT_CHECK(device >= 0 && size_t(device) < s.handles.size(), "gemm: CUDA device ", device, " out of range");
    if (!s.handles[size_t(device)]) ZT_CUBLAS_CHECK(cublasLtCreate(&s.handles[size_t(device)]));
    cublasLtHandle_t handle = s.handles[size_t(device)];
    auto it = s.plans.find(key);
    if (it == s.plans.end())
      it = s.plans.emplace(key, make_plan(handle, g, align_a, align_b, align_c, align_d, workspace_bytes)).first;
    Plan& p = it->second;  // map nodes stay put
    if (p.candidates.empty()) return false;
    set_epilogue_pointers(p.desc, g);
    if (tune && !p.tuned && (g.beta == 0.0f || g.c) && p.candidates.size() > 1)
      autotune(handle, p, g, workspace, workspace_bytes, stream);
    status = run_plan(handle, p, p.algo, g, workspace, workspace_bytes, stream);
  }
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) return false;  // nothing queued: cublasGemmEx instead
  ZT_CUBLAS_CHECK(status);
  return true;
}

}  // namespace zt::cuda
