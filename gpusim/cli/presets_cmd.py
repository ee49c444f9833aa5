"""``gpusim presets``: the named clusters, one line each (or JSON)."""
from __future__ import annotations

import json

from gpusim import presets


def add_parser(sub):
    p = sub.add_parser("presets", help="list cluster presets")
    p.add_argument("--format", choices=["table", "json"], default="table")
    return p


def run(args) -> int:
    rows = presets.describe()
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        params = ",".join(f"{k}={v}" for k, v in r["params"].items())
        tag = " [calibrated]" if r.get("calibrated") else ""
        print(f"{r['name']:<{width}}  {r['description']}{tag}" + (f"  (params: {params})" if params else ""))
    return 0
