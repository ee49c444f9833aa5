"""Fit a transport's free model parameters to measured NCCL times, and measure the error on held-back data.

The model of one measured call r = (op, n ranks, size S, algorithm a, protocol p) on the transport's topology is
exactly :meth:`Collectives.estimate` of one call in a run of identical back-to-back calls, as nccl-tests and
validation/collect.py time them:

    t(r; θ) = n · o + Σ_phases max_f [ lat0_f + b_p · base_f + s_p · step_f + (bytes_f / (e_p g_op)) / rate_f ]
              + (S / n) / R_op

o is a call overhead per rank, lat0_f flow f's wire latency, base_f and step_f NCCL's base and per-step software
latencies of (a, p) scaled per protocol by b_p and s_p, e_p the payload efficiency of protocol p (LL and LL128
fitted, Simple 1), g_op the operation's bandwidth relative to all_reduce's, and rate_f the max-min rate on link
capacities C(θ) (the transport's bottleneck technology has a fitted efficiency or bandwidth) under per-flow caps
(NCCL's protocol caps); R_op the rate of each rank's pass over its own chunk in ring all_reduce, all_gather,
reduce_scatter and all_to_all (``own_chunk_Bps``, NVLink only: it is what makes those ring rates depend on n; not
fitted but derived from the GPU's measured copy rates, cost_model.own_chunk_rates).
(a, p) is the forced NCCL_ALGO/NCCL_PROTO where the measurement forced them, else what NCCL's tuner picks among
the protocols NCCL enables on that transport. θ minimises

    Σ_r ρ( (ln t(r; θ) - ln t_meas(r))² ) + Σ_k w_k (ln θ_k - ln θ_k⁰)²      ρ: soft-L1, f_scale 0.1

over the training rows (scipy.optimize.least_squares, bounded, in log parameters so every parameter stays
positive). Relative error in time is what matters from 8 B to 4 GiB, hence log time; a few noisy points do not
drag the curve. The second sum is a weak log-normal prior that keeps latency scales, payload efficiencies and op
scales near NCCL's values where the data cannot separate them (base vs per-step latency on two ranks). Plans and
rates are computed once per distinct flow shape and reused across sizes, so one evaluation of all rows costs
about a millisecond; algorithm/protocol choices are held fixed during a solve and the solve repeated until they
stop changing.
"""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from scipy.optimize import least_squares

from gpusim import __version__
from gpusim.calibration.preset_file import CalibratedPreset
from gpusim.collectives.cost_model import OPS, OWN_CHUNK_OPS, PAYLOAD_EFFICIENCY, PROTOCOLS, CostModel, own_chunk_rates
from gpusim.collectives.plans import P2P_OPS
from gpusim.collectives.run import Collectives, measure, normalise_op
from gpusim.engine.fabric import Fabric
from gpusim.engine.maxmin import max_min_rates
from gpusim.errors import GpusimError, unknown
from gpusim.presets import Cluster

MiB = 1 << 20
#: Size bands errors are reported in: (label, lowest size, size above the band).
BANDS = (("<1MiB", 0.0, MiB), (">=1MiB", MiB, math.inf))
#: Protocol sets ``fit(protocol_sets=SEARCH)`` tries; by default a transport keeps the set NCCL enables on it.
SEARCH = (("LL", "LL128", "Simple"), ("LL", "Simple"), ("LL128", "Simple"), ("Simple",))
_NCCL_ALGO = {"default": "auto", "auto": "auto", "ring": "ring", "tree": "tree", "nvls": "nvls"}
_NCCL_PROTO = {"default": "auto", "auto": "auto", "ll": "LL", "ll128": "LL128", "simple": "Simple"}


#: Cost-model fields that map a protocol or an operation to a number; a parameter ``<field>.<key>`` is one entry.
MODEL_MAPS = ("payload_efficiency", "base_latency_scale", "step_latency_scale", "op_bandwidth_scale", "own_chunk_Bps")


@dataclass(frozen=True)
class Param:
    """A free parameter: the per-rank call overhead, one entry of a cost-model map (``step_latency_scale.LL``,
    ``op_bandwidth_scale.all_gather``, ``own_chunk_Bps.all_reduce``) or ``<technology>.<field>`` of a link
    (``nvlink4.efficiency``)."""

    name: str
    initial: float
    low: float
    high: float
    unit: str = ""          # how to print it: 'us', 'GB/s' or '' (a plain number)
    prior: float = 0.0      # width (natural log) of a log-normal prior around ``initial``; 0: none

    @property
    def entry(self) -> tuple[str, str] | None:
        """(map, key) for an entry of a cost-model map, else None."""
        head, _, tail = self.name.partition(".")
        return (head, tail) if head in MODEL_MAPS else None

    @property
    def link(self) -> tuple[str, str] | None:
        if "." not in self.name or self.entry:
            return None
        techname, fieldname = self.name.split(".", 1)
        return techname, fieldname

    def show(self, value: float) -> str:
        if self.unit == "us":
            return f"{value * 1e6:.3f} us"
        if self.unit == "GB/s":
            return f"{value / 1e9:.3f} GB/s"
        return f"{value:.4g}"


