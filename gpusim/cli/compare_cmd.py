"""``gpusim compare SCENARIO.yaml``: the same jobs on every cluster of the scenario, side by side."""
from __future__ import annotations

from gpusim.cli import run_cmd
from gpusim.report import results


def add_parser(sub):
    return run_cmd.add_parser(sub, "compare", "compare the scenario's clusters job by job")


def run(args) -> int:
    return run_cmd.execute(args, lambda r: results.comparison_table(r) + "\n\n" + results.job_table(r))
