// cuBLASLt matmul for the plain (one matrix, no batch) GEMMs of cuda/gemm.cpp in f16, bf16 and
// f32 with TF32: the algorithm cuBLASLt's heuristic ranks first for a shape, its layouts and its
// pointer alignments is queried once and cached, then every call is one cublasLtMatmul. With
// ZT_CUBLASLT_AUTOTUNE=1 in the environment the heuristic's first 8 candidates are instead timed
// on the first call of each such problem with beta == 0 (one host wait) and the fastest kept:
// off by default, as the choice then depends on timing and so may differ from run to run.
// Problems are in cuBLAS's column-major terms (cuda/gemm.cpp maps the row-major ones).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace zt::cuda {

// What cuBLASLt's epilogue does after the product P = alpha * op_a(A) @ op_b(B) + beta * C, in
// f32 before the rounding to `type`. vec and aux are of `type`, 16-byte aligned; aux (m, n)
// with D's leading dim.
enum class LtEpilogue {
  none,           // D = P
  bias,           // D = P + vec (m) added to every column
  gelu_aux_bias,  // aux = P + vec, D = gelu_tanh(aux)
  bgradb,         // D = P, vec (n) = the sums of op_b(B) over k
};

// D (m, n) = alpha * op_a(A) (m, k) @ op_b(B) (k, n) + beta * C, column-major, then the
// epilogue. C is D itself (updated in place) unless c is given: then a separate matrix with D's
// layout (a residual added in the GEMM, one extra read). A, B, C and D are all of `type`; scaling
// and accumulation in f32.
struct LtGemm {
  cudaDataType_t type;          // CUDA_R_16F, CUDA_R_16BF or CUDA_R_32F
  cublasComputeType_t compute;  // CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_TF32 for f32
  cublasOperation_t op_a, op_b;
  int64_t m, n, k;
  const void* a;
  int64_t lda;
  const void* b;
  int64_t ldb;
  void* d;
  int64_t ldd;
  float alpha, beta;
  const void* c = nullptr;  // C with D's leading dim; null: C is D
  LtEpilogue epilogue = LtEpilogue::none;
  void* vec = nullptr;  // bias (read) or bias gradient (written)
  void* aux = nullptr;  // the GELU input: written by gelu_aux_bias, read by dgelu_bgrad
};

// Whether cuda/gemm.cpp sends its plain f16/bf16/TF32 GEMMs here: yes, unless the environment
// has ZT_CUBLASLT=0 (read once; for measuring one path against the other).
bool lt_enabled();
// Whether gemm_row_sums may use the BGRADB epilogue (ZT_CUBLASLT_BGRADB=0: no, the column-sum
// kernel after a plain product instead).
bool lt_bgradb_enabled();

// Queues `g` on `stream` on the current device (`device`), with `workspace` (bytes of device
// memory that only work on `stream` uses); false, with nothing queued, when cuBLASLt has no
// algorithm for the problem (the caller then uses cublasGemmEx).
bool lt_matmul(int device, cudaStream_t stream, const LtGemm& g, void* workspace, size_t workspace_bytes);

}  // namespace zt::cuda