#: Latency scales of the cost model (per protocol): every flow latency is affine in them.
LATENCY_TERMS = ("base_latency_scale", "step_latency_scale")
# not fitted by the shipped transports: on NCCL C-API launches it went to ~0.1 us and traded off against the
# per-step latencies; on eager torch.distributed launches it carried the framework's 20-55 us per call
PER_RANK = Param("call_overhead_per_rank_s", 1e-6, 1e-9, 1e-3, "us")
PRIOR_WEIGHT = 3.0
PRIOR_WIDTH = 1.0
LATENCY_SCALES = tuple(Param(f"{term}.{proto}", 1.0, 1e-3, 1e2, prior=PRIOR_WIDTH)
                       for term in LATENCY_TERMS for proto in PROTOCOLS)
LL_EFFICIENCY = Param("payload_efficiency.LL", PAYLOAD_EFFICIENCY["LL"], 0.01, 1.0, prior=PRIOR_WIDTH)
LL128_EFFICIENCY = Param("payload_efficiency.LL128", PAYLOAD_EFFICIENCY["LL128"], 0.01, 1.0, prior=PRIOR_WIDTH)
# all_reduce's rate is the link's (fitted efficiency); the others' relative to it
OP_SCALES = tuple(Param(f"op_bandwidth_scale.{op}", 1.0, 0.25, 4.0, prior=PRIOR_WIDTH)
                  for op in ("all_gather", "reduce_scatter", "broadcast", "all_to_all", "sendrecv"))
_COMMON = (*LATENCY_SCALES, LL_EFFICIENCY, LL128_EFFICIENCY, *OP_SCALES)
# Over NVLink, one-way transfers (broadcast, sendrecv) reach 360-366 GB/s busbw at 4 GiB on 2 and on 4 ranks, but
# ring collectives are slower on 2 ranks than on 4 (all_gather 304 vs 345, all_reduce 348 vs 361): each rank also
# passes its own chunk, S/n, through its kernel outside the pipelined transfer (the last step's copy out of NCCL's
# buffer, cost_model.own_chunk_rates), which costs less per byte sent as n grows. The pass is not fitted: on 4 ranks
# it is under 2 % of a ring's time and a fit lets it wander (all_reduce's went to 5 PB/s and mispredicted 2 ranks
# by 12 %). Its rates come from measured copies instead: the H200 copies 2.11 TB/s locally (1 GiB,
# validation/data/h200/extra/copy_bandwidth.csv), and out-of-place all_gather took as long as in place plus a pass
# over S/n at 3.3 TB/s (median at 1-4 GiB on 2 and 4 ranks, extra/probe_in_place).
H200_LOCAL_COPY_Bps = 2.11e12
H200_OWN_COPY_Bps = 3.3e12
# NVLink sendrecv on 3 and 4 ranks ran at half its 2-rank rate from 8 to 128 MiB and equal from 256 MiB: NCCL gives
# a send 8 channels there (16 on 2 ranks, 16 at 256 MiB, 32 from 512 MiB, nccl_model.p2p_channels), and a channel
# moves ~19 GB/s (2 ranks, 256 MiB: 303 GB/s busbw on 16 channels; 4 ranks, 16-128 MiB: 135-161 GB/s on 8). Over
# SHM a send to one of 3 or 4 peers gets 1 channel up to 4 MiB; over sockets 2 channels never bind (not fitted).
P2P_CHANNEL = Param("p2p_channel_Bps", 20e9, 1e9, 1e13, "GB/s")
_NVLINK_OP_SCALES = tuple(p for p in OP_SCALES if p.name == "op_bandwidth_scale.sendrecv")


def _gpu_io(initial_Bps: float) -> tuple[dict, Param]:
    """A GPU's send + receive budget (technology gpu_io): starts at about 1.5x one direction's capacity, where it
    just binds two-way traffic, so the data decide whether one direction slows the other (one-way broadcast vs
    two-way rings) or the budget rises out of the way."""
    return {"gpu_io_Bps": initial_Bps}, Param("gpu_io.bandwidth_Bps", initial_Bps, 1e9, 1e14, "GB/s")


# Sockets: a 2-rank broadcast (one way) ran at 4.5-6.4 GB/s where two-way rings ran at ~3.5 GB/s each way
# (validation/data/h200), the loopback TCP stack's CPU work being shared by both directions. SHM: a 2-rank
# broadcast moved 49.5 GB/s one way, a 2-rank all_gather 25 + 25 GB/s both ways, so the copies in and out of a GPU
# share ~50 GB/s. On NVLink a fitted budget rose out of the way (no row depended on it).
_SOCKET_IO = _gpu_io(7e9)
_SHM_IO = _gpu_io(60e9)


