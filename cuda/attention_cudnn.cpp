// Note [cuDNN attention]
// cuDNN 9 runs fused flash attention (wgmma, warp-specialised on sm_90: about twice the speed of
// our mma.sync kernels, bench/RESULTS.md) for graphs of its backend API that match its attention
// pattern: two matmuls around a scaled, masked softmax. Without the cudnn_frontend headers we
// build those graphs with the backend descriptors directly, as the frontend's composite SDPA
// nodes lower them (cuDNN 9.x; the single-op SDPA descriptors of 9.13+ take no causal mask
// before 9.21):
//   forward:  S = Q K^T (K^T a transposed stride view of K), S * scale, the causal mask
//             (GEN_INDEX on the row and column axes, CMP_GE, BINARY_SELECT with -inf), row max M,
//             exp(S - M), row sum Z, Stats = M + log Z (our lse), P = exp(S - M) / Z rounded to
//             the io type, O = P V;
//   backward: delta = rowsum(dO * O), P = exp(scale S - Stats) masked, dV = P^T dO,
//             dS = scale P (dO V^T - delta), dK = dS^T Q, dQ = dS K into an f32 accumulator, then
//             converted (dQ by atomics: not bitwise reproducible; ZT_CUDNN_ATTENTION=0 keeps
//             zerotrain's deterministic kernels).
// A plan (graph, engine, workspace size) is built once per shape and strides and cached, the
// declined ones too; cuDNN picks the engine by its heuristics (mode A), trying each config it
// offers until one finalizes. Where cuDNN declines (f32/f64, head dims not a multiple of 8,
// misaligned views, sm < 80, a backward over T not a multiple of 128 before cuDNN 9.15, ...) the
// caller runs its own kernels; the first decline of each kind prints why (f32/f64 silently), and
// CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr makes cuDNN say why it rejects a graph.
// Measured on the H200 (cuDNN 9.14, causal B=8 H=12 T=1024 D=64 bf16): forward 233 TFLOP/s,
// forward + backward 186, against 140 and 105 for zerotrain's kernels.
#include "cuda/attention_cudnn.h"

#include <array>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/attention_checks.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.h"
#include "cuda/cudnn_util.h"
#include "cuda/device.h"

