"""Fit a transport's free model parameters to measured NCCL times, and measure the error on held-back data.

The model of one measured call r = (op, n ranks, size S, algorithm a, protocol p) on the transport's topology is
exactly :meth:`Collectives.estimate` of one call in a run of identical back-to-back calls, as nccl-tests and
validation/collect.py time them:

    g(r; θ) = n · o + Σ_phases max_f [ lat0_f + b_p · base_f + s_p · step_f + (bytes_f / (e_p g_op)) / rate_f ]
              + (S / n) / R_op
    t(r; θ) = max(F + c k_r, g(r; θ))   for calls the host issued one by one
    t(r; θ) = g(r; θ)                   for calls replayed from a CUDA graph

F + c k_r is the host's issue interval: the launch floor (``launch_floor_s``) and its time per send and receive
(``p2p_launch_s``) times the k_r a grouped call posts (all_to_all 2n, sendrecv 2, collectives 0); o a call overhead
per rank, lat0_f flow f's wire latency, base_f and step_f NCCL's base and per-step software latencies of (a, p)
scaled per protocol by b_p and s_p, e_p the payload efficiency of protocol p (LL and LL128 fitted, Simple 1), g_op
the operation's bandwidth relative to all_reduce's, and rate_f the max-min rate on link capacities C(θ) (the
transport's bottleneck technology has a fitted efficiency or bandwidth) under per-flow caps (NCCL's protocol caps);
R_op the rate of each rank's pass over its own chunk in ring all_reduce, all_gather, reduce_scatter and all_to_all
(``own_chunk_Bps``, NVLink only: it is what makes those ring rates depend on n; not fitted but derived from the
GPU's measured copy rates, cost_model.own_chunk_rates).
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
from gpusim.calibration.measurements import host_launched
from gpusim.calibration.preset_file import CalibratedPreset
from gpusim.calibration.transports import (FLOOR, LATENCY_TERMS, MODEL_MAPS, P2P_LAUNCH, PER_RANK, STRAGGLER,
                                          Transport, transport, with_local_copy, with_nccl_log)
from gpusim.collectives.cost_model import OPS, OWN_CHUNK_OPS, PAYLOAD_EFFICIENCY, PROTOCOLS, CostModel, p2p_calls
from gpusim.collectives.plans import ALGOS_FOR, P2P_OPS
from gpusim.collectives.run import Collectives, measure, normalise_op
from gpusim.engine.fabric import Fabric
from gpusim.engine.maxmin import max_min_rates
from gpusim.errors import GpusimError
from gpusim.presets import Cluster

MiB = 1 << 20
#: Size bands errors are reported in: (label, lowest size, size above the band).
BANDS = (("<1MiB", 0.0, MiB), (">=1MiB", MiB, math.inf))
#: Protocol sets ``fit(protocol_sets=SEARCH)`` tries; by default a transport keeps the set NCCL enables on it.
SEARCH = (("LL", "LL128", "Simple"), ("LL", "Simple"), ("LL128", "Simple"), ("Simple",))
_NCCL_ALGO = {"default": "auto", "auto": "auto", "ring": "ring", "tree": "tree", "nvls": "nvls"}
_NCCL_PROTO = {"default": "auto", "auto": "auto", "ll": "LL", "ll128": "LL128", "simple": "Simple"}
#: Weight of the log-normal priors on NCCL's scales, in rows at one e-fold (transports.PRIOR_WIDTH is their width).
PRIOR_WEIGHT = 3.0
#: Calls up to this size are as short as the host issues them (extra/probe_graph_vs_api: up to 1 KiB): their median
#: time is where the launch floor's fit starts.
SMALL_BYTES = 1024


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
    variant: str        # as measured: 'default' or 'Ring/LL' ..., '@<n>ch' added where the channels were forced
    run: str = ""       # the measurement file (Measurement.run)
    host: bool = True   # issued call by call from the host (Measurement.host_launched): held to the launch floor
    channels: int | None = None   # forced like NCCL_MIN/MAX_NCHANNELS (Measurement.channels); None: the model's
    source: str = ""    # where it was measured (Measurement.source: file:line), named by errors about the row


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
        elif algo != "auto" and algo not in ALGOS_FOR[op]:       # NVLS all_gather: NCCL has it, gpusim does not
            skipped["unusable"] += 1
            continue
        channels = getattr(m, "channels", None)
        variant = ("default" if algo == proto == "auto" else f"{m.algo}/{m.proto}") + \
            (f"@{channels}ch" if channels else "")
        out.append(Row(op, int(m.world_size), float(m.size_bytes), float(m.time_s), algo, proto, m.transport,
                       variant, getattr(m, "run", ""), host_launched(getattr(m, "launch", "")), channels,
                       getattr(m, "source", "")))
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
    closed form (``Collectives.estimate``); a row replayed from a CUDA graph without the host's launch floor."""
    out = np.zeros(len(rows))
    by_n: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_n.setdefault(r.n, []).append(i)
    for n, idx in sorted(by_n.items()):
        cluster = at_world_size(rows, n, cluster_for)
        fabric = Fabric(cluster.graph)
        models = {True: cluster.model, False: cluster.model.graph_replayed()}
        colls = {host: Collectives(fabric, m) for host, m in models.items()}
        ranks = colls[True].ranks(range(n))
        for i in idx:
            r = rows[i]
            if engine:
                out[i] = measure(fabric, models[r.host], r.op, range(n), r.size_bytes, r.algo, r.proto, r.channels,
                                 back_to_back=True).time_s
            else:
                coll = colls[r.host]
                c = coll.choose(r.op, ranks, r.size_bytes, r.algo, r.proto, r.channels)
                out[i] = coll.estimate(r.op, ranks, r.size_bytes, c.algo, c.proto, c.channels, back_to_back=True)
    return out


