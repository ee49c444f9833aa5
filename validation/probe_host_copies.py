#!/usr/bin/env python3
"""Measure concurrent pinned host<->device copies on several GPUs at once, to find what they share.

NCCL's SHM transport (NCCL_P2P_DISABLE=1) moves every byte GPU -> host memory -> GPU over PCIe. On the H200 data a
2-rank broadcast moved 49.5 GB/s one way but a 2-rank all_gather only 25 + 25 GB/s, while 4-rank rings moved more
per GPU. This probe times copy-engine copies (cudaMemcpyAsync on pinned memory) in patterns that mimic those
transfers: one GPU, one GPU both ways, pairs of GPUs, all four. Each copy stream's own rate (CUDA events) and the
pattern's total (wall clock between device syncs) are written as CSV.

Runs on the GPU machine with torch only: ``python3 validation/probe_host_copies.py --out $OUT``.
"""
from __future__ import annotations

import argparse
import csv
import os
import time

PATTERNS = {
    # label -> list of (gpu, direction): d2h = GPU writes host memory, h2d = GPU reads it
    "g0_d2h": [(0, "d2h")],
    "g0_h2d": [(0, "h2d")],
    "g0_both": [(0, "d2h"), (0, "h2d")],
    "g0d2h_g1h2d": [(0, "d2h"), (1, "h2d")],
    "g0d2h_g2h2d": [(0, "d2h"), (2, "h2d")],
    "g0d2h_g3h2d": [(0, "d2h"), (3, "h2d")],
    "g01_both": [(0, "d2h"), (0, "h2d"), (1, "d2h"), (1, "h2d")],
    "g02_both": [(0, "d2h"), (0, "h2d"), (2, "d2h"), (2, "h2d")],
    "g03_both": [(0, "d2h"), (0, "h2d"), (3, "d2h"), (3, "h2d")],
    "g23_both": [(2, "d2h"), (2, "h2d"), (3, "d2h"), (3, "h2d")],
    "g01_d2h": [(0, "d2h"), (1, "d2h")],
    "g01_h2d": [(0, "h2d"), (1, "h2d")],
    "g0123_d2h": [(g, "d2h") for g in range(4)],
    "g0123_h2d": [(g, "h2d") for g in range(4)],
    "g0123_both": [(g, d) for g in range(4) for d in ("d2h", "h2d")],
    "chain_0123": [(0, "d2h"), (1, "h2d"), (1, "d2h"), (2, "h2d"), (2, "d2h"), (3, "h2d")],
    "chain_012": [(0, "d2h"), (1, "h2d"), (1, "d2h"), (2, "h2d")],
}


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "out/probe"))
    p.add_argument("--bytes", type=int, default=256 << 20)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--trials", type=int, default=3)
    args = p.parse_args()
    n = torch.cuda.device_count()
    os.makedirs(args.out, exist_ok=True)
    elems = args.bytes // 4
    host, dev, streams = {}, {}, {}
    for g in range(n):
        for d in ("d2h", "h2d"):
            host[g, d] = torch.empty(elems, dtype=torch.float32, pin_memory=True)
            dev[g, d] = torch.ones(elems, dtype=torch.float32, device=f"cuda:{g}")
            streams[g, d] = torch.cuda.Stream(device=g)
    rows = []
    for label, pattern in PATTERNS.items():
        if any(g >= n for g, _ in pattern):
            continue
        for trial in range(args.trials + 1):          # trial 0 warms up
            events = {}
            for g in range(n):
                torch.cuda.synchronize(g)
            t0 = time.perf_counter()
            for g, d in pattern:
                s = streams[g, d]
                with torch.cuda.device(g), torch.cuda.stream(s):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record(s)
                    for _ in range(args.iters):
                        if d == "d2h":
                            host[g, d].copy_(dev[g, d], non_blocking=True)
                        else:
                            dev[g, d].copy_(host[g, d], non_blocking=True)
                    end.record(s)
                    events[g, d] = (start, end)
            for g in range(n):
                torch.cuda.synchronize(g)
            wall = time.perf_counter() - t0
            if trial == 0:
                continue
            total = args.bytes * args.iters * len(pattern)
            for (g, d), (start, end) in events.items():
                ms = start.elapsed_time(end)
                rows.append({"pattern": label, "trial": trial, "gpu": g, "direction": d, "bytes": args.bytes,
                             "iters": args.iters, "stream_GBps": round(args.bytes * args.iters / ms / 1e6, 3),
                             "pattern_total_GBps": round(total / wall / 1e9, 3)})
        last = [r for r in rows if r["pattern"] == label and r["trial"] == args.trials]
        print(label, " ".join(f"{r['gpu']}{r['direction']}={r['stream_GBps']}" for r in last),
              "total", last[0]["pattern_total_GBps"], flush=True)
    path = os.path.join(args.out, "host_copies.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("wrote", path)


if __name__ == "__main__":
    main()