namespace zt::cuda {
namespace {

// cuDNN declined a graph: the reason, for the fallback note.
struct Declined {
  std::string why;
};

void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) throw Declined{std::string(what) + ": " + cudnnGetErrorString(s)};
}

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type) { check(cudnnBackendCreateDescriptor(type, &d_), "create"); }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Desc& operator=(Desc&&) = delete;
  Desc(const Desc&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* values) {
    check(cudnnBackendSetAttribute(d_, name, type, count, values), "set attribute");
    return *this;
  }
  Desc& set(cudnnBackendAttributeName_t name, const Desc& other) {
    cudnnBackendDescriptor_t o = other.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &o);
  }
  Desc& set_i64(cudnnBackendAttributeName_t name, int64_t v) { return set(name, CUDNN_TYPE_INT64, 1, &v); }
  Desc& set_type(cudnnBackendAttributeName_t name, cudnnDataType_t t) {
    return set(name, CUDNN_TYPE_DATA_TYPE, 1, &t);
  }
  void finalize(const char* what) { check(cudnnBackendFinalize(d_), what); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

using Dims = std::array<int64_t, 4>;

// User tensors of the graphs (virtual ones are numbered from kFirstVirtual).
enum Uid : int64_t {
  kQ = 1, kK, kV, kO, kStats, kScale, kNegInf, kGradOut, kGradQ, kGradK, kGradV, kOne, kDelta, kGradQAccum,
  kFirstVirtual = 100
};

// Which of the forms the frontend has emitted over cuDNN 9.x a graph is built in (the index
// ops' compute type, the dtype of the backward's K view); tried in order.
struct Variant {
  cudnnDataType_t index_prec, compare_prec, k_view_type;
};

// An operation graph under construction and, once finalized, its execution plan.
class Graph {
 public:
  explicit Graph(cudnnDataType_t io) : io_(io) {}

  int64_t tensor(int64_t uid, cudnnDataType_t type, const Dims& dims, const Dims& strides, bool is_virtual,
                 bool by_value = false) {
    Desc d(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    d.set_i64(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)
        .set_type(CUDNN_ATTR_TENSOR_DATA_TYPE, type)
        .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data())
        .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data())
        .set_i64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16)
        .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) {
      const bool yes = true;
      d.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    }
    d.finalize("tensor");
    tensors_.emplace(uid, std::move(d));
    if (!is_virtual) user_uids_.push_back(uid);
    return uid;
  }
  int64_t virt(cudnnDataType_t type, const Dims& dims, const Dims& strides) {
    return tensor(next_virtual_++, type, dims, strides, true);
  }
  int64_t scalar(int64_t uid) { return tensor(uid, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true); }

  // y = mode(x[, b[, t]]) elementwise (b, t < 0: absent); axis for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, int64_t x, int64_t b, int64_t y, int64_t t = -1,
                 cudnnDataType_t prec = CUDNN_DATA_FLOAT, int64_t axis = -1) {
    Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
        .set_type(CUDNN_ATTR_POINTWISE_MATH_PREC, prec);
    if (axis >= 0) pw.set_i64(CUDNN_ATTR_POINTWISE_AXIS, axis);
    pw.finalize("pointwise descriptor");
    Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, at(x));
    if (b >= 0) op.set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, at(b));
    if (t >= 0) op.set(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, at(t));
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, at(y)).finalize("pointwise operation");
    keep_.push_back(std::move(pw));
    ops_.push_back(std::move(op));
  }
  void matmul(int64_t a, int64_t b, int64_t c) {
    Desc mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    mm.set_type(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT).finalize("matmul descriptor");
    Desc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, at(a))
        .set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, at(b))
        .set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, at(c))
        .set(CUDNN_ATTR_OPERATION_MATMUL_DESC, mm)
        .finalize("matmul operation");
    keep_.push_back(std::move(mm));
    ops_.push_back(std::move(op));
  }
  void reduction(cudnnReduceTensorOp_t what, int64_t x, int64_t y) {
    Desc red(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    red.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &what)
        .set_type(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT)
        .finalize("reduction descriptor");
    Desc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, at(x))
        .set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, at(y))
        .set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, red)
        .finalize("reduction operation");
    keep_.push_back(std::move(red));
    ops_.push_back(std::move(op));
  }
  void reshape(int64_t x, int64_t y) {
    Desc op(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, at(x))
        .set(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, at(y))
        .finalize("reshape");
    ops_.push_back(std::move(op));
  }

  // The operation graph, cuDNN's heuristics and the first engine config that finalizes a plan.
  void build(cudnnHandle_t handle) {
    std::vector<cudnnBackendDescriptor_t> ops;
    for (const Desc& op : ops_) ops.push_back(op.get());
    Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops.size()), ops.data())
        .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
        .finalize("operation graph");
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph)
        .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode)
        .finalize("heuristics");
    int64_t count = 0;
    check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                   nullptr),
          "heuristics results");
    if (count == 0) throw Declined{"no engine config for the graph"};
    std::vector<Desc> configs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
      raw.push_back(configs.back().get());
    }
    int64_t returned = 0;
    check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                   &returned, raw.data()),
          "heuristics results");
    std::string last = "no engine config finalized";
    for (int64_t i = 0; i < returned; ++i) {
      Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
          .set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[size_t(i)]);
      const cudnnStatus_t s = cudnnBackendFinalize(plan.get());
      if (s != CUDNN_STATUS_SUCCESS) {
        last = std::string("execution plan: ") + cudnnGetErrorString(s);
        continue;
      }
      int64_t n = 0;
      check(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                     &workspace_),
            "workspace size");
      keep_.push_back(std::move(graph));
      keep_.push_back(std::move(heur));
      for (Desc& c : configs) keep_.push_back(std::move(c));
      plan_ = std::make_unique<Desc>(std::move(plan));
      return;
    }
    throw Declined{last};
  }

  // Runs the plan with the pointer of every user tensor by uid (by-value scalars: host pointers)
  // and a workspace from the caching allocator (stream-ordered reuse keeps it valid for the
  // kernels queued here).
  void execute(cudnnHandle_t handle, const std::map<int64_t, void*>& by_uid, int device) const {
    std::vector<void*> data;
    for (int64_t uid : user_uids_) {
      const auto it = by_uid.find(uid);
      ZT_CHECK(it != by_uid.end(), "attention: cuDNN graph tensor ", uid, " has no data");
      data.push_back(it->second);
    }
    const Tensor buffer =
        Tensor::empty({workspace_ > 0 ? workspace_ : 1}, TensorOptions(DType::u8, Device::cuda(device)));
    void* workspace = buffer.raw_data();
    Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(user_uids_.size()), user_uids_.data())
        .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(data.size()), data.data())
        .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace)
        .finalize("variant pack");
    const cudnnStatus_t s = cudnnBackendExecute(handle, plan_->get(), pack.get());
    ZT_CHECK(s == CUDNN_STATUS_SUCCESS, "attention: cuDNN's fused attention failed to run: ", cudnnGetErrorString(s));
  }

  cudnnDataType_t io() const { return io_; }

 private:
  const Desc& at(int64_t uid) const { return tensors_.at(uid); }

  cudnnDataType_t io_;
  std::map<int64_t, Desc> tensors_;
  std::vector<Desc> ops_, keep_;
  std::vector<int64_t> user_uids_;
  int64_t next_virtual_ = kFirstVirtual;
  int64_t workspace_ = 0;
  std::unique_ptr<Desc> plan_;
};

