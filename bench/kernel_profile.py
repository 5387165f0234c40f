#!/usr/bin/env python3
"""Summarise an Nsight Compute kernel-duration CSV (one training step of bench_gpt) by part of
the step (GEMMs, attention, layer norm, ...) and by kernel: calls, total microseconds, share of
the summed kernel time, mean per call. Used to find where a step's GPU time goes
(scripts/gpu_bench.sh, BENCHES=profile).

  ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
      --print-units base build-gpu/bin/bench_gpt --warmup 2 --steps 1 --profile > ncu.csv
  python3 bench/kernel_profile.py ncu.csv [--top 40]
"""
import argparse
import collections
import csv
import io
import re


def short_name(name):
    """Kernel name without template arguments and parameter lists: groups instantiations."""
    name = re.sub(r"\(.*$", "", name)
    depth, out = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    name = "".join(out).strip()
    return name.split(" ")[-1] or name


# Kernel families by a substring of the full kernel name (first match wins), for the summary
# by part of the step: which of GEMMs, attention, normalisation, elementwise work and so on.
CATEGORIES = [
    ("GEMM (cuBLAS/cuBLASLt, epilogues included)", ("nvjet", "cublasLt", "gemm", "Gemm", "sm90_xmma")),
    ("attention", ("attention",)),
    ("optimizer (Adam)", ("adam",)),
    ("layer norm", ("layer_norm",)),
    ("cross-entropy", ("cross_entropy",)),
    ("softmax", ("softmax",)),
    ("embedding (index_select / index_add)", ("index_select", "index_add")),
    ("reductions (sums, norms, bias gradients)", ("reduce",)),
    ("GELU and its gradient", ("Gelu",)),
    ("adds", ("AddFn",)),
    ("casts and copies", ("CastFn",)),
    ("fills", ("fill_",)),
]


def category(name):
    for label, keys in CATEGORIES:
        if any(k in name for k in keys):
            return label
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--sequence", type=int, default=0, help="also list the first N kernels in launch order")
    args = ap.parse_args()
    text = open(args.csv, encoding="utf-8", errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        raise SystemExit(f"{args.csv}: no ncu CSV header (\"ID\",...) found")
    rows = csv.DictReader(io.StringIO(text[start:]))
    total = collections.defaultdict(float)
    calls = collections.Counter()
    sequence = []
    by_category = collections.defaultdict(float)
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r.get("Metric Unit", "ns")
        value = float(r["Metric Value"].replace(",", ""))
        us = value / 1e3 if unit in ("ns", "nsecond") else value * 1e3 if unit in ("ms", "msecond") else value
        key = short_name(r["Kernel Name"])
        total[key] += us
        calls[key] += 1
        sequence.append((key, us))
        by_category[category(r["Kernel Name"])] += us
    grand = sum(total.values())
    print(f"{sum(calls.values())} kernels, {grand / 1e3:.2f} ms summed kernel time")
    print(f"{'part of the step':60s} {'ms':>10s} {'share':>6s}")
    for label, us in sorted(by_category.items(), key=lambda kv: -kv[1]):
        print(f"{label:60s} {us / 1e3:10.2f} {100 * us / grand:5.1f}%")
    print()
    print(f"{'kernel':60s} {'calls':>6s} {'total us':>10s} {'share':>6s} {'us/call':>8s}")
    for key, us in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{key[:60]:60s} {calls[key]:6d} {us:10.1f} {100 * us / grand:5.1f}% {us / calls[key]:8.1f}")
    if args.sequence:
        print("\nlaunch order:")
        for i, (key, us) in enumerate(sequence[: args.sequence]):
            print(f"{i:5d} {us:9.1f} us  {key}")


if __name__ == "__main__":
    main()
