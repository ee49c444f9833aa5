"""``gpusim run SCENARIO.yaml [-o DIR]``: simulate, print the results table, write results.json, CSV and figures."""
from __future__ import annotations

from pathlib import Path

from gpusim.cli.output import output_folder
from gpusim.errors import GpusimError
from gpusim.report import figures, results
from gpusim.scenario import fields as F
from gpusim.scenario import schema
from gpusim.simulate import simulate


def add_parser(sub, name="run", help_text="run a scenario and report per-job results"):
    p = sub.add_parser(name, help=help_text)
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("-o", "--out", default=None, help="output folder (default out/<scenario name>)")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    return p


def execute(args, table) -> int:
    scenario = schema.load(args.scenario)
    if args.seed is not None:   # checked as the scenario's own seed field is (numpy takes no negative seed)
        scenario.seed = F.integer(args.seed, "--seed", low=0)
    where = "-o" if args.out else "name"
    out = output_folder(Path(args.out or Path("out") / _folder_name(scenario.name)), where)   # before a long run
    result = simulate(scenario)
    try:
        written = [results.write_json(result, out / "results.json"), results.write_csv(result, out / "results.csv")]
        if not args.no_figures:
            written += figures.write_all(result, out)
    except OSError as exc:
        raise GpusimError(where, f"cannot write the results into {out}: {exc.strerror or exc}") from None
    print(table(result))
    print(f"\nsimulated in {result.runtime_s:.2f} s; wrote {', '.join(str(p) for p in written)}")
    return 0


def _folder_name(name: str) -> str:
    """The scenario's name as the default output folder out/<name>: one plain folder name, so that it cannot write
    outside out/ ('../x', '/tmp/x') or into out/ itself ('', '.'). Other names stay valid with -o."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise GpusimError("name", f"{name!r} cannot be the output folder out/<name> (it must be one plain folder name: "
                                  "no '/' or '\\', not '.' or '..', not empty); rename the scenario or give -o DIR")
    return name


def run(args) -> int:
    return execute(args, results.job_table)
