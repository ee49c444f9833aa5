"""Calibrated presets: a topology builder, link overrides and cost-model fields fitted to measured NCCL times.

One YAML file per preset in ``gpusim/presets/`` (written by ``gpusim calibrate``; the file's stem is the preset
name)::

    format: gpusim-calibrated-preset/1
    description: 8x H200 SXM on NVSwitch ...
    transport: nvlink
    topology:
      builder: nvswitch_server              # one of BUILDERS
      gpus_argument: gpus                   # the builder argument that takes the GPU count
      arguments: {nvlink: nvlink4, nvlinks: 18}
    gpus: {default: 4, min: 2, max: 8}      # ranks the fit covered; a spec may pick gpus=N inside this range
    links:                                  # per link technology: bandwidth (raw, per direction), efficiency,
      nvlink4: {efficiency: 0.66}           # latency, up (false: routes avoid it, as NCCL_P2P_DISABLE does)
    cost_model: {arch: hopper, channels: 24, launch_floor: 7.5 us, step_latency_scale: {LL: 0.2, Simple: 0.7},
                 op_bandwidth_scale: {sendrecv: 0.95}, own_chunk: {all_gather: 1.1 TB/s}, ring_channel: {...},
                 p2p_channels: 32, p2p_channels_per_peer: 32, p2p_chunk: 512 KiB, p2p_channel: 19.5 GB/s, ...}
    provenance: {data: [...], fit_date: ..., train: {...}, heldout: {...}}

Quantities carry units (``"21.5 us"``, ``"4.2 GB/s"``) and are parsed once here; a builder argument whose Python
name ends in ``_Bps``/``_s``/``_m`` is written without that suffix and with a unit. Every error names the file and
the field.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import yaml

from gpusim import units, yaml_strict
from gpusim.collectives.cost_model import OPS, OWN_CHUNK_OPS, PAYLOAD_EFFICIENCY, PROTOCOLS, RING_OPS, CostModel
from gpusim.errors import GpusimError, did_you_mean, unknown
from gpusim.links import technology as tech
from gpusim.presets import Cluster
from gpusim.topology import builders as b

FORMAT = "gpusim-calibrated-preset/1"
BUILDERS = {"nvswitch_server": b.nvswitch_server, "pcie_box": b.pcie_box, "cluster": b.cluster}
_UNIT_SUFFIX = {"_Bps": units.bandwidth, "_s": units.time, "_m": units.length}
_TOP_KEYS = ("format", "description", "transport", "topology", "gpus", "links", "cost_model", "provenance")
_LINK_FIELDS = ("bandwidth", "efficiency", "latency", "up")


# Bounds of every number a preset file holds, each far beyond what a GPU cluster measures, so that a preset that
# loads also simulates: every flow's size, rate and time stays a finite float (and none is subnormal).
OP_SCALE_RANGE = (1e-3, 1e3)            # op_bandwidth_scale
MAX_CHUNK_BYTES = 1 << 30


def _real(v, path: str, low: float, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
        raise GpusimError(path, f"expected a number from {low:g} to {high:g}, got {v!r}")
    return float(v)


def _rate(v, path: str) -> float:
    """A rate with a unit (``20.9 GB/s``), from 1 MB/s to 10 PB/s."""
    return units.link_rate(v, path)


def _time(v, path: str) -> float:
    """A time with a unit (``12.4 us``), from 0 to 1 s."""
    return units.latency(v, path)


def _non_negative_real(v, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or not math.isfinite(v):
        raise GpusimError(path, f"expected a non-negative number, got {v!r}")
    return float(v)


def _int(v, path: str, low: int = 1, high: int | None = None) -> int:
    text = str(v).strip()
    ok = not isinstance(v, bool) and (isinstance(v, int) or text.lstrip("+").isdigit())
    if not ok or int(text) < low or (high is not None and int(text) > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise GpusimError(path, f"expected an integer {rng}, got {v!r}")
    return int(text)


def _protocols(v, path: str) -> tuple:
    if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
        raise GpusimError(path, f"expected a non-empty list of protocols ({', '.join(PROTOCOLS)}), got {v!r}")
    for i, p in enumerate(v):
        if p not in PROTOCOLS:
            raise unknown(f"{path}[{i}]", p, PROTOCOLS, "protocol")
    return tuple(p for p in PROTOCOLS if p in v)


def _string(choices):
    def parse(v, path):
        if v not in choices:
            raise unknown(path, v, choices, "value")
        return v
    return parse


def _keyed(v, path: str, keys, what: str, example: str, value) -> dict:
    """A non-empty mapping whose keys are among ``keys`` (each a ``what``), each value parsed by ``value``."""
    if not isinstance(v, dict) or not v:
        raise GpusimError(path, f"expected a mapping of {what} to value, e.g. {example}, got {v!r}")
    for k in v:
        if k not in keys:
            raise unknown(f"{path}.{k}", k, keys, what)
    return {k: value(x, f"{path}.{k}") for k, x in v.items()}


def _efficiencies(v, path: str) -> dict:
    return {**PAYLOAD_EFFICIENCY, **_keyed(v, path, PROTOCOLS, "protocol", "{LL: 0.5}",
                                           lambda x, p: _real(x, p, *tech.EFFICIENCY_RANGE))}


def _scale(v, path: str):
    """A latency scale: one non-negative number, or a mapping protocol -> number."""
    if not isinstance(v, dict):
        return _non_negative_real(v, path)
    return _keyed(v, path, PROTOCOLS, "protocol", "{LL: 0.8}", _non_negative_real)


def _op_scales(v, path: str) -> dict:
    return _keyed(v, path, OPS, "operation", "{all_gather: 0.9}", lambda x, p: _real(x, p, *OP_SCALE_RANGE))


def _own_chunk(v, path: str) -> dict:
    """Own-chunk pass rates: a mapping operation -> bandwidth with a unit."""
    return _keyed(v, path, OWN_CHUNK_OPS, "operation", "{all_gather: 1.1 TB/s}", _rate)


def ring_channel_rates(v, path: str) -> dict:
    """Payload rates of one ring channel: a mapping protocol -> operation -> bandwidth with a unit (the
    ``ring_channel`` of a preset file or of a scenario's cost_model)."""
    def per_op(x, p):
        return _keyed(x, p, RING_OPS, "operation", "{all_reduce: 20.9 GB/s}", _rate)
    return _keyed(v, path, PROTOCOLS, "protocol", "{Simple: {all_reduce: 20.9 GB/s}}", per_op)


def _chunk(v, path: str) -> int:
    """A chunk size in whole bytes with a unit, 1 KiB to 1 GiB (``512 KiB``)."""
    x = units.size(v, path)
    if not 1024 <= x <= MAX_CHUNK_BYTES or x != int(x):
        raise GpusimError(path, f"expected a whole number of bytes from 1 KiB to 1 GiB, e.g. '512 KiB', got {v!r}")
    return int(x)


def _write_number(x):
    return float(f"{x:.6g}")


def _write_scale(x):
    return {k: _write_number(v) for k, v in x.items()} if isinstance(x, dict) else _write_number(x)


# cost_model key in YAML -> (CostModel field, parser, writer)
_MODEL_FIELDS = {
    "arch": ("arch", _string(("volta", "ampere", "hopper", "blackwell")), str),
    "cpu": ("cpu", _string(("intel", "amd", "arm", "power")), str),
    "tuner": ("tuner", _string(("nccl", "estimate")), str),
    "channels": ("channels", lambda v, p: _int(v, p, 1, 64), int),
    "call_overhead": ("call_overhead_s", _time, lambda x: f"{x * 1e6:.6g} us"),
    "call_overhead_per_rank": ("call_overhead_per_rank_s", _time, lambda x: f"{x * 1e6:.6g} us"),
    "launch_floor": ("launch_floor_s", _time, lambda x: f"{x * 1e6:.6g} us"),
    "p2p_launch": ("p2p_launch_s", _time, lambda x: f"{x * 1e6:.6g} us"),
    "straggler_cv": ("straggler_cv", lambda v, p: _real(v, p, 0.0, 1.0), _write_number),
    "step_latency_scale": ("step_latency_scale", _scale, _write_scale),
    "base_latency_scale": ("base_latency_scale", _scale, _write_scale),
    "payload_efficiency": ("payload_efficiency", _efficiencies, _write_scale),
    "op_bandwidth_scale": ("op_bandwidth_scale", _op_scales, _write_scale),
    "own_chunk": ("own_chunk_Bps", _own_chunk, lambda x: {k: f"{v / 1e9:.6g} GB/s" for k, v in x.items()}),
    "ring_channel": ("ring_channel_Bps", ring_channel_rates,
                     lambda x: {p: {k: f"{v / 1e9:.6g} GB/s" for k, v in ops.items()} for p, ops in x.items()}),
    "p2p_channels": ("p2p_channels", lambda v, p: _int(v, p, 1, 64), int),
    "p2p_channels_per_peer": ("p2p_channels_per_peer", lambda v, p: _int(v, p, 1, 64), int),
    "p2p_chunk": ("p2p_chunk_bytes", _chunk, lambda x: f"{x // 1024} KiB" if x % 1024 == 0 else f"{x} B"),
    "p2p_channel": ("p2p_channel_Bps", _rate, lambda x: f"{x / 1e9:.6g} GB/s"),
    "allowed_protocols": ("allowed_protocols", _protocols, list),
    "graph_channels": ("graph_channels", lambda v, p: _int(v, p, 1, 64), int),
    "graph_bw": ("graph_bw_Bps", _rate, lambda x: f"{x / 1e9:.6g} GB/s"),
}


def _link_field(name: str, v, path: str):
    if name == "up":
        if not isinstance(v, bool):
            raise GpusimError(path, f"expected true or false, got {v!r}")
        return v
    if name == "bandwidth":
        return _rate(v, path)
    if name == "latency":
        return _time(v, path)
    return _real(v, path, *tech.EFFICIENCY_RANGE)


def _write_link_field(name: str, x):
    if name == "up":
        return bool(x)
    if name == "bandwidth":
        return f"{x / 1e9:.6g} GB/s"
    if name == "latency":
        return f"{x * 1e6:.6g} us"
    return float(f"{x:.6g}")


def _builder_param(builder, key: str, path: str, accepted: list[str]) -> tuple[str, object]:
    """(Python argument name, unit parser or None) for a YAML argument key of ``builder``."""
    params = inspect.signature(builder).parameters
    for suffix, parser in _UNIT_SUFFIX.items():
        if key + suffix in params:
            return key + suffix, parser
    if key in params and key not in ("path", "name"):
        return key, None
    raise unknown(path, key, accepted, "builder argument")


def _yaml_arguments(builder) -> list[str]:
    """Builder arguments as written in YAML (unit suffixes dropped)."""
    out = []
    for name in inspect.signature(builder).parameters:
        if name in ("path", "name"):
            continue
        for suffix in _UNIT_SUFFIX:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        out.append(name)
    return out


@dataclass
class CalibratedPreset:
    """A calibrated preset in SI units: what the YAML file holds."""

    name: str
    description: str
    transport: str
    builder: str
    gpus_argument: str
    arguments: dict                     # Python builder argument name -> value (SI)
    gpus_default: int
    gpus_min: int
    gpus_max: int
    links: dict = field(default_factory=dict)        # technology -> {bandwidth_Bps, efficiency, latency_s}
    model: dict = field(default_factory=dict)        # CostModel field -> value
    provenance: dict = field(default_factory=dict)
    source_path: str = ""

    # -- building ---------------------------------------------------------------------------------------------
    def graph(self, gpus: int) -> nx.DiGraph:
        """The topology for ``gpus`` GPUs with the fitted link overrides applied."""
        where = f"{self.source_path or self.name}:topology.arguments"
        g = BUILDERS[self.builder](**{**self.arguments, self.gpus_argument: gpus}, name=self.name, path=where)
        apply_links(g, self.links, f"{self.source_path or self.name}:links")
        return g

    def cost_model(self, gpus: int | None = None) -> CostModel:
        """The cost model on ``gpus`` ranks: the call overhead is ``call_overhead + gpus x call_overhead_per_rank``
        (launches of all ranks' processes share the host)."""
        n = self.gpus_default if gpus is None else gpus
        fields = {k: v for k, v in self.model.items() if k not in ("arch", "channels", "call_overhead_per_rank_s")}
        fields["call_overhead_s"] = fields.get("call_overhead_s", 0.0) + n * self.model.get("call_overhead_per_rank_s", 0.0)
        return CostModel.nccl(arch=self.model.get("arch", "hopper"), channels=self.model.get("channels", 16),
                              **fields).validate(f"{self.source_path or self.name}:cost_model")

    def cluster(self, gpus: int | None = None, spec: str = "") -> Cluster:
        n = self.gpus_default if gpus is None else gpus
        return Cluster(self.name, self.graph(n), self.cost_model(n), spec=spec or f"{self.name}:gpus={n}",
                       params={"gpus": n}, provenance=self.provenance)

    # -- YAML -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        builder = BUILDERS[self.builder]
        args = {}
        for name, value in self.arguments.items():
            key = name
            for suffix in _UNIT_SUFFIX:
                if name.endswith(suffix) and name[: -len(suffix)] in _yaml_arguments(builder):
                    key = name[: -len(suffix)]
                    value = {"_Bps": lambda x: f"{x / 1e9:.6g} GB/s", "_s": lambda x: f"{x * 1e6:.6g} us",
                             "_m": lambda x: f"{x:.6g} m"}[suffix](value)
                    break
            args[key] = value
        links = {t: {f: _write_link_field(f, fields[_SI_LINK[f]]) for f in _LINK_FIELDS if _SI_LINK[f] in fields}
                 for t, fields in self.links.items()}
        model = {}
        for key, (attr, _, write) in _MODEL_FIELDS.items():
            if attr in self.model:
                model[key] = write(self.model[attr])
        return {"format": FORMAT, "description": self.description, "transport": self.transport,
                "topology": {"builder": self.builder, "gpus_argument": self.gpus_argument, "arguments": args},
                "gpus": {"default": self.gpus_default, "min": self.gpus_min, "max": self.gpus_max},
                "links": links, "cost_model": model, "provenance": self.provenance}

    def to_yaml(self) -> str:
        head = (f"# Calibrated preset '{self.name}': written by `gpusim calibrate` from measured NCCL times.\n"
                f"# Use it as --cluster {self.name}.yaml:gpus=N ({self.gpus_min}..{self.gpus_max}), the file's path; "
                f"in gpusim/presets/ as --cluster {self.name}.\n")
        return head + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=110)


