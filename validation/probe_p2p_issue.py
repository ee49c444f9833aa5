#!/usr/bin/env python3
"""The host's time to issue grouped sends and receives through NCCL's C API, on one GPU.

A small all_to_all on n ranks posts a send and a receive to every rank (2n calls in one group) and took 19, 28 and
29 us on 2, 3 and 4 H200s where a collective took 11-13 (validation/data/h200); replayed from a CUDA graph a 4-rank
one took 6.5 us, so the time is the host's. The calibrated presets fit it as a launch floor plus ``p2p_launch`` per
call. This probe measures that per-call cost directly, on a one-rank communicator (sends and receives to itself, 8
bytes each, so the GPU's work is tiny): the time per group of k send/receive pairs, k = 0..8, back to back, against
an 8-byte all_reduce. The slope over 2k calls is the host's time per call.

Runs with torch (for the GPU and NCCL) on one GPU: ``python3 validation/probe_p2p_issue.py > OUT/p2p_issue.csv``.
"""
import ctypes
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collect  # noqa: E402  (the harness's ctypes binding of NCCL's C API)


def main() -> None:
    import torch

    torch.cuda.set_device(0)
    api = collect._NcclApi()
    comm = api.comm(api.unique_id(), 1, 0)
    lib, check = api.lib, api.check
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    f32, total = collect._NcclApi.NCCL_FLOAT32, 2
    a, b = torch.zeros(64, device="cuda"), torch.zeros(64, device="cuda")
    pa, pb = ctypes.c_void_p(a.data_ptr()), ctypes.c_void_p(b.data_ptr())

    def group(k: int):
        if k == 0:
            check(lib.ncclAllReduce(pa, pa, total, f32, collect._NcclApi.NCCL_SUM, comm, stream), "allreduce")
            return
        check(lib.ncclGroupStart(), "groupStart")
        for _ in range(k):
            check(lib.ncclSend(pa, total, f32, 0, comm, stream), "send")
            check(lib.ncclRecv(pb, total, f32, 0, comm, stream), "recv")
        check(lib.ncclGroupEnd(), "groupEnd")

    print("# NCCL", api.version, "one-rank communicator, 8-byte sends and receives to itself; k=0: an all_reduce")
    print("pairs,calls,us_per_group_median,us_per_group_min,us_per_group_max,trials,iters")
    iters, trials = 2000, 7
    for k in range(0, 9):
        for _ in range(200):
            group(k)
        torch.cuda.synchronize()
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            for _ in range(iters):
                group(k)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) / iters * 1e6)
        print(f"{k},{2 * k},{statistics.median(times):.3f},{min(times):.3f},{max(times):.3f},{trials},{iters}")
    api.destroy(comm)


if __name__ == "__main__":
    main()
