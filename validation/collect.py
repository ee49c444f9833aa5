#!/usr/bin/env python3
"""Measure NCCL collectives and GPU copy bandwidth with nccl-tests semantics, for gpusim's validation suite.

Runs on a machine with several GPUs, PyTorch and NCCL, one process per GPU. Standalone on purpose (torch and the
standard library only): gpusim and its dependencies need not be installed where this runs. validation/README.md
documents how to run it and the CSV it writes.

Each transport is measured in its own set of processes, because NCCL reads P2P_DISABLE/SHM_DISABLE once per
process. World size 2 runs on a sub-communicator of ranks 0,1 (GPUs 0,1) inside the 4-process job. Forced
NCCL_ALGO/NCCL_PROTO variants run on fresh communicators created after the variables are set (NCCL reads them at
communicator creation; the ENV lines kept in the NCCL info file show each one taking effect).
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import ctypes.util
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all", "sendrecv")
#: the ones NCCL_ALGO / NCCL_PROTO apply to (rings and chains; the rest are point-to-point)
RING_OPS = OPS[:5]
TRANSPORTS = {
    # name -> environment that selects it (on top of MULTICAST_OFF)
    "nvlink": {},
    "pcie_shm": {"NCCL_P2P_DISABLE": "1"},
    "socket": {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1", "NCCL_IB_DISABLE": "1", "NCCL_SOCKET_IFNAME": "lo"},
}
# NVLink multicast can take a shared host's GPUs out of service: off in every process this script starts.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
ALGOS = ("Ring", "Tree")
PROTOS = ("LL", "LL128", "Simple")
CSV_COLUMNS = (
    "machine", "transport", "world_size", "gpus", "op", "bytes", "count", "dtype", "algo", "proto", "in_place",
    "time_us", "time_us_min", "time_us_max", "algbw_GBps", "busbw_GBps", "host_us", "trials", "iters", "launch",
    "nccl_version", "torch_version", "channels",
)
COPY_COLUMNS = ("machine", "kind", "src", "dst", "bytes", "time_us", "time_us_min", "time_us_max", "GBps", "trials",
                "iters", "pinned", "peer_access")
ELEMENT_BYTES = 4  # float32
INFO_SUBSYS = "INIT,GRAPH,ENV,TUNING"


for _k, _v in MULTICAST_OFF.items():
    os.environ[_k] = _v


def forced_channels(env) -> str:
    """The channel count NCCL was held to, for the CSV's ``channels`` column: NCCL_MIN_NCHANNELS and
    NCCL_MAX_NCHANNELS set to the same number; empty when NCCL chose (or was only bounded, which fixes no count)."""
    lo, hi = env.get("NCCL_MIN_NCHANNELS", "").strip(), env.get("NCCL_MAX_NCHANNELS", "").strip()
    return hi if lo and lo == hi and hi.isdigit() and int(hi) >= 1 else ""


def variant_ops(algo: str, ops: str) -> list[str]:
    """Operations a forced NCCL_ALGO/NCCL_PROTO variant runs: those asked for (``--variant-ops``), all_reduce only
    under Tree (NCCL runs the others as rings or chains), never the point-to-point ones (NCCL_ALGO does not apply)."""
    asked = [op for op in ops.split(",") if op and op not in ("all_to_all", "sendrecv")]
    return ["all_reduce"] if algo.lower() == "tree" else asked


def busbw_factor(op: str, n: int) -> float:
    """nccl-tests' bus-bandwidth factor (doc/PERFORMANCE.md)."""
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


