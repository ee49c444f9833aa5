"""``gpusim validate``: simulate every measured NCCL call on its transport's calibrated preset and report the error.

Example: ``gpusim validate -o out/validation`` (the committed H200 data against h200-nvlink, h200-pcie-shm and
h200-socket). Writes ``validation.json`` and ``busbw_<transport>.png`` under the output folder. docs/validation.md.
"""
from __future__ import annotations

from pathlib import Path

from gpusim import presets
from gpusim.calibration import choices, fit, repeatability, transports
from gpusim.cli.calibrate_cmd import read_data
from gpusim.cli.output import output_folder
from gpusim.errors import GpusimError, did_you_mean
from gpusim.report import validation as report

DEFAULT_DATA = Path("validation") / "data" / "h200"
CHOICES_DIR = DEFAULT_DATA / "extra" / "probe_nccl_choices"


def add_parser(sub):
    p = sub.add_parser("validate", help="compare simulated and measured NCCL times on the calibrated presets",
                       description="Simulate each measured collective on its transport's calibrated preset (the "
                                   "event engine, each call alone) and report median and p90 relative error of time "
                                   "per operation and size band (<1MiB, >=1MiB), as a table, JSON and busbw figures.")
    p.add_argument("data", nargs="*", metavar="DATA",
                   help=f"measurement files (default: the CSV files in {DEFAULT_DATA})")
    p.add_argument("-o", "--output", default="out/validation", metavar="DIR",
                   help="folder for validation.json and the figures (default out/validation)")
    p.add_argument("--preset", action="append", default=[], metavar="TRANSPORT=PRESET",
                   help="preset (name or YAML file) to check a transport against, e.g. nvlink=my.yaml "
                        "(default: the transport's calibrated preset)")
    p.add_argument("--estimate", action="store_true",
                   help="use the closed-form estimate instead of the event engine (same result uncontended, faster)")
    p.add_argument("--choices", action="append", default=[], metavar="CSV",
                   help="NCCL's logged choices (validation/probe_nccl_choices.py) to check the tuner against "
                        f"(default with no DATA: those in {CHOICES_DIR})")
    p.add_argument("--nccl-tests-transport", default=None, metavar="T",
                   help="transport of nccl-tests logs, which do not record it "
                        f"({', '.join(transports.TRANSPORTS)}; needed to validate such logs)")
    p.add_argument("--no-figures", action="store_true", help="write only the JSON")
    return p


def _committed(folder: Path) -> list[Path]:
    """The CSV files of a folder of the committed data, from the working directory or the source tree."""
    for base in (Path(), Path(__file__).resolve().parents[2]):
        files = sorted((base / folder).glob("*.csv"))
        if files:
            return files
    return []


def _default_data() -> list[Path]:
    files = _committed(DEFAULT_DATA)
    if not files:
        raise GpusimError("DATA", f"no measurement given and no CSV in {DEFAULT_DATA}; name the files to validate")
    return files


def _preset_choice(specs: list[str]) -> dict[str, str]:
    """--preset TRANSPORT=PRESET items as {transport: preset}; each transport once, each preset without the
    ':gpus=N' that validate sets itself, per measured world size."""
    out = {}
    for item in specs:
        t, eq, p = (s.strip() for s in item.partition("="))
        if not eq or not p:
            raise GpusimError("--preset", f"expected TRANSPORT=PRESET such as nvlink=h200-nvlink, got {item!r}")
        transports.transport(t, "--preset")
        if t in out:
            raise GpusimError("--preset", f"transport '{t}' given twice ({t}={out[t]} and {item}); give one preset "
                                          "per transport")
        name, params = presets.parse_spec(p, "--preset")
        if "gpus" in params:
            raise GpusimError("--preset", f"'{p}': validate builds the preset at each measured world size itself; "
                                          f"name it without ':gpus={params['gpus']}'")
        out[t] = p
    return out


def _calibrated_transport(spec: str) -> str:
    """The transport a calibrated preset was fitted on ('' for a built-in preset or a file that does not say)."""
    from gpusim.calibration import preset_file
    name, _ = presets.parse_spec(spec, "--preset")
    file = presets.calibrated().get(name) or (Path(name) if presets.is_preset_file(name) else None)
    return preset_file.read(file).transport if file is not None else ""


