"""PyTorch's reference for bench_cpu_adam: torch.optim.AdamW (or, with --algo adam,
torch.optim.Adam without weight decay, its defaults) on the CPU over one flat fp32
parameter of N elements (the shape of a ZeRO-Offload shard), same hyperparameters, same thread
count, median ms/step. Runs each implementation torch offers on the CPU and names the fastest:
fused=True (torch >= 2.4: one vectorised, multi-threaded kernel; usually the fastest),
foreach=True (multi-tensor ops: several passes over memory) and the per-parameter for-loop.

    OMP_NUM_THREADS=16 python bench/torch_cpu_adam.py --numel 1e9
    OMP_NUM_THREADS=16 build/bin/bench_cpu_adam --numel 1e9     # the ratio: torch ms / ours
"""
import argparse
import os
import statistics
import time

import torch


def time_steps(opt, steps):
    opt.step()  # warm-up, allocates exp_avg / exp_avg_sq
    samples = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numel", type=float, default=2**26, help="fp32 parameters (default 2^26)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
                        help="torch.set_num_threads (default: OMP_NUM_THREADS, else torch's default)")
    parser.add_argument("--algo", choices=["adamw", "adam"], default="adamw",
                        help="adamw (weight decay 0.01, the default) or adam (torch.optim.Adam, no weight decay)")
    parser.add_argument("--variants", default="fused,foreach,forloop", help="comma-separated subset to run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = int(args.numel)
    param = torch.nn.Parameter(torch.full((n,), 0.5, dtype=torch.float32))
    param.grad = torch.full((n,), 1e-3, dtype=torch.float32)
    algo = torch.optim.AdamW if args.algo == "adamw" else torch.optim.Adam
    weight_decay = 0.01 if args.algo == "adamw" else 0.0
    print(f"torch {torch.__version__}: {algo.__name__} over N={n} fp32 params on {torch.get_num_threads()} threads, "
          f"28 bytes/element")
    options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "forloop": {"foreach": False}}
    results = {}
    for name in args.variants.split(","):
        try:
            opt = algo([param], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, **options[name])
            seconds = time_steps(opt, args.steps)
        except (RuntimeError, TypeError, ValueError) as e:  # fused on the CPU needs torch >= 2.4
            print(f"{algo.__name__ + ' ' + name:<20} unavailable: {e}")
            continue
        del opt  # frees this variant's state before the next allocates its own
        results[name] = seconds
        print(f"{algo.__name__ + ' ' + name:<20} {seconds * 1e3:9.2f} ms/step {28.0 * n / seconds / 1e9:8.1f} GB/s")
    if results:
        best = min(results, key=results.get)
        print(f"fastest: {best} ({results[best] * 1e3:.2f} ms/step)")


if __name__ == "__main__":
    main()