_SI_LINK = {"bandwidth": "bandwidth_Bps", "efficiency": "efficiency", "latency": "latency_s", "up": "up"}


def apply_links(g: nx.DiGraph, links: dict, path: str = "links") -> None:
    """Replace bandwidth/efficiency/latency of every edge of each named technology (an unused one is an error)."""
    present = sorted({d["technology"] for _, _, d in g.edges(data=True)})
    for techname, fields in links.items():
        if techname not in present:
            raise GpusimError(f"{path}.{techname}", f"this topology has no link of technology '{techname}'"
                                                    f"{did_you_mean(techname, present)}; it has: {', '.join(present)}")
        for _, _, d in g.edges(data=True):
            if d["technology"] == techname:
                d.update(fields)


def _mapping(v, path: str) -> dict:
    if not isinstance(v, dict):
        raise GpusimError(path, f"expected a mapping, got {type(v).__name__} {v!r}")
    return v


def _check_keys(d: dict, allowed, prefix: str, what: str) -> None:
    """Unknown keys of ``d`` are errors at ``prefix + key``."""
    for key in d:
        if key not in allowed:
            raise unknown(f"{prefix}{key}", key, allowed, what)


#: Fields of each entry of a preset's ``provenance.errors`` (fit.provenance writes them; commands quote them).
ERROR_FIELDS = ("op", "variant", "ranks", "band", "rows", "median", "p90", "bias")


