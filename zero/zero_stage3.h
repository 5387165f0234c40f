// ZeRO stage 3 (DESIGN.md §5): stage 2 plus partitioned parameters. Each rank keeps only its
// shard of the parameters, fp32 masters, optimizer state and gradients; module hooks gather a
// module's parameters just before its forward and backward and release them afterwards. A
// ShardedOptimizer (zero/sharded_optimizer.h), so the engine drives it as stages 1 and 2.
//
// Note [ZeRO-3 layout]
// A unit is the parameters that require grad of one optimizer group registered directly on one
// module (registration order; one unit per module when the optimizer has one group). A tensor
// registered on several modules (tied weights) belongs to the unit of the first of them in module
// order, whose name named_parameters() gives it. Each unit has one gather
// buffer, one StorageImpl of L elements in the compute dtype: its parameters at offsets rounded
// up to kZeroAlign, L rounded up to a multiple of W * kZeroAlign (W ranks), zero padding; the
// module's parameters become views into it. Rank r owns slice r, [r*L/W, (r+1)*L/W), of every
// unit; its parameter shard (S,) is the concatenation of its slices, group by group and in unit
// order within a group (so each group is one range of the shard: Note [ZeRO parameter groups]),
// and is the only copy of the parameters it keeps. An f32 model's master is that shard itself;
// bf16/f16 models keep an fp32 copy. The gradient shard (S,) lies alike.
// offload_param (device cpu): the parameter shard lives in host memory (page-locked when a
// pinned allocator is given) and a gather first copies this rank's slice to the device, then
// all_gathers it; the step writes the updated weights straight into the host shard under
// offload_optimizer, or copies the device master back into it without. Between uses a unit's buffer is released
// (Note [Released storage] in core/storage.h): views of it, such as a transposed weight saved
// for backward, see the values again once it is gathered. A unit of at most
// param_persistence_threshold elements is persistent: it stays gathered, and one all_gather of
// all persistent slices refreshes them after each step.
//
// Note [ZeRO-3 NVMe parameters]
// offload_param device nvme (ZeRO-Infinity) keeps the parameter shard in a file under nvme_path
// (zero/nvme_param_shard.h) instead of host memory. Construction builds the shard in host memory
// as for device cpu, makes the masters from it, then writes it to the file and frees it. A gather
// reads the unit's slice from the file into a host tensor, then proceeds as for device cpu. The
// step writes the updated weights into a host tensor of the shard that lives for the step only,
// then into the file (with the optimizer offloaded the store writes them there; without, the
// masters are copied into it). An f32 model whose master is its shard (a model on the CPU
// without offload_optimizer) keeps that master in memory: only its file copy is new. Host memory
// between steps: the swap buffers (param_buffer_count chunks).
//
// Note [ZeRO-3 hooks]
// Every module whose own parameter slots hold unit parameters (tied ones included) gets:
// - forward pre-hook: holds its units, gathers those not gathered (materialize, then all_gather
//   of every rank's slice into the buffer, asynchronously), prefetches, waits for its own.
// - forward hook: drops the holds; a unit nobody holds is released, except during backward:
//   activation checkpointing recomputes a forward inside backward, and the recomputed module's
//   backward follows at once, so its units stay until their gradients are in.
// - backward pre-hook (the gradient of its output arrived, before its backward nodes run):
//   gathers its units again and prefetches.
// A unit is released in backward once every parameter of it has its gradient (grad-ready
// hooks): a leaf's gradient is final only after every node that used the leaf has run, so no
// node needs its values any more. Holds are counts, so a unit used by two modules (GPT's token
// embedding, also the output head) is released only when neither needs it; in backward a tied
// unit stays gathered from the head's backward until the embedding's. Module backward hooks
// are not used: for a module whose input needs no gradient they fire before its backward nodes.
// What is still gathered when backward returns (a parameter that got no gradient, a prefetch
// that was not used) is released by after_backward(); outside backward the root module's
// forward hook releases what is not held, and its forward pre-hook clears the holds of a forward
// that threw. In eval and under no-grad only the forward hooks run. A unit is released right
// after its use, unless it is kept for a reuse (below).
// Reuse (stage3_max_reuse_distance): once the first forward has recorded the calls, a training
// forward (grad mode on) keeps a unit gathered after its module's forward when its next use is
// near: the elements the calls in between gather (the rest of this forward, then backward from
// the end back to the unit's last user) are at most max_reuse_distance, and the gathered elements
// are within max_live_parameters. The last layers' units then serve backward without a second
// gather. Kept units are released as any other once their gradients are in, and by
// after_backward() or the next forward.
// Prefetch: the first forward records the sequence of hooked module calls; afterwards a forward
// pre-hook gathers the units of the calls that follow it, a backward pre-hook those that precede
// it, up to prefetch_bucket_size elements and never beyond max_live_parameters gathered
// elements (a module's own units are gathered regardless). Every rank makes the same module
// calls, so every rank issues the same collectives in the same order.
// Consequences for programs: every rank must run every forward (evaluation included), since
// gathering is collective; a module may read only parameters registered on itself (or call the
// module that owns them): GPT's tied head registers the embedding's tensor for that reason; and
// parameters read outside a forward are released (a clear error): gathered_state_dict() or
// stage3_gather_16bit_weights_on_model_save give the whole weights.
//
// Note [ZeRO-3 gradients]
// Once every parameter of a unit has its gradient, the gradients are packed into (L,), averaged
// over the ranks with one reduce_scatter into this rank's slice of the gradient shard, and
// dropped, so full-size gradients exist only for units in flight (at most reduce_bucket_size
// packed elements; more waits). Off the accumulation boundary the same happens (set_syncing is
// ignored): each micro-batch's reduction adds into the shard, so no full gradient outlives its
// backward, at the cost of one reduce_scatter per unit per micro-batch rather than per step
// (stage 2 instead accumulates full gradients in the parameters and reduces once); the sum is
// in the compute dtype, as stage 0 sums micro-batches in the parameters' gradients. The step
// unscales the shard (Note [ZeRO gradient scaling]: folded into Adam/AdamW's pass over the shard
// as it is, else into an fp32 master gradient, for bf16/f16 a buffer that lives for the step
// only), agrees on non-finite gradients and the clipping norm over all ranks, steps the master
// shard and copies it back to the compute dtype. There is no all_gather after the step: the next
// forward gathers.
//
// Memory (allocator categories), S about Ψ/W: parameters: the shard (2S bytes bf16, 4S f32),
// plus units while gathered and persistent units; gradients: the gradient shard (2S or 4S), plus
// full gradients until reduced; optimizer_state: Adam's m and v (8S) and bf16's fp32 master (4S).
// That is 16Ψ/W for mixed-precision Adam (and for f32) at steady state after the step. With
// offload_optimizer the 12S bytes of masters and moments are host memory (or NVMe), with
// offload_param the parameter shard too: the device keeps the gradient shard and gathered units.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "zero/nvme_param_shard.h"
#include "zero/sharded_optimizer.h"