Dims strides_of(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }
// (B, H, D, T): the transposed view of a (B, H, T, D) tensor, same memory.
Dims transposed(const Dims& d) { return {d[0], d[1], d[3], d[2]}; }

// The problem size: batch, heads, sequence, head dim (core's Shape is a different thing).
struct Problem {
  int64_t B, H, T, D;
  Dims bhtd() const { return {B, H, T, D}; }
  Dims scores() const { return {B, H, T, T}; }
  Dims score_strides() const { return {H * T * T, T * T, T, 1}; }
  Dims rows() const { return {B, H, T, 1}; }
  Dims row_strides() const { return {H * T, T, 1, 1}; }
};

// The causal mask on the scores x: keep key <= query, else -inf. Returns the masked tensor.
int64_t causal_mask(Graph& g, const Problem& s, int64_t x, const Variant& var) {
  const int64_t row = g.virt(CUDNN_DATA_INT32, s.scores(), s.score_strides());
  const int64_t col = g.virt(CUDNN_DATA_INT32, s.scores(), s.score_strides());
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, -1, row, -1, var.index_prec, 2);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, -1, col, -1, var.index_prec, 3);
  const int64_t keep = g.virt(CUDNN_DATA_BOOLEAN, s.scores(), s.score_strides());
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, col, keep, -1, var.compare_prec);
  const int64_t masked = g.virt(CUDNN_DATA_FLOAT, s.scores(), s.score_strides());
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, kNegInf, masked, keep);
  return masked;
}

void build_forward(Graph& g, const Problem& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                   bool causal, const Variant& var) {
  const cudnnDataType_t io = g.io();
  g.tensor(kQ, io, s.bhtd(), strides_of(q), false);
  g.tensor(kK, io, transposed(s.bhtd()), transposed(strides_of(k)), false);
  g.tensor(kV, io, s.bhtd(), strides_of(v), false);
  g.tensor(kO, io, s.bhtd(), strides_of(out), false);
  g.tensor(kStats, CUDNN_DATA_FLOAT, s.rows(), s.row_strides(), false);
  g.scalar(kScale);
  if (causal) g.scalar(kNegInf);
  const auto f32 = [&](bool rows) {
    return rows ? g.virt(CUDNN_DATA_FLOAT, s.rows(), s.row_strides())
                : g.virt(CUDNN_DATA_FLOAT, s.scores(), s.score_strides());
  };
  const int64_t scores = f32(false), scaled = f32(false);
  g.matmul(kQ, kK, scores);
  g.pointwise(CUDNN_POINTWISE_MUL, scores, kScale, scaled);
  const int64_t logits = causal ? causal_mask(g, s, scaled, var) : scaled;
  const int64_t mx = f32(true), shifted = f32(false), e = f32(false), z = f32(true), log_z = f32(true);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, logits, mx);
  g.pointwise(CUDNN_POINTWISE_SUB, logits, mx, shifted);
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, -1, e);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z);
  g.pointwise(CUDNN_POINTWISE_LOG, z, -1, log_z);
  g.pointwise(CUDNN_POINTWISE_ADD, mx, log_z, kStats);
  const int64_t p = g.virt(io, s.scores(), s.score_strides());  // the second matmul takes P in the io type
  g.pointwise(CUDNN_POINTWISE_DIV, e, z, p);
  g.matmul(p, kV, kO);
}

