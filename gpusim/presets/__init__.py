"""Named clusters: a topology builder with datasheet parameters plus the cost model collectives run with.

A spec is a preset name, optionally with parameters: ``dgx-h100``, ``dgx-h100-cluster:servers=128``,
``switch:gpus=1024,bandwidth=50GB/s,latency=500ns``. Calibrated presets (fitted to measured NCCL data by
``gpusim calibrate``) are YAML files in this folder and work wherever a preset name does.

Bounds (errors name the parameter): ``bandwidth``, ``nic_rate`` and ``fso_rate`` 1 MB/s to 10 PB/s, ``latency`` 0 to
1 s; sizes as :mod:`gpusim.topology.builders` caps them, where they still simulate in seconds: ``switch`` 65,536 GPUs,
``ring`` 4,096, ``fully_connected`` 512, clusters 2,048 servers and 16,384 GPUs in all (``fso-sites``: 1,024 servers
a site).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import networkx as nx

from gpusim import units
from gpusim.collectives.cost_model import H200_NVLINK_P2P_CHANNEL_Bps, H200_NVLINK_RING_CHANNEL_Bps, CostModel
from gpusim.errors import GpusimError, unknown
from gpusim.topology import builders as b

PRESET_DIR = Path(__file__).parent


@dataclass
class Cluster:
    """A built topology and the cost model its collectives use."""

    name: str
    graph: nx.DiGraph
    model: CostModel
    spec: str = ""
    params: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)   # a calibrated preset's record of its fit (empty otherwise)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    source: str
    build: Callable[..., nx.DiGraph]
    model: Callable[[dict], CostModel]
    params: dict                       # param name -> (parser kind, default)


# The bounds of a calibrated preset file's numbers (gpusim/calibration/preset_file.py), far beyond any GPU cluster's
# links, so that every flow's time stays a finite float: 1e308 s of latency made a call's time inf.
_INTEGER = re.compile(r"[-+]?[0-9]{1,18}")   # ASCII digits only: '²'.isdigit() is True, int('+-5') a ValueError


def _bw(v, path):
    return units.link_rate(v, path)   # not zero: a zero rate would only surface as a stalled network


def _lat(v, path):
    return units.latency(v, path)


def _int(v, path, low=1):
    text = v if isinstance(v, str) else str(v) if isinstance(v, int) and not isinstance(v, bool) else ""
    if not _INTEGER.fullmatch(text.strip()) or int(text) < low:
        raise GpusimError(path, f"expected {'a positive' if low == 1 else 'a non-negative'} integer, got {v!r}")
    return int(text)


def _count(v, path):
    return _int(v, path, low=0)


def _str(v, path):
    return str(v)


def _bool(v, path):
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "yes", "1", "on"):
        return True
    if str(v).lower() in ("false", "no", "0", "off"):
        return False
    raise GpusimError(path, f"expected true or false, got {v!r}")


PARSERS = {"bandwidth": _bw, "time": _lat, "int": _int, "count": _count, "str": _str, "bool": _bool}

_SHAPE_PARAMS = {"gpus": ("int", 8), "bandwidth": ("bandwidth", "50 GB/s"), "latency": ("time", "500 ns")}
_CLUSTER_PARAMS = {"servers": ("int", 2), "gpus_per_server": ("int", 8), "nic_rate": ("bandwidth", "400 Gb/s"),
                   "servers_per_leaf": ("int", 16), "spines": ("count", 0), "channels": ("int", 16)}


def _nccl(arch, channels=16, ring_channel=None, p2p_channel_Bps=math.inf):
    return lambda p: CostModel.nccl(arch=arch, channels=p.get("channels", channels), p2p_channel_Bps=p2p_channel_Bps,
                                    ring_channel_Bps={k: dict(v) for k, v in (ring_channel or {}).items()})


def _shape(builder):
    return lambda gpus, bandwidth, latency, **_: builder(gpus, bandwidth, latency)


def _cluster(name, **fixed):
    def build(servers, gpus_per_server, nic_rate, servers_per_leaf, spines, **_):   # leaves ``fixed`` as it is
        return b.cluster(servers=servers, gpus_per_server=gpus_per_server, nic_rate_Bps=nic_rate,
                         servers_per_leaf=servers_per_leaf, spines=spines or None, name=name, **fixed)
    return build


BUILTIN: dict[str, Preset] = {}


def _register(p: Preset) -> None:
    BUILTIN[p.name] = p


def _nvswitch_preset(name, description, source, nvlink, nvlinks, pcie, arch, ring_channel=None,
                     p2p_channel_Bps=math.inf) -> Preset:
    # NCCL runs 24 channels on an NVSwitch server of Hopper (18 NVLink4 links a GPU) and of Ampere (12 NVLink3):
    # "Channel 00/24" on 2 and 4 H200 (validation/data/h200/nccl_info.txt, NCCL 2.28.9) and on 8 A100 (nccl-tests
    # issue #100, NCCL_DEBUG=INFO of an HGX A100)
    return Preset(name, description, source,
                  lambda gpus=8, **_: b.nvswitch_server(gpus, nvlink, nvlinks, pcie, name=name),
                  _nccl(arch, 24, ring_channel, p2p_channel_Bps), {"gpus": ("int", 8), "channels": ("int", 24)})


_register(_nvswitch_preset("dgx-h100", "8x H100 SXM, 18 NVLink4 links each (450 GB/s per direction) through NVSwitch",
                           "NVIDIA NVLink page; NCCL topo.h SM90 20.6 GB/s effective per link (physics.md §3.1); "
                           "one channel's rates measured on H200 (same SM and links)",
                           "nvlink4", 18, "pcie5", "hopper", H200_NVLINK_RING_CHANNEL_Bps, H200_NVLINK_P2P_CHANNEL_Bps))
_register(_nvswitch_preset("hgx-h200", "8x H200 SXM, 18 NVLink4 links each through NVSwitch (same fabric as H100)",
                           "NVIDIA H200 datasheet: NVLink 900 GB/s bidirectional (physics.md §3.1); one channel's "
                           "rates measured (validation/data/h200)",
                           "nvlink4", 18, "pcie5", "hopper", H200_NVLINK_RING_CHANNEL_Bps, H200_NVLINK_P2P_CHANNEL_Bps))
_register(_nvswitch_preset("dgx-a100", "8x A100 SXM, 12 NVLink3 links each (300 GB/s per direction) through NVSwitch",
                           "NVIDIA A100 datasheet; NCCL topo.h SM80 20.0 GB/s per link (physics.md §3.1)",
                           "nvlink3", 12, "pcie4", "ampere"))
_register(Preset("pcie-2gpu", "2 consumer GPUs on PCIe 4.0 x16 without peer-to-peer (copies staged in host memory)",
                 "PCIe 4.0 x16 31.5 GB/s raw per direction (physics.md §3.3)",
                 lambda gpus=2, **_: b.pcie_box(gpus, "pcie4", 16, p2p=False, pcie_switch=False, name="pcie-2gpu"),
                 _nccl("ampere", 2), {"gpus": ("int", 2), "channels": ("int", 2)}))
_register(Preset("pcie-4gpu-p2p", "4 GPUs behind one PCIe 4.0 switch with peer-to-peer",
                 "PCIe 4.0 x16 31.5 GB/s raw per direction (physics.md §3.3)",
                 lambda gpus=4, **_: b.pcie_box(gpus, "pcie4", 16, p2p=True, name="pcie-4gpu-p2p"),
                 _nccl("ampere", 4), {"gpus": ("int", 4), "channels": ("int", 4)}))
_register(Preset("dgx-h100-cluster", "DGX H100 servers, one 400G RoCE NIC per GPU, rail-optimized leaf-spine",
                 "ConnectX-7 400 Gb/s; NDR/RoCE ~47 GB/s per NIC busbw (nccl-tests #290, physics.md §3.2)",
                 _cluster(name="dgx-h100-cluster", network="roce", fabric="rail_optimized", nics="per_gpu"),
                 _nccl("hopper"), dict(_CLUSTER_PARAMS)))
_register(Preset("ib-ndr-cluster", "DGX H100 servers, one NDR 400G InfiniBand NIC per GPU, non-blocking fat-tree",
                 "Quantum-2 QM9700 64x400G; NDR ~47 GB/s per NIC busbw (physics.md §3.2, §3.4)",
                 _cluster(name="ib-ndr-cluster", network="ib", fabric="fat_tree", nics="per_gpu"),
                 _nccl("hopper"), dict(_CLUSTER_PARAMS)))
_register(Preset("ethernet-cluster", "8-GPU NVSwitch servers with one 100G Ethernet NIC each (TCP), one switch",
                 "100GbE, TCP payload 1448/1538 of line rate (physics.md §3.4)",
                 _cluster(name="ethernet-cluster", network="ethernet", fabric="single_switch", nics="per_server"),
                 _nccl("hopper"), {**_CLUSTER_PARAMS, "nic_rate": ("bandwidth", "100 Gb/s")}))
_register(Preset("fso-sites", "Two buildings, each an 8-GPU NVSwitch server on a switch, joined by a 10G 1550 nm "
                 "laser link with a 1G fibre backup",
                 "Commercial 1550 nm FSO terminals 10-25 Gb/s (physics.md §4.8)",
                 lambda servers_per_site=1, fso_rate="10 Gb/s", distance=1000.0, **_: b.fso_sites(
                     servers_per_site=servers_per_site, fso_rate_Bps=fso_rate, distance_m=distance, backup="fiber",
                     backup_rate_Bps=1e9 / 8),
                 _nccl("hopper"), {"servers_per_site": ("int", 1), "fso_rate": ("bandwidth", "10 Gb/s"),
                                   "channels": ("int", 16)}))
for _name, _builder, _what in (("ring", b.ring, "N endpoints in a ring"),
                               ("switch", b.switch, "N endpoints on one non-blocking switch"),
                               ("fully_connected", b.fully_connected, "N endpoints, a link between every pair")):
    _register(Preset(_name, f"{_what} (analytical shape, pure alpha-beta, like ASTRA-sim's analytical backend)",
                     "parameters given by the user", _shape(_builder), lambda p: CostModel.ideal(),
                     dict(_SHAPE_PARAMS)))


def calibrated() -> dict[str, Path]:
    """Calibrated preset files shipped with gpusim (name -> path)."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def is_preset_file(name: str) -> bool:
    """Whether a preset spec's name is a calibrated preset file (``my-node.yaml``) rather than a preset name."""
    return name.lower().endswith((".yaml", ".yml"))