def at_world_size(rows: list[Row], n: int, build: Callable[[int], object]):
    """``build(n)``; where ``n`` ranks cannot be built (more GPUs than the topology or preset holds), an error that
    names the first measured row of ``n`` ranks."""
    try:
        return build(n)
    except GpusimError as e:
        source = next((r.source for r in rows if r.n == n and r.source), "")
        raise GpusimError(f"{source}:world_size" if source else "world_size",
                          f"{n} ranks, which the model cannot simulate: {e}") from None


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
    """The cost model for ``values``, without the per-rank overhead and the issue interval (the evaluator applies
    them per row).
    ``plan_only`` plans every protocol and op at 100 % payload, unit bandwidth scale and unit own-chunk and p2p
    channel rates (the evaluator applies those itself); ``latency`` then replaces the latency scales."""
    values = _complete(tr, values)
    fields = {p.name: values[p.name] for p in tr.params
              if not p.link and not p.entry and p not in (PER_RANK, FLOOR, P2P_LAUNCH)}
    fields.update(_maps(tr, values), ring_channel_Bps={p: dict(ops) for p, ops in tr.ring_channel.items()})
    if plan_only:
        fields.update(payload_efficiency={k: 1.0 for k in PAYLOAD_EFFICIENCY}, op_bandwidth_scale={},
                      own_chunk_Bps={op: 1.0 for op in OWN_CHUNK_OPS}, p2p_channel_Bps=1.0, straggler_cv=0.0,
                      **(latency or {}))
    return CostModel.nccl(allowed_protocols=tuple(protocols), **tr.fixed_model(), **fields)


class Evaluator:
    """All rows of one transport planned once; :meth:`times` evaluates them for any parameter values."""

    def __init__(self, tr: Transport, rows: list[Row]):
        self.tr = tr
        self.rows = rows
        self.worlds = {n: at_world_size(rows, n, lambda k: _WorldSize(tr, k)) for n in sorted({r.n for r in rows})}
        self.n_of_row = np.array([r.n for r in rows], dtype=float)
        self.host_row = np.array([r.host for r in rows], dtype=bool)
        self.p2p_calls_row = np.array([p2p_calls(r.op, r.n) for r in rows], dtype=float)

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
                    c = coll.choose(r.op, w.ranks, r.size_bytes, r.algo, r.proto, r.channels)
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
        straggler = CostModel(straggler_cv=values.get(STRAGGLER.name, 0.0))   # planned without: bytes scaled here
        slow = np.array([straggler.straggler_factor(n) for n, *_ in self.shape_flows])
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
            size = np.where(self.flow_own, self.size,
                            self.size * slow[self.flow_shape] / (eff[self.flow_proto] * op_scale[self.flow_op]))
            with np.errstate(divide="ignore"):
                t = np.einsum("ij,ij->i", self.lat, terms) + np.where(size > 0, size / rate, 0.0)
            seg = np.maximum.reduceat(t, self.seg_start)
            out += np.bincount(self.seg_row, weights=seg, minlength=len(self.rows))
        floor = values.get(FLOOR.name, 0.0) + values.get(P2P_LAUNCH.name, 0.0) * self.p2p_calls_row
        return np.where(self.host_row, np.maximum(out, floor), out) if np.any(floor) else out


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
    kept: tuple = ()                            # parameters held at their guess: too few training world sizes
    engine_check_rel: float = float("nan")      # largest |engine - estimate| / estimate on the training rows
    cross_validation: list = field(default_factory=list)   # [{train: [w], check: [...], bands: summary}]
    errors: list = field(default_factory=list)  # error_groups of every row (fitted and held back) under the preset
    preset: CalibratedPreset | None = None
    train_rows: list = field(default_factory=list, repr=False)
    heldout_rows: list = field(default_factory=list, repr=False)


