#!/usr/bin/env bash
# GPU machine benchmarks, each beside its reference in the same call, logs in $OUT (else
# <build>/gpu_bench), summaries printed last. BENCHES picks them (default "ops gpt cpu_adam"):
#   ops       bench_cuda_ops (op roofline vs raw cuBLAS / cudaMemcpy) and bench/torch_ops.py
#   gpt       bench_gpt (GPT-2 124M bf16 training, tokens/s and MFU), the same with --unfused-mlp
#             (what the GEMM-epilogue MLP saves), and bench/torch_gpt.py (eager and
#             torch.compile); GPT_ARGS adds flags to all (e.g. "--batch 16")
#   cpu_adam  bench_cpu_adam over ADAM_NUMEL fp32 parameters (default 1e9) on all host cores and
#             bench/torch_cpu_adam.py with the same threads; ADAM_ALGO adam (default: torch.optim.Adam,
#             no weight decay) or adamw
#   profile   one steady-state bench_gpt step (GPT_ARGS) under Nsight Compute, kernel time by kernel
#             (bench/kernel_profile.py); needs ncu with hardware counters
#   detail    Nsight Compute sections (speed of light, occupancy, launch, warp state, scheduler)
#             for the first call of each kernel matching DETAIL_KERNELS (regexes, default
#             "attention_dkdv_mma attention_forward_mma") in one steady-state bench_gpt step
#   maxmodel  zt-membench --max-model on this GPU: the largest GPT (depth 48, context 1024) per
#             offload mode (MAXMODEL_OFFLOAD, default "none cpu nvme"; one mode per device call,
#             see the estimate below), searched from the formula's prediction for this GPU's memory;
#             nvme files in MAXMODEL_NVME_PATH, default /tmp/zt_max_model_nvme, never under the log
#             folder; sub-groups of 1e8 elements; MAXMODEL_ARGS adds flags (e.g. --max-model-steps 2);
#             MAXMODEL_RANKS=2 on a 2-GPU machine: ZeRO stage 3, each trial a 2-rank job (one GPU each)
#   offload   bench_gpt at GPT-2 XL shapes (1.56B), ZeRO-2, 524,288 tokens per step, without and
#             with offload_optimizer cpu, on all host cores: the tokens/s ratio and the model states
#             on the GPU and the host, and the optimizer step's own time (~2 minutes)
#   BUILD_DIR (default build-gpu), CUDA_ARCH (default 90), BENCH_ARGS (e.g. --quick, for ops)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the shared GPU machines

build_dir=${BUILD_DIR:-build-gpu}
log_dir=${OUT:-$build_dir/gpu_bench}
mkdir -p "$log_dir"
failed=0

{
  nvidia-smi --query-gpu=index,name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1 \
    || echo "nvidia-smi not available"
  nvcc --version 2>&1 | tail -n 2
} | tee "$log_dir/machine.log"

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" >"$log_dir/configure.log" 2>&1 \
    || { tail -n 30 "$log_dir/configure.log"; exit 1; }
fi
benches=${BENCHES:-ops gpt cpu_adam}
if ! ninja -C "$build_dir" bench_cuda_ops bench_gpt bench_cpu_adam zt-membench >"$log_dir/build.log" 2>&1; then
  tail -n 40 "$log_dir/build.log"
  exit 1
fi

# run LOG COMMAND...: the command's output to the terminal and to $log_dir/LOG.
run() {
  local log=$1
  shift
  echo "== $*" | tee "$log_dir/$log"
  "$@" 2>&1 | tee -a "$log_dir/$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
}
have_torch() { python3 -c "import torch" >/dev/null 2>&1; }

