#!/usr/bin/env python3
"""Reference numbers for bench_cuda_ops: the same ops, sizes and byte counts through PyTorch on
the GPU (PyTorch exists only on the GPU machine; nothing is installed). Timed with CUDA events,
warm-up, median of repeats, random data. Prints a summary table last."""
import argparse
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch_ops.py: PyTorch is not installed here: no reference numbers")
    sys.exit(0)

GIB = 1 << 30


def time_ms(fn, warmup=2, reps=10, iters=3):
    """Median milliseconds per call of fn over reps samples of iters calls (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(reps):
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) / iters)
    return statistics.median(samples)


class Bench:
    def __init__(self, quick):
        self.quick = quick
        self.copy_bw = 0.0
        self.rows = []  # (op, measured, ratio-to-copy or None)

    def row(self, op, measured, ratio=None):
        self.rows.append((op, measured, ratio))
        extra = f"{100 * ratio:6.1f}% of copy" if ratio is not None else ""
        print(f"  {op:<40} {measured:<18} {extra}", flush=True)

    def bandwidth(self, op, nbytes, ms):
        bw = nbytes / (ms * 1e-3)
        self.row(op, f"{bw / 1e9:.0f} GB/s", bw / self.copy_bw)


def bench_copy(b):
    nbytes = GIB // 4 if b.quick else GIB
    src = torch.randn(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src))
    b.copy_bw = 2 * nbytes / (ms * 1e-3)
    print(f"device {torch.cuda.get_device_name()}: copy_ of {nbytes / GIB:.2f} GiB: "
          f"{b.copy_bw / 1e9:.0f} GB/s (read+write)")
    b.row("copy_ f32 (torch)", f"{b.copy_bw / 1e9:.0f} GB/s", 1.0)


def bench_gemm(b, dtype, n, tf32):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    x = torch.randn(n, n, device="cuda", dtype=dtype)
    y = torch.randn(n, n, device="cuda", dtype=dtype)
    ms = time_ms(lambda: torch.matmul(x, y), warmup=3, reps=7)
    torch.backends.cuda.matmul.allow_tf32 = False
    name = {torch.bfloat16: "bf16", torch.float16: "f16", torch.float32: "f32"}[dtype]
    if dtype == torch.float32:
        name += " tf32" if tf32 else " fp32"
    b.row(f"gemm {name} {n}^3", f"{2 * n ** 3 / (ms * 1e-3) / 1e12:.1f} TFLOP/s")


def dname(dtype):
    return {torch.bfloat16: "bf16", torch.float32: "f32"}[dtype]


def bench_add(b, dtype):
    nbytes = GIB // 4 if b.quick else GIB
    n = nbytes // torch.tensor([], dtype=dtype).element_size()
    x = torch.randn(n, device="cuda", dtype=dtype)
    y = torch.randn(n, device="cuda", dtype=dtype)
    b.bandwidth(f"add {dname(dtype)} (2 in, 1 out)", 3 * nbytes, time_ms(lambda: x + y))


def bench_softmax(b, dtype):
    cols = 8192
    rows = (GIB // 4 if b.quick else GIB) // torch.tensor([], dtype=dtype).element_size() // cols
    x = torch.randn(rows, cols, device="cuda", dtype=dtype)
    nbytes = x.numel() * x.element_size()
    shape = f" ({rows}, {cols})"
    b.bandwidth(f"softmax {dname(dtype)}{shape}", 2 * nbytes, time_ms(lambda: torch.softmax(x, -1)))
    y = torch.softmax(x, -1)
    g = torch.randn_like(x)
    bwd = lambda: torch._softmax_backward_data(g, y, -1, dtype)  # noqa: E731
    b.bandwidth(f"softmax_backward {dname(dtype)}{shape}", 3 * nbytes, time_ms(bwd))


def bench_layer_norm(b, dtype):
    cols = 4096
    rows = (GIB // 4 if b.quick else GIB) // torch.tensor([], dtype=dtype).element_size() // cols
    x = torch.randn(rows, cols, device="cuda", dtype=dtype)
    w = torch.randn(cols, device="cuda", dtype=dtype)
    bias = torch.randn(cols, device="cuda", dtype=dtype)
    xb, wb, stats = x.numel() * x.element_size(), w.numel() * w.element_size(), rows * 8
    shape = f" ({rows}, {cols})"
    fwd = lambda: torch.native_layer_norm(x, (cols,), w, bias, 1e-5)  # noqa: E731
    b.bandwidth(f"layer_norm {dname(dtype)}{shape}", 2 * xb + stats + 2 * wb, time_ms(fwd))
    _, mean, rstd = fwd()
    gy = torch.randn_like(x)
    bwd = lambda: torch.ops.aten.native_layer_norm_backward(  # noqa: E731
        gy, x, (cols,), mean, rstd, w, bias, [True, True, True])
    b.bandwidth(f"layer_norm_backward {dname(dtype)}{shape}", 3 * xb + stats + 3 * wb, time_ms(bwd))


def bench_cross_entropy(b, dtype):
    rows, vocab = (2048 if b.quick else 8192), 50304
    logits = torch.randn(rows, vocab, device="cuda", dtype=dtype)
    target = torch.randint(0, vocab, (rows,), device="cuda")
    lb, small = logits.numel() * logits.element_size(), rows * 12
    shape = f" ({rows}, {vocab})"
    fwd = lambda: F.cross_entropy(logits, target, reduction="none")  # noqa: E731
    b.bandwidth(f"cross_entropy {dname(dtype)}{shape}", lb + small, time_ms(fwd))
    leaf = logits.detach().requires_grad_(True)
    gl = torch.rand(rows, device="cuda", dtype=dtype) + 0.5

    def fwd_bwd():
        loss = F.cross_entropy(leaf, target, reduction="none")
        torch.autograd.grad(loss, leaf, gl)

    # PyTorch has no fused backward entry point: this row times forward + backward (read logits
    # twice, write grad once), against the same byte count as bench_cuda_ops' backward row.
    b.bandwidth(f"cross_entropy fwd+bwd {dname(dtype)}{shape}", 2 * lb + small, time_ms(fwd_bwd))


def bench_attention(b, batch):
    """F.scaled_dot_product_attention(is_causal=True) on bench_cuda_ops' shapes and FLOP count:
    2 * 2 B H T^2 D / 2 forward (the causal half), 2.5x that backward; through autograd. Once with
    PyTorch's own choice of kernel, then with each fused backend forced (FlashAttention-2, cuDNN),
    where this build has it."""
    B = batch // 4 if b.quick else batch
    H, T, D = 12, 1024, 64
    q, k, v, g = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    flops = 2 * B * H * T * T * D
    shape = f" B={B} H={H} T={T} D={D}"
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]

    def fwd_bwd():
        out = F.scaled_dot_product_attention(*leaves, is_causal=True)
        torch.autograd.grad(out, leaves, g)

    def measure(label):
        with torch.no_grad():
            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), warmup=3)
        b.row(f"attention fwd bf16{shape}{label}", f"{flops / (ms * 1e-3) / 1e12:.1f} TFLOP/s")
        ms = time_ms(fwd_bwd, warmup=3)
        b.row(f"attention fwd+bwd bf16{shape}{label}", f"{3.5 * flops / (ms * 1e-3) / 1e12:.1f} TFLOP/s")

    measure("")
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        try:
            with sdpa_kernel(backend):
                measure(f" [{name.lower()}]")
        except RuntimeError as e:
            print(f"  attention [{name.lower()}]: not available: {str(e).splitlines()[0]}", flush=True)


def bench_overhead(b):
    x = torch.randn(4, 4, device="cuda")
    y = torch.randn(4, 4, device="cuda")
    p = torch.randn(4, 4, device="cuda", requires_grad=True)

    def host_us(fn, calls=10000):
        for _ in range(calls // 10):
            fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
            samples.append((time.perf_counter() - t0) / calls * 1e6)
        return statistics.median(samples)

    with torch.no_grad():
        b.row("torch.add 4x4 no_grad (host, 10k)", f"{host_us(lambda: x + y):.2f} us/op")
    b.row("torch.add 4x4 with autograd (host, 10k)", f"{host_us(lambda: p + y):.2f} us/op")


def safe(fn, *args):
    """Runs one bench; a failure (an op missing in this PyTorch version) is reported, not fatal."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        print(f"  {fn.__name__}{tuple(str(a) for a in args[1:])}: failed: {e}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a quarter of the sizes (smoke run)")
    parser.add_argument("--only", choices=["gemm", "memory", "attention", "overhead"],
                        help="one part, as bench_cuda_ops --only")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("torch_ops.py: no CUDA device: nothing to measure")
        return 0
    b = Bench(args.quick)
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}")
    parts = {args.only} if args.only else {"gemm", "memory", "attention", "overhead"}
    print("== device copy bandwidth ==")
    bench_copy(b)
    if "gemm" in parts:
        print("== GEMM (torch.matmul) ==")
        for n in (8192, 4096):
            size = n // 4 if args.quick else n
            safe(bench_gemm, b, torch.bfloat16, size, False)
            safe(bench_gemm, b, torch.float16, size, False)
            safe(bench_gemm, b, torch.float32, size, True)
            safe(bench_gemm, b, torch.float32, size, False)
    if "memory" in parts:
        print("== memory-bound ops ==")
        for dtype in (torch.bfloat16, torch.float32):
            safe(bench_add, b, dtype)
        for fn in (bench_softmax, bench_layer_norm, bench_cross_entropy):
            for dtype in (torch.bfloat16, torch.float32):
                safe(fn, b, dtype)
    if "attention" in parts:
        print("== fused attention (F.scaled_dot_product_attention, causal) ==")
        for batch in (8, 16):
            safe(bench_attention, b, batch)
    if "overhead" in parts:
        print("== host overhead ==")
        safe(bench_overhead, b)
    print(f"\n== summary (torch_ops.py, {torch.cuda.get_device_name()}) ==")
    print(f"{'op':<40} {'measured':<18} {'% of copy':>9}")
    for op, measured, ratio in b.rows:
        pct = f"{100 * ratio:8.1f}%" if ratio is not None else f"{'-':>9}"
        print(f"{op:<40} {measured:<18} {pct}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
