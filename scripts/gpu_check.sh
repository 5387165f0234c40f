#!/usr/bin/env bash
# GPU check (DESIGN.md §7): builds zerotrain with the CUDA backend for sm_90 (H100/H200), runs
# the whole ctest suite (its core_cuda, autograd_cuda, nn_cuda and optim_cuda entries run those
# suites again on the GPU, ZT_TEST_DEVICE=cuda), runs the CUDA parity/allocator tests on their
# own (their messages list how many argument sets each op compared), then the same binary under
# compute-sanitizer memcheck when available, then quick benchmarks (BENCH=0: none). Logs go to
# $OUT when it is set (else <build>/gpu_check); a summary table is printed last. Exit status: 0
# when every step that ran passed.
#   BUILD_DIR (default build-gpu), CUDA_ARCH (default 90), MEMCHECK=0 (skip memcheck),
#   MEMCHECK_CASES (doctest test-case filter for memcheck, e.g. "CUDA parity*"; default all),
#   MEMCHECK_TIMEOUT seconds (default 3600)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the shared GPU machines
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

build_dir=${BUILD_DIR:-build-gpu}
log_dir=${OUT:-$build_dir/gpu_check}
mkdir -p "$log_dir"

names=()
results=()
failed=0

# step NAME COMMAND...: runs the command with its output in $log_dir/NAME.log.
step() {
  local name=$1
  shift
  local log="$log_dir/$name.log" start=$SECONDS rc=0
  echo "== $name: $*" | tee "$log"
  "$@" >>"$log" 2>&1 || rc=$?
  local secs=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    results+=("PASS ${secs}s")
  else
    results+=("FAIL (exit $rc) ${secs}s, see $log")
    failed=1
    tail -n 30 "$log"
  fi
  names+=("$name")
  return "$rc"
}

skip() {
  names+=("$1")
  results+=("SKIP: $2")
}

{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi not available"
  nvcc --version 2>&1 | tail -n 2
} >"$log_dir/machine.log"

if step configure cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}"; then
  if step build ninja -C "$build_dir"; then
    step ctest ctest --test-dir "$build_dir" --output-on-failure
    if [ -x "$build_dir/bin/test_cuda" ]; then
      step cuda_tests "$build_dir/bin/test_cuda"
      memcheck_filter=()
      [ -n "${MEMCHECK_CASES:-}" ] && memcheck_filter=("--test-case=$MEMCHECK_CASES")
      if [ "${MEMCHECK:-1}" = 0 ]; then
        skip memcheck "MEMCHECK=0"
      elif command -v compute-sanitizer >/dev/null 2>&1; then
        # API errors are not reported: the out-of-memory test makes cudaMalloc fail on purpose,
        # and every API return code is checked by the code itself.
        step memcheck timeout "${MEMCHECK_TIMEOUT:-3600}" compute-sanitizer --tool memcheck \
          --error-exitcode 1 --leak-check no --report-api-errors no "$build_dir/bin/test_cuda" "${memcheck_filter[@]}"
      else
        skip memcheck "compute-sanitizer not found"
      fi
      # The benchmarks, quick forms (BENCH=0 skips them; scripts/gpu_bench.sh runs the full ones
      # beside their references): the op roofline and a GPT-2 124M training step.
      if [ "${BENCH:-1}" != 0 ]; then
        step bench_ops "$build_dir/bin/bench_cuda_ops" --quick
        step bench_gpt "$build_dir/bin/bench_gpt" --steps 5 --warmup 2
      else
        skip bench_ops "BENCH=0"
        skip bench_gpt "BENCH=0"
      fi
    else
      skip cuda_tests "test_cuda not built (no nvcc found by cmake?)"
      skip memcheck "no test_cuda"
    fi
  else
    skip ctest "build failed"
  fi
fi

echo
echo "gpu_check summary (logs in $log_dir)"
cat "$log_dir/machine.log"
grep -h "argument sets compared" "$log_dir/cuda_tests.log" 2>/dev/null | sed 's/.*MESSAGE: /  parity: /'
grep -h "rows below target" "$log_dir/bench_ops.log" 2>/dev/null | sed 's/^/  bench_cuda_ops --quick: /'
grep -h "^zerotrain:\|^attention:" "$log_dir/bench_gpt.log" 2>/dev/null | sed 's/^/  bench_gpt: /'
printf '%-12s %s\n' "step" "result"
for i in "${!names[@]}"; do
  printf '%-12s %s\n' "${names[$i]}" "${results[$i]}"
done | tee "$log_dir/summary.txt"
exit "$failed"