void build_backward(Graph& g, const Problem& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const Tensor& grad_out, const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                    bool causal, const Variant& var) {
  const cudnnDataType_t io = g.io();
  g.tensor(kQ, io, s.bhtd(), strides_of(q), false);
  g.tensor(kK, io, transposed(s.bhtd()), transposed(strides_of(k)), false);
  g.tensor(kV, io, transposed(s.bhtd()), transposed(strides_of(v)), false);
  g.tensor(kO, io, s.bhtd(), strides_of(out), false);
  g.tensor(kGradOut, io, s.bhtd(), strides_of(grad_out), false);
  g.tensor(kStats, CUDNN_DATA_FLOAT, s.rows(), s.row_strides(), false);
  g.tensor(kGradQ, io, s.bhtd(), strides_of(grad_q), false);
  g.tensor(kGradK, io, s.bhtd(), strides_of(grad_k), false);
  g.tensor(kGradV, io, s.bhtd(), strides_of(grad_v), false);
  g.scalar(kScale);
  g.scalar(kOne);
  if (causal) g.scalar(kNegInf);
  g.tensor(kDelta, CUDNN_DATA_FLOAT, s.rows(), s.row_strides(), false);
  g.tensor(kGradQAccum, CUDNN_DATA_FLOAT, s.bhtd(), {s.H * s.T * s.D, s.T * s.D, s.D, 1}, false);
  const auto scores = [&](cudnnDataType_t t = CUDNN_DATA_FLOAT) { return g.virt(t, s.scores(), s.score_strides()); };
  // delta = rowsum(dO * O)
  const int64_t prod = g.virt(CUDNN_DATA_FLOAT, s.bhtd(), {s.H * s.T * s.D, s.T * s.D, s.H * s.D, 1});
  const int64_t sum = g.virt(CUDNN_DATA_FLOAT, s.rows(), s.row_strides());
  g.pointwise(CUDNN_POINTWISE_MUL, kGradOut, kO, prod);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, prod, sum);
  g.pointwise(CUDNN_POINTWISE_MUL, sum, kOne, kDelta);
  // P = exp(scale Q K^T - Stats), masked
  const int64_t s0 = scores(), s1 = scores(), s2 = scores();
  g.matmul(kQ, kK, s0);
  g.pointwise(CUDNN_POINTWISE_MUL, s0, kScale, s1);
  g.pointwise(CUDNN_POINTWISE_SUB, s1, kStats, s2);
  const int64_t logits = causal ? causal_mask(g, s, s2, var) : s2;
  const int64_t p = scores();
  g.pointwise(CUDNN_POINTWISE_EXP, logits, -1, p);
  const Dims t_strides{s.H * s.T * s.T, s.T * s.T, 1, s.T};
  const int64_t p_t = g.virt(io, s.scores(), t_strides);
  g.reshape(p, p_t);
  g.matmul(p_t, kGradOut, kGradV);  // dV = P^T dO
  // dS = scale P (dO V^T - delta)
  const int64_t dp = scores(), dp_minus = scores(), dp_p = scores(), ds = scores();
  g.matmul(kGradOut, kV, dp);
  g.pointwise(CUDNN_POINTWISE_SUB, dp, kDelta, dp_minus);
  g.pointwise(CUDNN_POINTWISE_MUL, dp_minus, p, dp_p);
  g.pointwise(CUDNN_POINTWISE_MUL, dp_p, kScale, ds);
  const int64_t ds_t = g.virt(io, s.scores(), t_strides);
  g.reshape(ds, ds_t);
  g.matmul(ds_t, kQ, kGradK);  // dK = dS^T Q
  const int64_t k_rows = g.virt(var.k_view_type, s.bhtd(), strides_of(k));
  g.reshape(kK, k_rows);
  g.matmul(ds, k_rows, kGradQAccum);  // dQ = dS K, in f32
  g.pointwise(CUDNN_POINTWISE_IDENTITY, kGradQAccum, -1, kGradQ);
}

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("ZT_CUDNN_ATTENTION");
    return !(e && e[0] == '0');
  }()};
  return on;
}
std::atomic<int64_t> forward_runs{0}, backward_runs{0};

