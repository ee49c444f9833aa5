"""Results as data and text: results.json, CSV of job metrics, and the terminal tables."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from gpusim.simulate import Result
from gpusim.units import format_bytes, format_time


def write_json(result: Result, path: Path) -> Path:
    path.write_text(json.dumps(result.to_dict(), indent=1, default=str))
    return path


def write_csv(result: Result, path: Path) -> Path:
    cols = ["cluster", "job", "type", "status", "size_bytes", "n_ranks", "iterations", "mean_time_s", "algbw_GBps",
            "busbw_GBps", "algo", "proto"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols, extrasaction="ignore")
        w.writeheader()
        for c in result.clusters:
            for j in c.jobs:
                w.writerow({"cluster": c.label, "job": j.name, **j.metrics()})
    return path


def job_table(result: Result) -> str:
    """One block per cluster: each job's mean time, bandwidths and status."""
    lines = []
    for c in result.clusters:
        lines.append(f"== {c.label} ({c.spec}) — makespan {format_time(c.makespan_s)}")
        lines.append(f"  {'job':<24} {'size':>10} {'ranks':>5} {'mean time':>11} {'busbw GB/s':>11} {'algo/proto':>16} status")
        for j in c.jobs:
            m = j.metrics()
            t = format_time(m["mean_time_s"]) if m["mean_time_s"] is not None else "-"
            bw = f"{m['busbw_GBps']:.2f}" if "busbw_GBps" in m else "-"
            ap = f"{m.get('algo', '')}/{m.get('proto', '')}" if "algo" in m else "-"
            lines.append(f"  {j.name:<24} {format_bytes(j.size_bytes):>10} {j.n_ranks:>5} {t:>11} {bw:>11} {ap:>16} {j.status}")
        if c.links:
            top = c.links[0]
            util = f"{top['utilisation']:.0%}" if top["utilisation"] is not None else "-"
            if top["limiting_share"] > 0:
                lines.append(f"  bottleneck link: {top['link']} ({top['technology']}), holding flows back "
                             f"{top['limiting_share']:.0%} of the makespan; {format_bytes(top['bytes'])} carried, "
                             f"{util} utilised")
            else:       # every flow ran at its own ceiling (NCCL's per-channel rates) or waited on the host
                lines.append(f"  busiest link: {top['link']} ({top['technology']}), {format_bytes(top['bytes'])} "
                             f"carried, {util} utilised; no link held a flow back (their own rate ceilings or the "
                             "host's issue interval set the pace)")
        for name, link in c.extra.get("links", {}).items():
            lines.append(f"  weather on {name}: availability {link['availability']:.1%}, down {format_time(link['downtime_s'])}, "
                         f"{link['flows_rerouted']} flows rerouted")
        for job, stall in c.extra.get("stalled_s_by_job", {}).items():
            if stall > 0:
                lines.append(f"  {job}: stalled {format_time(stall)} waiting for a link")
    return "\n".join(lines)


def comparison_table(result: Result) -> str:
    """Jobs as rows, clusters as columns: mean time per job; the slowest cluster's bottleneck named below."""
    labels = [c.label for c in result.clusters]
    jobs = [j.name for j in result.clusters[0].jobs]
    width = max(12, *(len(x) for x in labels))
    lines = [f"{'job':<24}" + "".join(f" {x:>{width}}" for x in labels)]
    for k, name in enumerate(jobs):
        row = f"{name:<24}"
        for c in result.clusters:
            j = c.jobs[k]
            cell = format_time(j.mean_time_s) if j.mean_time_s is not None else j.status
            row += f" {cell:>{width}}"
        lines.append(row)
    lines.append(f"{'makespan':<24}" + "".join(f" {format_time(c.makespan_s):>{width}}" for c in result.clusters))
    lines.append("")
    for c in result.clusters:
        if c.links:
            top = c.links[0]
            lines.append(f"bottleneck {c.label}: {top['link']} ({top['technology']})")
    return "\n".join(lines)