def _provenance(v, path: str) -> dict:
    """The record of the fit: informational, but the parts commands read are checked here, so that they can trust
    them: ``errors`` (quoted beside a prediction), ``data``, ``train`` and ``heldout`` (``gpusim presets``)."""
    prov = _mapping(v, path)
    if not isinstance(prov.get("data") or [], list):
        raise GpusimError(f"{path}.data", f"expected a list of measurement files, got {prov['data']!r}")
    for key in ("train", "heldout"):
        if prov.get(key) is not None:
            _mapping(prov[key], f"{path}.{key}")
    errors = prov.get("errors") or []
    if not isinstance(errors, list):
        raise GpusimError(f"{path}.errors", f"expected a list of entries with {', '.join(ERROR_FIELDS)}, got "
                                            f"{errors!r}")
    for i, e in enumerate(errors):
        where = f"{path}.errors[{i}]"
        e = _mapping(e, where)
        for f in ERROR_FIELDS:
            if f not in e:
                raise GpusimError(f"{where}.{f}", f"missing (each entry has {', '.join(ERROR_FIELDS)})")
        for f in ("op", "variant"):
            if not isinstance(e[f], str):
                raise GpusimError(f"{where}.{f}", f"expected text, got {e[f]!r}")
        if e["band"] not in ("<1MiB", ">=1MiB"):
            raise GpusimError(f"{where}.band", f"expected '<1MiB' or '>=1MiB', got {e['band']!r}")
        for f, low in (("ranks", 1), ("rows", 0)):
            if isinstance(e[f], bool) or not isinstance(e[f], int) or e[f] < low:
                raise GpusimError(f"{where}.{f}", f"expected an integer >= {low}, got {e[f]!r}")
        for f in ("median", "p90"):
            _non_negative_real(e[f], f"{where}.{f}")
        if isinstance(e["bias"], bool) or not isinstance(e["bias"], (int, float)) or not math.isfinite(e["bias"]):
            raise GpusimError(f"{where}.bias", f"expected a finite number, got {e['bias']!r}")
    return prov