constexpr const char* kNot16Bit = "f16/bf16 only";

// Why cuDNN cannot take these tensors, or "" when it may: f16/bf16, D a multiple of 8 (at most
// 128, our limit), unit stride in D, 16-byte aligned rows.
std::string ineligible(const std::vector<const Tensor*>& heads, int device) {
  const Tensor& q = *heads[0];
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return kNot16Bit;
  if (compute_capability_major(device) < 8) return "sm_80 or newer only";
  if (q.size(3) % 8 != 0) return "head dims that are multiples of 8 only";
  const size_t v = cudnnGetVersion();
  if (v >= 91000 && v < 91100) return "cuDNN 9.10 has known attention bugs";
  for (const Tensor* t : heads) {
    if (t->stride(3) != 1 || reinterpret_cast<uintptr_t>(t->raw_data()) % 16 != 0) return "16-byte rows only";
    for (int d = 0; d < 3; ++d)
      if (t->stride(d) % 8 != 0) return "16-byte rows only";
  }
  return "";
}

// Plans by (direction, device, dtype, causal, B, H, T, D, strides of every head tensor); null
// for a declined one.
using Key = std::vector<int64_t>;

Key make_key(int64_t backward, int device, const Tensor& q, bool causal, const std::vector<const Tensor*>& heads) {
  Key key{backward, device, int64_t(q.dtype()), causal, q.size(0), q.size(1), q.size(2), q.size(3)};
  for (const Tensor* t : heads)
    for (int d = 0; d < 4; ++d) key.push_back(t->stride(d));
  return key;
}

std::mutex cache_mutex;
std::map<Key, std::shared_ptr<const Graph>>& plan_cache() {
  static std::map<Key, std::shared_ptr<const Graph>> cache;
  return cache;
}

// Prints why cuDNN declined, once per reason.
void note_decline(const char* op, const std::string& why) {
  static std::mutex mutex;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mutex);
  if (!seen.insert(why).second) return;
  std::fprintf(stderr, "zerotrain: %s: cuDNN fused attention declined (%s, cuDNN %zu); using zerotrain's kernels\n",
               op, why.c_str(), size_t(cudnnGetVersion()));
}

// The cached plan for `key`, built by `build(graph, variant)` on first use; null when declined.
template <typename Build>
std::shared_ptr<const Graph> plan_for(const Key& key, const char* op, cudnnDataType_t io, cudnnHandle_t handle,
                                      Build&& build) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = plan_cache().find(key);
  if (it != plan_cache().end()) return it->second;
  const Variant variants[] = {{CUDNN_DATA_INT32, CUDNN_DATA_BOOLEAN, CUDNN_DATA_FLOAT},
                              {CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT},
                              {CUDNN_DATA_INT32, CUDNN_DATA_BOOLEAN, io}};
  std::shared_ptr<const Graph> plan;
  std::string why;
  for (const Variant& var : variants) {
    try {
      auto g = std::make_shared<Graph>(io);
      build(*g, var);
      g->build(handle);
      plan = std::move(g);
      break;
    } catch (const Declined& d) {
      if (why.empty()) why = d.why;
    }
  }
  if (!plan) note_decline(op, why);
  plan_cache()[key] = plan;
  return plan;
}

float negative_infinity() { return cudnnGetVersion() >= 91000 ? -INFINITY : -FLT_MAX; }

}  // namespace

