#!/usr/bin/env python3
"""Summarise an Nsight Compute kernel-duration CSV (one training step of bench_gpt) by kernel:
calls, total microseconds, share of the summed kernel time, mean per call. Used to find where a
step's GPU time goes (scripts/gpu_bench.sh, BENCHES=profile).

  ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      build-gpu/bin/bench_gpt --warmup 0 --steps 1 > ncu.csv
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
    grand = sum(total.values())
    print(f"{sum(calls.values())} kernels, {grand / 1e3:.2f} ms summed kernel time")
    print(f"{'kernel':60s} {'calls':>6s} {'total us':>10s} {'share':>6s} {'us/call':>8s}")
    for key, us in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{key[:60]:60s} {calls[key]:6d} {us:10.1f} {100 * us / grand:5.1f}% {us / calls[key]:8.1f}")
    if args.sequence:
        print("\nlaunch order:")
        for i, (key, us) in enumerate(sequence[: args.sequence]):
            print(f"{i:5d} {us:9.1f} us  {key}")


if __name__ == "__main__":
    main()
