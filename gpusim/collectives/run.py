"""Running collectives on a fabric: choose (algorithm, protocol), plan flows, drive the engine.

``collective(...)`` is a simpy process: two collectives started together on shared links slow each other down
because their flows share the engine. ``measure(...)`` runs one collective alone and returns its time — the unit
of ``gpusim collective`` sweeps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gpusim.collectives import nccl_model as nm
from gpusim.collectives.bus_bandwidth import busbw_GBps, canonical_op
from gpusim.collectives.cost_model import PROTOCOLS, CostModel
from gpusim.collectives.plans import ALGOS_FOR, OPS, Phase, Planner
from gpusim.engine.fabric import Fabric
from gpusim.engine.maxmin import max_min_rates
from gpusim.engine.network import incidence
from gpusim.errors import GpusimError, unknown

_OUR_ALGO = {nm.Algo.RING: "ring", nm.Algo.TREE: "tree", nm.Algo.NVLS: "nvls"}


@dataclass(frozen=True)
class Choice:
    algo: str
    proto: str
    channels: int


@dataclass
class CollectiveResult:
    """One collective call: what ran and when."""

    op: str
    n_ranks: int
    size_bytes: float
    algo: str
    proto: str
    channels: int
    start_s: float
    end_s: float
    label: str = ""

    @property
    def time_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def algbw_GBps(self) -> float:
        return self.size_bytes / self.time_s / 1e9 if self.time_s > 0 else float("inf")

    @property
    def busbw_GBps(self) -> float:
        return busbw_GBps(self.op, self.n_ranks, self.size_bytes, self.time_s) if self.time_s > 0 else float("inf")


def normalise_op(op: str, path: str = "op") -> str:
    name = canonical_op(op, path)
    if name == "send_recv":
        name = "sendrecv"
    if name not in OPS:
        raise unknown(path, op, OPS, "operation")
    return name


class Collectives:
    """Collective calls on one fabric with one cost model (plans and choices cached per call shape)."""

    def __init__(self, fabric: Fabric, model: CostModel):
        self.fabric = fabric
        self.model = model.validate()
        self.planner = Planner(fabric, model)
        self._systems: dict = {}
        self._choices: dict = {}

    def ranks(self, ranks) -> list[str]:
        """GPU names from rank indices (or names)."""
        names = [self.fabric.gpu(r) if isinstance(r, (int, np.integer)) else r for r in ranks]
        if len(set(names)) != len(names):
            raise GpusimError("ranks", "a rank appears twice")
        return names

    # -- choice ---------------------------------------------------------------------------------------------
    def choose(self, op: str, ranks: list[str], size_bytes: float, algo: str = "auto", proto: str = "auto",
               channels: int | None = None) -> Choice:
        """The (algorithm, protocol, channels) a call uses: given ones are validated, 'auto' ones chosen."""
        key = (op, tuple(ranks), size_bytes, algo, proto, channels)
        if self.model.tuner == "estimate" or not _hashable(key):
            # the estimate tuner times the plans on the links' current capacity, so its choice is not kept (and a
            # malformed argument goes straight to the checks that name it)
            return self._choose(op, ranks, size_bytes, algo, proto, channels)
        hit = self._choices.get(key)
        if hit is None:     # NCCL's tuner decides from what its topology search found once: kept per call shape
            hit = self._choose(op, ranks, size_bytes, algo, proto, channels)
            if len(self._choices) >= 4096:
                self._choices.clear()
            self._choices[key] = hit
        return hit

    def _choose(self, op, ranks, size_bytes, algo, proto, channels) -> Choice:
        if len(ranks) < 2:
            raise GpusimError("ranks", f"a collective needs at least 2 ranks, got {len(ranks)}")
        channels = self.model.channels if channels is None else channels
        if not isinstance(channels, int) or not 1 <= channels <= 64:
            raise GpusimError("channels", f"expected an integer 1..64, got {channels!r}")
        algos = ALGOS_FOR[op]
        if algo != "auto" and algo not in algos:
            raise unknown("algo", algo, [*algos, "auto"], f"algorithm for {op}")
        if proto != "auto" and proto not in PROTOCOLS:
            raise unknown("proto", proto, [*PROTOCOLS, "auto"], "protocol")
        if op in ("all_to_all", "sendrecv"):      # NCCL picks a send's protocol by its bytes per channel
            if proto == "auto":
                per_peer = size_bytes / len(ranks) if op == "all_to_all" else size_bytes
                proto = self.model.p2p_protocol(per_peer, len(ranks), len(self.planner.servers(ranks)) > 1, channels)
            return Choice("direct", proto, channels)
        if algo == "nvls":       # NCCL runs NVLS with Simple only (physics.md §1.5); a forced LL would be ignored
            if proto not in ("auto", "Simple"):
                raise GpusimError("proto", f"nvls runs only the Simple protocol, got {proto}; use proto Simple or auto")
            if "Simple" not in self.model.allowed_protocols:
                raise GpusimError("algos", "nvls runs only the Simple protocol, which the cost model's protocols "
                                           f"({', '.join(self.model.allowed_protocols)}) leave out")
            return Choice("nvls", "Simple", channels)
        if algo == "auto" or proto == "auto":
            if self.model.tuner == "nccl" and op in ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce"):
                got = self._nccl_choice(op, ranks, size_bytes, algo, proto)
            else:
                got = self._estimate_choice(op, ranks, size_bytes, algo, proto, channels)
            algo, proto = got
        return Choice(algo, proto, channels)

    def nccl_system(self, ranks: list[str]) -> nm.NcclSystem:
        """What NCCL's topology search would report for these ranks on this fabric, on the model's channels: its
        tuner decides with that whatever NCCL_MIN/MAX_NCHANNELS then hold a call to (on 1, 2, 4 and 8 forced
        channels it switched from LL to Simple at 2 MiB over NVLink and 512 KiB over SHM, as on its own 24 and 4;
        validation/data/h200/extra/probe_channel_protocols)."""
        channels = self.model.channels
        key = tuple(ranks)
        hit = self._systems.get(key)
        if hit:
            return hit
        groups = self.planner.servers(ranks)
        ppn = len(groups[0])
        equal = all(len(g) == ppn for g in groups)
        n_nodes = len(groups) if equal else 1
        first = groups[0]
        intra = "nvlink"
        bw_intra = bw_inter = None
        if len(first) > 1:
            a, b = first[0], first[1]
            intra = "nvlink" if self.planner.hw(a, b) == "nvlink" else "pci"
            bw_intra = self.fabric.path_capacity_Bps(a, b) / channels / 1e9
        if len(groups) > 1:
            a, b = groups[0][0], groups[1][0]
            bw_inter = self.fabric.path_capacity_Bps(a, b) * ppn / channels / 1e9
            bw_intra = bw_intra or bw_inter
        if self.model.graph_bw_Bps is not None:      # what NCCL's search reported, not what the links achieve
            channels = self.model.graph_channels
            bw_intra = self.model.graph_bw_Bps / 1e9
            bw_inter = bw_intra if bw_inter is not None else None
        system = nm.NcclSystem(n_ranks=len(ranks), n_nodes=n_nodes, n_channels=channels, bw_intra_GBps=bw_intra,
                               bw_inter_GBps=bw_inter, intra=intra, arch=self.model.arch, cpu=self.model.cpu,
                               nvls=self.model.nvls and intra == "nvlink" and n_nodes == 1)
        self._systems[key] = system
        return system

    def _nccl_choice(self, op, ranks, size_bytes, algo, proto) -> tuple[str, str]:
        system = self.nccl_system(ranks)
        algos = [nm.Algo.RING, nm.Algo.TREE] + ([nm.Algo.NVLS] if system.nvls else [])
        if algo != "auto":
            algos = [{"ring": nm.Algo.RING, "tree": nm.Algo.TREE, "hierarchical": nm.Algo.RING}[algo]]
        protos = list(self.model.allowed_protocols)
        if proto != "auto":     # forced like NCCL_PROTO, which runs LL128 even where NCCL's default rule leaves it off
            protos = [proto]
            system = replace(system, ll128=True) if proto == "LL128" else system
        choice = nm.choose(op, max(int(size_bytes), 1), system, algos=algos, protos=protos)
        chosen = _OUR_ALGO[choice.algo] if algo == "auto" else algo
        return chosen, str(choice.proto)

    def _estimate_choice(self, op, ranks, size_bytes, algo, proto, channels) -> tuple[str, str]:
        best = None
        for a in ([algo] if algo != "auto" else [x for x in ALGOS_FOR[op] if x not in ("nvls",)]):
            if a == "hierarchical" and algo == "auto" and len(self.planner.servers(ranks)) < 2:
                continue        # not a candidate on one server; forced, its plan says why it cannot run
            for p in ([proto] if proto != "auto" else self.model.allowed_protocols):
                t = self.estimate(op, ranks, size_bytes, a, p, channels, floor=False)
                if best is None or t < best[0]:
                    best = (t, a, p)
        return best[1], best[2]

    # -- timing ---------------------------------------------------------------------------------------------
    def estimate(self, op, ranks, size_bytes, algo, proto, channels, back_to_back: bool = False,
                 floor: bool = True) -> float:
        """Uncontended time from the plan alone (max-min rates of each phase, no event loop); ``back_to_back``:
        per call of a long run of identical calls (:meth:`Planner.plan`); ``floor``: at least the host's issue
        interval (:meth:`CostModel.issue_interval_s`, which does not choose NCCL's algorithm or protocol)."""
        total = self.model.call_overhead_s
        net = self.fabric.net
        for phase in self.planner.plan(op, ranks, size_bytes, algo, proto, channels, back_to_back):
            total += _phase_time(phase, net.capacity)
        return max(total, self.model.issue_interval_s(op, len(ranks))) if floor else total

    def collective(self, op: str, ranks, size_bytes: float, algo: str = "auto", proto: str = "auto",
                   channels: int | None = None, label: str = "", back_to_back: bool = False):
        """simpy process generator; its value is a :class:`CollectiveResult`."""
        op = normalise_op(op)
        names = self.ranks(ranks)
        choice = self.choose(op, names, size_bytes, algo, proto, channels)
        phases = self.planner.plan(op, names, size_bytes, choice.algo, choice.proto, choice.channels, back_to_back)
        return self._execute(op, names, size_bytes, choice, phases, label)

    def _execute(self, op, names, size_bytes, choice, phases: list[Phase], label):
        env = self.fabric.env
        start = env.now
        if self.model.call_overhead_s:
            yield env.timeout(self.model.call_overhead_s)
        for phase in phases:
            yield self.fabric.run_flows(phase.flows, label or phase.label)
        floor = self.model.issue_interval_s(op, len(names))
        if env.now - start < floor:     # the host has not issued the next call yet
            yield env.timeout(floor - (env.now - start))
        return CollectiveResult(op, len(names), size_bytes, choice.algo, choice.proto, choice.channels, start, env.now, label)


def _hashable(key: tuple) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _phase_time(phase: Phase, capacity: np.ndarray) -> float:
    flows = phase.flows
    if not flows:
        return 0.0
    fo, lo, w = incidence(flows)
    rates = max_min_rates(fo, lo, w, capacity, len(flows), np.array([f.cap_Bps for f in flows]))
    sizes = np.array([f.size_bytes for f in flows])
    lat = np.array([f.latency_s for f in flows])
    with np.errstate(divide="ignore"):
        t = np.where(sizes > 0, sizes / rates, 0.0)
    return float(np.max(lat + t))


def measure(fabric: Fabric, model: CostModel, op: str, ranks, size_bytes: float, algo: str = "auto",
            proto: str = "auto", channels: int | None = None, back_to_back: bool = False) -> CollectiveResult:
    """Run one collective alone on a fresh engine state of ``fabric`` and return its result (``back_to_back``:
    as one call of a long run of identical calls, :meth:`Planner.plan`)."""
    fabric.reset()
    coll = Collectives(fabric, model)
    proc = fabric.env.process(coll.collective(op, ranks, size_bytes, algo, proto, channels,
                                              back_to_back=back_to_back))
    fabric.env.run()
    if not proc.triggered:
        raise GpusimError("", f"{op} of {size_bytes:.0f} B never finished: the network stalled (a link is down)")
    return proc.value