bool cudnn_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                             double scale, bool causal) {
  if (!cudnn_attention_enabled()) return false;
  const int device = q.device().index;
  const std::vector<const Tensor*> heads{&q, &k, &v, &out};
  if (const std::string why = ineligible(heads, device); !why.empty()) {
    if (why != kNot16Bit) note_decline("attention_forward", why);  // f32/f64: expected, no note
    return false;
  }
  if (!lse.is_contiguous()) return false;
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(device);
  const Problem s{q.size(0), q.size(1), q.size(2), q.size(3)};
  const cudnnDataType_t io = cudnn_type(q.dtype(), "attention_forward");
  const auto plan = plan_for(make_key(0, device, q, causal, heads), "attention_forward", io, handle,
                             [&](Graph& g, const Variant& var) { build_forward(g, s, q, k, v, out, causal, var); });
  if (!plan) return false;
  float scale_value = float(scale), neg_inf = negative_infinity();
  plan->execute(handle,
                {{kQ, q.raw_data()}, {kK, k.raw_data()}, {kV, v.raw_data()}, {kO, out.raw_data()},
                 {kStats, lse.raw_data()}, {kScale, &scale_value}, {kNegInf, &neg_inf}},
                device);
  ++forward_runs;
  return true;
}

bool cudnn_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                              const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& out, const Tensor& lse, double scale, bool causal) {
  if (!cudnn_attention_enabled()) return false;
  const int device = q.device().index;
  const std::vector<const Tensor*> heads{&q, &k, &v, &out, &grad_out, &grad_q, &grad_k, &grad_v};
  if (const std::string why = ineligible(heads, device); !why.empty()) {
    if (why != kNot16Bit) note_decline("attention_backward", why);
    return false;
  }
  const Problem s{q.size(0), q.size(1), q.size(2), q.size(3)};
  // Before 9.15 the frontend pads keys to a multiple of 128 with a mask of its own; we do not.
  if (s.T < 2 || (s.T % 128 != 0 && cudnnGetVersion() < 91500)) {
    note_decline("attention_backward", "T of 2 or more, a multiple of 128 before cuDNN 9.15");
    return false;
  }
  if (!lse.is_contiguous()) return false;
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(device);
  const cudnnDataType_t io = cudnn_type(q.dtype(), "attention_backward");
  const auto plan = plan_for(make_key(1, device, q, causal, heads), "attention_backward", io, handle,
                             [&](Graph& g, const Variant& var) {
                               build_backward(g, s, q, k, v, out, grad_out, grad_q, grad_k, grad_v, causal, var);
                             });
  if (!plan) return false;
  const TensorOptions f32(DType::f32, Device::cuda(device));
  const Tensor delta = Tensor::empty({s.B * s.H * s.T}, f32);
  const Tensor grad_q_accum = Tensor::empty({s.B * s.H * s.T * s.D}, f32);
  if (cudnnGetVersion() < 90600)  // later versions initialise the accumulator themselves
    ZT_CUDA_CHECK(cudaMemsetAsync(grad_q_accum.raw_data(), 0, size_t(grad_q_accum.nbytes()), current_stream(device)));
  float scale_value = float(scale), one = 1.f, neg_inf = negative_infinity();
  plan->execute(handle,
                {{kQ, q.raw_data()}, {kK, k.raw_data()}, {kV, v.raw_data()}, {kO, out.raw_data()},
                 {kGradOut, grad_out.raw_data()}, {kStats, lse.raw_data()}, {kGradQ, grad_q.raw_data()},
                 {kGradK, grad_k.raw_data()}, {kGradV, grad_v.raw_data()}, {kScale, &scale_value}, {kOne, &one},
                 {kNegInf, &neg_inf}, {kDelta, delta.raw_data()}, {kGradQAccum, grad_q_accum.raw_data()}},
                device);
  ++backward_runs;
  return true;
}

void set_cudnn_attention(bool enabled) { enabled_flag() = enabled; }
bool cudnn_attention_enabled() { return enabled_flag(); }
CudnnAttentionCounts cudnn_attention_counts() { return {forward_runs.load(), backward_runs.load()}; }

}  // namespace zt::cuda
