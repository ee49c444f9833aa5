"""Jobs as simpy processes: collectives, point-to-point transfers and traffic patterns on one fabric.

Each job waits for its start time (and the job it comes ``after``), runs ``repeat`` iterations separated by
``gap_s``, and records every iteration's start and end. Jobs that run at the same time share the network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gpusim.collectives.run import Collectives
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError

# One traffic job's flows at most: all_pairs on 1000 ranks. A flow costs the engine ~1.5 KB and 1 M of them ~40 s;
# all_pairs on 2000 GPUs (4 M flows) ran for minutes in GBs.
MAX_TRAFFIC_FLOWS = 1_000_000
_JOB_FIELDS = ("algo", "proto", "channels", "ranks")   # what a collective's own errors are named by


@dataclass
class JobRecord:
    """What a job did: one (start, end) per finished iteration; ``detail`` holds algo/proto for collectives."""

    name: str
    type: str
    size_bytes: float
    n_ranks: int
    iterations: list[tuple[float, float]] = field(default_factory=list)
    detail: dict = field(default_factory=dict)
    finished: bool = False


def traffic_flows(fabric: Fabric, pattern: str, ranks: list[int], size_bytes: float, rng: np.random.Generator):
    """Flows of a traffic pattern: all_pairs (every ordered pair), permutation (a seeded derangement), shift (r->r+1)."""
    names = [fabric.gpu(r) for r in ranks]
    n = len(names)
    if n < 2:
        return []
    if pattern == "all_pairs":
        pairs = [(a, b) for a in names for b in names if a != b]
    elif pattern == "shift":
        pairs = [(names[i], names[(i + 1) % n]) for i in range(n)]
    else:
        perm = rng.permutation(n)
        while np.any(perm == np.arange(n)):  # derangement: nobody sends to itself
            perm = rng.permutation(n)
        pairs = [(names[i], names[perm[i]]) for i in range(n)]
    return [fabric.flow(a, b, size_bytes, label=pattern) for a, b in pairs]


def job_process(fabric: Fabric, coll: Collectives, job, ranks: list[int] | None, record: JobRecord, events: dict,
                rng: np.random.Generator, cluster_path: str = "cluster"):
    """The simpy process of one job (``job`` is a :class:`gpusim.scenario.schema.JobSpec`) on the cluster the
    scenario gives at ``cluster_path``."""
    env = fabric.env
    raw = job.raw
    if raw.get("after"):
        yield events[raw["after"]]
    start = raw.get("start_s", 0.0)
    if start > env.now:
        yield env.timeout(start - env.now)
    for it in range(raw["repeat"]):
        t0 = env.now
        if job.type == "collective":
            try:
                call = coll.collective(raw["op"], ranks, raw["size_bytes"], raw["algo"], raw["proto"], raw["channels"],
                                       label=job.name)
            except GpusimError as exc:
                raise _collective_error(exc, job, cluster_path) from None
            result = yield env.process(call)
            record.detail = {"op": result.op, "algo": result.algo, "proto": result.proto, "channels": result.channels}
        elif job.type == "transfer":
            yield fabric.run_flows([fabric.flow(fabric.gpu(raw["src"]), fabric.gpu(raw["dst"]), raw["size_bytes"],
                                                label=job.name)], job.name)
        else:
            yield fabric.run_flows(traffic_flows(fabric, raw["pattern"], ranks, raw["size_bytes"], rng), job.name)
        record.iterations.append((t0, env.now))
        if raw["gap_s"] and it + 1 < raw["repeat"]:
            yield env.timeout(raw["gap_s"])
    record.finished = True
    events[job.name].succeed()


def _collective_error(exc: GpusimError, job, cluster_path: str) -> GpusimError:
    """A collective's error named by the field the user wrote: the job's (``algo`` -> ``jobs[0].algo``), or, when
    NCCL's tuner finds no protocol left, the job's forced ``proto`` or the cluster's ``cost_model.protocols``."""
    if exc.path in _JOB_FIELDS:
        path = f"{job.path}.{exc.path}"
    elif exc.path in ("algos", "protos"):
        path = f"{job.path}.proto" if job.raw["proto"] != "auto" else f"{cluster_path}.cost_model.protocols"
    else:
        return exc
    where = f" (on {cluster_path})" if cluster_path != "cluster" else ""
    return GpusimError(path, exc.message + where)


def check_traffic(job, n_ranks: int) -> None:
    """Refuse a traffic job of more than MAX_TRAFFIC_FLOWS flows before it is built."""
    flows = n_ranks * (n_ranks - 1) if job.raw["pattern"] == "all_pairs" else n_ranks
    if flows > MAX_TRAFFIC_FLOWS:
        raise GpusimError(f"{job.path}.ranks", f"{job.raw['pattern']} on {n_ranks} ranks makes {flows} flows; a "
                                               f"traffic job may make at most {MAX_TRAFFIC_FLOWS} (all_pairs on 1000 "
                                               "ranks): give fewer ranks or split the job")


def check_transfer(fabric: Fabric, job, cluster: str | None = None) -> None:
    """Both ranks on the cluster (named in the error when the scenario has several) and different."""
    for key in ("src", "dst"):
        r = job.raw[key]
        if r >= len(fabric.gpus):
            on = f" of cluster '{cluster}'" if cluster else ""
            raise GpusimError(f"{job.path}.{key}", f"rank {r} is outside 0..{len(fabric.gpus) - 1}{on}")
    if job.raw["src"] == job.raw["dst"]:
        raise GpusimError(f"{job.path}.dst", "a transfer needs two different ranks")