# shellcheck disable=SC2086  # BENCH_ARGS, GPT_ARGS, MAXMODEL_ARGS and range are lists of flags
for b in $benches; do
  case $b in
    ops)
      run bench_cuda_ops.log "$build_dir/bin/bench_cuda_ops" ${BENCH_ARGS:-}
      have_torch && run torch_ops.log python3 bench/torch_ops.py ${BENCH_ARGS:-} ;;
    gpt)
      run bench_gpt.log "$build_dir/bin/bench_gpt" ${GPT_ARGS:-}
      run bench_gpt_unfused_mlp.log "$build_dir/bin/bench_gpt" --unfused-mlp ${GPT_ARGS:-}
      have_torch && run torch_gpt.log python3 bench/torch_gpt.py ${GPT_ARGS:-} ;;
    cpu_adam)
      threads=$(nproc)
      run bench_cpu_adam.log env OMP_NUM_THREADS="$threads" OMP_PROC_BIND=spread \
        "$build_dir/bin/bench_cpu_adam" --numel "${ADAM_NUMEL:-1e9}" --steps 5 --algo "${ADAM_ALGO:-adam}"
      have_torch && run torch_cpu_adam.log env OMP_NUM_THREADS="$threads" \
        python3 bench/torch_cpu_adam.py --numel "${ADAM_NUMEL:-1e9}" --steps 3 --algo "${ADAM_ALGO:-adam}" ;;
    offload)
      for off in none cpu; do
        run "offload_$off.log" env OMP_NUM_THREADS="$(nproc)" OMP_PROC_BIND=spread "$build_dir/bin/bench_gpt" \
          --n-layer 48 --n-embd 1600 --n-head 25 --batch 16 --grad-accum 32 --steps 1 --warmup 1 --zero-stage 2 \
          --offload-optimizer "$off" --time-optimizer-step
      done ;;
    profile)
      ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
      if [ -z "$ncu_bin" ]; then
        echo "profile: ncu not found" | tee "$log_dir/kernel_profile.log"
        failed=1
        continue
      fi
      # One steady-state step: the warm-up steps (first-call casts, heuristics) are not captured.
      "$ncu_bin" --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
        --print-units base "$build_dir/bin/bench_gpt" --warmup 2 --steps 1 --profile ${GPT_ARGS:-} \
        >"$log_dir/ncu.csv" 2>"$log_dir/ncu.err"
      run kernel_profile.log python3 bench/kernel_profile.py "$log_dir/ncu.csv" --top 60 --sequence 400 ;;
    detail)
      ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
      [ -n "$ncu_bin" ] || { echo "detail: ncu not found"; failed=1; continue; }
      for k in ${DETAIL_KERNELS:-attention_dkdv_mma attention_forward_mma}; do
        run "detail_$k.log" "$ncu_bin" --profile-from-start off --kernel-name "regex:$k" --launch-count 1 \
          --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
          --section WarpStateStats --section SchedulerStats "$build_dir/bin/bench_gpt" --warmup 2 --steps 1 \
          --profile ${GPT_ARGS:-}
      done ;;
    maxmodel)
      # Expected on one H200 (139.8 GiB; host 125 GiB, 16 cores; 64 GiB disk), one mode per call of
      # at most 10 minutes. The search starts at the prediction and gallops/bisects from there; the
      # host limit (90% of RAM, pageable and pinned together) makes an oversized trial fail at its
      # first allocation past it. A trial of P parameters near the top costs the f32 model built
      # on the host (~2 s per 1e9) and copied to the GPU (~0.5 s per 1e9). Measured 2026-12-03:
      #   none: 8.1B, 3 GPU steps; ~28 s per trial, a GPU OOM in the first step as long: 3 trials,
      #         85 s.
      #   cpu:  7.6B (14 B/parameter pinned plus the 2 B staging copy, in the ~113 GiB limit):
      #         page-locking, 3 steps of CPU Adam and the transfers: 133 s for the one that fits,
      #         102 s for a host-limit failure; 2 trials, 4 min.
      #   nvme: bound by the disk (12 B/parameter in 64 GiB free: 5.6B): the one that trains moves
      #         ~100 B/parameter through the disk (initial write, the engine's exact-master read and
      #         write, 3 steps of read + write): 442 s; a full disk fails when the file is reserved
      #         (29 s); 2 trials, 8 min.
      nvme_dir=${MAXMODEL_NVME_PATH:-/tmp/zt_max_model_nvme}
      mkdir -p "$nvme_dir"
      gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 2>/dev/null | head -n 1)
      ranks=${MAXMODEL_RANKS:-1}
      multi=()
      if [ "$ranks" -gt 1 ]; then
        launcher="mpirun -np $ranks --bind-to none -x NCCL_NVLS_ENABLE=0 -x OMP_NUM_THREADS=$(( $(nproc) / ranks ))"
        [ "$(id -u)" -eq 0 ] && launcher="$launcher --allow-run-as-root"
        multi=(--max-model-stage 3 --max-model-ranks "$ranks" --max-model-launcher "$launcher")
      fi
      for off in ${MAXMODEL_OFFLOAD:-none cpu nvme}; do
        case $off in
          nvme) range="--min-heads 16 --max-heads 64" ;;
          *) range="--min-heads 32 --max-heads 64" ;;
        esac
        run "max_model_$off.log" env OMP_NUM_THREADS="$(nproc)" OMP_PROC_BIND=spread "$build_dir/bin/zt-membench" \
          --model gpt --max-model --device cuda --dtype bf16 --depth 48 --context 1024 --vocab 50304 --batch 1 \
          --offload "$off" --nvme-path "$nvme_dir" --sub-group-size 100000000 --device-memory "${gpu_mib:-143771}M" \
          $range "${multi[@]}" ${MAXMODEL_ARGS:-}
      done
      rm -rf "$nvme_dir" ;;
    *) echo "unknown bench '$b' in BENCHES (expected ops, gpt, cpu_adam, offload, profile, detail, maxmodel)"; failed=1 ;;
  esac
done

echo
echo "gpu_bench summaries (logs in $log_dir)"
for f in bench_cuda_ops torch_ops; do
  [ -f "$log_dir/$f.log" ] && sed -n '/^== summary/,$p' "$log_dir/$f.log" && echo
done
for f in bench_gpt bench_gpt_unfused_mlp torch_gpt bench_cpu_adam torch_cpu_adam offload_none offload_cpu kernel_profile max_model_none max_model_cpu max_model_nvme; do
  [ -f "$log_dir/$f.log" ] && tail -n 6 "$log_dir/$f.log" && echo
done
exit "$failed"
