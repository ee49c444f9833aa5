"""A topology graph made into a flow network: link indices, routes as link arrays, path latencies.

This is where names become numbers: each directed edge of the graph gets an index into the network's capacity
array, and ``flow(src, dst, ...)`` turns a routed path into a :class:`FlowSpec` the engine can run.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import simpy

from gpusim.engine.network import FlowNetwork, FlowSpec
from gpusim.errors import GpusimError
from gpusim.topology.graph import capacity_Bps, gpus
from gpusim.topology.routing import Router


class Fabric:
    """Graph + router + flow network on one simpy Environment."""

    def __init__(self, g: nx.DiGraph, env: simpy.Environment | None = None, ecmp: bool = True):
        self.g = g
        self.env = env or simpy.Environment()
        self.router = Router(g, ecmp=ecmp)
        self.edges: list[tuple[str, str]] = list(g.edges())
        self.link_index = {e: i for i, e in enumerate(self.edges)}
        self.latency_s = np.array([g.edges[e]["latency_s"] for e in self.edges], dtype=float)
        self.net = FlowNetwork(self.env, [capacity_Bps(g.edges[e]) for e in self.edges])
        self.gpus = gpus(g)
        # a GPU's send + receive budget, where the topology sets one (technology gpu_io self-loop)
        self.io_link = {u: self.link_index[(u, v)] for u, v, d in g.edges(data=True)
                        if u == v and d["technology"] == "gpu_io"}
        if not self.gpus:
            raise GpusimError("cluster", "the topology has no GPU")
        self._links_cache: dict[tuple, np.ndarray] = {}
        self.route_epoch = 0      # counts route changes (set_link_up): plans made before one are stale

    def reset(self) -> None:
        """A fresh clock and an idle network on the same graph (routes stay cached)."""
        self.env = simpy.Environment()
        self.net = FlowNetwork(self.env, [capacity_Bps(self.g.edges[e]) for e in self.edges])

    # -- names ------------------------------------------------------------------------------------------------
    def gpu(self, rank: int) -> str:
        """Node name of GPU ``rank``."""
        if not 0 <= rank < len(self.gpus):
            raise GpusimError("ranks", f"rank {rank} is outside 0..{len(self.gpus) - 1} ({len(self.gpus)} GPUs in this cluster)")
        return self.gpus[rank]

    def path_links(self, src: str, dst: str, key: int = 0) -> np.ndarray:
        """Link indices along the route from ``src`` to ``dst``, plus both ends' send/receive budgets if set."""
        ck = (src, dst, key if self.router.ecmp else 0)
        hit = self._links_cache.get(ck)
        if hit is None:
            p = self.router.path(src, dst, key)
            ends = [self.io_link[n] for n in (src, dst) if n in self.io_link and src != dst]
            hit = np.array([self.link_index[e] for e in zip(p, p[1:])] + ends, dtype=np.int64)
            self._links_cache[ck] = hit
        return hit

    def path_latency_s(self, src: str, dst: str, key: int = 0) -> float:
        return float(self.latency_s[self.path_links(src, dst, key)].sum())

    def path_capacity_Bps(self, src: str, dst: str, key: int = 0) -> float:
        """Bottleneck capacity along the route (nothing else running)."""
        links = self.path_links(src, dst, key)
        return float(self.net.capacity[links].min()) if links.size else np.inf

    # -- flows -------------------------------------------------------------------------------------------------
    def flow(self, src: str, dst: str, size_bytes: float, latency_s: float | None = None, key: int = 0,
             cap_Bps: float = np.inf, label: str = "", carried: float = 1.0) -> FlowSpec:
        """A point-to-point transfer along the routed path (latency defaults to the path's); ``carried``: link bytes
        per byte of ``size_bytes`` (:class:`FlowSpec`)."""
        links = self.path_links(src, dst, key)
        lat = float(self.latency_s[links].sum()) if latency_s is None else latency_s
        return FlowSpec(links, size_bytes, lat, cap_Bps=cap_Bps, label=label, hops=[(src, dst)], carried=carried)

    def coupled_flow(self, hops: list[tuple[str, str]], size_bytes: float, latency_s: float,
                     cap_Bps: float = np.inf, label: str = "", key: int = 0, carried: float = 1.0) -> FlowSpec:
        """One flow that moves ``size_bytes`` over every hop at a common rate (a pipelined ring/chain)."""
        parts = [self.path_links(a, b, key) for a, b in hops]
        links = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return FlowSpec(links, size_bytes, latency_s, cap_Bps=cap_Bps, label=label, hops=list(hops),
                        carried=carried)

    def run_flows(self, specs: list[FlowSpec], label: str = ""):
        """Submit as one group; a simpy event to yield on."""
        return self.net.submit(specs, label).done

    # -- link state --------------------------------------------------------------------------------------------
    def set_link_capacity(self, u: str, v: str, capacity_Bps: float, both: bool = True) -> None:
        """Change a link's capacity from now on (both directions by default); 0 stalls the flows crossing it."""
        for e in ((u, v), (v, u)) if both else ((u, v),):
            self.net.set_capacity(self.link_index[e], capacity_Bps)

    def reroute_flows_on(self, u: str, v: str) -> int:
        """Give every active flow that crosses link (u, v) in either direction a fresh route; returns how many moved."""
        moved = 0
        for e in ((u, v), (v, u)):
            for group, i in self.net.flows_on(self.link_index[e]):
                spec = group.specs[i]
                if spec.hops is None:
                    continue
                links = np.concatenate([self.path_links(a, b) for a, b in spec.hops])
                self.net.reroute(group, i, links)
                moved += 1
        return moved

    def set_link_up(self, u: str, v: str, up: bool) -> None:
        """Tell routing whether the link (both directions) may carry new routes; existing flows keep their path."""
        for e in ((u, v), (v, u)):
            self.g.edges[e]["up"] = up
        self.router.invalidate()
        self._links_cache.clear()
        self.route_epoch += 1
