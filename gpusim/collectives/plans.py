"""Collective algorithms as flows: each (operation, algorithm) becomes phases of flows for the engine.

The fluid view of a pipelined algorithm: once chunks stream, every hop of a ring (or edge of a tree) moves bytes
at one common rate, set by the slowest hop and by whatever else shares those links. So each *channel* of a ring is
one coupled flow over all its hops (:meth:`Fabric.coupled_flow`), carrying the bytes each rank must forward, and
its latency is the pipeline's fill: ``steps x per-hop latency``. Uncontended this is exactly

    ring all_reduce   T = base + 2(n-1) * h + 2(n-1)/n * S / B      (h: per-hop latency, B: hop bandwidth)
    ring all_gather / reduce_scatter (S = total buffer)  T = base + (n-1) * h + (n-1)/n * S / B
    ring broadcast / reduce (pipelined chain)            T = base + (n-1) * h + S / B

with payload divided by the protocol's wire efficiency and multiplied by the straggler factor of the call's n
ranks (``CostModel.straggler_factor``: 1 unless the model has a rate spread), and each channel's rate capped by its
protocol (NCCL's LL, LL128 and Tree caps; a ring channel's measured rate, ``CostModel.ring_channel_Bps``). Tree
all_reduce follows NCCL: a chain inside each server and a double binary tree across servers, reduce and broadcast
pipelined (every tree edge carries S/2 each way).
Hierarchical two-level: reduce-scatter inside servers, all-reduce across servers per rail, all-gather inside.
NVLS: every GPU sends S into the NVSwitch and receives S back (in-switch reduction and multicast).
all_to_all is direct (every pair at once); sendrecv is nccl-tests' ring shift. Both are NCCL point-to-point
transfers, each striped over as many channels as NCCL gives it (:func:`nccl_model.p2p_channels`: fewer per peer
on more ranks) and capped at that many times one channel's rate where the model has one. Where the cost model has
an own-chunk rate, a flat ring all_reduce / all_gather / reduce_scatter and an all_to_all end with each rank's pass
over its own chunk (S/n), a phase on no link.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpusim.collectives import nccl_model as nm
from gpusim.collectives.cost_model import OPS, CostModel
from gpusim.engine.fabric import Fabric
from gpusim.engine.network import FlowSpec
from gpusim.errors import GpusimError

#: NVLS all_reduce moves S out of each GPU's NVSwitch ports and S back (multimem reduce, then multicast) at this share
#: of the rate a ring gets from them, from busbw with and without NVLS on 8 GPUs (physics.md §3.2): H100 480 GB/s
#: where rings reach 370 (nccl-tests #212): 480 / 370 / (2 x 7/8) = 0.74; B300 845 where 695 (nccl #2140): 0.69.
#: NCCL's nvlsEfficiency (0.85, 0.74) scales its tuner's own bandwidth figure, not the ports' rate.
NVLS_PORT_EFFICIENCY = {"hopper": 0.74, "blackwell": 0.69}

ALGOS_FOR = {
    "all_reduce": ("ring", "tree", "hierarchical", "nvls"),
    "all_gather": ("ring", "hierarchical"),
    "reduce_scatter": ("ring", "hierarchical"),
    "broadcast": ("ring",),
    "reduce": ("ring",),
    "all_to_all": ("direct",),
    "sendrecv": ("direct",),
}
#: NCCL point-to-point operations: each pair's send is striped over NCCL's channels per peer (p2p_cap_Bps)
P2P_OPS = ("all_to_all", "sendrecv")
_HW_OF_TRANSPORT = {"nvlink": "nvlink", "p2p": "pci", "shm": "pci", "net": "net", "direct": "net"}
MAX_DIRECT_PAIRS = 1_100_000
#: Plans are kept for the next identical call (a repeated job, a training loop), up to this many flows in all
CACHED_PLAN_FLOWS = 65536


@dataclass
class Phase:
    """Flows that run together; the next phase starts when all have arrived."""

    flows: list[FlowSpec]
    label: str = ""


class Planner:
    """Turns collectives into phases on one fabric, caching ring orders and hop latencies."""

    def __init__(self, fabric: Fabric, model: CostModel):
        self.fabric = fabric
        self.model = model
        self._hw: dict[tuple[str, str], str] = {}
        self._plans: dict[tuple, list[Phase]] = {}
        self._cached_flows = 0

    # -- helpers --------------------------------------------------------------------------------------------
    def hw(self, a: str, b: str) -> str:
        key = (a, b)
        hit = self._hw.get(key)
        if hit is None:
            hit = self._hw[key] = _HW_OF_TRANSPORT[self.fabric.router.transport(a, b)]
        return hit

    def hop_latency_s(self, a: str, b: str, algo: str, proto: str) -> float:
        return self.fabric.path_latency_s(a, b) + self.model.step_latency_s(algo, proto, self.hw(a, b))

    def servers(self, ranks: list[str]) -> list[list[str]]:
        """Ranks grouped by server, groups in order of first appearance."""
        groups: dict = {}
        for r in ranks:
            groups.setdefault(self.fabric.g.nodes[r].get("server", r), []).append(r)
        return list(groups.values())

    def ring_order(self, ranks: list[str], channel: int) -> list[str]:
        """Channel ``channel``'s ring: servers in order; inside each, rotated by the channel and reversed on odd
        servers, so consecutive servers meet on the same local rank (same rail) and channels use different NICs."""
        groups = self.servers(ranks)
        if len(groups) == 1 or all(len(g) == 1 for g in groups):
            return list(ranks)
        order = []
        for s, grp in enumerate(groups):
            k = channel % len(grp)
            rot = grp[k:] + grp[:k]
            order.extend(rot if s % 2 == 0 else [rot[-1]] + rot[:-1][::-1])
        return order

    def _carried(self, proto: str, op: str, n: int) -> float:
        """Link bytes per byte of a flow of ``op`` on ``n`` ranks: its size is payload over the protocol's wire
        efficiency (bytes a link does carry: LL's flags) and over the op's bandwidth scale and the straggler
        factor (slowdowns that carry none)."""
        return self.model.efficiency(proto, op, n) / self.model.payload_efficiency[proto]

    def _cap(self, algo: str, proto: str, n_nodes: int, channels: int, op: str) -> float:
        """A channel's payload-rate cap as a wire rate. Without the straggler factor, which the flow's bytes carry:
        a capped flow waits for its slowest rank too."""
        return self.model.channel_cap_Bps(algo, proto, n_nodes, channels, op) / self.model.efficiency(proto, op)

    # -- plans ----------------------------------------------------------------------------------------------
    def plan(self, op: str, ranks: list[str], size_bytes: float, algo: str, proto: str, channels: int,
             back_to_back: bool = False) -> list[Phase]:
        """Phases of one call; ``back_to_back``: of one call in a long run of identical calls, as nccl-tests times
        them, where a pipelined chain (broadcast, reduce) starts the next call once its slowest hop is free, so
        its latency is that hop's rather than the whole chain's. An identical call on unchanged routes gets a copy
        of the plan made the first time (the engine may reroute a flow it was given)."""
        key = (op, tuple(ranks), size_bytes, algo, proto, channels, back_to_back, self.fabric.route_epoch)
        phases = self._plans.get(key)
        if phases is None:
            phases = self._plan(op, ranks, size_bytes, algo, proto, channels, back_to_back)
            flows = sum(len(ph.flows) for ph in phases)
            if flows > CACHED_PLAN_FLOWS:
                return phases
            if self._cached_flows + flows > CACHED_PLAN_FLOWS:     # start over rather than grow without bound
                self._plans.clear()
                self._cached_flows = 0
            self._plans[key] = phases
            self._cached_flows += flows
        return [Phase([f.copy() for f in ph.flows], ph.label) for ph in phases]

    def _plan(self, op, ranks, size_bytes, algo, proto, channels, back_to_back) -> list[Phase]:
        n = len(ranks)
        if n < 2 or size_bytes == 0 and op != "sendrecv":
            return []
        if algo == "ring":
            if op in ("broadcast", "reduce"):
                return [self._chain(ranks, size_bytes, proto, channels, op, back_to_back)]
            return [self._ring(op, ranks, size_bytes, proto, channels)] + self._own_chunk(op, ranks, size_bytes, channels)
        if algo == "tree":
            return [self._tree(ranks, size_bytes, proto, channels)]
        if algo == "hierarchical":
            return self._hierarchical(op, ranks, size_bytes, proto, channels)
        if algo == "nvls":
            return [self._nvls(ranks, size_bytes)]
        if op == "all_to_all":
            return [self._all_to_all(ranks, size_bytes, proto, channels)] + self._own_chunk(op, ranks, size_bytes,
                                                                                           channels)
        return [self._sendrecv(ranks, size_bytes, proto, channels)]

    def _ring(self, op, ranks, size_bytes, proto, channels, label="ring") -> Phase:
        n = len(ranks)
        steps = 2 * (n - 1) if op == "all_reduce" else n - 1
        per_rank = steps / n * size_bytes / channels / self.model.efficiency(proto, op, n)
        n_nodes = len(self.servers(ranks))
        cap = self._cap("ring", proto, n_nodes, channels, op)
        base = self.model.base_latency_s("ring", proto)
        carried = self._carried(proto, op, n)
        flows = []
        orders = {}
        for c in range(channels):
            order = self.ring_order(ranks, c)
            key = tuple(order)
            if key not in orders:
                hops = list(zip(order, order[1:] + order[:1]))
                mean_h = np.mean([self.hop_latency_s(a, b, "ring", proto) for a, b in hops])
                orders[key] = (hops, base + steps * mean_h)
            hops, lat = orders[key]
            flows.append(self.fabric.coupled_flow(hops, per_rank, lat, cap_Bps=cap, label=f"{label}[{c}]",
                                                  carried=carried))
        return Phase(flows, label)

    def _own_chunk(self, op, ranks, size_bytes, channels) -> list[Phase]:
        """The rank's pass over its own chunk (S/n) at the model's ``own_chunk_Bps[op]``, after the transfer, on
        no link (so without contention); no phase where the model has none for ``op``."""
        rate = self.model.own_chunk_rate(op)
        if rate == float("inf"):
            return []
        per_channel = size_bytes / len(ranks) / channels
        return [Phase([self.fabric.coupled_flow([], per_channel, 0.0, cap_Bps=rate / channels, label=f"own[{c}]")
                       for c in range(channels)], "own-chunk")]

    def _chain(self, ranks, size_bytes, proto, channels, op, back_to_back=False) -> Phase:
        """Pipelined chain from the root (rank 0 of ``ranks``) along the ring; reduce runs it backwards."""
        per_channel = size_bytes / channels / self.model.efficiency(proto, op, len(ranks))
        cap = self._cap("ring", proto, len(self.servers(ranks)), channels, op)
        base = self.model.base_latency_s("ring", proto)
        flows = []
        for c in range(channels):
            order = self.ring_order(ranks, c)
            hops = list(zip(order, order[1:]))
            if op == "reduce":
                hops = [(b, a) for a, b in reversed(hops)]
            hop_lat = [self.hop_latency_s(a, b, "ring", proto) for a, b in hops]
            lat = base + (max(hop_lat) if back_to_back else sum(hop_lat))
            flows.append(self.fabric.coupled_flow(hops, per_channel, lat, cap_Bps=cap, label=f"{op}[{c}]",
                                                  carried=self._carried(proto, op, len(ranks))))
        return Phase(flows, op)

    def tree_edges(self, ranks: list[str], tree: int) -> list[tuple[str, str]]:
        """(child, parent) edges of tree 0 or 1: chains inside servers, a binary tree across server heads;
        tree 1 mirrors the server numbering and the chains (NCCL's double binary tree, src/graph/trees.cc)."""
        groups = self.servers(ranks)
        if tree == 1:
            groups = [g[::-1] for g in groups[::-1]]
        edges = []
        for grp in groups:
            edges.extend((grp[k + 1], grp[k]) for k in range(len(grp) - 1))
        for i in range(1, len(groups)):
            edges.append((groups[i][0], groups[(i - 1) // 2][0]))
        return edges

    def _tree(self, ranks, size_bytes, proto, channels) -> Phase:
        trees = 2 if channels > 1 else 1
        per_channel = size_bytes / channels / self.model.efficiency(proto, "all_reduce", len(ranks))
        n_nodes = len(self.servers(ranks))
        cap = self._cap("tree", proto, n_nodes, channels, "all_reduce")
        base = self.model.base_latency_s("tree", proto)
        flows = []
        for c in range(channels):
            edges = self.tree_edges(ranks, c % trees)
            depth = _depth_latency(edges, lambda a, b: self.hop_latency_s(a, b, "tree", proto))
            hops = edges + [(p, ch) for ch, p in edges]
            flows.append(self.fabric.coupled_flow(hops, per_channel, base + 2 * depth, cap_Bps=cap, label=f"tree[{c}]",
                                                  carried=self._carried(proto, "all_reduce", len(ranks))))
        return Phase(flows, "tree")

    def _hierarchical(self, op, ranks, size_bytes, proto, channels) -> list[Phase]:
        groups = self.servers(ranks)
        m = len(groups[0])
        if len(groups) == 1 or any(len(g) != m for g in groups):
            raise GpusimError("algo", "hierarchical needs ranks on two or more servers with the same number on each; "
                                      "use ring or tree")
        rails = [[g[i] for g in groups] for i in range(m)]
        # inside each server before and after the across-server step (all_gather: across first, then inside)
        before, after = {"all_reduce": ("reduce_scatter", "all_gather"), "all_gather": (None, "all_gather"),
                         "reduce_scatter": ("reduce_scatter", None)}[op]

        def intra(kind):
            flows = [f for grp in groups for f in self._ring(kind, grp, size_bytes, proto, channels, f"intra-{kind}").flows]
            return Phase(flows, f"intra-{kind}")

        inter = Phase([f for rail in rails
                       for f in self._ring(op, rail, size_bytes / m, proto, channels, f"inter-{op}").flows], f"inter-{op}")
        return ([intra(before)] if before and m > 1 else []) + [inter] + ([intra(after)] if after and m > 1 else [])

    def _nvls(self, ranks, size_bytes) -> Phase:
        if nm.ARCHS[self.model.arch][1] < 90:
            raise GpusimError("algo", f"nvls needs NVLink SHARP, on Hopper NVSwitches and later; this cluster's "
                                      f"GPUs are {self.model.arch}: use ring or tree")
        servers = len(self.servers(ranks))
        if servers > 1:
            raise GpusimError("algo", f"nvls reduces inside one server's NVSwitch and these ranks span {servers} "
                                      f"servers (NCCL's NVLSTree across servers is not modelled): use ring, tree or "
                                      f"hierarchical")
        flows = []
        eff = NVLS_PORT_EFFICIENCY[self.model.arch]
        # NVLS per-call latency: hwLatencies[NVLINK][NVLS][Simple] = 25 us (tuning.cc), base latency not added
        lat = 25e-6 * self.model.step_scale("Simple") if self.model.use_nccl_latencies else 0.0
        for r in ranks:
            nvsw = [v for v in self.fabric.g.adj[r] if self.fabric.g.nodes[v]["kind"] == "nvswitch"]
            if not nvsw:
                raise GpusimError("algo", f"nvls needs every rank on an NVSwitch; '{r}' has none")
            hops = [(r, nvsw[0]), (nvsw[0], r)]
            flows.append(self.fabric.coupled_flow(hops, size_bytes / eff, lat, label="nvls"))
        return Phase(flows, "nvls")

    def _all_to_all(self, ranks, size_bytes, proto, channels) -> Phase:
        n = len(ranks)
        if n * (n - 1) > MAX_DIRECT_PAIRS:
            raise GpusimError("ranks", f"direct all_to_all on {n} ranks is {n * (n - 1)} flows; at most "
                                       f"{MAX_DIRECT_PAIRS} are supported")
        eff = self.model.efficiency(proto, "all_to_all", n)
        per_pair = size_bytes / n / eff
        cap = min(self.model.p2p_cap_Bps(size_bytes / n, n, len(self.servers(ranks)) > 1, channels),
                  self.model.p2p_budget_Bps(channels) / (n - 1)) \
            / self.model.efficiency(proto, "all_to_all")     # a GPU's sends share its p2p channels (wire rate, as _cap)
        base = self.model.base_latency_s("ring", proto)
        carried = self._carried(proto, "all_to_all", n)
        flows = [self.fabric.flow(a, b, per_pair, base + self.hop_latency_s(a, b, "ring", proto), cap_Bps=cap,
                                  label="a2a", carried=carried)
                 for a in ranks for b in ranks if a != b]
        return Phase(flows, "all_to_all")

    def _sendrecv(self, ranks, size_bytes, proto, channels) -> Phase:
        """nccl-tests sendrecv: rank i sends S to rank i+1 (ring shift); two ranks: both directions."""
        n = len(ranks)
        base = self.model.base_latency_s("ring", proto)
        eff = self.model.efficiency(proto, "sendrecv", n)
        cap = self.model.p2p_cap_Bps(size_bytes, n, len(self.servers(ranks)) > 1, channels) \
            / self.model.efficiency(proto, "sendrecv")       # a wire rate, as _cap
        carried = self._carried(proto, "sendrecv", n)
        flows = []
        for i, a in enumerate(ranks):
            b = ranks[(i + 1) % n]
            flows.append(self.fabric.flow(a, b, size_bytes / eff, base + self.hop_latency_s(a, b, "ring", proto),
                                          cap_Bps=cap, label="sendrecv", carried=carried))
        return Phase(flows, "sendrecv")


def _depth_latency(edges: list[tuple[str, str]], hop) -> float:
    """Largest sum of hop latencies from any node up to the root of a (child, parent) edge list."""
    parent = dict(edges)
    memo: dict[str, float] = {}

    def up(node):
        if node not in parent:
            return 0.0
        if node not in memo:
            memo[node] = hop(node, parent[node]) + up(parent[node])
        return memo[node]

    return max((up(c) for c in parent), default=0.0)