@dataclass(frozen=True)
class Transport:
    """How one NCCL transport is modelled: topology builder and arguments, fixed link overrides, channels, the
    protocols NCCL's tuner enables on it, and the free parameters."""

    name: str
    preset: str
    description: str
    builder: str
    arguments: dict
    gpus_argument: str
    channels: int
    protocols: tuple[str, ...]
    params: tuple[Param, ...]
    p2p: tuple[int, int, int]                     # NCCL's p2pnChannels, p2pnChannelsPerPeer, p2pChunkSize
    links: dict = field(default_factory=dict)     # fixed link overrides (technology -> fields)
    own_chunk: dict = field(default_factory=dict)   # fixed own-chunk pass rates (op -> B/s), from measured copies

    def fixed_model(self) -> dict:
        """Cost-model fields NCCL logged for this transport (not fitted)."""
        return {"arch": "hopper", "channels": self.channels, "p2p_channels": self.p2p[0],
                "p2p_channels_per_peer": self.p2p[1], "p2p_chunk_bytes": self.p2p[2]}

    def calibrated(self, values: dict, protocols=None, provenance: dict | None = None,
                   gpus: tuple[int, int, int] = (4, 2, 8)) -> CalibratedPreset:
        """The calibrated preset for parameter ``values`` (missing ones at their initial guess)."""
        links: dict = {t: dict(f) for t, f in self.links.items()}
        model = {**self.fixed_model(), "allowed_protocols": tuple(self.protocols if protocols is None else protocols)}
        if self.own_chunk:
            model["own_chunk_Bps"] = dict(self.own_chunk)
        for p in self.params:
            v = values.get(p.name, p.initial)
            if p.link:
                techname, fieldname = p.link
                links.setdefault(techname, {})[fieldname] = v
            elif p.entry:
                group, key = p.entry
                model.setdefault(group, dict(PAYLOAD_EFFICIENCY) if group == "payload_efficiency" else {})[key] = v
            else:
                model[p.name] = v
        default, lo, hi = gpus
        return CalibratedPreset(self.preset, self.description, self.name, self.builder, self.gpus_argument,
                                dict(self.arguments), default, lo, hi, links, model, dict(provenance or {}))


TRANSPORTS: dict[str, Transport] = {
    # Measured with NCCL 2.28 on 2 and 4 H200 (validation/data/h200/nccl_info.txt): 24 channels over NVLink
    # ("Channel 00/24"), 4 over SHM, 2 over sockets; p2p channels, per peer and chunk 32, 32, 512 KiB over NVLink,
    # 4, 2, 128 KiB over SHM, 2, 2, 128 KiB over sockets ("32 p2p channels, 32 p2p channels per peer", "P2P
    # Chunksize set to 524288"); NCCL's tuning tables give LL128 zero bandwidth over SHM and sockets (it is enabled
    # on NVLink only), so the tuner here may pick LL128 on NVLink only.
    "nvlink": Transport(
        "nvlink", "h200-nvlink", "H200 SXM on NVSwitch (18 NVLink4 links each), NCCL P2P over NVLink",
        "nvswitch_server", {"nvlink": "nvlink4", "nvlinks": 18, "pcie": "pcie5"}, "gpus", 24, PROTOCOLS,
        (*LATENCY_SCALES, LL_EFFICIENCY, LL128_EFFICIENCY, *_NVLINK_OP_SCALES,
         Param("nvlink4.efficiency", 20.6 / 25.0, 0.02, 1.0), P2P_CHANNEL), (32, 32, 512 * 1024),
        own_chunk=own_chunk_rates(H200_LOCAL_COPY_Bps, H200_OWN_COPY_Bps)),
    # Each GPU on its own PCIe 5.0 x16 to the host (the VM shows no PCIe switch): pairs sharing a switch uplink
    # predicted a 4-rank broadcast chain at half the 2-rank rate where it ran at 0.7x; the limit is each GPU's
    # send + receive budget. Host memory is shared by all GPUs' staging: 4-rank rings slow down as channels
    # multiply (extra/probe_shm_channels) and four GPUs' copy engines moved 158 GB/s where two moved 145
    # (extra/probe_host_and_channels). Its capacity is set to the most SHM payload a 4-rank call moved through it,
    # all_to_all at 1 GiB (4 x 30 GB/s, runs 1 and 2): it binds on no call on 2-4 ranks (a fit without the per-GPU
    # budget puts it at 110 GB/s) but caps 8 GPUs' traffic, which under the builder's 200 GB/s guess only the
    # per-GPU budget would limit.
    "pcie_shm": Transport(
        "pcie_shm", "h200-pcie-shm", "H200 with peer-to-peer off (NCCL_P2P_DISABLE=1): NCCL's SHM transport "
        "stages copies in host memory, each GPU on its own PCIe 5.0 x16",
        "pcie_box", {"pcie": "pcie5", "lanes": 16, "p2p": False, "pcie_switch": False, **_SHM_IO[0]}, "gpus", 4,
        ("LL", "Simple"),
        (*_COMMON, Param("pcie5.efficiency", 0.8, 0.02, 1.0), _SHM_IO[1], P2P_CHANNEL), (4, 2, 128 * 1024),
        links={"memory": {"bandwidth_Bps": 120e9}}),
    "socket": Transport(
        "socket", "h200-socket", "H200, one process per GPU talking over NCCL's TCP socket transport on loopback "
        "(each GPU a node with one NIC on one switch)",
        "cluster", {"gpus_per_server": 1, "server": "pcie", "nics": "per_server", "network": "ethernet",
                    "fabric": "single_switch", **_SOCKET_IO[0]}, "servers", 2, ("LL", "Simple"),
        # the wire starts out of the way (loopback copies, not a cable): on 4-rank data alone a wire limit and the
        # per-GPU budget fit rings equally well, and only the budget also explains one-way broadcasts on 2 ranks
        (*_COMMON, _SOCKET_IO[1], Param("ethernet.bandwidth_Bps", 20e9, 1e7, 1e12, "GB/s")), (2, 2, 128 * 1024)),
}


def transport(name: str, path: str = "transport") -> Transport:
    """The modelled transport ``name``; an unknown one is an error naming ``path``."""
    if name not in TRANSPORTS:
        raise unknown(path, name, TRANSPORTS, "transport")
    return TRANSPORTS[name]