def _choices(files, chosen: dict) -> dict:
    """The tuner of each transport's preset against NCCL's logged choices in ``files``."""
    logged = [c for f in files for c in choices.load_csv(f)]
    first = {}
    for c in logged:
        first.setdefault(c.transport, c)
    for t, c in sorted(first.items()):
        transports.transport(t, f"{c.source}:transport")
        presets.build(_spec(t, chosen), "--preset")     # a broken preset file is the preset's error, not a row's
    return choices.compare(logged, lambda t, n: _cluster_for(_spec(t, chosen))(n))


def _spec(transport: str, chosen: dict) -> str:
    """The preset a transport is checked against: the one --preset named, else its calibrated preset."""
    return chosen.get(transport, transports.TRANSPORTS[transport].preset)


def _cluster_for(spec: str):
    return lambda n: presets.build(spec, "--preset", params={"gpus": n})


def run(args) -> int:
    chosen = _preset_choice(args.preset)
    if args.nccl_tests_transport is not None:
        transports.transport(args.nccl_tests_transport, "--nccl-tests-transport")
    files = [Path(f) for f in args.data] if args.data else _default_data()
    data = read_data(files, args.nccl_tests_transport)
    measured = sorted({m.transport for m in data})
    if not measured:
        raise GpusimError("DATA", "no measurement rows in the data")
    out = output_folder(args.output, "--output")
    points, groups, summary, used = [], [], {}, {}
    for t in sorted(set(chosen) - set(measured)):
        print(f"# note: --preset {t}={chosen[t]} is not used: the data has no {t} rows")
    for t in measured:
        spec = _spec(t, chosen)
        base, params = presets.parse_spec(spec, "--preset")
        if not presets.is_preset_file(base) and base not in presets.names():
            raise GpusimError("--preset", f"no preset '{base}' for transport '{t}'{did_you_mean(base, presets.names())}"
                                          "; a calibrated one is written by gpusim calibrate")
        presets.build(spec, "--preset")     # a broken preset file is the preset's error, not a measured row's
        fitted_on = _calibrated_transport(spec)
        if fitted_on and fitted_on != t:
            print(f"# note: {t} measurements checked against '{spec}', a preset calibrated on {fitted_on}")
        rows, skipped = fit.rows_from(data, t)
        sim = fit.simulate(rows, _cluster_for(spec), engine=not args.estimate)
        name = spec if params else base     # a preset file by its path, which no built-in's name can be
        used[t] = name
        summary[t] = {"preset": name, "skipped": skipped, "bands": fit.summarise(rows, sim),
                      "by_world_size": {str(n): fit.summarise([r for r in rows if r.n == n],
                                                              sim[[r.n == n for r in rows]])
                                        for n in sorted({r.n for r in rows})},
                      "run_to_run": repeatability.by_world_size(rows)}
        spread = {(g["op"], g["variant"], g["band"]): g["median_rel_error"]
                  for g in fit.error_groups(*repeatability.leave_one_run_out(rows))}
        for g in fit.error_groups(rows, sim):
            groups.append({"transport": t, "preset": name, **g,
                           "run_to_run": spread.get((g["op"], g["variant"], g["band"]))})
        points += [{"transport": t, "preset": name, "op": r.op, "variant": r.variant, "n": r.n,
                    "size_bytes": r.size_bytes, "measured_s": r.time_s, "simulated_s": float(s)}
                   for r, s in zip(rows, sim)]
    print(f"# gpusim validate: {len(points)} measured calls from {', '.join(str(f) for f in files)}")
    for t, s in summary.items():
        for reason, count in s["skipped"].items():
            print(f"# {t}: {count} skipped: {fit.SKIP_REASONS[reason]}")
    print("# relative error of time |t_sim - t_meas| / t_meas (bias: median signed error, + = model slow);")
    print("# run-run: the data's own median error, each run predicted by the mean of the other runs of that point")
    print(report.error_table(groups))
    print()
    print(report.world_size_table(summary))
    checked = _choices(args.choices or ([] if args.data else _committed(CHOICES_DIR)), chosen)
    if checked:
        print("# the tuner against NCCL's logged choices:")
        for t, entry in checked.items():
            print("  " + report.choices_line(t, entry))
    try:
        written = [report.write_json(out / "validation.json", [str(f) for f in files], used, groups, summary, points,
                                     checked)]
        if not args.no_figures:
            for t in measured:
                written.append(report.busbw_figure(t, used[t], points, out / f"busbw_{t}.png"))
    except OSError as e:
        raise GpusimError("--output", f"cannot write into '{out}': {e.strerror or e}") from None
    print(f"wrote {', '.join(str(w) for w in written)}")
    return 0