def parse_size(text: str) -> int:
    """'8', '64KiB', '1MiB', '4GiB' (also K/M/G, binary) -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*(B|K|KiB|M|MiB|G|GiB)?\s*", text)
    if not m:
        raise SystemExit(f"bad size '{text}': use an integer with an optional B/KiB/MiB/GiB suffix")
    mult = {None: 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30}
    return int(m.group(1)) * mult[m.group(2)]


def size_list(lo: int, hi: int) -> list[int]:
    """Powers of two from lo to hi inclusive."""
    out, s = [], 1
    while s < lo:
        s *= 2
    while s <= hi:
        out.append(s)
        s *= 2
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------------------------
# worker: one process per GPU, measures collectives
# ----------------------------------------------------------------------------------------------------------------

class _Clock:
    """Elapsed device time of the work queued between start() and stop(): CUDA events, or wall time on CPU."""

    def __init__(self, torch, cuda: bool):
        self.torch, self.cuda = torch, cuda
        if cuda:
            self.e0 = torch.cuda.Event(enable_timing=True)
            self.e1 = torch.cuda.Event(enable_timing=True)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def start(self):
        if self.cuda:
            self.e0.record()
        else:
            self.t0 = time.perf_counter()

    def stop_s(self) -> float:
        if self.cuda:
            self.e1.record()
            self.e1.synchronize()
            return self.e0.elapsed_time(self.e1) / 1e3
        return time.perf_counter() - self.t0


class _NcclApi:
    """NCCL's C API through ctypes, on the libnccl that torch itself loaded: what nccl-tests calls, one C call per
    launch and no PyTorch dispatch, so small messages are timed by the GPU and the links rather than by Python."""

    NCCL_FLOAT32, NCCL_SUM = 7, 0     # ncclDataType_t ncclFloat32, ncclRedOp_t ncclSum (nccl.h)

    class UniqueId(ctypes.Structure):
        _fields_ = [("internal", ctypes.c_char * 128)]   # NCCL_UNIQUE_ID_BYTES

    def __init__(self):
        path = self.library_path()
        self.lib = lib = ctypes.CDLL(path)
        self.path = path
        p, i, z = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        sigs = {"ncclGetVersion": [ctypes.POINTER(i)], "ncclGetUniqueId": [ctypes.POINTER(self.UniqueId)],
                "ncclCommInitRank": [ctypes.POINTER(p), i, self.UniqueId, i], "ncclCommDestroy": [p],
                "ncclAllReduce": [p, p, z, i, i, p, p], "ncclAllGather": [p, p, z, i, p, p],
                "ncclReduceScatter": [p, p, z, i, i, p, p], "ncclBroadcast": [p, p, z, i, i, p, p],
                "ncclReduce": [p, p, z, i, i, i, p, p], "ncclSend": [p, z, i, i, p, p], "ncclRecv": [p, z, i, i, p, p],
                "ncclGroupStart": [], "ncclGroupEnd": []}
        for name, argtypes in sigs.items():
            f = getattr(lib, name)
            f.argtypes, f.restype = argtypes, ctypes.c_int
        lib.ncclGetErrorString.argtypes, lib.ncclGetErrorString.restype = [ctypes.c_int], ctypes.c_char_p
        v = ctypes.c_int()
        self.check(lib.ncclGetVersion(ctypes.byref(v)), "ncclGetVersion")
        code = v.value     # NCCL_VERSION_CODE: major*10000 + minor*100 + patch since 2.9
        self.version = f"{code // 10000}.{code // 100 % 100}.{code % 100}"

    @staticmethod
    def library_path() -> str:
        """The libnccl mapped into this process by ``import torch`` (so the version is torch's), else the one
        the dynamic loader finds."""
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.split()[-1]
                if os.path.basename(path).startswith("libnccl.so"):
                    return path
        found = ctypes.util.find_library("nccl")
        if not found:
            raise RuntimeError("libnccl not found: neither mapped by torch nor on the loader path")
        return found

    def check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what} failed: NCCL error {rc} ({self.lib.ncclGetErrorString(rc).decode()})")

    def unique_id(self) -> bytes:
        uid = self.UniqueId()
        self.check(self.lib.ncclGetUniqueId(ctypes.byref(uid)), "ncclGetUniqueId")
        return ctypes.string_at(ctypes.addressof(uid), ctypes.sizeof(uid))

    def comm(self, uid: bytes, n: int, rank: int) -> ctypes.c_void_p:
        """A communicator of n ranks; NCCL reads NCCL_ALGO/NCCL_PROTO here, so set them before."""
        u = self.UniqueId()
        ctypes.memmove(ctypes.addressof(u), uid, ctypes.sizeof(u))
        comm = ctypes.c_void_p()
        self.check(self.lib.ncclCommInitRank(ctypes.byref(comm), n, u, rank), "ncclCommInitRank")
        return comm

    def destroy(self, comm) -> None:
        self.check(self.lib.ncclCommDestroy(comm), "ncclCommDestroy")


class _DirectGroup:
    """The process group facade _OpRunner needs for launches through :class:`_NcclApi` on one communicator."""

    def __init__(self, api: _NcclApi, comm, stream_ptr: int):
        self.api, self.comm, self.stream = api, comm, ctypes.c_void_p(stream_ptr)


class _OpRunner:
    """Buffers and one launch of one collective, with nccl-tests' size semantics (bytes = total buffer)."""

    def __init__(self, torch, dist, op, pg, n, grank, max_bytes, device, in_place_split=False):
        self.torch, self.dist, self.op, self.pg, self.n, self.grank = torch, dist, op, pg, n, grank
        self.device = device
        big = max_bytes // ELEMENT_BYTES
        small = max(big // n, 1)
        mk = lambda c: torch.randn(c, dtype=torch.float32, device=device)  # noqa: E731
        if op in ("all_reduce", "broadcast", "reduce"):
            self.a = mk(big)
            self.b = None
        elif op == "all_gather":
            self.a, self.b = mk(small), mk(big)
        elif op == "reduce_scatter":
            self.a, self.b = mk(big), mk(small)
        else:  # all_to_all, sendrecv
            self.a, self.b = mk(big), mk(big)
        # all_reduce, broadcast and reduce always run in place; all_gather and reduce_scatter do when asked, as
        # nccl-tests' in-place columns: all_gather's input is the rank's slot of the output, reduce_scatter's output
        # its slot of the input (NCCL then skips the copy of a rank's own chunk between the buffers)
        self.in_place = (op in ("all_reduce", "broadcast", "reduce")
                         or (in_place_split and op in ("all_gather", "reduce_scatter")))

    def _slot(self, buf, count: int):
        """The rank's 1/n slot of ``buf[:count]`` (in-place all_gather input, reduce_scatter output)."""
        part = count // self.n
        return buf[self.grank * part:(self.grank + 1) * part]

    def feasible(self, nbytes: int) -> int:
        """The size actually measured for a requested ``nbytes``: as nccl-tests does, rounded down to whole
        float32 elements, per rank for the split ops (3 ranks: 1 MiB all_gather measures 1,048,572 B); 0 when
        not even one element per rank fits."""
        unit = ELEMENT_BYTES * (self.n if self.op in ("all_gather", "reduce_scatter", "all_to_all") else 1)
        return nbytes - nbytes % unit

    def bind(self, nbytes: int):
        """A zero-argument function launching the op on nbytes (total, as nccl-tests counts them)."""
        dist, pg, n = self.dist, self.pg, self.n
        count = nbytes // ELEMENT_BYTES
        if isinstance(pg, _DirectGroup):
            return self._bind_direct(nbytes)
        if self.op == "all_reduce":
            x = self.a[:count]
            return lambda: dist.all_reduce(x, group=pg)
        if self.op == "broadcast":
            x = self.a[:count]
            return lambda: dist.broadcast(x, src=0, group=pg)
        if self.op == "reduce":     # to rank 0, as nccl-tests reduce_perf's default root
            x = self.a[:count]
            return lambda: dist.reduce(x, dst=0, group=pg)
        if self.op == "all_gather":
            out = self.b[:count]
            inp = self._slot(self.b, count) if self.in_place else self.a[:count // n]
            return lambda: dist.all_gather_into_tensor(out, inp, group=pg)
        if self.op == "reduce_scatter":
            inp = self.a[:count]
            out = self._slot(self.a, count) if self.in_place else self.b[:count // n]
            return lambda: dist.reduce_scatter_tensor(out, inp, group=pg)
        if self.op == "all_to_all":
            inp, out = self.a[:count], self.b[:count]
            return lambda: dist.all_to_all_single(out, inp, group=pg)
        # sendrecv: ring shift as nccl-tests sendrecv_perf: send to rank+1, receive from rank-1 (group rank == global)
        send, recv = self.a[:count], self.b[:count]
        nxt, prv = (self.grank + 1) % n, (self.grank - 1) % n

        def _sendrecv():
            ops = [dist.P2POp(dist.isend, send, nxt, group=pg), dist.P2POp(dist.irecv, recv, prv, group=pg)]
            for w in dist.batch_isend_irecv(ops):
                w.wait()
        return _sendrecv

    def _bind_direct(self, nbytes: int):
        """bind() through NCCL's C API, with the calls nccl-tests makes: all_to_all is a group of a send and a
        receive per peer (itself included), sendrecv a group of one send to r+1 and one receive from r-1."""
        g, n, r = self.pg, self.n, self.grank
        lib, comm, stream = g.api.lib, g.comm, g.stream
        f32, total = _NcclApi.NCCL_FLOAT32, nbytes // ELEMENT_BYTES
        a = ctypes.c_void_p(self.a.data_ptr())
        b = ctypes.c_void_p(self.b.data_ptr()) if self.b is not None else a
        check = g.api.check
        if self.op == "all_reduce":
            return lambda: check(lib.ncclAllReduce(a, a, total, f32, _NcclApi.NCCL_SUM, comm, stream), "allreduce")
        if self.op == "broadcast":
            return lambda: check(lib.ncclBroadcast(a, a, total, f32, 0, comm, stream), "broadcast")
        if self.op == "reduce":
            return lambda: check(lib.ncclReduce(a, a, total, f32, _NcclApi.NCCL_SUM, 0, comm, stream), "reduce")
        slot_bytes = r * (total // n) * ELEMENT_BYTES
        if self.op == "all_gather":
            src = ctypes.c_void_p(self.b.data_ptr() + slot_bytes) if self.in_place else a
            return lambda: check(lib.ncclAllGather(src, b, total // n, f32, comm, stream), "allgather")
        if self.op == "reduce_scatter":
            dst = ctypes.c_void_p(self.a.data_ptr() + slot_bytes) if self.in_place else b
            return lambda: check(lib.ncclReduceScatter(a, dst, total // n, f32, _NcclApi.NCCL_SUM, comm, stream),
                                 "reducescatter")
        if self.op == "all_to_all":
            part = total // n
            sends = [ctypes.c_void_p(self.a.data_ptr() + p * part * ELEMENT_BYTES) for p in range(n)]
            recvs = [ctypes.c_void_p(self.b.data_ptr() + p * part * ELEMENT_BYTES) for p in range(n)]

            def _all_to_all():
                check(lib.ncclGroupStart(), "groupStart")
                for peer in range(n):
                    check(lib.ncclSend(sends[peer], part, f32, peer, comm, stream), "send")
                    check(lib.ncclRecv(recvs[peer], part, f32, peer, comm, stream), "recv")
                check(lib.ncclGroupEnd(), "groupEnd")
            return _all_to_all
        nxt, prv = (r + 1) % n, (r - 1) % n

        def _sendrecv():
            check(lib.ncclGroupStart(), "groupStart")
            check(lib.ncclSend(a, total, f32, nxt, comm, stream), "send")
            check(lib.ncclRecv(b, total, f32, prv, comm, stream), "recv")
            check(lib.ncclGroupEnd(), "groupEnd")
        return _sendrecv

    def check(self):
        """One small launch with known data; raises if the result is wrong (catches miswired groups and peers)."""
        torch, n, r = self.torch, self.n, self.grank
        c = 64 * n
        fn = self.bind(c * ELEMENT_BYTES)
        if self.op == "all_reduce":
            self.a[:c].fill_(r + 1)
            fn()
            ok = torch.all(self.a[:c] == n * (n + 1) / 2)
        elif self.op == "broadcast":
            self.a[:c].fill_(r + 7)
            fn()
            ok = torch.all(self.a[:c] == 7)
        elif self.op == "reduce":       # only the root's buffer is defined afterwards
            self.a[:c].fill_(r + 1)
            fn()
            ok = torch.all(self.a[:c] == n * (n + 1) / 2) if r == 0 else True
        elif self.op == "all_gather":
            (self._slot(self.b, c) if self.in_place else self.a[:c // n]).fill_(r)
            fn()
            ok = torch.all(self.b[:c].view(n, -1) == torch.arange(n, device=self.device, dtype=torch.float32)[:, None])
        elif self.op == "reduce_scatter":
            self.a[:c].fill_(r + 1)
            fn()
            ok = torch.all((self._slot(self.a, c) if self.in_place else self.b[:c // n]) == n * (n + 1) / 2)
        elif self.op == "all_to_all":
            self.a[:c].view(n, -1).copy_((r * n + torch.arange(n, device=self.device, dtype=torch.float32))[:, None])
            fn()
            want = (torch.arange(n, device=self.device, dtype=torch.float32) * n + r)[:, None]
            ok = torch.all(self.b[:c].view(n, -1) == want)
        else:
            self.a[:c].fill_(r)
            fn()
            ok = torch.all(self.b[:c] == (r - 1) % n)
        if not bool(ok):
            raise RuntimeError(f"{self.op} on {n} ranks gave a wrong result on rank {r}")


def _worker(args) -> int:
    """One rank of the measurement job (started by the driver with RANK/WORLD_SIZE in its environment)."""
    import torch
    import torch.distributed as dist

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch's renames of the *_tensor collectives
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = not args.dry_cpu
    device = torch.device("cuda", 0 if args.share_gpu else rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(hours=1),
                            init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}")
    coll_backend = "gloo" if args.dry_cpu else "nccl"
    nccl_version = ".".join(map(str, torch.cuda.nccl.version())) if cuda else "none"
    api = _NcclApi() if args.launch == "nccl_api" else None
    if api is not None:
        nccl_version = api.version
        if rank == 0:
            log(f"NCCL C API: {api.path} (NCCL {api.version})")
        torch.cuda.set_stream(torch.cuda.Stream())    # launches and CUDA events share this one stream
    deadline = float(args.deadline_epoch)
    transport = args.transport
    world_sizes = [int(w) for w in args.world_sizes.split(",")]
    ops = args.ops.split(",")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    variants = [("default", "default")]
    if args.variants:
        variants += [tuple(v.split("/")) for v in args.variants.split(",")]
    out_csv = args.csv
    clock = _Clock(torch, cuda)
    stopped = False

    plan = []
    for algo, proto in variants:
        for ws in world_sizes:
            if ws > world:
                continue
            plan.append((algo, proto, ws, ops if algo == "default" else variant_ops(algo, args.variant_ops)))

    for algo, proto, ws, plan_ops in plan:
        if stopped:
            break
        for key, val in (("NCCL_ALGO", algo), ("NCCL_PROTO", proto)):
            if val == "default":
                os.environ.pop(key, None)
            else:
                os.environ[key] = val
        ranks = list(range(ws))
        pg = dist.new_group(ranks, backend=coll_backend) if api is None else None
        cg = dist.new_group(ranks, backend="gloo") if ws < world else dist.group.WORLD
        member = rank < ws
        if member and api is not None:
            uid = torch.zeros(128, dtype=torch.uint8)
            if rank == 0:
                uid = torch.frombuffer(bytearray(api.unique_id()), dtype=torch.uint8)
            dist.broadcast(uid, src=0, group=cg)
            pg = _DirectGroup(api, api.comm(bytes(uid.tolist()), ws, rank), torch.cuda.current_stream().cuda_stream)
        if member:
            stopped = _measure_group(torch, dist, args, pg, cg, ws, rank, device, clock, transport, algo, proto,
                                     plan_ops, sizes, deadline, out_csv, nccl_version)
        flag = torch.tensor([1.0 if stopped else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # members tell the idle ranks whether time ran out
        stopped = bool(flag.item())
        if member:
            if api is not None:
                torch.cuda.synchronize()
                api.destroy(pg.comm)
            else:
                dist.destroy_process_group(pg)
            if ws < world:
                dist.destroy_process_group(cg)
        if cuda:
            torch.cuda.empty_cache()
    dist.barrier()
    dist.destroy_process_group()
    return 0


def _measure_group(torch, dist, args, pg, cg, n, rank, device, clock, transport, algo, proto, ops, sizes, deadline,
                   out_csv, nccl_version) -> bool:
    """Measure every op and size on one communicator; returns True when the deadline stopped the run."""
    cap = parse_size(args.max_bytes)
    if algo != "default" and args.variant_max_bytes:
        cap = min(cap, parse_size(args.variant_max_bytes))
    gpus = ";".join("0" if args.share_gpu else str(r) for r in range(n)) if not args.dry_cpu else "cpu"
    machine = args.machine
    for op in ops:
        op_sizes = [s for s in sizes if s <= cap]
        if not op_sizes:
            continue
        runner = _OpRunner(torch, dist, op, pg, n, rank, max(op_sizes), device, in_place_split=args.in_place)
        runner.check()
        t_prev, s_prev = None, None
        graph_cap = parse_size(args.graph_max_bytes) if args.graph_max_bytes else -1
        cuda_graph_ok = not args.dry_cpu
        for asked in op_sizes:
            nbytes = runner.feasible(asked)
            if not nbytes:
                if rank == 0:
                    log(f"  skip {op} {asked} B on {n} ranks: not one float32 element per rank")
                continue
            # decide on rank 0 from the previous size's time, before launching anything large
            # linear scaling from the last size, but no slower than 0.5 GB/s for the added bytes (a latency-bound
            # last point would otherwise predict absurd times for a large jump in size)
            pred = 1e-4 if t_prev is None else min(t_prev * max(1.0, nbytes / s_prev),
                                                   t_prev + (nbytes - s_prev) / 0.5e9)
            est = pred * (3 + args.trials * max(args.min_iters, 1)) + 0.1
            verdict = torch.tensor([0.0])
            if rank == 0:
                if time.time() + est > deadline:
                    verdict[0] = 2.0
                elif est > args.max_point_s:
                    verdict[0] = 1.0
            dist.broadcast(verdict, src=0, group=cg)
            if verdict.item() == 2.0:
                if rank == 0:
                    log(f"  DEADLINE: stop before {op} {nbytes} B (predicted {est:.1f} s)")
                del runner
                return True
            if verdict.item() == 1.0:
                if rank == 0:
                    log(f"  CAP: {op} from {nbytes} B up skipped on {transport} n={n} {algo}/{proto} "
                        f"(predicted {est:.1f} s per point > --max-point-s {args.max_point_s})")
                break
            fn = runner.bind(nbytes)
            fn()  # first launch, untimed
            clock.sync()
            n_warm = max(1, min(args.warmup, int(2e-3 / pred) if pred > 0 else args.warmup))
            clock.start()
            for _ in range(n_warm):
                fn()
            t_est = torch.tensor([clock.stop_s() / n_warm])
            dist.all_reduce(t_est, op=dist.ReduceOp.MAX, group=cg)
            iters = int(min(args.max_iters, max(args.min_iters, math.ceil(args.target_ms * 1e-3 / t_est.item()))))
            launch_fn, launch = None, args.launch
            if cuda_graph_ok and nbytes <= graph_cap:
                iters = min(iters, args.graph_max_iters)
                direct = isinstance(pg, _DirectGroup)
                launch_fn = _capture(torch, fn, iters, direct)
                ok = torch.tensor([0.0 if launch_fn is None else 1.0])
                dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=cg)
                if ok.item() == 1.0:
                    launch = "nccl_api_graph" if direct else "cuda_graph"
                    launch_fn()  # the first replay uploads the graph: keep it out of the timings
                else:
                    cuda_graph_ok = False  # capture failed on some rank: eager from here on, for this op
                    if rank == 0:
                        log(f"  cuda graph capture failed for {op} on {transport} n={n}; eager launches instead")
            trial_t, trial_h = [], []
            for _ in range(args.trials):
                clock.sync()
                dist.barrier(group=cg)
                clock.start()
                h0 = time.perf_counter()
                if launch_fn is not None:
                    launch_fn()
                else:
                    for _ in range(iters):
                        fn()
                h1 = time.perf_counter()
                t = clock.stop_s()
                th = torch.tensor([t / iters, (h1 - h0) / iters])
                dist.all_reduce(th, op=dist.ReduceOp.MAX, group=cg)
                trial_t.append(th[0].item())
                trial_h.append(th[1].item())
            launch_fn = None
            t_med = statistics.median(trial_t)
            t_prev, s_prev = t_med, nbytes
            if rank == 0:
                algbw = nbytes / t_med / 1e9
                busbw = algbw * busbw_factor(op, n)
                row = {
                    "machine": machine, "transport": transport, "world_size": n, "gpus": gpus, "op": op,
                    "bytes": nbytes, "count": nbytes // ELEMENT_BYTES, "dtype": "float32", "algo": algo,
                    "proto": proto, "in_place": int(runner.in_place),
                    "time_us": f"{t_med * 1e6:.3f}", "time_us_min": f"{min(trial_t) * 1e6:.3f}",
                    "time_us_max": f"{max(trial_t) * 1e6:.3f}", "algbw_GBps": f"{algbw:.4f}",
                    "busbw_GBps": f"{busbw:.4f}", "host_us": f"{statistics.median(trial_h) * 1e6:.3f}",
                    "trials": args.trials, "iters": iters, "launch": launch, "nccl_version": nccl_version,
                    "torch_version": torch.__version__, "channels": forced_channels(os.environ),
                }
                with open(out_csv, "a", newline="") as fh:
                    csv.DictWriter(fh, CSV_COLUMNS, lineterminator="\n").writerow(row)
                log(f"  {transport:8s} n={n} {op:14s} {algo:7s} {proto:6s} {nbytes:>11d} B "
                    f"{t_med * 1e6:11.2f} us  busbw {busbw:8.2f} GB/s  iters {iters} {launch}")
        del runner
        if args.dry_cpu is False:
            torch.cuda.empty_cache()
    return False


def _capture(torch, fn, iters, direct=False):
    """A CUDA graph of `iters` launches of fn, returned as its replay function; None if capture failed.

    Replaying a graph launches the kernels back to back with no per-call work on the host, so small messages are
    timed by the GPU alone, not by the host's launch rate. ``direct``: fn calls NCCL's C API on the current stream
    (the one it was bound to), so the graph is captured on that stream.
    """
    try:
        if direct:
            for _ in range(2):
                fn()
            torch.cuda.synchronize()
        else:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=torch.cuda.current_stream() if direct else None):
            for _ in range(iters):
                fn()
        torch.cuda.synchronize()
        return g.replay
    except Exception as e:  # noqa: BLE001 - any capture failure falls back to eager launches
        log(f"  capture failed: {type(e).__name__}: {str(e)[:300]}")
        try:
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001
            pass
        return None


def _info_worker(args) -> int:
    """One rank of a tiny all_reduce on 2 and 4 ranks, run with NCCL_DEBUG=INFO to log topology/channels/tuning."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(0 if args.share_gpu else rank)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}")
    for ws in sorted({int(w) for w in args.world_sizes.split(",")}):
        if ws > world:
            continue
        pg = dist.new_group(list(range(ws)), backend="nccl")
        if rank < ws:
            x = torch.ones(1 << 20, device="cuda")
            dist.all_reduce(x, group=pg)
            torch.cuda.synchronize()
            if not bool(torch.all(x == ws)):
                raise RuntimeError("info all_reduce gave a wrong sum")
            dist.destroy_process_group(pg)
        dist.barrier()
    dist.destroy_process_group()
    return 0


# ----------------------------------------------------------------------------------------------------------------
# copy bandwidth: host<->device (pinned) and device->device (peer and local)
# ----------------------------------------------------------------------------------------------------------------

def _copy_worker(args) -> int:
    """Measure pinned H2D/D2H, local D2D, peer D2D (every ordered pair) and bidirectional peer copies."""
    import torch

    ndev = torch.cuda.device_count()
    sizes = [parse_size(s) for s in args.copy_sizes.split(",")]
    big = max(sizes)
    rows = []

    def timeit(fn, devs, nbytes):
        for d in devs:
            torch.cuda.synchronize(d)
        fn()
        for d in devs:
            torch.cuda.synchronize(d)
        t0 = time.perf_counter()
        fn()
        for d in devs:
            torch.cuda.synchronize(d)
        one = max(time.perf_counter() - t0, 1e-6)
        iters = int(min(1000, max(2, math.ceil(0.03 / one))))
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            for d in devs:
                torch.cuda.synchronize(d)
            ts.append((time.perf_counter() - t0) / iters)
        return ts, iters

    def add(kind, src, dst, nbytes, ts, iters, pinned, peer, moved=None):
        t = statistics.median(ts)
        rows.append({"machine": args.machine, "kind": kind, "src": src, "dst": dst, "bytes": nbytes,
                     "time_us": f"{t * 1e6:.3f}", "time_us_min": f"{min(ts) * 1e6:.3f}",
                     "time_us_max": f"{max(ts) * 1e6:.3f}", "GBps": f"{(moved or nbytes) / t / 1e9:.3f}",
                     "trials": len(ts), "iters": iters, "pinned": int(pinned), "peer_access": peer})
        log(f"  copy {kind:10s} {src}->{dst} {nbytes:>11d} B  {(moved or nbytes) / t / 1e9:8.2f} GB/s")

    host = torch.empty(big, dtype=torch.uint8, pin_memory=True)
    host.fill_(1)
    for d in range(ndev):
        dev = torch.empty(big, dtype=torch.uint8, device=f"cuda:{d}")
        dev.fill_(3)
        for s in sizes:
            if d > 0 and s != big:
                continue
            h, g = host[:s], dev[:s]
            ts, it = timeit(lambda: g.copy_(h, non_blocking=True), [d], s)
            add("h2d", "host", f"cuda:{d}", s, ts, it, True, "")
            ts, it = timeit(lambda: h.copy_(g, non_blocking=True), [d], s)
            add("d2h", f"cuda:{d}", "host", s, ts, it, True, "")
        del dev
    la = torch.empty(big, dtype=torch.uint8, device="cuda:0")
    lb = torch.empty(big, dtype=torch.uint8, device="cuda:0")
    la.fill_(5)
    for s in sizes:
        ts, it = timeit(lambda: lb[:s].copy_(la[:s]), [0], s)
        add("d2d_local", "cuda:0", "cuda:0", s, ts, it, False, "")
    la = lb = None
    bufs = []
    for d in range(ndev):
        x = torch.empty(big, dtype=torch.uint8, device=f"cuda:{d}")
        x.fill_(d + 1)
        y = torch.empty(big, dtype=torch.uint8, device=f"cuda:{d}")
        bufs.append((x, y))
    for i in range(ndev):
        for j in range(ndev):
            if i == j:
                continue
            peer = int(torch.cuda.can_device_access_peer(i, j))
            for s in sizes:
                if (i, j) != (0, 1) and s != big:
                    continue
                src, dst = bufs[i][0][:s], bufs[j][1][:s]
                ts, it = timeit(lambda: dst.copy_(src, non_blocking=True), [i, j], s)
                add("d2d_peer", f"cuda:{i}", f"cuda:{j}", s, ts, it, False, peer)
    if ndev >= 2:
        streams = [torch.cuda.Stream(device=d) for d in range(ndev)]
        for i, j in [(0, 1)] + ([(0, 2), (0, 3)] if ndev >= 4 else []):
            s = big

            def both():
                with torch.cuda.stream(streams[i]):
                    bufs[j][1][:s].copy_(bufs[i][0][:s], non_blocking=True)
                with torch.cuda.stream(streams[j]):
                    bufs[i][1][:s].copy_(bufs[j][0][:s], non_blocking=True)
            ts, it = timeit(both, [i, j], s)
            add("d2d_bidir", f"cuda:{i}", f"cuda:{j}", s, ts, it, False,
                int(torch.cuda.can_device_access_peer(i, j)), moved=2 * s)
    with open(args.csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, COPY_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, mode: str, nproc: int, env_extra: dict, extra_argv: list[str], logdir: str, timeout_s: float) -> int:
    """Start nproc ranks of this script in `mode`; rank 0's output goes to our stdout, others' to files."""
    port = _free_port()
    procs = []
    for r in range(nproc):
        env = dict(os.environ)
        env.update(MULTICAST_OFF)
        env.update(env_extra)
        env.update({"RANK": str(r), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo", "PYTHONUNBUFFERED": "1"})
        if args.share_gpu:
            env["NCCL_HOSTID"] = f"gpusim-shared-gpu-rank{r}"
        out = None if r == 0 else open(os.path.join(logdir, f"{mode}_{env_extra.get('_TAG', 'x')}_rank{r}.log"), "w")
        argv = [sys.executable, os.path.abspath(__file__), mode] + extra_argv
        procs.append((subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None), out))
    end = time.time() + timeout_s
    rc = 0
    while any(p.poll() is None for p, _ in procs):
        failed = [p for p, _ in procs if p.poll() not in (None, 0)]
        if failed or time.time() > end:
            rc = failed[0].returncode if failed else 124
            log(f"{mode}: a rank {'failed' if failed else 'timed out'}; stopping the other ranks")
            time.sleep(2)
            for p, _ in procs:
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.2)
    for p, out in procs:
        p.wait()
        rc = rc or p.returncode
        if out:
            out.close()
    return rc


def _sh(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return r.stdout + (("\n[stderr]\n" + r.stderr) if r.stderr.strip() else "")
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"[could not run {' '.join(cmd)}: {e}]\n"


def _system_info(path: str, machine: str) -> None:
    """nvidia-smi topology and summary, NVLink status, CPU, kernel, torch/NCCL/CUDA versions."""
    import torch

    parts = [
        ("date (UTC)", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
        ("machine label", machine),
        ("python", sys.version.replace("\n", " ")),
        ("platform", platform.platform()),
        ("torch", f"{torch.__version__} (cuda {torch.version.cuda})"),
        ("nccl (torch.cuda.nccl.version())",
         ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "n/a"),
        ("torch.cuda.device_count()", str(torch.cuda.device_count())),
        ("multicast-off environment", " ".join(f"{k}={v}" for k, v in MULTICAST_OFF.items())),
        ("nvidia-smi topo -m", _sh(["nvidia-smi", "topo", "-m"])),
        ("nvidia-smi topo -p2p r", _sh(["nvidia-smi", "topo", "-p2p", "r"])),
        ("nvidia-smi", _sh(["nvidia-smi"])),
        ("nvidia-smi --query-gpu", _sh(["nvidia-smi", "--query-gpu=index,name,pci.bus_id,driver_version,"
                                        "memory.total,pcie.link.gen.current,pcie.link.gen.max,"
                                        "pcie.link.width.current,clocks.max.sm,clocks.max.mem,power.limit",
                                        "--format=csv"])),
        ("nvidia-smi nvlink --status -i 0", _sh(["nvidia-smi", "nvlink", "--status", "-i", "0"])),
        ("nvidia-smi nvlink --capabilities -i 0", _sh(["nvidia-smi", "nvlink", "--capabilities", "-i", "0"])),
        ("lscpu", _sh(["lscpu"])),
        ("uname -a", _sh(["uname", "-a"])),
    ]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        rows = [" ".join(str(int(torch.cuda.can_device_access_peer(i, j))) if i != j else "-" for j in range(n))
                for i in range(n)]
        parts.append(("torch.cuda.can_device_access_peer (row=src, col=dst)", "\n".join(rows)))
        props = torch.cuda.get_device_properties(0)
        parts.append(("cuda:0 properties", f"{props.name}, {props.total_memory} bytes, "
                                           f"{props.multi_processor_count} SMs, cc {props.major}.{props.minor}"))
    with open(path, "w") as fh:
        for title, body in parts:
            fh.write(f"===== {title}\n{body.rstrip()}\n\n")


def _collect_nccl_logs(pattern: str, title: str, out_fh, keep=None) -> int:
    """Append the NCCL log files matching pattern to out_fh (optionally only lines matching keep)."""
    n = 0
    for path in sorted(glob.glob(pattern)):
        with open(path, errors="replace") as fh:
            lines = [ln for ln in fh if keep is None or keep.search(ln)]
        out_fh.write(f"===== {title} :: {os.path.basename(path)}\n")
        out_fh.writelines(lines)
        out_fh.write("\n")
        n += len(lines)
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", nargs="?", default="drive",
                   choices=["drive", "worker", "info-worker", "copy-worker", "check-api"],
                   help="check-api: run each op once through NCCL's C API on a 1-rank communicator of GPU 0 and check "
                        "its result (the ctypes signatures, before a multi-GPU run spends its time)")
    p.add_argument("--out", default=os.environ.get("OUT", "out/collect"), help="output folder (default $OUT)")
    p.add_argument("--tag", default="run", help="prefix of the output files, so several calls do not collide")
    p.add_argument("--machine", default="", help="machine label in the CSV (default: from the GPU name and count)")
    p.add_argument("--transports", default="nvlink,pcie_shm,socket")
    p.add_argument("--world-sizes", default="2,4")
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--min-bytes", default="8")
    p.add_argument("--max-bytes", default="4GiB")
    p.add_argument("--sizes", default="", help="explicit comma-separated sizes instead of min..max powers of 2")
    p.add_argument("--cap", action="append", default=[],
                   help="TRANSPORT=SIZE: largest size on that transport (repeatable), e.g. socket=1GiB")
    p.add_argument("--variants", default="all",
                   help="all_reduce NCCL_ALGO/NCCL_PROTO pairs to force, e.g. Ring/LL,Tree/Simple; 'all' or 'none'")
    p.add_argument("--variant-ops", default="all_reduce",
                   help="operations the forced variants run (Ring ones; Tree is all_reduce's only), e.g. "
                        "all_reduce,all_gather,broadcast")
    p.add_argument("--variant-transports", default="nvlink,pcie_shm")
    p.add_argument("--variant-max-bytes", default="", help="largest size for the forced variants (default: same)")
    p.add_argument("--launch", default="eager", choices=["eager", "nccl_api"],
                   help="eager: each call through torch.distributed; nccl_api: NCCL's C API called directly, one "
                        "C call per launch as nccl-tests makes (torch only allocates, times and rendezvouses)")
    p.add_argument("--graph-max-bytes", default="",
                   help="time sizes up to this by replaying a CUDA graph of the launches (default: never)")
    p.add_argument("--graph-max-iters", type=int, default=1000)
    p.add_argument("--in-place", action="store_true",
                   help="run all_gather and reduce_scatter in place, as nccl-tests' in-place columns (all_reduce, "
                        "broadcast and reduce always are)")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--warmup", type=int, default=20, help="most warm-up launches (fewer at large sizes, at least 1)")
    p.add_argument("--target-ms", type=float, default=25.0, help="timed loop length per trial")
    p.add_argument("--min-iters", type=int, default=2)
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--max-point-s", type=float, default=30.0, help="skip sizes predicted to take longer than this")
    p.add_argument("--deadline-s", type=float, default=550.0, help="stop measuring after this many seconds")
    p.add_argument("--nproc", type=int, default=0, help="processes (GPUs) per job (default: all GPUs)")
    p.add_argument("--share-gpu", action="store_true",
                   help="socket only: every rank on GPU 0, each with its own NCCL_HOSTID, so NCCL takes the ranks for "
                        "separate hosts and joins them through its socket transport (a probe of the transport's "
                        "structure on a 1-GPU machine; run it under MPS so the ranks' kernels run side by side)")
    p.add_argument("--no-collectives", action="store_true")
    p.add_argument("--no-system", action="store_true")
    p.add_argument("--no-nccl-info", action="store_true")
    p.add_argument("--copy-bw", action="store_true", help="also measure host/device and peer copy bandwidth")
    p.add_argument("--copy-sizes", default="64KiB,1MiB,16MiB,256MiB,1GiB")
    p.add_argument("--dry-cpu", action="store_true", help="test the plumbing on CPU with gloo (no timings of worth)")
    # internal, passed to workers
    p.add_argument("--transport", default="")
    p.add_argument("--csv", default="")
    p.add_argument("--deadline-epoch", default="0")
    args = p.parse_args(argv)

    if args.mode == "worker":
        return _worker(args)
    if args.mode == "info-worker":
        return _info_worker(args)
    if args.mode == "copy-worker":
        return _copy_worker(args)
    if args.mode == "check-api":
        return _check_api()
    return _drive(args, p)


def _check_api() -> int:
    """Every op once through :class:`_NcclApi` on a communicator of one rank (GPU 0), with _OpRunner's correctness
    check: a wrong ctypes signature fails here, on one GPU, rather than on the first call of a multi-GPU run."""
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(0)
    api = _NcclApi()
    comm = api.comm(api.unique_id(), 1, 0)
    group = _DirectGroup(api, comm, torch.cuda.current_stream().cuda_stream)
    for op in OPS:
        _OpRunner(torch, dist, op, group, 1, 0, 1 << 20, torch.device("cuda", 0)).check()
        log(f"check-api: {op} through the C API gave the right result (NCCL {api.version})")
    api.destroy(comm)
    return 0


def _drive(args, parser) -> int:
    t_start = time.time()
    deadline = t_start + args.deadline_s
    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, f".tmp_{args.tag}")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    tag = args.tag
    if args.dry_cpu:
        ndev, machine = args.nproc or 4, args.machine or "cpu"
        tv, nv = "dry", "none"
    else:
        import torch
        ndev = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0) if ndev else "nogpu"
        machine = args.machine or f"{name.split()[-1].lower()}x{ndev}"
        tv, nv = torch.__version__, ".".join(map(str, torch.cuda.nccl.version()))
    nproc = args.nproc or ndev
    if args.share_gpu:
        if set(args.transports.split(",")) != {"socket"}:
            parser.error("--share-gpu: ranks on one GPU can only meet through NCCL's network transport: use "
                         "--transports socket")
        if nproc < 2:
            parser.error("--share-gpu: give the ranks per job with --nproc N (N >= 2)")
        machine = args.machine or f"{machine}-shared"
    log(f"collect: machine {machine}, {ndev} devices, {nproc} ranks per job, torch {tv}, nccl {nv}")
    if (os.environ.get("NCCL_MIN_NCHANNELS") or os.environ.get("NCCL_MAX_NCHANNELS")) and not forced_channels(os.environ):
        log("collect: NCCL_MIN_NCHANNELS and NCCL_MAX_NCHANNELS differ or only one is set: NCCL's channel count is "
            "not fixed, so the CSV's channels column stays empty (set both to one number to record it)")
    for t in args.transports.split(","):
        if t not in TRANSPORTS:
            parser.error(f"unknown transport '{t}'; accepted: {', '.join(TRANSPORTS)}")
    for o in args.ops.split(","):
        if o not in OPS:
            parser.error(f"unknown op '{o}'; accepted: {', '.join(OPS)}")
    caps = {}
    for c in args.cap:
        t, _, s = c.partition("=")
        if t not in TRANSPORTS:
            parser.error(f"--cap {c}: unknown transport '{t}'")
        caps[t] = parse_size(s)
    if args.variants == "all":
        variants = [f"{a}/{p}" for a in ALGOS for p in PROTOS]
    elif args.variants in ("", "none"):
        variants = []
    else:
        variants = args.variants.split(",")
        for v in variants:
            a, _, pr = v.partition("/")
            if a not in ALGOS or pr not in PROTOS:
                parser.error(f"--variants {v}: use ALGO/PROTO with ALGO in {ALGOS} and PROTO in {PROTOS}")
    for op in args.variant_ops.split(","):
        if op not in RING_OPS:
            parser.error(f"--variant-ops {op}: use operations NCCL_ALGO/NCCL_PROTO apply to: {', '.join(RING_OPS)}")
    if args.launch == "nccl_api" and args.dry_cpu:
        parser.error("--launch nccl_api needs GPUs: drop --dry-cpu")
    sizes = ([parse_size(s) for s in args.sizes.split(",")] if args.sizes
             else size_list(parse_size(args.min_bytes), parse_size(args.max_bytes)))
    summary = {"tag": tag, "machine": machine, "argv": sys.argv, "torch": tv, "nccl": nv, "jobs": []}

    if not args.no_system and not args.dry_cpu:
        _system_info(os.path.join(args.out, f"{tag}_system.txt"), machine)
        log(f"wrote {tag}_system.txt")

    info_path = os.path.join(args.out, f"{tag}_nccl_info.txt")
    share = ["--share-gpu"] if args.share_gpu else []
    if not args.no_nccl_info and not args.dry_cpu:
        with open(info_path, "w") as fh:
            for t in args.transports.split(","):
                env = dict(TRANSPORTS[t], NCCL_DEBUG="INFO", NCCL_DEBUG_SUBSYS=INFO_SUBSYS,
                           NCCL_DEBUG_FILE=os.path.join(tmp, f"info_{t}.%h.%p.log"), _TAG=f"info_{t}")
                t0 = time.time()
                rc = _launch(args, "info-worker", nproc, env, ["--world-sizes", args.world_sizes] + share, tmp, 180)
                nl = _collect_nccl_logs(os.path.join(tmp, f"info_{t}.*.log"),
                                        f"{t} (env {' '.join(f'{k}={v}' for k, v in TRANSPORTS[t].items())}) "
                                        f"NCCL_DEBUG_SUBSYS={INFO_SUBSYS}", fh)
                log(f"nccl info {t}: rc {rc}, {nl} lines, {time.time() - t0:.1f} s")
                summary["jobs"].append({"job": f"info_{t}", "rc": rc, "seconds": round(time.time() - t0, 1)})

    if args.copy_bw and not args.dry_cpu:
        t0 = time.time()
        rc = _launch(args, "copy-worker", 1, {"_TAG": "copy"},
                     ["--csv", os.path.join(args.out, f"{tag}_copy_bandwidth.csv"), "--copy-sizes", args.copy_sizes,
                      "--machine", machine], tmp, 240)
        log(f"copy bandwidth: rc {rc}, {time.time() - t0:.1f} s")
        summary["jobs"].append({"job": "copy_bw", "rc": rc, "seconds": round(time.time() - t0, 1)})

    csv_path = os.path.join(args.out, f"{tag}_collectives.csv")
    if not args.no_collectives:
        if not os.path.exists(csv_path):
            with open(csv_path, "w", newline="") as fh:
                csv.DictWriter(fh, CSV_COLUMNS, lineterminator="\n").writeheader()
        env_keep = re.compile(r"set by environment|NCCL version|Using network|via |Channel 00/|Trees|nvls|"
                              r"coll channels|[Ww][Aa][Rr][Nn]")
        for t in args.transports.split(","):
            if time.time() > deadline - 20:
                log(f"DEADLINE: transport {t} not started")
                summary["jobs"].append({"job": f"coll_{t}", "rc": None, "skipped": "deadline"})
                continue
            cap = min(caps.get(t, max(sizes)), max(sizes))
            vs = variants if t in args.variant_transports.split(",") else []
            env = dict(TRANSPORTS[t], _TAG=f"coll_{t}")
            if not args.dry_cpu:
                env.update(NCCL_DEBUG="INFO", NCCL_DEBUG_SUBSYS="ENV",
                           NCCL_DEBUG_FILE=os.path.join(tmp, f"env_{t}.%h.%p.log"))
            wargv = ["--transport", t, "--csv", csv_path, "--deadline-epoch", str(deadline),
                     "--world-sizes", args.world_sizes, "--ops", args.ops,
                     "--sizes", ",".join(str(s) for s in sizes), "--max-bytes", str(cap),
                     "--variants", ",".join(vs), "--variant-max-bytes", args.variant_max_bytes,
                     "--variant-ops", args.variant_ops,
                     "--graph-max-bytes", args.graph_max_bytes, "--graph-max-iters", str(args.graph_max_iters),
                     "--trials", str(args.trials), "--warmup", str(args.warmup),
                     "--target-ms", str(args.target_ms), "--min-iters", str(args.min_iters),
                     "--max-iters", str(args.max_iters), "--max-point-s", str(args.max_point_s),
                     "--machine", machine, "--launch", args.launch] + (["--in-place"] if args.in_place else []) + share
            if args.dry_cpu:
                wargv.append("--dry-cpu")
            t0 = time.time()
            log(f"collectives on {t}: sizes {min(sizes)}..{cap} B, variants {vs or 'none'}")
            rc = _launch(args, "worker", nproc, env, wargv, tmp, max(30.0, deadline - time.time() + 60))
            log(f"collectives on {t}: rc {rc}, {time.time() - t0:.1f} s")
            summary["jobs"].append({"job": f"coll_{t}", "rc": rc, "seconds": round(time.time() - t0, 1),
                                    "cap_bytes": cap, "variants": vs})
            if not args.dry_cpu:
                with open(info_path, "a") as fh:
                    _collect_nccl_logs(os.path.join(tmp, f"env_{t}.*.log"),
                                       f"{t} measurement job, NCCL_DEBUG_SUBSYS=ENV (filtered)", fh, env_keep)

    # keep the non-zero ranks' logs (warnings, tracebacks) in one side file
    with open(os.path.join(args.out, f"{tag}_ranks.log"), "w") as fh:
        for path in sorted(glob.glob(os.path.join(tmp, "*_rank*.log"))):
            with open(path, errors="replace") as src:
                body = src.read()
            fh.write(f"===== {os.path.basename(path)}\n{body[-20000:]}\n")
    summary["seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(args.out, f"{tag}_summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"done in {summary['seconds']} s: {json.dumps(summary['jobs'])}")
    return 0 if all(j.get("rc") in (0, None) for j in summary["jobs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