def parse(doc, name: str, where: str) -> CalibratedPreset:
    """A :class:`CalibratedPreset` from the parsed YAML mapping ``doc``; ``where`` prefixes error paths."""
    doc = _mapping(doc, where)
    if "format" not in doc:
        raise GpusimError(f"{where}:format", f"missing: not a calibrated preset (written by gpusim calibrate, it "
                                             f"starts with format: {FORMAT})")
    _check_keys(doc, _TOP_KEYS, where + ":", "top-level key")
    p = lambda key: f"{where}:{key}"  # noqa: E731
    for key in ("topology", "gpus", "cost_model"):
        if key not in doc:
            raise GpusimError(p(key), "missing (a calibrated preset needs format, topology, gpus and cost_model)")
    if doc["format"] != FORMAT:
        raise GpusimError(p("format"), f"expected '{FORMAT}', got {doc['format']!r}")
    topo = _mapping(doc["topology"], p("topology"))
    _check_keys(topo, ("builder", "gpus_argument", "arguments"), p("topology."), "topology key")
    builder_name = topo.get("builder")
    if builder_name not in BUILDERS:
        raise unknown(p("topology.builder"), builder_name, BUILDERS, "topology builder")
    builder = BUILDERS[builder_name]
    accepted = _yaml_arguments(builder)
    gpus_arg = topo.get("gpus_argument", "gpus")
    if gpus_arg not in inspect.signature(builder).parameters:
        raise unknown(p("topology.gpus_argument"), gpus_arg, accepted, f"argument of {builder_name}")
    arguments = {}
    for key, value in _mapping(topo.get("arguments", {}) or {}, p("topology.arguments")).items():
        fpath = p(f"topology.arguments.{key}")
        pyname, parser = _builder_param(builder, key, fpath, accepted)
        if pyname == gpus_arg:
            raise GpusimError(fpath, "the GPU count is set by gpus.default and the spec (gpus=N), not here")
        arguments[pyname] = parser(value, fpath) if parser else value
    gpus = _mapping(doc["gpus"], p("gpus"))
    _check_keys(gpus, ("default", "min", "max"), p("gpus."), "gpus key")
    lo = _int(gpus.get("min", 2), p("gpus.min"), 1)
    hi = _int(gpus.get("max", lo), p("gpus.max"), lo)
    default = _int(gpus.get("default", lo), p("gpus.default"), lo, hi)
    links = {}
    for techname, fields in _mapping(doc.get("links", {}) or {}, p("links")).items():
        if techname not in tech.TECHNOLOGIES:
            raise unknown(p(f"links.{techname}"), techname, tech.TECHNOLOGIES, "link technology")
        fields = _mapping(fields, p(f"links.{techname}"))
        _check_keys(fields, _LINK_FIELDS, p(f"links.{techname}."), "link field")
        links[techname] = {_SI_LINK[f]: _link_field(f, v, p(f"links.{techname}.{f}")) for f, v in fields.items()}
    model = {}
    for key, value in _mapping(doc["cost_model"], p("cost_model")).items():
        if key not in _MODEL_FIELDS:
            raise unknown(p(f"cost_model.{key}"), key, _MODEL_FIELDS, "cost-model field")
        attr, parser, _ = _MODEL_FIELDS[key]
        model[attr] = parser(value, p(f"cost_model.{key}"))
    provenance = _provenance(doc.get("provenance", {}) or {}, p("provenance"))
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise GpusimError(p("description"), f"expected text, got {description!r}")
    transport = doc.get("transport", "")
    if not isinstance(transport, str):
        raise GpusimError(p("transport"), f"expected text, got {transport!r}")
    preset = CalibratedPreset(name, description, transport, builder_name, gpus_arg, arguments, default, lo, hi,
                              links, model, provenance, source_path=where)
    preset.cost_model()  # validates the model fields together
    preset.graph(default)  # validates builder arguments and that every overridden technology exists
    return preset