def _solve(ev: Evaluator, tr: Transport, protocols, start: dict, meas: np.ndarray, prior_weight: float,
           free: list, max_rounds: int = 4) -> tuple[dict, float]:
    """Least squares on log time over the ``free`` parameters (the others at their ``start``), with the tuner's
    choices held, re-chosen after each solve until they settle; returns the values and the final cost."""
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
            v = {**values, **{p.name: math.exp(xi) for p, xi in zip(free, x)}}
            return np.concatenate([np.log(ev.times(v)) - log_meas, (x[held] - prior_x) * prior_w])

        x0 = np.clip(np.log([values[p.name] for p in free]), lo + 1e-9, hi - 1e-9)
        res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, x_scale=1.0,
                            xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=400)
        values = {**values, **{p.name: float(math.exp(xi)) for p, xi in zip(free, res.x)}}
        cost = float(res.cost)
        new = ev.choices(values, protocols)
        if new == choices:
            break
        choices = new
    return values, cost


def fit(measurements, transport_name: str, train_world_sizes=(4,), heldout_world_sizes=None,
        protocol_sets=None, engine_check: bool = True, data_files=(), fit_date: str | None = None,
        gpus_range: tuple[int, int] = (2, 8), cross_validate: bool = True,
        prior_weight: float = PRIOR_WEIGHT, local_copy_Bps: float | None = None,
        nccl_logged: dict | None = None) -> FitResult:
    """Fit ``transport_name``'s parameters on rows of ``train_world_sizes``; report the error on the others
    (``heldout_world_sizes``, default every other world size in the data). With two or more training world sizes
    and ``cross_validate``, also fit on each one alone and report the error on the other training ones: how well
    the model carries to world sizes it was not fitted on. ``prior_weight`` 0 turns the priors off.
    ``local_copy_Bps`` is the measured GPU's local copy rate (:func:`with_local_copy`) and ``nccl_logged`` what its
    NCCL logged (:func:`with_nccl_log`); by default the H200's."""
    tr = with_local_copy(with_nccl_log(transport(transport_name), nccl_logged or {}), local_copy_Bps)
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
    absent = [n for n in held_ws if n not in have]
    if heldout_world_sizes is not None and absent:     # else "no held-back rows" would read as if none were asked
        raise GpusimError("holdout", f"no {transport_name} measurement on {absent} ranks; the data has world sizes "
                                     f"{have}")
    if set(held_ws) & set(train_ws):
        raise GpusimError("holdout", f"world sizes {sorted(set(held_ws) & set(train_ws))} are both trained on and "
                                     "held back")
    train = [r for r in rows if r.n in train_ws]
    held = [r for r in rows if r.n in held_ws]
    meas = np.array([r.time_s for r in train])
    ev = Evaluator(tr, train)
    lo_gpus, hi_gpus = gpus_range
    outside = [n for n in train_ws if not lo_gpus <= n <= hi_gpus]
    if outside:           # the preset would refuse the very world sizes it was fitted on
        raise GpusimError("gpus", f"the preset's GPU range {lo_gpus}..{hi_gpus} leaves out the training world sizes "
                                  f"{outside}; widen it")
    start = {p.name: p.initial for p in tr.params}
    if PER_RANK in tr.params:      # a transport may fit a per-rank host cost (eager framework launches)
        floor = float(np.min(meas))
        start[PER_RANK.name] = min(max(0.1 * floor / max(train_ws), PER_RANK.low * 10), PER_RANK.high / 2)
    if FLOOR in tr.params:      # below every call the floor has no gradient: start at the smallest calls' time;
        small = [r.time_s for r in train if r.host and r.size_bytes <= SMALL_BYTES]     # without any, it stays out
        start[FLOOR.name] = min(max(float(np.median(small)), FLOOR.low * 10), FLOOR.high / 2) if small else FLOOR.low
    kept = tuple(p.name for p in tr.params if p.min_world_sizes > len(train_ws))   # too few world sizes to fit
    free = [p for p in tr.params if p.name not in kept]
    best = None
    for protocols in protocol_sets or (tr.protocols,):
        values, cost = _solve(ev, tr, protocols, start, meas, prior_weight, free)
        if best is None or cost < best[1] - 1e-12:
            best = (values, cost, tuple(protocols))
    values, cost, protocols = best
    ev.compile(ev.choices(values, protocols), values)
    sim_train = ev.times(values)
    unconstrained = []
    for p in free:          # flagged when no training row depends on it; its value is kept, so the preset
        nudge = 0.0 if p in (FLOOR, P2P_LAUNCH) else values[p.name] * 0.9 if values[p.name] * 0.9 > p.low else p.high
        nudged = ev.times({**values, p.name: nudge})
        if np.array_equal(nudged, sim_train):          # predicts exactly what the errors were computed with
            unconstrained.append(p.name)
    for p in (FLOOR, P2P_LAUNCH):   # every call outlasts it: no evidence of that host time, so the GPU's time alone
        if p.name in unconstrained:
            values[p.name] = 0.0
    default_gpus = train_ws[-1] if lo_gpus <= train_ws[-1] <= hi_gpus else lo_gpus
    result = FitResult(tr, values, protocols, train_ws, held_ws, summarise(train, sim_train), {}, len(train),
                       len(held), skipped, cost, unconstrained=tuple(unconstrained), kept=kept, train_rows=train,
                       heldout_rows=held)
    versions = sorted({str(getattr(m, "nccl_version", "") or "") for m in measurements
                       if getattr(m, "transport", None) == transport_name} - {""})
    preset = tr.calibrated(values, protocols, gpus=(default_gpus, lo_gpus, hi_gpus))
    sim_held = simulate(held, lambda n: preset.cluster(n), engine=False) if held else np.zeros(0)
    if held:
        result.heldout = summarise(held, sim_held)
    result.errors = error_groups(train + held, np.concatenate([sim_train, sim_held]), by=("op", "variant", "n"))
    if engine_check:
        engine = simulate(train, lambda n: preset.cluster(n), engine=True)
        result.engine_check_rel = float(np.max(np.abs(engine - sim_train) / sim_train))
    if cross_validate and len(train_ws) > 1:
        for w in train_ws:
            rest = tuple(x for x in train_ws if x != w)
            sub = fit(measurements, transport_name, (w,), rest, protocol_sets, engine_check=False,
                      cross_validate=False, prior_weight=prior_weight, local_copy_Bps=local_copy_Bps,
                      nccl_logged=nccl_logged)
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
    if result.kept:
        prov["not_fitted"] = list(result.kept)
    if result.rows_heldout:
        prov["heldout"] = block(result.heldout_world_sizes, result.heldout, result.rows_heldout)
    if result.cross_validation:
        prov["cross_validation"] = [{"train": cv["train"], **block(cv["check"], cv["bands"],
                                                                   cv["bands"]["all"]["rows"])}
                                    for cv in result.cross_validation]
    if math.isfinite(result.engine_check_rel):
        prov["engine_vs_estimate_max_rel"] = float(f"{result.engine_check_rel:.3g}")
    if result.errors:       # what `gpusim collective` quotes next to a prediction of that call
        prov["errors"] = [{"op": g["op"], "variant": g["variant"], "ranks": g["n"], "band": g["band"],
                           "rows": g["rows"], "median": round(g["median_rel_error"], 4),
                           "p90": round(g["p90_rel_error"], 4), "bias": round(g["bias"], 4)}
                          for g in result.errors]
    return prov


def describe(result: FitResult) -> list[tuple[str, str]]:
    """(name, value with unit) of each fitted parameter, then the protocols the tuner may use."""
    def note(p):
        v = result.values[p.name]
        if p is FLOOR and p.name in result.unconstrained:
            return "  (every training call outlasts any floor: none)"
        if p is P2P_LAUNCH and p.name in result.unconstrained:
            return "  (no training call waits on the host's sends and receives: none)"
        if p.name in result.unconstrained:
            return "  (no training row depends on it: any value at or past this one fits the same)"
        if p.name in result.kept:
            return f"  (not fitted: it takes {p.min_world_sizes} training world sizes to tell it apart)"
        if v <= p.low * (1 + 1e-6) or v >= p.high * (1 - 1e-6):
            return f"  (at its bound {p.show(p.low if v <= p.low * (1 + 1e-6) else p.high)})"
        return ""

    rows = [(p.name, p.show(result.values[p.name]) + note(p)) for p in result.transport.params]
    rows.append(("allowed_protocols", ",".join(result.protocols)))
    return rows
