#!/usr/bin/env bash
# GPU benchmark (issue 3): builds bench_cuda_ops with the CUDA backend for sm_90 when needed,
# runs it and then bench/torch_ops.py (PyTorch reference numbers, when PyTorch is installed),
# with their logs in $OUT (else <build>/gpu_bench), and prints both summary tables last.
#   BUILD_DIR (default build-gpu), CUDA_ARCH (default 90), BENCH_ARGS (e.g. --quick)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

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
if ! ninja -C "$build_dir" bench_cuda_ops >"$log_dir/build.log" 2>&1; then
  tail -n 40 "$log_dir/build.log"
  exit 1
fi

# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
"$build_dir/bin/bench_cuda_ops" ${BENCH_ARGS:-} 2>&1 | tee "$log_dir/bench_cuda_ops.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

if command -v python3 >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  python3 bench/torch_ops.py ${BENCH_ARGS:-} 2>&1 | tee "$log_dir/torch_ops.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
else
  echo "python3 not found: no PyTorch reference" | tee "$log_dir/torch_ops.log"
fi

echo
echo "gpu_bench tables (logs in $log_dir)"
sed -n '/^== summary/,$p' "$log_dir/bench_cuda_ops.log"
echo
sed -n '/^== summary/,$p' "$log_dir/torch_ops.log"
exit "$failed"
