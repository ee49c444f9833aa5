"""matplotlib figures of results: per-job time by cluster, link utilisation, job timeline."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gpusim.simulate import Result  # noqa: E402


def save(fig, path, dpi: int = 120) -> Path:
    """Lay out, write (making the folder) and close ``fig``; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def job_times(result: Result, path: Path) -> Path:
    """Grouped bars: mean time of each job on each cluster (log scale)."""
    jobs = [j.name for j in result.clusters[0].jobs]
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(jobs)), 4))
    width = 0.8 / len(result.clusters)
    x = np.arange(len(jobs))
    shown = 0
    for i, c in enumerate(result.clusters):
        times = [j.mean_time_s if j.mean_time_s else np.nan for j in c.jobs]
        shown += sum(t > 0 for t in times)
        ax.bar(x + i * width, times, width, label=c.label)
    ax.set_xticks(x + width * (len(result.clusters) - 1) / 2, jobs, rotation=15)
    if shown:
        ax.set_yscale("log")
    else:  # a log axis needs a positive value: every job took no time, timed out or stalled
        ax.text(0.5, 0.5, "no job finished in a positive time", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("mean time per iteration (s)")
    ax.set_title(f"{result.scenario}: job time by cluster")
    ax.legend(fontsize=8)
    return save(fig, path)


def link_utilisation(result: Result, path: Path) -> Path:
    """Per cluster, the busiest links: the share of the makespan each held flows back, and its average utilisation."""
    n = len(result.clusters)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), squeeze=False)
    for ax, c in zip(axes[:, 0], result.clusters):
        links = c.links[:8][::-1]
        y = np.arange(len(links))
        ax.barh(y + 0.2, [l["limiting_share"] for l in links], height=0.4, label="limiting flows (share of makespan)")
        ax.barh(y - 0.2, [l["utilisation"] or 0.0 for l in links], height=0.4, label="average utilisation")
        ax.set_yticks(y, [l["link"] for l in links])
        ax.set_xlim(0, 1)
        ax.set_title(f"{c.label}: busiest links", fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        if links:
            ax.legend(fontsize=6, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    return save(fig, path)


def timeline(result: Result, path: Path) -> Path:
    """Gantt chart of job iterations per cluster."""
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.4 * sum(len(c.jobs) for c in result.clusters)))
    y, labels = 0, []
    for c in result.clusters:
        for j in c.jobs:
            t = j.start_s or 0.0
            for d in j.iteration_times_s:
                ax.barh(y, d, left=t, height=0.6)
                t += d
            labels.append(f"{c.label}: {j.name}")
            y += 1
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_xlabel("simulated time (s)")
    return save(fig, path)


def write_all(result: Result, out: Path) -> list[Path]:
    return [job_times(result, out / "job_times.png"), link_utilisation(result, out / "link_utilisation.png"),
            timeline(result, out / "timeline.png")]