def with_local_copy(tr: Transport, local_copy_Bps: float | None, path: str = "local_copy_Bps") -> Transport:
    """``tr`` with its own-chunk pass rates derived from another GPU's local copy rate (bytes copied per second,
    ``measurements.local_copy_Bps``), the all_gather own-input copy keeping the H200's measured ratio to it;
    ``None`` keeps the H200's. Only a transport with an own-chunk pass (nvlink) takes one."""
    if local_copy_Bps is None:
        return tr
    if not tr.own_chunk:
        raise GpusimError(path, f"the {tr.name} transport has no own-chunk pass to set (only "
                                f"{', '.join(t for t, x in TRANSPORTS.items() if x.own_chunk)} has one)")
    if isinstance(local_copy_Bps, bool) or not isinstance(local_copy_Bps, (int, float)) or \
            not (math.isfinite(local_copy_Bps) and local_copy_Bps > 0):
        raise GpusimError(path, f"expected a positive copy rate in bytes/s, got {local_copy_Bps!r}")
    own_copy = local_copy_Bps * H200_OWN_COPY_Bps / H200_LOCAL_COPY_Bps
    return replace(tr, own_chunk=own_chunk_rates(local_copy_Bps, own_copy))


# -- rows ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One measured call in gpusim's terms (op normalised, forced variant mapped to our algo/proto names)."""

    op: str
    n: int
    size_bytes: float
    time_s: float
    algo: str           # 'auto' or forced
    proto: str
    transport: str
    variant: str        # as measured: 'default' or 'Ring/LL' ...


#: Why rows_from leaves a measurement out (the key it counts it under).
SKIP_REASONS = {
    "unusable": "zero size or time, fewer than 2 ranks, or an algorithm/protocol gpusim does not model",
    "tree_not_all_reduce": "NCCL_ALGO=Tree forced on an operation NCCL runs as a ring (Tree is all_reduce only)",
    # in place NCCL skips the copy of a rank's own chunk: 4-9 % of a 2-rank NVLink call at >= 256 MiB
    # (validation/data/h200/extra/probe_in_place)
    "in_place_all_gather": "in-place all_gather: the model's all_gather is out of place (as "
                           "torch.distributed.all_gather_into_tensor and nccl-tests' out-of-place columns)",
}


def rows_from(measurements, transport_name: str | None = None) -> tuple[list[Row], dict]:
    """Usable :class:`Row` objects from measurement records (objects with op, world_size, size_bytes, time_s,
    transport, algo, proto, optionally in_place) and, per :data:`SKIP_REASONS` key, how many were left out."""
    out: list[Row] = []
    skipped = {k: 0 for k in SKIP_REASONS}
    for m in measurements:
        if transport_name is not None and m.transport != transport_name:
            continue
        algo = _NCCL_ALGO.get(str(m.algo).lower())
        proto = _NCCL_PROTO.get(str(m.proto).lower())
        if algo is None or proto is None or not (m.size_bytes > 0 and m.time_s > 0) or m.world_size < 2:
            skipped["unusable"] += 1
            continue
        op = normalise_op(m.op)
        if op == "all_gather" and getattr(m, "in_place", False):
            skipped["in_place_all_gather"] += 1
            continue
        if op in ("all_to_all", "sendrecv"):
            algo = "auto"           # NCCL_ALGO does not apply to point-to-point operations
        elif algo == "tree" and op != "all_reduce":
            skipped["tree_not_all_reduce"] += 1
            continue
        out.append(Row(op, int(m.world_size), float(m.size_bytes), float(m.time_s), algo, proto, m.transport,
                       "default" if algo == proto == "auto" else f"{m.algo}/{m.proto}"))
    return out, {k: v for k, v in skipped.items() if v}


# -- error statistics ---------------------------------------------------------------------------------------------

def summarise(rows: list[Row], sim_s: np.ndarray) -> dict:
    """Median and 90th percentile of |t_sim - t_meas| / t_meas per size band and overall, and the median signed
    error (bias: positive when the model is slow)."""
    meas = np.array([r.time_s for r in rows])
    sizes = np.array([r.size_bytes for r in rows])
    rel = (np.asarray(sim_s) - meas) / meas if rows else np.zeros(0)
    out = {}
    for label, lo, hi in (*BANDS, ("all", 0.0, math.inf)):
        sel = (sizes >= lo) & (sizes < hi)
        if not sel.any():
            continue
        a = np.abs(rel[sel])
        out[label] = {"rows": int(sel.sum()), "median_rel_error": float(np.median(a)),
                      "p90_rel_error": float(np.percentile(a, 90)), "bias": float(np.median(rel[sel]))}
    return out


