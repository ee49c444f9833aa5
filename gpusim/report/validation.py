"""Validation report: simulated vs measured NCCL times as a table, a JSON file and busbw figures.

Input is plain data. ``points``: one dict per measured call with ``transport, preset, op, variant, n, size_bytes,
measured_s, simulated_s``. ``groups``: error statistics per (transport, op, variant, size band) with ``rows,
median_rel_error, p90_rel_error, bias`` (relative error of time, |t_sim - t_meas| / t_meas; bias is the median signed
error, positive when the model is slow).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gpusim.collectives.bus_bandwidth import busbw_factor  # noqa: E402
from gpusim.report.figures import save  # noqa: E402


def _share(x) -> str:
    return "-" if x is None else f"{x:.1%}"


def error_table(groups: list[dict]) -> str:
    """One line per (transport, op, variant, band): rows, median and p90 relative error, bias, and the data's own
    run-to-run median error (``run_to_run``; '-' where no point was measured twice)."""
    head = f"{'transport':<9} {'preset':<14} {'op':<15} {'variant':<13} {'band':<7} {'rows':>5} " \
           f"{'median':>7} {'p90':>7} {'bias':>7} {'run-run':>7}"
    lines = [head, "-" * len(head)]
    for g in groups:
        lines.append(f"{g['transport']:<9} {g['preset']:<14} {g['op']:<15} {g['variant']:<13} {g['band']:<7} "
                     f"{g['rows']:>5} {g['median_rel_error']:>7.1%} {g['p90_rel_error']:>7.1%} {g['bias']:>+7.1%} "
                     f"{_share(g.get('run_to_run')):>7}")
    return "\n".join(lines)


def world_size_table(summary: dict) -> str:
    """Per transport, world size and band: rows, the model's median and p90 error, and the data's run-to-run median
    (``summary[transport]``: ``preset``, ``by_world_size`` and ``run_to_run``, as validation.json holds them)."""
    head = f"{'transport':<9} {'preset':<14} {'ranks':>5} {'band':<7} {'rows':>5} {'median':>7} {'p90':>7} " \
           f"{'run-run':>7}"
    lines = [head, "-" * len(head)]
    for t, s in summary.items():
        for n, bands in s["by_world_size"].items():
            spread = s.get("run_to_run", {}).get(n, {})
            for band, b in bands.items():
                lines.append(f"{t:<9} {s['preset']:<14} {n:>5} {band:<7} {b['rows']:>5} {b['median_rel_error']:>7.1%} "
                             f"{b['p90_rel_error']:>7.1%} {_share(spread.get(band, {}).get('median_rel_error')):>7}")
    return "\n".join(lines)


def choices_line(transport: str, entry: dict) -> str:
    """``socket: 400 of 404 calls as NCCL chose; NCCL used PAT/SIMPLE 4x where the tuner has RING/SIMPLE``
    (an entry of :func:`gpusim.calibration.choices.compare`)."""
    text = f"{transport}: {entry['agree']} of {entry['calls']} calls as NCCL chose"
    kinds = Counter((nccl, ours) for *_, nccl, ours in entry["differ"])
    if kinds:
        text += "; " + ", ".join(f"NCCL used {nccl} {k}x where the tuner has {ours}"
                                 for (nccl, ours), k in kinds.most_common())
    return text


def write_json(path: Path, data_files: list[str], presets: dict, groups: list[dict], summary: dict,
               points: list[dict], choices: dict | None = None) -> Path:
    """Everything the table and figures show, as data; ``choices``: the tuner against NCCL's logged choices."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"metric": "relative error of time |t_sim - t_meas| / t_meas; bias = median signed error",
           "data": [str(f) for f in data_files], "presets": presets, "summary": summary, "groups": groups,
           "points": points, **({"choices": choices} if choices else {})}
    path.write_text(json.dumps(doc, indent=1))
    return path


def _busbw_GBps(op: str, n: int, size_bytes: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    return size_bytes / time_s / 1e9 * busbw_factor(op, n)


def busbw_figure(transport: str, preset: str, points: list[dict], path: Path) -> Path:
    """Measured (markers) and simulated (lines) bus bandwidth over size (log x, linear y as nccl-tests plots are
    read: the knee and the plateau show; small sizes, where time is latency, are in the error table): one panel
    per operation with NCCL's own choice, a line per world size, plus one per operation measured with forced
    variants (NCCL_ALGO/NCCL_PROTO, or a channel count: ``default@1ch``), a line per variant."""
    pts = [p for p in points if p["transport"] == transport]
    ops = sorted({p["op"] for p in pts if p["variant"] == "default"})
    forced_ops = sorted({p["op"] for p in pts if p["variant"] != "default"})
    panels = [(op, "default") for op in ops] + [(op, "forced") for op in forced_ops]
    cols = 3
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (op, kind) in zip(axes.flat, panels):
        if kind == "default":
            series = [(f"n={n}", [p for p in pts if p["op"] == op and p["variant"] == "default" and p["n"] == n])
                      for n in sorted({p["n"] for p in pts if p["op"] == op})]
            title = f"{op} (NCCL's choice)"
        else:
            mine = [p for p in pts if p["op"] == op and p["variant"] != "default"]
            n_max = max(p["n"] for p in mine)
            series = [(v, [p for p in mine if p["variant"] == v and p["n"] == n_max])
                      for v in sorted({p["variant"] for p in mine})]
            title = f"{op} forced, n={n_max}"
        for k, (label, sel) in enumerate(series):
            if not sel:
                continue
            sel = sorted(sel, key=lambda p: p["size_bytes"])
            n = sel[0]["n"]
            s = np.array([p["size_bytes"] for p in sel])
            c = colours[k % len(colours)]
            ax.plot(s, _busbw_GBps(op, n, s, np.array([p["measured_s"] for p in sel])), "o", ms=3, color=c,
                    label=f"{label} measured")
            ax.plot(s, _busbw_GBps(op, n, s, np.array([p["simulated_s"] for p in sel])), "-", lw=1.2, color=c,
                    label=f"{label} simulated")
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("size (bytes)")
        ax.set_ylabel("busbw (GB/s)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{transport}: measured NCCL vs {preset} (busbw = algbw x nccl-tests factor)", fontsize=10)
    return save(fig, path, dpi=110)
