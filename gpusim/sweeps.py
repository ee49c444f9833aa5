"""Sweeps for notebooks: one scenario, one knob varied, one row per point.

A point that fails (bad value, stalled network) keeps its row with the error; finished points are never lost.
"""
from __future__ import annotations

import copy

from gpusim import units
from gpusim.errors import GpusimError
from gpusim.scenario import schema
from gpusim.simulate import simulate


def sweep(base: dict, set_point, values, job: str | None = None) -> list[dict]:
    """Run ``base`` (a scenario mapping) once per value; ``set_point(scenario_dict, value)`` edits a copy.

    Rows: value, cluster, job, status, mean_time_s, busbw_GBps (collectives), error (when the point failed).
    """
    rows = []
    for value in values:
        d = copy.deepcopy(base)
        try:
            set_point(d, value)
            result = simulate(schema.parse(d))
        except GpusimError as exc:
            rows.append({"value": value, "error": str(exc)})
            continue
        for c in result.clusters:
            for j in c.jobs:
                if job is None or j.name == job:
                    m = j.metrics()
                    rows.append({"value": value, "cluster": c.label, "job": j.name, "status": j.status,
                                 "mean_time_s": m["mean_time_s"], "busbw_GBps": m.get("busbw_GBps"),
                                 "weather": c.extra.get("links")})
    return rows


def allreduce_vs_visibility(visibilities=("10 km", "2 km", "1 km", "500 m", "300 m", "200 m", "100 m"),
                            size="256 MiB", cluster="fso-sites", transport="roce", fog_model="kim") -> list[dict]:
    """All-reduce time across an FSO link as fog thickens (constant weather per point)."""
    base = {"cluster": cluster, "jobs": [{"name": "allreduce", "op": "all_reduce", "size": size}],
            "weather": {"transport": transport, "fog_model": fog_model, "constant": {"visibility": "10 km"}}}

    def set_visibility(d, v):
        d["weather"]["constant"] = {"visibility": v}

    rows = sweep(base, set_visibility, visibilities, job="allreduce")
    for row in rows:
        if "error" not in row:
            row["visibility_m"] = units.length(row["value"], "visibility") if isinstance(row["value"], str) else float(row["value"])
    return rows
