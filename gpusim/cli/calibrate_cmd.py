"""``gpusim calibrate``: fit one transport's model parameters to measured NCCL times and write a calibrated preset.

Example: ``gpusim calibrate validation/data/h200/collectives.csv --transport nvlink --train-world-sizes 2,4
-o gpusim/presets/h200-nvlink.yaml``.
Method and results: docs/validation.md.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import replace
from pathlib import Path

from gpusim.calibration import fit, nccl_log, nccl_tests, preset_file, repeatability, transports
from gpusim.errors import GpusimError, did_you_mean


def add_parser(sub):
    p = sub.add_parser("calibrate", help="fit model parameters of one transport to measured NCCL times",
                       description="Fit per-protocol latency scales, payload efficiencies, per-op bandwidth scales "
                                   "and the bottleneck link's bandwidth of one NCCL transport (nvlink, pcie_shm, "
                                   "socket) to measured times by least squares on log time, on the training world "
                                   "sizes; report the error on the held-back ones and, fitted on each training "
                                   "world size alone, on the others; write a calibrated preset YAML.")
    p.add_argument("data", nargs="+", metavar="DATA",
                   help="measurements: the harness CSV (validation/collect.py) or nccl-tests output (text or JSON)")
    p.add_argument("-o", "--output", required=True, metavar="PRESET.yaml",
                   help="calibrated preset to write; its file name (without .yaml) is the preset name")
    p.add_argument("--transport", default=None,
                   help=f"{', '.join(transports.TRANSPORTS)} (default: the only one in the data)")
    p.add_argument("--train-world-sizes", default="4", metavar="N[,N...]",
                   help="world sizes to fit on (default 4)")
    p.add_argument("--holdout", default=None, metavar="N[,N...]",
                   help="world sizes to hold back and report the error on (default: every other one in the data)")
    p.add_argument("--protocols", default="nccl", metavar="P[,P...]|nccl|search",
                   help="protocols the tuner may pick: 'nccl' (default) those NCCL enables on the transport, "
                        "'search' the set that fits the training data best, or a list such as LL,Simple")
    p.add_argument("--gpus", default="2..8", metavar="LO..HI", help="GPU counts the preset accepts (default 2..8)")
    p.add_argument("--nccl-tests-transport", default=None, metavar="T",
                   help="transport of nccl-tests logs, which do not record it (default: --transport)")
    p.add_argument("--local-copy", default=None, metavar="RATE|COPY.csv",
                   help="nvlink: the GPU's local copy rate, which sets NCCL's own-chunk pass (e.g. 1.6TB/s, or the "
                        "copy-bandwidth CSV of validation/collect.py --copy-bw; default: the H200's 2.11 TB/s)")
    p.add_argument("--nccl-log", default=None, metavar="LOG",
                   help="NCCL_DEBUG=INFO output of the measured machine (one transport, or collect.py's "
                        "nccl_info.txt): its channels, p2p channels and chunk, and the ring graph NCCL's tuner "
                        "decides with replace the H200's")
    p.add_argument("--format", choices=["table", "json"], default="table")
    return p


def local_copy(text: str | None) -> float | None:
    """The local copy rate named by ``--local-copy``: a rate such as 1.6TB/s, or a copy-bandwidth CSV to read it
    from."""
    if text is None:
        return None
    if Path(text).suffix.lower() == ".csv":
        from gpusim.calibration import measurements
        return measurements.local_copy_Bps(text)
    from gpusim import units
    return units.bandwidth(text, "--local-copy", allow_zero=False)


def _ints(text: str, path: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise GpusimError(path, f"expected comma-separated world sizes such as 4 or 2,4, got {text!r}") from None
    if not out or min(out) < 2:
        raise GpusimError(path, f"expected world sizes of at least 2, got {text!r}")
    return out


def _range(text: str, path: str) -> tuple[int, int]:
    lo, sep, hi = str(text).partition("..")
    try:
        a, b = int(lo), int(hi if sep else lo)
    except ValueError:
        raise GpusimError(path, f"expected LO..HI such as 2..8, got {text!r}") from None
    if not 2 <= a <= b:        # a collective needs two ranks
        raise GpusimError(path, f"expected 2 <= LO <= HI, got {text!r}")
    return a, b


def read_data(paths, transport: str | None = None) -> list:
    """Measurement records from harness CSV files and nccl-tests logs (the parser module reads the latter). A CSV
    row of a transport gpusim does not model is an error at its line (a misspelt one would vanish from the fit);
    nccl-tests logs, which do not record theirs, are read as ``transport`` (the --nccl-tests-transport option)."""
    from gpusim.calibration import measurements
    out = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise GpusimError(str(p), "no such measurement file")
        if path.suffix.lower() == ".csv":
            out.extend(measurements.load_csv(path, transports=tuple(transports.TRANSPORTS)))
        elif transport is None:
            raise GpusimError("--nccl-tests-transport", f"{path.name}: nccl-tests logs do not record their transport; "
                                                        f"name it, one of {', '.join(transports.TRANSPORTS)}")
        else:
            out.extend(nccl_tests.load(path, transport=transport))
    return out


def _protocol_sets(text: str):
    if text == "nccl":
        return None
    if text == "search":
        return fit.SEARCH
    accepted = f"expected nccl, search or a comma-separated list of {', '.join(fit.PROTOCOLS)} such as LL,Simple"
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if not chosen:
        raise GpusimError("--protocols", f"{accepted}, got {text!r}")
    for p in chosen:
        if p in ("nccl", "search"):
            raise GpusimError("--protocols", f"'{p}' stands alone, not in a list of protocols; {accepted}, got "
                                             f"{text!r}")
        if p not in fit.PROTOCOLS:
            raise GpusimError("--protocols", f"unknown protocol '{p}'{did_you_mean(p, fit.PROTOCOLS)}; {accepted}")
    return (tuple(p for p in fit.PROTOCOLS if p in chosen),)


def _check_writable(out: Path) -> None:
    """Fail before the fit, not after it, where -o cannot be written (a folder, a place that takes no files)."""
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a"):
            pass
    except OSError as e:
        raise GpusimError("--output", f"cannot write '{out}': {e.strerror or e}") from None
    if not existed:
        out.unlink()


def run(args) -> int:
    train_ws = _ints(args.train_world_sizes, "--train-world-sizes")
    held_ws = _ints(args.holdout, "--holdout") if args.holdout else None
    gpus = _range(args.gpus, "--gpus")
    protocol_sets = _protocol_sets(args.protocols)
    if args.transport is not None:
        transports.transport(args.transport, "--transport")
    if args.nccl_tests_transport is not None:
        transports.transport(args.nccl_tests_transport, "--nccl-tests-transport")
    out = Path(args.output)
    if out.suffix not in (".yaml", ".yml"):
        raise GpusimError("--output", f"expected a .yaml file name, got '{args.output}'")
    _check_writable(out)
    copy_Bps = local_copy(args.local_copy)
    data = read_data(args.data, args.nccl_tests_transport or args.transport)
    have = sorted({m.transport for m in data})
    name = args.transport
    if name is None:
        if len(have) != 1:
            raise GpusimError("--transport", f"the data holds transports {', '.join(have) or 'none'}; pick one")
        name = have[0]
    transports.with_local_copy(transports.transport(name, "--transport"), copy_Bps, "--local-copy")  # names the option
    logged = nccl_log.constants(args.nccl_log, name) if args.nccl_log else None
    machines = sorted({m.machine for m in data if m.transport == name} - {""})
    result = fit.fit(data, name, train_ws, held_ws, protocol_sets=protocol_sets, data_files=args.data,
                     fit_date=datetime.date.today().isoformat(), gpus_range=gpus, local_copy_Bps=copy_Bps,
                     nccl_logged=logged)
    preset = replace(result.preset, name=out.stem)
    given = {**({"local_copy": f"{copy_Bps / 1e9:.6g} GB/s ({args.local_copy})"} if copy_Bps is not None else {}),
             **({"nccl_log": str(args.nccl_log)} if logged else {})}
    preset = replace(preset, provenance={**preset.provenance, **given})
    try:
        preset_file.write(preset, out)
    except OSError as e:
        raise GpusimError("--output", f"cannot write '{out}': {e.strerror or e}") from None
    sets = [("train", result.train, result.train_rows), ("held-back", result.heldout, result.heldout_rows)]
    sets += [(f"fit {','.join(map(str, cv['train']))}->{','.join(map(str, cv['check']))}", cv["bands"],
              [r for r in result.train_rows if r.n in cv["check"]]) for cv in result.cross_validation]
    spreads = {label: repeatability.spread(rows) for label, _, rows in sets}
    if args.format == "json":
        print(json.dumps({"transport": name, "preset": str(out), "machines": machines, "values": result.values,
                          "allowed_protocols": list(result.protocols), "train": result.train,
                          "heldout": result.heldout, "rows": {"train": result.rows_train,
                                                              "heldout": result.rows_heldout,
                                                              "skipped": result.rows_skipped},
                          "cross_validation": result.cross_validation, "run_to_run": spreads,
                          "engine_vs_estimate_max_rel": result.engine_check_rel}, indent=1))
        return 0
    print(f"# gpusim calibrate: {name}, {result.rows_train} training rows (world sizes "
          f"{','.join(map(str, result.train_world_sizes))}), {result.rows_heldout} held back"
          f"{' (' + ','.join(map(str, result.heldout_world_sizes)) + ')' if result.rows_heldout else ''}, "
          f"{sum(result.rows_skipped.values())} skipped")
    for reason, count in result.rows_skipped.items():
        print(f"#   {count} skipped: {fit.SKIP_REASONS[reason]}")
    if len(machines) > 1:
        print(f"# note: the {name} rows come from {len(machines)} machines ({'; '.join(machines)}); one preset "
              "describes one machine, so the fit averages them: calibrate each machine's runs on their own")
    spread = [m for m in machines if nccl_tests.host_count(m) > 1]
    if spread and name != "socket":
        print(f"# note: rows measured across hosts ({'; '.join(spread)}), but the {name} transport models one "
              "host: the fit folds the network between them into its links; no inter-node transport is calibrated")
    print("fitted parameters:")
    for key, value in fit.describe(result):
        print(f"  {key:<24} {value}")
    print("relative error of time |t_sim - t_meas| / t_meas (run-run: the same rows' own median error, each run "
          "predicted by the mean of the other runs of that point):")
    print(f"  {'set':<9} {'band':<7} {'rows':>5} {'median':>7} {'p90':>7} {'bias':>7} {'run-run':>7}")
    for label, summary, _ in sets:
        for band, s in summary.items():
            run_run = spreads[label].get(band, {}).get("median_rel_error")
            print(f"  {label:<9} {band:<7} {s['rows']:>5} {s['median_rel_error']:>7.1%} {s['p90_rel_error']:>7.1%} "
                  f"{s['bias']:>+7.1%} {'-' if run_run is None else f'{run_run:.1%}':>7}")
    if not result.rows_heldout and not result.cross_validation:
        print("  (no held-back rows: the data has no other world size)")
    print(f"engine check: max |measure - estimate| / estimate on training rows = {result.engine_check_rel:.2g}")
    print(f"wrote {out}")
    return 0
