"""How well the measurements reproduce themselves: the yardstick for the model's error.

A point (transport, world size, operation, forced variant and channels, size, launched by the host or replayed from
a CUDA graph) measured in several runs (measurement files: separate machine starts) is predicted for each run by the
mean time of the other runs, and the relative error |t_others - t_run| / t_run is summarised per size band exactly as
the model's error is (:func:`fit.summarise`).
It says how well a second measurement of the same calls on the same hardware predicts them: where the model's
error is near it, the data cannot tell a better model from this one (docs/validation.md gives the H200 figures).
"""
from __future__ import annotations

import numpy as np

from gpusim.calibration.fit import Row, summarise


def leave_one_run_out(rows: list[Row]) -> tuple[list[Row], np.ndarray]:
    """Each run of each point measured in two or more runs, with the mean time of the other runs (its prediction).

    A point is (transport, n, op, variant, size, host-launched or not: a graph replay of small calls is not a
    repeat of host-launched ones); a run is :attr:`Row.run`. Repeats inside one run are averaged first, so a run
    counts once. Returned rows carry the run's mean time."""
    points: dict[tuple, dict[str, list[Row]]] = {}
    for r in rows:
        points.setdefault((r.transport, r.n, r.op, r.variant, r.size_bytes, r.host), {}).setdefault(r.run, []).append(r)
    out_rows, predicted = [], []
    for runs in points.values():
        if len(runs) < 2:
            continue
        mean = {run: float(np.mean([r.time_s for r in rs])) for run, rs in runs.items()}
        for run, rs in runs.items():
            others = [t for other, t in mean.items() if other != run]
            out_rows.append(Row(rs[0].op, rs[0].n, rs[0].size_bytes, mean[run], rs[0].algo, rs[0].proto,
                                rs[0].transport, rs[0].variant, run, rs[0].host, rs[0].channels))
            predicted.append(float(np.mean(others)))
    return out_rows, np.array(predicted)


def spread(rows: list[Row]) -> dict:
    """Run-to-run error per size band (:func:`fit.summarise`'s keys) of the points ``rows`` measured more than once;
    empty when none was."""
    repeated, predicted = leave_one_run_out(rows)
    return summarise(repeated, predicted) if repeated else {}


def by_world_size(rows: list[Row]) -> dict[str, dict]:
    """:func:`spread` per world size (keys as strings, as in validation.json), only world sizes with repeats."""
    repeated, predicted = leave_one_run_out(rows)
    out = {}
    for n in sorted({r.n for r in repeated}):
        sel = [i for i, r in enumerate(repeated) if r.n == n]
        out[str(n)] = summarise([repeated[i] for i in sel], predicted[sel])
    return out
