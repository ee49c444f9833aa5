"""Scenario YAML v1: what to build, what to run on it, and how.

```yaml
name: nvlink-vs-roce                 # optional; gpusim run writes to out/<name> unless given -o
seed: 1                              # default 0
clusters:                            # or `cluster: SPEC` for one
  nvlink: dgx-h100                   # SPEC = preset name, 'name:key=value,...', a calibrated preset file
  mine: my-node.yaml:gpus=8          #   (gpusim calibrate's output, relative to this file), or a mapping:
  roce:                              #   preset, params, links (overrides), cost_model
    preset: dgx-h100-cluster
    params: {servers: 2}
    links: [{technology: roce, bandwidth: 200 Gb/s, latency: 2 us}]
    cost_model: {call_overhead: 5 us, channels: 8}
jobs:
  - {name: grads, type: collective, op: all_reduce, ranks: all, size: 1 GiB, repeat: 3}
  - {name: copy, type: transfer, src: 0, dst: 8, size: 100 MiB, start: 10 us}
  - {name: shuffle, type: traffic, pattern: permutation, ranks: all, size: 16 MiB, after: grads}
run: {duration_limit: 60 s}
```
Parsing is strict: unknown keys, missing units, out-of-range ranks and unknown names raise ``GpusimError`` with the
field path. YAML is read safely and strictly (:mod:`gpusim.yaml_strict`): a key given twice, a recursive
alias and nesting or alias expansion past generous limits are errors too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpusim import presets, units, yaml_strict
from gpusim.errors import GpusimError, unknown
from gpusim.links.technology import EFFICIENCY_RANGE
from gpusim.scenario import fields as F

JOB_TYPES = ("collective", "transfer", "traffic")
PATTERNS = ("all_pairs", "permutation", "shift")
_TOP = ("name", "description", "seed", "cluster", "clusters", "jobs", "run", "weather")
_CLUSTER = ("preset", "params", "links", "cost_model")
_LINK = ("technology", "kind", "bandwidth", "latency", "efficiency")
_COST = ("call_overhead", "launch_floor", "p2p_launch", "channels", "ring_channel", "step_latency_scale",
         "base_latency_scale", "straggler_cv", "tuner", "nvls", "protocols", "graph_channels", "graph_bw")
_COMMON_JOB = ("name", "type", "start", "after", "repeat", "gap")
_JOB = {
    "collective": (*_COMMON_JOB, "op", "ranks", "size", "algo", "proto", "channels"),
    "transfer": (*_COMMON_JOB, "src", "dst", "size"),
    "traffic": (*_COMMON_JOB, "pattern", "ranks", "size"),
}


@dataclass
class ClusterSpec:
    label: str
    preset: str
    params: dict = field(default_factory=dict)
    links: list = field(default_factory=list)        # [{technology, bandwidth_Bps?, latency_s?, efficiency?}]
    cost_model: dict = field(default_factory=dict)    # CostModel field overrides (SI)
    path: str = "cluster"


@dataclass
class JobSpec:
    name: str
    type: str
    raw: dict                  # validated fields, SI values; ranks resolved against each cluster at run time
    path: str


@dataclass
class Scenario:
    name: str
    seed: int
    clusters: list[ClusterSpec]
    jobs: list[JobSpec]
    duration_limit_s: float | None
    weather: dict | None
    source: dict                 # the parsed YAML, echoed in results
    weather_csv_text: str | None = None   # contents of weather.csv, read here so lower layers do no I/O


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    if not p.is_file():
        raise GpusimError("", f"scenario file '{path}' not found")
    data = yaml_strict.load(yaml_strict.read_text(p), str(path))
    scenario = parse(data, default_name=p.stem)
    for spec in scenario.clusters:   # a calibrated preset file is named relative to the scenario, as weather.csv
        name, sep, params = spec.preset.partition(":")
        if presets.is_preset_file(name) and not Path(name).is_absolute():
            spec.preset = str(p.parent / name) + sep + params
    if scenario.weather and "csv" in scenario.weather:  # read here: nothing below the scenario layer reads files
        csv_path = p.parent / F.string(scenario.weather["csv"], "weather.csv")
        if not csv_path.is_file():
            raise GpusimError("weather.csv", f"file '{csv_path}' not found")
        scenario.weather_csv_text = yaml_strict.read_text(csv_path, "weather.csv")
    return scenario


def parse(data, default_name: str = "scenario") -> Scenario:
    """Validate an already-loaded mapping (from YAML or a notebook)."""
    d = F.mapping(data, "scenario")
    F.check_keys(d, _TOP, "", required=("jobs",))
    if ("cluster" in d) == ("clusters" in d):
        raise GpusimError("cluster", "give exactly one of 'cluster' (one spec) or 'clusters' (label: spec mapping)")
    seed = F.integer(d.get("seed", 0), "seed", low=0)
    if "cluster" in d:
        clusters = [_cluster(d["cluster"], "cluster", "cluster")]
    else:
        cmap = F.mapping(d["clusters"], "clusters")
        if not cmap:
            raise GpusimError("clusters", "expected at least one cluster")
        clusters = []
        for label, spec in cmap.items():
            name = _name(label, f"clusters.{label}")
            if any(c.label == name for c in clusters):   # {1: a, '1': b}: two columns both headed '1'
                raise GpusimError(f"clusters.{label}", f"the label '{name}' is given twice")
            clusters.append(_cluster(spec, name, f"clusters.{label}"))
    jobs_raw = d["jobs"]
    if not isinstance(jobs_raw, list) or not jobs_raw:
        raise GpusimError("jobs", "expected a non-empty list of jobs")
    jobs = [_job(j, i) for i, j in enumerate(jobs_raw)]
    names = [j.name for j in jobs]
    _check_unique_names(jobs, jobs_raw)
    for i, j in enumerate(jobs):
        after = j.raw.get("after")
        if after is not None and after not in names[:i]:
            raise GpusimError(f"jobs[{i}].after", f"'{after}' is not the name of an earlier job; earlier: "
                                                   f"{', '.join(names[:i]) or 'none'}")
    run = F.optional_mapping(d, "run", "run")
    F.check_keys(run, ("duration_limit",), "run")
    limit = F.time(run["duration_limit"], "run.duration_limit", allow_zero=False) if "duration_limit" in run else None
    weather = F.mapping(d["weather"], "weather") if d.get("weather") is not None else None
    return Scenario(_name(d.get("name", default_name), "name"), seed, clusters, jobs, limit, weather, d)


def _name(value, path: str) -> str:
    """A scenario's or job's name: a non-empty string (a number is read as its text)."""
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise GpusimError(path, f"expected a non-empty name, got {value!r}")
    if any(not c.isprintable() for c in str(value)):       # a newline or NUL broke the text table
        raise GpusimError(path, f"expected a name of printable characters (no newline, tab or NUL), got {value!r}")
    return str(value)


def _check_unique_names(jobs: list[JobSpec], jobs_raw: list) -> None:
    """Job names are unique; a job without a name is called <type><index> (collective0), which a name can repeat."""
    first: dict[str, int] = {}
    for i, j in enumerate(jobs):
        k = first.setdefault(j.name, i)
        if k == i:
            continue
        explicit = [n for n in (k, i) if "name" in jobs_raw[n]]
        at = explicit[-1]                 # point at a name the user wrote; the later one if both are written
        other = k if at == i else i
        how = "the name of" if "name" in jobs_raw[other] else "the default name (<type><index>) of the unnamed"
        raise GpusimError(f"jobs[{at}].name", f"duplicate job name '{j.name}': it is also {how} jobs[{other}]")


def _cluster(spec, label: str, path: str) -> ClusterSpec:
    if isinstance(spec, str):
        return ClusterSpec(label, spec, path=path)
    if not isinstance(spec, dict):
        raise GpusimError(path, f"expected a preset name such as 'dgx-h100' or a mapping with {', '.join(_CLUSTER)}, "
                                f"got {type(spec).__name__} {spec!r}")
    F.check_keys(spec, _CLUSTER, path, required=("preset",))
    params = F.optional_mapping(spec, "params", f"{path}.params")
    links = []
    links_raw = [] if spec.get("links") is None else spec["links"]
    if not isinstance(links_raw, list):
        raise GpusimError(f"{path}.links", f"expected a list of link overrides such as [{{technology: roce, bandwidth: "
                                           f"200 Gb/s}}], got {type(links_raw).__name__} {links_raw!r}")
    for i, link in enumerate(links_raw):
        lp = f"{path}.links[{i}]"
        link = F.mapping(link, lp)
        F.check_keys(link, _LINK, lp)
        if "technology" not in link and "kind" not in link:
            raise GpusimError(lp, "say which links to change with 'technology' (e.g. roce, nvlink4, pcie5) or 'kind'")
        out = {k: F.string(link[k], f"{lp}.{k}") for k in ("technology", "kind") if k in link}   # null matched all
        if "bandwidth" in link:
            out["bandwidth_Bps"] = units.link_rate(link["bandwidth"], f"{lp}.bandwidth")
        if "latency" in link:
            out["latency_s"] = units.latency(link["latency"], f"{lp}.latency")     # a link's, as a preset's
        if "efficiency" in link:
            eff = F.number(link["efficiency"], f"{lp}.efficiency", low=0)
            if not EFFICIENCY_RANGE[0] <= eff <= EFFICIENCY_RANGE[1]:        # 1e-300 as good as a cut link
                raise GpusimError(f"{lp}.efficiency", f"expected a number from 0.001 to 1, got {eff}")
            out["efficiency"] = eff
        links.append(out)
    cost = {}
    cm = F.optional_mapping(spec, "cost_model", f"{path}.cost_model")
    F.check_keys(cm, _COST, f"{path}.cost_model")
    for key, value in cm.items():
        kp = f"{path}.cost_model.{key}"
        if key in ("call_overhead", "launch_floor", "p2p_launch"):     # per call: at most 1 s, as in preset files
            cost[f"{key}_s"] = units.latency(value, kp)
        elif key == "channels":
            cost["channels"] = F.integer(value, kp, low=1, high=64)
        elif key == "ring_channel":
            from gpusim.calibration.preset_file import ring_channel_rates
            cost["ring_channel_Bps"] = ring_channel_rates(value, kp)
        elif key in ("step_latency_scale", "base_latency_scale"):
            cost[key] = F.number(value, kp, low=0)
        elif key == "straggler_cv":
            cost[key] = F.number(value, kp, low=0)
            if cost[key] > 1:
                raise GpusimError(kp, f"expected a relative spread from 0 to 1, got {value!r}")
        elif key == "tuner":
            cost["tuner"] = F.string(value, kp, ("nccl", "estimate"))
        elif key == "nvls":
            if not isinstance(value, bool):
                raise GpusimError(kp, f"expected true or false, got {value!r}")
            cost["nvls"] = value
        elif key == "graph_channels":
            cost["graph_channels"] = F.integer(value, kp, low=1, high=64)
        elif key == "graph_bw":
            cost["graph_bw_Bps"] = units.link_rate(value, kp)
        elif key == "protocols":
            items = value if isinstance(value, list) else [value]
            if not items:
                raise GpusimError(kp, "expected one or more of LL, LL128, Simple")
            cost["allowed_protocols"] = tuple(F.string(v, f"{kp}[{i}]", ("LL", "LL128", "Simple")) for i, v in enumerate(items))
    return ClusterSpec(label, F.string(spec["preset"], f"{path}.preset"), params, links, cost, path)


def _job(j, i: int) -> JobSpec:
    path = f"jobs[{i}]"
    j = F.mapping(j, path)
    jtype = F.string(j.get("type", "collective"), f"{path}.type", JOB_TYPES)
    F.check_keys(j, _JOB[jtype], path)
    raw: dict = {}
    if "start" in j:
        raw["start_s"] = F.time(j["start"], f"{path}.start")
    if "after" in j:
        raw["after"] = F.string(j["after"], f"{path}.after")
    raw["repeat"] = F.integer(j.get("repeat", 1), f"{path}.repeat", low=1, high=1_000_000)
    raw["gap_s"] = F.time(j["gap"], f"{path}.gap") if "gap" in j else 0.0
    last = raw.get("start_s", 0.0) + (raw["repeat"] - 1) * raw["gap_s"]
    if last > F.MAX_TIME_S:
        raise GpusimError(f"{path}.gap", f"the last repeat would start at {last:g} s, past the {F.MAX_TIME_S:g} s "
                                         "a scenario may span")
    if jtype == "collective":
        F.check_keys(j, _JOB[jtype], path, required=("op", "size"))
        from gpusim.collectives.cost_model import PROTOCOLS
        from gpusim.collectives.plans import ALGOS_FOR
        from gpusim.collectives.run import normalise_op
        raw["op"] = normalise_op(F.string(j["op"], f"{path}.op"), f"{path}.op")
        raw["size_bytes"] = F.size(j["size"], f"{path}.size")
        raw["ranks"] = j.get("ranks", "all")
        spans = F.rank_spans(raw["ranks"], f"{path}.ranks")
        if spans is not None and F.rank_count(spans) < 2:
            raise GpusimError(f"{path}.ranks", f"a collective needs at least 2 distinct ranks, got {raw['ranks']!r}")
        raw["algo"] = F.string(j.get("algo", "auto"), f"{path}.algo")
        if raw["algo"] not in (*ALGOS_FOR[raw["op"]], "auto"):
            raise unknown(f"{path}.algo", raw["algo"], (*ALGOS_FOR[raw["op"]], "auto"), f"algorithm for {raw['op']}")
        raw["proto"] = F.string(j.get("proto", "auto"), f"{path}.proto")
        if raw["proto"] not in (*PROTOCOLS, "auto"):
            raise unknown(f"{path}.proto", raw["proto"], (*PROTOCOLS, "auto"), "protocol")
        raw["channels"] = F.integer(j["channels"], f"{path}.channels", low=1, high=64) if "channels" in j else None
    elif jtype == "transfer":
        F.check_keys(j, _JOB[jtype], path, required=("src", "dst", "size"))
        raw["src"] = F.integer(j["src"], f"{path}.src", low=0)
        raw["dst"] = F.integer(j["dst"], f"{path}.dst", low=0)
        raw["size_bytes"] = F.size(j["size"], f"{path}.size")
    else:
        F.check_keys(j, _JOB[jtype], path, required=("pattern", "size"))
        raw["pattern"] = F.string(j["pattern"], f"{path}.pattern", PATTERNS)
        raw["ranks"] = j.get("ranks", "all")
        F.rank_spans(raw["ranks"], f"{path}.ranks")    # fewer than 2 ranks is no traffic, not an error
        raw["size_bytes"] = F.size(j["size"], f"{path}.size")
    return JobSpec(_name(j.get("name", f"{jtype}{i}"), f"{path}.name"), jtype, raw, path)