namespace zt {

struct Stage3Options {
  int64_t reduce_bucket_size = 500'000'000;       // packed gradient elements in flight, at most
  int64_t prefetch_bucket_size = 50'000'000;      // stage3_prefetch_bucket_size (0: no prefetch)
  int64_t max_live_parameters = 1'000'000'000;    // stage3_max_live_parameters
  int64_t param_persistence_threshold = 100'000;  // stage3_param_persistence_threshold
  int64_t max_reuse_distance = 0;                 // stage3_max_reuse_distance (0: release after every use)
  bool broadcast_parameters = true;               // start every rank from rank 0's values
  ShardedOptions sharded{};                       // parameter groups, offload_optimizer
  // offload_param device cpu (Note [ZeRO-3 layout]); the host shard is page-locked when
  // param_pinned_allocator is not null.
  bool offload_param = false;
  Allocator* param_pinned_allocator = nullptr;
  // offload_param device nvme (Note [ZeRO-3 NVMe parameters]): the shard lives in a file under
  // this folder; read in chunks of at most param_buffer_size elements (and 1 MiB) through
  // param_buffer_count host buffers.
  std::string param_nvme_path{};
  int param_buffer_count = 5;
  int64_t param_buffer_size = 100'000'000;
};

class ZeroStage3Optimizer final : public ShardedOptimizer {
 public:
  // Collective over comm (null: a world of one). Partitions the module's parameters (they become
  // views of released unit buffers) and registers its hooks; build it after the dtype move.
  // `originals` as for ShardedOptimizer.
  ZeroStage3Optimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm, Stage3Options options,
                      LossScaler scaler, std::vector<Tensor> originals = {});
  // Removes the hooks; the module's partitioned parameters stay released.
  ~ZeroStage3Optimizer() override;