def error_groups(rows: list[Row], sim_s: np.ndarray, by=("op", "variant")) -> list[dict]:
    """:func:`summarise` per group of rows sharing the attributes ``by``, one dict per (group, size band)."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(getattr(r, k) for k in by), []).append(i)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        idx = groups[key]
        stats = summarise([rows[i] for i in idx], np.asarray(sim_s)[idx])
        for band, s in stats.items():
            if band != "all":
                out.append({**dict(zip(by, key)), "band": band, **s})
    return out


# -- simulation of measured rows ------------------------------------------------------------------------------------

def simulate(rows: list[Row], cluster_for: Callable[[int], Cluster], engine: bool = True) -> np.ndarray:
    """Simulated time of each row on ``cluster_for(n)``: with the event engine (``measure``) or the plan's
    closed form (``Collectives.estimate``)."""
    out = np.zeros(len(rows))
    by_n: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_n.setdefault(r.n, []).append(i)
    for n, idx in sorted(by_n.items()):
        cluster = cluster_for(n)
        fabric = Fabric(cluster.graph)
        coll = Collectives(fabric, cluster.model)
        ranks = coll.ranks(range(n))
        for i in idx:
            r = rows[i]
            if engine:
                out[i] = measure(fabric, cluster.model, r.op, range(n), r.size_bytes, r.algo, r.proto,
                                 back_to_back=True).time_s
            else:
                c = coll.choose(r.op, ranks, r.size_bytes, r.algo, r.proto)
                out[i] = coll.estimate(r.op, ranks, r.size_bytes, c.algo, c.proto, c.channels, back_to_back=True)
    return out


# -- the fast evaluator --------------------------------------------------------------------------------------------

class _WorldSize:
    """One world size's fabric, with the edges each link parameter changes."""

    def __init__(self, tr: Transport, n: int):
        preset = tr.calibrated({})
        self.n = n
        self.fabric = Fabric(preset.graph(n))
        g = self.fabric.g
        self.raw_Bps = np.array([g.edges[e]["bandwidth_Bps"] for e in self.fabric.edges])
        self.eff = np.array([g.edges[e]["efficiency"] for e in self.fabric.edges])
        techs = np.array([g.edges[e]["technology"] for e in self.fabric.edges])
        self.edges_of = {p.name: np.flatnonzero(techs == p.link[0]) for p in tr.params if p.link}
        for p in tr.params:
            if p.link and not self.edges_of[p.name].size:
                raise GpusimError("params", f"parameter {p.name}: no '{p.link[0]}' link in the {tr.name} topology")
        self.ranks = [self.fabric.gpu(i) for i in range(n)]

    def capacity(self, tr: Transport, values: dict) -> np.ndarray:
        raw, eff = self.raw_Bps.copy(), self.eff.copy()
        for p in tr.params:
            if p.link:
                idx = self.edges_of[p.name]
                if p.link[1] == "efficiency":
                    eff[idx] = values[p.name]
                else:
                    raw[idx] = values[p.name]
        return raw * eff


def _complete(tr: Transport, values: dict) -> dict:
    """``values`` with every parameter of ``tr`` present (missing ones at their initial guess)."""
    return {**{p.name: p.initial for p in tr.params}, **values}


def _maps(tr: Transport, values: dict) -> dict:
    """Every cost-model map under ``values``: payload efficiencies from NCCL's defaults, own-chunk rates from the
    transport's fixed ones, the others empty (1 where absent)."""
    maps = {m: {} for m in MODEL_MAPS}
    maps["payload_efficiency"] = dict(PAYLOAD_EFFICIENCY)
    maps["own_chunk_Bps"] = dict(tr.own_chunk)
    for p in tr.params:
        if p.entry and p.name in values:
            maps[p.entry[0]][p.entry[1]] = values[p.name]
    return maps


def _model(tr: Transport, values: dict, protocols, plan_only: bool = False,
           latency: dict | None = None) -> CostModel:
    """The cost model for ``values``, without the per-rank overhead (the evaluator adds it per row).
    ``plan_only`` plans every protocol and op at 100 % payload, unit bandwidth scale and unit own-chunk and p2p
    channel rates (the evaluator applies those itself); ``latency`` then replaces the latency scales."""
    values = _complete(tr, values)
    fields = {p.name: values[p.name] for p in tr.params if not p.link and not p.entry and p is not PER_RANK}
    fields.update(_maps(tr, values))
    if plan_only:
        fields.update(payload_efficiency={k: 1.0 for k in PAYLOAD_EFFICIENCY}, op_bandwidth_scale={},
                      own_chunk_Bps={op: 1.0 for op in OWN_CHUNK_OPS}, p2p_channel_Bps=1.0, **(latency or {}))
    return CostModel.nccl(allowed_protocols=tuple(protocols), **tr.fixed_model(), **fields)


