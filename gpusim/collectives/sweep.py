"""nccl-tests-style sweeps: one collective over a range of sizes on one cluster, each size a run of identical calls."""
from __future__ import annotations

import math
from dataclasses import dataclass

from gpusim import units
from gpusim.collectives.cost_model import CostModel
from gpusim.collectives.run import CollectiveResult, measure, normalise_op
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError

TYPE_SIZE_BYTES = 4  # float32, nccl-tests' default type
#: Most sizes one sweep may have (a factor-2 ladder from 1 B to 4 GiB has 33).
MAX_POINTS = 10_000


class SweepCutShort(GpusimError):
    """A sweep stopped at a size past what the simulator resolves; ``rows`` holds the sizes finished before it."""

    def __init__(self, path: str, message: str, rows=()):
        super().__init__(path, message)
        self.rows = list(rows)


@dataclass
class SweepRow:
    result: CollectiveResult
    count: int


def sizes(min_bytes: float, max_bytes: float, step_factor: float = 2.0,
          names: tuple[str, str, str] = ("min_bytes", "max_bytes", "step_factor")) -> list[int]:
    """nccl-tests' -b/-e/-f size ladder (inclusive), of at most :data:`MAX_POINTS` sizes. ``names`` are the user's
    names of the three arguments (``--min-bytes``, ...), which errors name."""
    lo, hi, step = names
    if not (min_bytes > 0 and math.isfinite(min_bytes)):
        raise GpusimError(lo, f"expected a positive size, got {min_bytes!r}")
    if not max_bytes >= min_bytes or not math.isfinite(max_bytes):
        raise GpusimError(hi, f"expected a finite size of at least {lo} ({min_bytes:.0f}), got {max_bytes!r}")
    if not step_factor > 1:
        raise GpusimError(step, f"expected a number > 1, got {step_factor!r}")
    # counted before stepping: a factor just above 1 would otherwise make a ladder of ~1e8 sizes and never return
    points = math.floor(math.log(max_bytes / min_bytes) / math.log(step_factor) + 1e-9) + 1
    if points > MAX_POINTS:
        raise GpusimError(step, f"{step_factor!r} from {lo} {min_bytes:.0f} to {hi} {max_bytes:.0f} makes "
                                f"{points:,} sizes; at most {MAX_POINTS:,}: raise {step} or narrow {lo}..{hi}")
    out, s = [], float(min_bytes)
    while s <= max_bytes * (1 + 1e-12):
        if not out or int(round(s)) != out[-1]:      # a factor below 2 repeats small sizes once rounded (1, 2, 2, 3)
            out.append(int(round(s)))
        s *= step_factor
    return out


def element_count(op: str, size_bytes: int, n_ranks: int) -> int:
    """Elements per rank as nccl-tests' count column: the per-rank share for gather/scatter/alltoall ops."""
    per = size_bytes // TYPE_SIZE_BYTES
    return per // n_ranks if op in ("all_gather", "reduce_scatter", "all_to_all") else per


def sweep(fabric: Fabric, model: CostModel, op: str, ranks, size_list, algo="auto", proto="auto",
          channels=None) -> list[SweepRow]:
    """Each size as one call of a long run of identical calls, which is what nccl-tests times: a broadcast chain's
    root starts the next call as soon as its own hop is free (:meth:`Planner.plan`). A call that ends past
    :data:`units.MAX_TIME_S` stops the sweep with :class:`SweepCutShort`, which carries the sizes done before it."""
    op = normalise_op(op)
    ranks = list(ranks)
    rows = []
    for s in size_list:
        result = measure(fabric, model, op, ranks, s, algo, proto, channels, back_to_back=True)
        if result.end_s > units.MAX_TIME_S:      # as a scenario's run: past it, float seconds lose the nanoseconds
            raise SweepCutShort("max_bytes" if rows else "min_bytes",
                                f"{op} of {s:,} B takes more than the {units.MAX_TIME_S:g} s of simulated time the "
                                f"simulator resolves ({result.time_s:.4g} s on this cluster); ask for smaller sizes",
                                rows)
        rows.append(SweepRow(result, element_count(op, s, len(ranks))))
    return rows
