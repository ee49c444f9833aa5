#!/usr/bin/env python3
"""Log which algorithm, protocol and channels NCCL's tuner picks for each collective and size.

gpusim's tuner is NCCL's cost model (src/graph/tuning.cc); this probe records what real NCCL chose, so the
simulator's switch points can be checked call by call. Each (transport, world size) runs in its own processes,
one call per (op, size), under ``NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=TUNING``: NCCL then logs every call as
``AllReduce: 4194304 Bytes -> Algo RING proto LL128 channel{Lo..Hi}={0..23}``. Rank 0's lines are matched, in
order, to the calls made and written as CSV (columns: ``CHOICE_COLUMNS``; ``bytes`` in nccl-tests' convention,
``nccl_bytes`` as NCCL logged it).

Runs on the GPU machine with torch only: ``python3 validation/probe_nccl_choices.py --out $OUT``.
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import re
import socket
import subprocess
import sys

TRANSPORTS = {   # as validation/collect.py selects them
    "nvlink": {},
    "pcie_shm": {"NCCL_P2P_DISABLE": "1"},
    "socket": {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1", "NCCL_IB_DISABLE": "1", "NCCL_SOCKET_IFNAME": "lo"},
}
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
NCCL_NAMES = {"all_reduce": "AllReduce", "all_gather": "AllGather", "reduce_scatter": "ReduceScatter",
              "broadcast": "Broadcast"}
CHOICE_COLUMNS = ("transport", "world_size", "op", "bytes", "nccl_bytes", "algo", "proto", "channel_lo",
                  "channel_hi", "nccl_version")
LINE = re.compile(r"NCCL INFO (\w+): (\d+) Bytes -> Algo (\w+) proto (\w+) channel\{Lo\.\.Hi\}=\{(\d+)\.\.(\d+)\}")


def calls(n: int, max_bytes: int) -> list[tuple[str, int]]:
    """(op, bytes) in the order the worker makes them: powers of two from 8 B; all_gather and reduce_scatter at n
    times a power of two, so every rank's chunk is one (as collect.py does for 3 ranks)."""
    out = []
    for op in NCCL_NAMES:
        per_rank = op in ("all_gather", "reduce_scatter")
        k = 3
        while (n if per_rank else 1) << k <= max_bytes:
            out.append((op, (n if per_rank else 1) << k))
            k += 1
    return out


def match(planned: list[tuple[str, int]], log_lines, n: int) -> list[dict]:
    """The logged choice of each planned call: the next logged line of the same collective and size (the whole
    buffer or one rank's part of it); other lines, such as the process group's own set-up calls, are skipped."""
    logged = [m.groups() for m in map(LINE.search, log_lines) if m]
    rows, i = [], 0
    for op, size in planned:
        sizes = (size, size // n) if op in ("all_gather", "reduce_scatter") else (size,)
        while i < len(logged) and (logged[i][0] != NCCL_NAMES[op] or int(logged[i][1]) not in sizes):
            i += 1
        if i == len(logged):
            break
        name, nbytes, algo, proto, lo, hi = logged[i]
        rows.append({"op": op, "bytes": size, "nccl_bytes": int(nbytes), "algo": algo, "proto": proto,
                     "channel_lo": int(lo), "channel_hi": int(hi)})
        i += 1
    return rows


def worker(max_bytes: int) -> None:
    import torch
    import torch.distributed as dist
    rank, n = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=n, device_id=torch.device("cuda", rank),
                            init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}")
    for op, size in calls(n, max_bytes):
        count = max(size // 4, 1)
        if op == "all_reduce":
            dist.all_reduce(torch.ones(count, device="cuda"))
        elif op == "broadcast":
            dist.broadcast(torch.ones(count, device="cuda"), src=0)
        elif op == "all_gather":
            dist.all_gather_into_tensor(torch.empty(count, device="cuda"), torch.ones(count // n, device="cuda"))
        else:
            dist.reduce_scatter_tensor(torch.empty(count // n, device="cuda"), torch.ones(count, device="cuda"))
        torch.cuda.synchronize()
    dist.destroy_process_group()


def run(transport: str, n: int, max_bytes: int, tmp: str) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = os.path.join(tmp, f"{transport}_{n}.%p.log")
    procs = []
    for r in range(n):
        env = {**os.environ, **MULTICAST_OFF, **TRANSPORTS[transport], "NCCL_DEBUG": "INFO",
               "NCCL_DEBUG_SUBSYS": "TUNING", "NCCL_DEBUG_FILE": logs, "RANK": str(r), "WORLD_SIZE": str(n),
               "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--max-bytes",
                                       str(max_bytes)], env=env))
    rcs = [p.wait(timeout=300) for p in procs]
    if any(rcs):
        raise RuntimeError(f"{transport}, {n} ranks: exit codes {rcs}")
    with open(logs.replace("%p", str(procs[0].pid)), errors="replace") as fh:
        return match(calls(n, max_bytes), fh, n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "out/probe"))
    p.add_argument("--transports", default="nvlink,pcie_shm,socket")
    p.add_argument("--world-sizes", default="2,3,4")
    p.add_argument("--max-bytes", type=int, default=1 << 30)
    p.add_argument("--socket-max-bytes", type=int, default=256 << 20)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.max_bytes)
    import torch
    version = ".".join(map(str, torch.cuda.nccl.version()))
    tmp = os.path.join(args.out, ".tmp_choices")
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(args.out, "nccl_choices.csv")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, CHOICE_COLUMNS, lineterminator="\n")
        w.writeheader()
        for t in args.transports.split(","):
            for n in map(int, args.world_sizes.split(",")):
                top = args.socket_max_bytes if t == "socket" else args.max_bytes
                rows = run(t, n, top, tmp)
                w.writerows({"transport": t, "world_size": n, "nccl_version": version, **r} for r in rows)
                fh.flush()
                print(f"{t} {n} ranks: {len(rows)} of {len(calls(n, top))} calls logged", flush=True)
    for f in glob.glob(os.path.join(tmp, "*.log")):
        os.remove(f)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