class Evaluator:
    """All rows of one transport planned once; :meth:`times` evaluates them for any parameter values."""

    def __init__(self, tr: Transport, rows: list[Row]):
        self.tr = tr
        self.rows = rows
        self.worlds = {n: _WorldSize(tr, n) for n in sorted({r.n for r in rows})}
        self.n_of_row = np.array([r.n for r in rows], dtype=float)

    def choices(self, values: dict, protocols) -> list[tuple[str, str, int]]:
        """(algo, proto, channels) of each row as the tuner picks them under ``values``."""
        values = _complete(self.tr, values)
        model = _model(self.tr, values, protocols)
        out = []
        for n, w in self.worlds.items():
            w.fabric.net.capacity = w.capacity(self.tr, values)
            coll = Collectives(w.fabric, model)
            for i, r in enumerate(self.rows):
                if r.n == n:
                    c = coll.choose(r.op, w.ranks, r.size_bytes, r.algo, r.proto)
                    out.append((i, (c.algo, c.proto, c.channels)))
        return [c for _, c in sorted(out)]

    def compile(self, choices: list[tuple[str, str, int]], values: dict) -> None:
        """Plan every row once for fixed choices: flat per-flow arrays and distinct rate shapes.

        Flow latency is affine in the latency scales (base and per-step latencies of the row's protocol are each
        multiplied by one), so planning with both at 0 and with each at 1 in turn gives the fixed part and one
        slope per scale. Flow bytes are proportional to the call's size, so each (ranks, op, algo, proto,
        channels) is planned once, at 1 MiB, and scaled; a point-to-point op (all_to_all, sendrecv) once per size,
        as NCCL's channels per peer change with it. Plans are made at 100 % payload efficiency, unit op bandwidth
        scale and unit own-chunk and p2p channel rates: bytes on the wire and rate caps are scaled when evaluated.
        """
        values = _complete(self.tr, values)
        scales = [{k: (1.0 if k == one else 0.0) for k in LATENCY_TERMS} for one in (None, *LATENCY_TERMS)]
        models = [_model(self.tr, values, PROTOCOLS, plan_only=True, latency=sc) for sc in scales]
        shapes: dict = {}
        planned: dict = {}
        self.shape_flows: list = []
        flow_shape, flow_pos, flow_proto, flow_op, size, lat, seg_row, seg_start = [], [], [], [], [], [], [], []
        k = 0
        for i, (r, (algo, proto, ch)) in enumerate(zip(self.rows, choices)):
            w = self.worlds[r.n]
            p_index, o_index = PROTOCOLS.index(proto), OPS.index(r.op)
            unit = r.size_bytes if r.op in P2P_OPS else MiB
            pkey = (r.n, r.op, algo, proto, ch, unit)
            if pkey not in planned:
                plans = [Collectives(w.fabric, m).planner.plan(r.op, w.ranks, unit, algo, proto, ch, back_to_back=True)
                         for m in models]
                phases_out = []
                for phases in zip(*plans):
                    ph0 = phases[0]
                    if not ph0.flows:
                        continue
                    key = (r.n, p_index, o_index,
                           tuple((f.links.tobytes(), f.weights.tobytes(), f.cap_Bps) for f in ph0.flows))
                    # the own-chunk pass crosses no link; a p2p op's caps count its channels
                    kind = "own" if all(f.links.size == 0 for f in ph0.flows) else \
                        "p2p" if r.op in P2P_OPS else "link"
                    if key not in shapes:
                        shapes[key] = len(self.shape_flows)
                        self.shape_flows.append((r.n, p_index, o_index, kind, ph0.flows))
                    per_flow = [(f[0].size_bytes / unit, [f[0].latency_s] + [x.latency_s - f[0].latency_s
                                                                             for x in f[1:]])
                                for f in zip(*(ph.flows for ph in phases))]
                    phases_out.append((shapes[key], per_flow))
                planned[pkey] = phases_out
            for shape, per_flow in planned[pkey]:
                seg_row.append(i)
                seg_start.append(k)
                for j, (unit_bytes, lat_parts) in enumerate(per_flow):
                    flow_shape.append(shape)
                    flow_pos.append(j)
                    flow_proto.append(p_index)
                    flow_op.append(o_index)
                    size.append(unit_bytes * r.size_bytes)
                    lat.append(lat_parts)
                    k += 1
        self.choice = list(choices)
        self.flow_shape, self.flow_pos = np.array(flow_shape, dtype=int), np.array(flow_pos, dtype=int)
        self.flow_proto, self.flow_op = np.array(flow_proto, dtype=int), np.array(flow_op, dtype=int)
        self.flow_own = np.array([kind == "own" for _, _, _, kind, _ in self.shape_flows], dtype=bool)[self.flow_shape]
        self.size = np.array(size)
        self.lat = np.array(lat).reshape(-1, 1 + len(LATENCY_TERMS))
        self.seg_row, self.seg_start = np.array(seg_row, dtype=int), np.array(seg_start, dtype=int)
        offsets = np.cumsum([0] + [len(fl) for *_, fl in self.shape_flows])
        self.flow_global = offsets[:-1][self.flow_shape] + self.flow_pos if k else np.zeros(0, dtype=int)
        self.shape_arrays = []
        for *_, flows in self.shape_flows:
            lens = np.array([f.links.size for f in flows])
            self.shape_arrays.append((np.repeat(np.arange(len(flows)), lens), np.concatenate([f.links for f in flows]),
                                      np.concatenate([f.weights for f in flows]),
                                      np.array([f.cap_Bps for f in flows])))

    def times(self, values: dict) -> np.ndarray:
        """Simulated time of every row (the compiled choices) under ``values``: equal to Collectives.estimate."""
        values = _complete(self.tr, values)
        caps = {n: w.capacity(self.tr, values) for n, w in self.worlds.items()}
        maps = _maps(self.tr, values)
        eff = np.array([maps["payload_efficiency"][p] for p in PROTOCOLS])
        op_scale = np.array([maps["op_bandwidth_scale"].get(o, 1.0) for o in OPS])
        own_rate = np.array([maps["own_chunk_Bps"].get(o, math.inf) for o in OPS])
        p2p_rate = values.get("p2p_channel_Bps", math.inf)
        rates = []
        for (n, p_index, o_index, kind, flows), (fo, lo, wt, cap) in zip(self.shape_flows, self.shape_arrays):
            if kind == "own":       # planned at a unit rate: payload bytes at the op's own-chunk rate
                rates.append(cap * own_rate[o_index])
            else:                   # p2p caps were planned per channel at a unit rate
                cap = cap * p2p_rate if kind == "p2p" else cap
                rates.append(max_min_rates(fo, lo, wt, caps[n], len(flows), cap / (eff[p_index] * op_scale[o_index])))
        out = values.get(PER_RANK.name, 0.0) * self.n_of_row
        if self.size.size:
            rate = np.concatenate(rates)[self.flow_global]
            per_proto = [np.array([maps[t].get(p, 1.0) for p in PROTOCOLS]) for t in LATENCY_TERMS]
            terms = np.column_stack([np.ones(self.size.size)] + [sc[self.flow_proto] for sc in per_proto])
            size = np.where(self.flow_own, self.size, self.size / (eff[self.flow_proto] * op_scale[self.flow_op]))
            with np.errstate(divide="ignore"):
                t = np.einsum("ij,ij->i", self.lat, terms) + np.where(size > 0, size / rate, 0.0)
            seg = np.maximum.reduceat(t, self.seg_start)
            out += np.bincount(self.seg_row, weights=seg, minlength=len(self.rows))
        return out


