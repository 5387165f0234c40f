#!/usr/bin/env python3
"""PyTorch reference for bench/bench_gpt.cpp (issue 7): the same GPT (pre-LayerNorm blocks,
tanh-GELU MLP, tied output head, biases), batch and optimizer (AdamW, fused, fp32 weights), with
bf16 autocast as PyTorch users train it, eager and torch.compile. Prints tokens/s, MFU (6 N +
12 L T C FLOPs per token, N without the position embedding) and peak memory, in the format of
bench_gpt. Reference numbers only: zerotrain never depends on PyTorch."""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.out = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, heads, width, context, vocab):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.wte.weight
        # GPT-2's initialisation, as zerotrain's GPT: normal(0, 0.02), residual projections
        # scaled by 1/sqrt(2 L), zero biases.
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.zeros_(p) if name.endswith("bias") else nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))


def measure(args, compiled):
    torch.manual_seed(1234)
    model = GPT(args.n_layer, args.n_head, args.n_embd, args.block_size, args.vocab).cuda()
    n = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if compiled else model
    tokens = torch.randint(0, args.vocab, (args.batch, args.block_size + 1), device="cuda")
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step():  # one optimizer step over grad_accum micro-batches (the same batch each time)
        for _ in range(args.grad_accum):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = fwd(x, y)
            (loss / args.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    tps = args.steps * args.grad_accum * args.batch * args.block_size / secs
    flops = tps * (6 * n + 12 * args.n_layer * args.block_size * args.n_embd)
    name = "torch.compile" if compiled else "torch eager"
    print(f"{name}: {1e3 * secs / args.steps:.1f} ms/step, {tps:.0f} tokens/s, {flops / 1e12:.1f} TFLOP/s model, "
          f"MFU {100 * flops / (args.peak_tflops * 1e12):.1f}% of {args.peak_tflops:.0f} TFLOP/s, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (loss {loss.item():.3f})", flush=True)
    if args.profile:
        profile_step(step, name)


def profile_step(step, name):
    """GPU kernel time of one more step by kernel (torch.profiler), to set beside bench/kernel_profile.py's
    table of zerotrain's step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    total = sum(e.self_device_time_total for e in events)
    print(f"{name}: kernel time of one step {total / 1e3:.2f} ms; the largest kernels:")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:30]:
        print(f"  {e.self_device_time_total / 1e3:8.3f} ms  {e.count:4d} calls  {e.key[:110]}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    for flag, default in [("n-layer", 12), ("n-head", 12), ("n-embd", 768), ("block-size", 1024),
                          ("vocab", 50304), ("batch", 8), ("grad-accum", 1), ("steps", 20), ("warmup", 5)]:
        p.add_argument("--" + flag, type=int, default=default)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--profile", action="store_true", help="print the kernel time of one step by kernel")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    measure(args, compiled=False)
    if not args.no_compile:
        measure(args, compiled=True)


if __name__ == "__main__":
    main()
