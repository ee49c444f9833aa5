"""NCCL's own choice of algorithm and protocol, call by call, against the simulator's tuner.

validation/probe_nccl_choices.py makes one call per (operation, size) under ``NCCL_DEBUG_SUBSYS=TUNING`` and writes
what NCCL logged (``AllReduce: 4194304 Bytes -> Algo RING proto LL128 channel{Lo..Hi}={0..23}``) as CSV. The
simulator's switch points are right where its tuner picks the same on every logged call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from gpusim.calibration.measurements import MAX_BYTES, canonical_op, csv_rows
from gpusim.collectives.run import Collectives
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError
from gpusim.presets import Cluster

#: Columns of the probe's CSV (validation/README.md); ``bytes`` in nccl-tests' convention.
COLUMNS = ("transport", "world_size", "op", "bytes", "nccl_bytes", "algo", "proto", "channel_lo", "channel_hi",
           "nccl_version")
_REQUIRED = ("transport", "world_size", "op", "bytes", "algo", "proto")
#: Names NCCL logs (ncclAlgoToString, ncclProtoToString in src/enqueue.cc).
NCCL_ALGOS = ("TREE", "RING", "COLLNET_DIRECT", "COLLNET_CHAIN", "NVLS", "NVLS_TREE", "PAT")
NCCL_PROTOS = ("LL", "LL128", "SIMPLE")


@dataclass(frozen=True)
class LoggedChoice:
    """One call and what NCCL chose for it (algorithm and protocol upper-case, as NCCL logs them)."""

    transport: str
    world_size: int
    op: str
    size_bytes: int
    algo: str
    proto: str
    source: str = field(default="", compare=False)     # file:line it was read from


def load_csv(path) -> list[LoggedChoice]:
    """The logged choices in a CSV of validation/probe_nccl_choices.py; errors name file, line and column."""
    out = []
    rows = csv_rows(path, _REQUIRED, COLUMNS)
    extra = [c for c in (rows[0].row if rows else {}) if c not in COLUMNS]
    if extra:       # a measurement CSV has the required columns too
        raise GpusimError(f"{path}:1", f"column(s) {', '.join(extra)}: not a log of NCCL's choices "
                                       f"(validation/probe_nccl_choices.py writes {', '.join(COLUMNS)})")
    for r in rows:
        op = r.text("op")
        try:
            op = canonical_op(op)
        except GpusimError:
            raise r.err("op", "an operation such as all_reduce") from None
        algo, proto = r.text("algo").upper(), r.text("proto").upper()
        if algo not in NCCL_ALGOS:
            raise r.err("algo", f"an algorithm as NCCL logs it ({', '.join(NCCL_ALGOS)})")
        if proto not in NCCL_PROTOS:
            raise r.err("proto", f"a protocol as NCCL logs it ({', '.join(NCCL_PROTOS)})")
        out.append(LoggedChoice(r.text("transport"), r.int_("world_size", 2, required=True), op,
                                r.int_("bytes", 1, required=True, hi=MAX_BYTES), algo, proto, f"{path}:{r.line}"))
    if not out:
        raise GpusimError(str(path), "no logged choice after the header")
    return out


def compare(logged: list[LoggedChoice], cluster_for: Callable[[str, int], Cluster]) -> dict:
    """Per transport: calls, how many the tuner of ``cluster_for(transport, n)`` picks as NCCL did, and the
    others as (n, op, bytes, NCCL's 'ALGO/PROTO', the tuner's)."""
    colls: dict = {}
    out: dict = {}
    for c in logged:
        key = (c.transport, c.world_size)
        if key not in colls:
            try:
                cluster = cluster_for(*key)
            except GpusimError as e:
                raise GpusimError(f"{c.source}:world_size", f"{c.world_size} ranks, which the model cannot simulate: "
                                                            f"{e}") from None
            colls[key] = Collectives(Fabric(cluster.graph), cluster.model)
        coll = colls[key]
        ours = coll.choose(c.op, coll.ranks(range(c.world_size)), c.size_bytes)
        entry = out.setdefault(c.transport, {"calls": 0, "agree": 0, "differ": []})
        entry["calls"] += 1
        if (ours.algo.upper(), ours.proto.upper()) == (c.algo, c.proto):
            entry["agree"] += 1
        else:
            entry["differ"].append((c.world_size, c.op, c.size_bytes, f"{c.algo}/{c.proto}",
                                    f"{ours.algo.upper()}/{ours.proto.upper()}"))
    return out