# -- fitting ---------------------------------------------------------------------------------------------------------

@dataclass
class FitResult:
    """Fitted values and the errors on training and held-back rows."""

    transport: Transport
    values: dict
    protocols: tuple
    train_world_sizes: tuple
    heldout_world_sizes: tuple
    train: dict
    heldout: dict
    rows_train: int
    rows_heldout: int
    rows_skipped: dict                          # SKIP_REASONS key -> rows left out for it
    cost: float
    unconstrained: tuple = ()                   # parameters no training row depends on (left at their guess)
    engine_check_rel: float = float("nan")      # largest |engine - estimate| / estimate on the training rows
    cross_validation: list = field(default_factory=list)   # [{train: [w], check: [...], bands: summary}]
    preset: CalibratedPreset | None = None
    train_rows: list = field(default_factory=list, repr=False)
    heldout_rows: list = field(default_factory=list, repr=False)


def _solve(ev: Evaluator, tr: Transport, protocols, start: dict, meas: np.ndarray, prior_weight: float,
           max_rounds: int = 4) -> tuple[dict, float]:
    """Least squares on log time with the tuner's choices held, re-chosen after each solve until they settle;
    returns the values and the final cost."""
    free = list(tr.params)
    lo = np.log([p.low for p in free])
    hi = np.log([p.high for p in free])
    values = dict(start)
    cost = math.inf
    choices = ev.choices(values, protocols)
    # priors: a parameter with one is pulled towards its initial value (NCCL's constant) by a log-normal prior of
    # width p.prior, worth PRIOR_WEIGHT rows: where the data cannot tell two parameters apart (base vs per-step
    # latency on 2 ranks) the fit keeps NCCL's split instead of wandering along the valley
    held = np.array([i for i, p in enumerate(free) if p.prior], dtype=int)
    prior_x = np.log([free[i].initial for i in held])
    prior_w = np.array([math.sqrt(prior_weight) * 0.1 / free[i].prior for i in held])
    for _ in range(max_rounds):
        ev.compile(choices, values)
        log_meas = np.log(meas)

        def resid(x):
            v = {p.name: math.exp(xi) for p, xi in zip(free, x)}
            return np.concatenate([np.log(ev.times(v)) - log_meas, (x[held] - prior_x) * prior_w])

        x0 = np.clip(np.log([values[p.name] for p in free]), lo + 1e-9, hi - 1e-9)
        res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, x_scale=1.0,
                            xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=400)
        values = {p.name: float(math.exp(xi)) for p, xi in zip(free, res.x)}
        cost = float(res.cost)
        new = ev.choices(values, protocols)
        if new == choices:
            break
        choices = new
    return values, cost