  bool unscale_gradients() override;
  void step(Optimizer& optimizer) override;
  void zero_grad() override;

  // See Notes [ZeRO-3 hooks] and [ZeRO-3 gradients].
  void set_syncing(bool) override {}
  void after_backward() override;
  void finish_gradient_reduction() override;

  int stage() const override { return 3; }
  // Under offload_param nvme a host copy read from the file (writes to it are not kept).
  Tensor parameter_shard() const override;
  bool parameter_shard_resident() const override { return nvme_shard_ == nullptr; }
  std::vector<ShardPiece> shard_pieces() const override;
  TensorDict model_state(bool gather_partitioned) override;
  std::vector<std::pair<std::string, std::string>> partitioned_state_names() const override;
  void load_model_state(const TensorDict& state) override;

  // The module's state_dict with every partitioned parameter gathered, as clones (collective).
  TensorDict gathered_state_dict();

  // ---- introspection (tests, zt-membench) ----
  int64_t numel() const { return numel_; }  // parameters' elements (unpadded)
  int64_t num_units() const { return int64_t(units_.size()); }
  // Parameter names of unit u, its padded size L and whether it is persistent / gathered now.
  std::vector<std::string> unit_parameters(size_t u) const;
  int64_t unit_padded_numel(size_t u) const { return units_.at(u).padded; }
  bool unit_persistent(size_t u) const { return units_.at(u).persistent; }
  bool unit_gathered(size_t u) const { return !units_.at(u).storage->released(); }
  // Elements of non-persistent units gathered now, and the most since reset_peak_live().
  int64_t live_elements() const { return live_; }
  // All_gathers (or shard copies in a world of one) of non-persistent units since construction.
  int64_t gather_count() const { return gathers_; }
  int64_t peak_live_elements() const { return peak_live_; }
  void reset_peak_live() { peak_live_ = live_; }
  // This step's reduced gradient shard (S,) in the compute dtype.
  const Tensor& gradient_shard() const { return grad_shard_; }

 private:
  struct Param {
    std::string name;
    Tensor tensor;  // the view into its unit's buffer that the module holds
    size_t unit = 0;
    int64_t offset = 0;  // in the unit buffer
    HookHandle hook = 0;
    bool counted = false;  // its gradient arrived since the unit's last reduction
  };
  struct Unit {
    std::vector<size_t> params;
    size_t group = 0;  // the optimizer group of all its parameters
    int64_t numel = 0, padded = 0, slice = 0;  // unpadded, L, L / W
    int64_t shard_offset = 0;                  // of this rank's slice in the shard
    Storage storage;                           // (L,) compute dtype
    bool persistent = false;
    bool current = false;  // the buffer holds (or an all_gather in flight will hold) the shard's values
    WorkHandle gather;
    Tensor staging;  // offload_param: this rank's slice on the device while gathered
    int holds = 0;            // module forwards in progress using it
    bool kept = false;        // kept gathered for a near reuse (Note [ZeRO-3 hooks], reuse)
    int64_t grads_ready = 0;  // parameters counted
    bool reduced = false;     // its gradient slice already holds a contribution this step
  };
  struct User {  // a module whose parameter slots hold unit parameters
    Module* module = nullptr;
    std::vector<size_t> units;
    std::vector<HookHandle> hooks;
  };
  struct PendingReduce {
    WorkHandle work;
    Tensor packed, out, accumulate_into;  // out is added into accumulate_into when done
  };