def names() -> list[str]:
    return sorted([*BUILTIN, *calibrated()])


def parse_spec(spec: str, path: str = "cluster") -> tuple[str, dict]:
    """``'name:key=value,key=value'`` -> (name, {key: raw value})."""
    if not isinstance(spec, str) or not spec.strip():
        raise GpusimError(path, f"expected a preset name such as 'dgx-h100', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise GpusimError(path, f"expected key=value in '{item}' of '{spec}'")
        if key.strip() in params:
            raise GpusimError(f"{path}.{key.strip()}", f"given twice in '{spec}'")
        params[key.strip()] = value.strip()
    return name, params


def build(spec: str | dict, path: str = "cluster", params: dict | None = None) -> Cluster:
    """Build the cluster a spec names; ``params`` (already-typed or strings) override those in the spec."""
    name, spec_params = parse_spec(spec, path)
    raw = {**spec_params, **(params or {})}
    file = calibrated().get(name)
    if file is None and is_preset_file(name):
        file = Path(name)
        if not file.is_file():
            raise GpusimError(path, f"no calibrated preset file '{name}' (a name ending in .yaml is a preset file "
                                    "written by gpusim calibrate)")
    if file is not None:
        from gpusim.calibration.preset_file import load_calibrated  # calibration builds on presets
        return load_calibrated(file, raw, path)
    if name not in BUILTIN:
        raise unknown(path, name, names(), "cluster preset")
    preset = BUILTIN[name]
    typed, where = {}, {key: f"{path}.{key}" for key in preset.params}
    for key, value in raw.items():
        where[key] = f"{path}.params.{key}" if key in (params or {}) else f"{path}.{key}"   # a scenario's params
        if key not in preset.params:
            raise unknown(where[key], key, preset.params, f"parameter of '{name}'")
        typed[key] = PARSERS[preset.params[key][0]](value, where[key])
    for key, (kind, default) in preset.params.items():
        typed.setdefault(key, PARSERS[kind](default, where[key]))
    try:
        graph, model = preset.build(**typed), preset.model(typed).validate()
    except GpusimError as exc:   # the builder's "cluster.gpus", the cost model's "cost_model.channels": the spec's key
        head, _, key = exc.path.partition(".")
        if head in ("cluster", "cost_model") and key in where:
            raise GpusimError(where[key], exc.message) from None
        raise
    return Cluster(name, graph, model, spec=spec if isinstance(spec, str) else name, params=typed)


def describe() -> list[dict]:
    """One row per preset: name, description, source, parameters with defaults."""
    rows = [{"name": p.name, "description": p.description, "source": p.source,
             "params": {k: d for k, (_, d) in p.params.items()}, "calibrated": False} for p in BUILTIN.values()]
    for name, file in calibrated().items():
        from gpusim.calibration.preset_file import describe_calibrated
        rows.append(describe_calibrated(name, file))
    return sorted(rows, key=lambda r: r["name"])