def fit(measurements, transport_name: str, train_world_sizes=(4,), heldout_world_sizes=None,
        protocol_sets=None, engine_check: bool = True, data_files=(), fit_date: str | None = None,
        gpus_range: tuple[int, int] = (2, 8), cross_validate: bool = True,
        prior_weight: float = PRIOR_WEIGHT, local_copy_Bps: float | None = None) -> FitResult:
    """Fit ``transport_name``'s parameters on rows of ``train_world_sizes``; report the error on the others
    (``heldout_world_sizes``, default every other world size in the data). With two or more training world sizes
    and ``cross_validate``, also fit on each one alone and report the error on the other training ones: how well
    the model carries to world sizes it was not fitted on. ``prior_weight`` 0 turns the priors off.
    ``local_copy_Bps`` is the measured GPU's local copy rate (:func:`with_local_copy`; default the H200's)."""
    tr = with_local_copy(transport(transport_name), local_copy_Bps)
    rows, skipped = rows_from(measurements, transport_name)
    if not rows:
        raise GpusimError("data", f"no usable measurement of transport '{transport_name}'")
    have = sorted({r.n for r in rows})
    train_ws = tuple(sorted(set(int(n) for n in train_world_sizes)))
    missing = [n for n in train_ws if n not in have]
    if missing or not train_ws:
        raise GpusimError("train_world_sizes", f"no {transport_name} measurement on {missing or 'these'} ranks; "
                                               f"the data has world sizes {have}")
    held_ws = tuple(sorted(set(have) - set(train_ws))) if heldout_world_sizes is None else \
        tuple(sorted(set(int(n) for n in heldout_world_sizes)))
    if set(held_ws) & set(train_ws):
        raise GpusimError("holdout", f"world sizes {sorted(set(held_ws) & set(train_ws))} are both trained on and "
                                     "held back")
    train = [r for r in rows if r.n in train_ws]
    held = [r for r in rows if r.n in held_ws]
    meas = np.array([r.time_s for r in train])
    ev = Evaluator(tr, train)
    start = {p.name: p.initial for p in tr.params}
    if PER_RANK in tr.params:      # a transport may fit a per-rank host cost (eager framework launches)
        floor = float(np.min(meas))
        start[PER_RANK.name] = min(max(0.1 * floor / max(train_ws), PER_RANK.low * 10), PER_RANK.high / 2)
    best = None
    for protocols in protocol_sets or (tr.protocols,):
        values, cost = _solve(ev, tr, protocols, start, meas, prior_weight)
        if best is None or cost < best[1] - 1e-12:
            best = (values, cost, tuple(protocols))
    values, cost, protocols = best
    ev.compile(ev.choices(values, protocols), values)
    sim_train = ev.times(values)
    unconstrained = []
    for p in tr.params:     # flagged when no training row depends on it; its value is kept, so the preset
        nudged = ev.times({**values, p.name: values[p.name] * 0.9 if values[p.name] * 0.9 > p.low else p.high})
        if np.array_equal(nudged, sim_train):          # predicts exactly what the errors were computed with
            unconstrained.append(p.name)
    lo_gpus, hi_gpus = gpus_range
    default_gpus = train_ws[-1] if lo_gpus <= train_ws[-1] <= hi_gpus else lo_gpus
    result = FitResult(tr, values, protocols, train_ws, held_ws, summarise(train, sim_train), {}, len(train),
                       len(held), skipped, cost, unconstrained=tuple(unconstrained), train_rows=train,
                       heldout_rows=held)
    versions = sorted({str(getattr(m, "nccl_version", "") or "") for m in measurements
                       if getattr(m, "transport", None) == transport_name} - {""})
    preset = tr.calibrated(values, protocols, gpus=(default_gpus, lo_gpus, hi_gpus))
    if held:
        result.heldout = summarise(held, simulate(held, lambda n: preset.cluster(n), engine=False))
    if engine_check:
        engine = simulate(train, lambda n: preset.cluster(n), engine=True)
        result.engine_check_rel = float(np.max(np.abs(engine - sim_train) / sim_train))
    if cross_validate and len(train_ws) > 1:
        for w in train_ws:
            rest = tuple(x for x in train_ws if x != w)
            sub = fit(measurements, transport_name, (w,), rest, protocol_sets, engine_check=False,
                      cross_validate=False, prior_weight=prior_weight, local_copy_Bps=local_copy_Bps)
            result.cross_validation.append({"train": [w], "check": list(rest), "bands": sub.heldout})
    result.preset = replace(preset, provenance=provenance(result, data_files, fit_date, versions))
    return result


def provenance(result: FitResult, data_files=(), fit_date: str | None = None, nccl_versions=()) -> dict:
    """What a preset file records about its fit."""

    def block(world_sizes, summary, rows):
        allb = summary.get("all", {})
        out = {"world_sizes": list(world_sizes), "rows": rows}
        if allb:
            out.update(median_rel_error=round(allb["median_rel_error"], 4),
                       p90_rel_error=round(allb["p90_rel_error"], 4))
        out["bands"] = {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                        for k, v in summary.items() if k != "all"}
        return out

    prov = {"data": [str(f) for f in data_files],
            **({"nccl_version": ", ".join(nccl_versions)} if nccl_versions else {}),
            "fit_date": fit_date or datetime.date.today().isoformat(),
            "gpusim_version": __version__,
            "method": "least squares on log time (scipy least_squares, soft-L1, log-normal priors on the NCCL "
                      "scales), Collectives.estimate of back-to-back calls per row",
            "train": block(result.train_world_sizes, result.train, result.rows_train)}
    if result.unconstrained:
        prov["unconstrained"] = list(result.unconstrained)
    if result.rows_heldout:
        prov["heldout"] = block(result.heldout_world_sizes, result.heldout, result.rows_heldout)
    if result.cross_validation:
        prov["cross_validation"] = [{"train": cv["train"], **block(cv["check"], cv["bands"],
                                                                   cv["bands"]["all"]["rows"])}
                                    for cv in result.cross_validation]
    if math.isfinite(result.engine_check_rel):
        prov["engine_vs_estimate_max_rel"] = float(f"{result.engine_check_rel:.3g}")
    return prov


def describe(result: FitResult) -> list[tuple[str, str]]:
    """(name, value with unit) of each fitted parameter, then the protocols the tuner may use."""
    def note(p):
        v = result.values[p.name]
        if p.name in result.unconstrained:
            return "  (no training row depends on it: any value at or past this one fits the same)"
        if v <= p.low * (1 + 1e-6) or v >= p.high * (1 - 1e-6):
            return f"  (at its bound {p.show(p.low if v <= p.low * (1 + 1e-6) else p.high)})"
        return ""

    rows = [(p.name, p.show(result.values[p.name]) + note(p)) for p in result.transport.params]
    rows.append(("allowed_protocols", ",".join(result.protocols)))
    return rows