def read(path: str | Path) -> CalibratedPreset:
    """Read and validate a calibrated preset file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GpusimError(str(path), f"cannot read calibrated preset: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise GpusimError(str(path), f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}): a "
                                     "calibrated preset is a YAML file in UTF-8") from None
    doc = yaml_strict.load(text, str(path), f"{path.name}:")     # strict: a key given twice is an error, not the last
    return parse(doc, path.stem, path.name)


def write(preset: CalibratedPreset, path: str | Path) -> Path:
    """Write ``preset`` as YAML (read back and validated, so a file that is written also loads)."""
    path = Path(path)
    text = preset.to_yaml()
    parse(yaml.safe_load(text), path.stem, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _spec_gpus(preset: CalibratedPreset, raw_params: dict, field_path: str) -> int:
    for key in raw_params:
        if key != "gpus":
            raise unknown(f"{field_path}.{key}", key, ["gpus"], f"parameter of '{preset.name}'")
    if "gpus" not in raw_params:
        return preset.gpus_default
    n = _int(raw_params["gpus"], f"{field_path}.gpus", 1)
    if not preset.gpus_min <= n <= preset.gpus_max:
        raise GpusimError(f"{field_path}.gpus", f"'{preset.name}' is calibrated for {preset.gpus_min}..{preset.gpus_max}"
                                                f" GPUs, got {n}")
    return n


def load_calibrated(path: str | Path, raw_params: dict, field_path: str = "cluster") -> Cluster:
    """The cluster a calibrated preset file describes, with spec parameters (``{'gpus': '4'}``) applied."""
    preset = read(path)
    n = _spec_gpus(preset, raw_params or {}, field_path)
    spec = preset.name + (f":gpus={n}" if raw_params else "")
    return preset.cluster(n, spec)


_NCCL_ALGO_NAME = {"ring": "Ring", "tree": "Tree", "nvls": "NVLS", "hierarchical": "Ring"}


def measured_variant(algo: str, proto: str, channels: int | None = None, own_channels: int | None = None) -> str | None:
    """The variant a measured row of this call has: ``default`` (NCCL's choice), ``Ring/LL`` (both forced, as
    NCCL_ALGO/NCCL_PROTO), with ``@<n>ch`` where the channels were held to another count than the preset's own;
    None when only one of the two is forced (no measurement is labelled so)."""
    if "auto" in (algo, proto) and (algo, proto) != ("auto", "auto"):
        return None
    variant = "default" if algo == "auto" else f"{_NCCL_ALGO_NAME.get(algo, algo)}/{proto}"
    return variant + (f"@{channels}ch" if channels not in (None, own_channels) else "")


def measured_error(provenance: dict, op: str, variant: str, ranks: int) -> dict:
    """The preset's error on the measured calls of ``op`` and ``variant`` ('default': NCCL's choice; 'Ring/LL' ...)
    on ``ranks`` ranks, per size band (``<1MiB``, ``>=1MiB``): median and p90 of |t_sim - t_meas| / t_meas and the
    median signed error (bias), from its provenance's ``errors`` (written by ``gpusim calibrate``); empty where none
    was measured."""
    return {e["band"]: e for e in provenance.get("errors") or []
            if e.get("op") == op and e.get("variant") == variant and e.get("ranks") == ranks}


def describe_calibrated(name: str, path: str | Path) -> dict:
    """A ``presets.describe`` row for a calibrated preset, with ``calibrated: True`` and its held-back error."""
    preset = read(path)
    prov = preset.provenance
    data = prov.get("data") or []
    source = (f"fitted {prov.get('fit_date', '?')} to {', '.join(map(str, data)) or 'measurements'}"
              + (f" (NCCL {prov['nccl_version']})" if prov.get("nccl_version") else ""))
    err = prov.get("heldout") or prov.get("train") or {}
    return {"name": name, "description": preset.description, "source": source,
            "params": {"gpus": preset.gpus_default}, "calibrated": True,
            "gpus_range": [preset.gpus_min, preset.gpus_max],
            "error": {k: err[k] for k in ("world_sizes", "median_rel_error", "p90_rel_error", "rows") if k in err}}