  // Construction (zero_stage3.cpp).
  void build_units(const std::vector<std::pair<std::string, Tensor>>& named);
  // Places the units' slices in the shard group by group; returns the groups' ranges.
  std::vector<GroupRange> place_slices();
  void fill_units_and_shard(const std::vector<std::pair<std::string, Tensor>>& named);
  void register_hooks();
  Tensor unit_view(const Unit& u) const;  // (L,) over the unit's storage
  Tensor slice_of(const Tensor& shard, const Unit& u) const { return raw_slice(shard, u.shard_offset, u.slice); }
  // This rank's slice of unit u's parameters: a view of the shard, or read from its NVMe file.
  Tensor read_slice(const Unit& u) const;
  // offload_param nvme: moves the shard into its file (after the masters were made from it).
  void park_shard_on_nvme();
  static Tensor raw_slice(const Tensor& t, int64_t offset, int64_t length);
  bool is_partitioned(const Tensor& t) const;

  // Gathering (zero_stage3_gather.cpp).
  void fetch(size_t u);  // starts gathering u unless it is current
  void wait(size_t u);
  void release(size_t u);  // non-persistent, not held: frees the buffer
  void release_idle();     // every unit that is not held
  void prefetch(size_t position, int direction);
  void gather_persistent();  // refreshes every persistent unit (collective)
  void on_forward_pre(size_t user);
  void on_forward_post(size_t user);
  void on_backward_pre(size_t user);
  void on_pass_begin();
  // Elements gathered between trace position k and the next use of unit u (reuse, above).
  int64_t reuse_distance(size_t k, size_t u) const;
  void on_pass_end();
  // Gradients (zero_stage3_gather.cpp).
  void on_grad_ready(size_t param);
  void reduce_unit(size_t u);
  void flush_gradients();  // reduces every unit some of whose parameters hold a gradient
  void retire_reductions(int64_t max_in_flight);

  Stage3Options options_;
  std::vector<Param> params_;
  std::vector<Unit> units_;
  std::vector<User> users_;
  std::vector<HookHandle> root_hooks_;
  int64_t numel_ = 0;
  Tensor shard_param_;  // (S,) compute dtype: this rank's parameters (on the host with offload_param)
  HostTensor host_shard_;  // offload_param: the memory of shard_param_
  // offload_param nvme: the shard's file (shard_param_ is then undefined after construction).
  std::unique_ptr<NvmeParamShard> nvme_shard_;
  Tensor grad_shard_;   // (S,) compute dtype
  std::deque<PendingReduce> pending_;
  int64_t in_flight_ = 0;  // packed elements in pending_
  int64_t live_ = 0, peak_live_ = 0, gathers_ = 0;
  bool in_backward_ = false;
  // Note [ZeRO-3 hooks], prefetch: user indices in the order of the first forward's calls.
  std::vector<size_t> trace_;
  bool tracing_ = false, traced_ = false;
  // reuse_distance(k, u) of each trace position k's units, in users_[trace_[k]].units order: the
  // trace is fixed once recorded, so the distances are computed once (with max_reuse_distance).
  std::vector<std::vector<int64_t>> reuse_distances_;
  size_t forward_next_ = 0, backward_next_ = 0;  // trace positions to search from
};

}  // namespace zt
