"""Paths between nodes, chosen the way NCCL chooses a GPU-to-GPU transport.

For a pair of GPUs, in order of preference (NCCL's P2P > SHM > NET, src/transport.cc):
  1. NVLink: through NVSwitches (or a direct NVLink), never through another GPU;
  2. PCIe peer-to-peer: through PCIe switches / root complexes that allow P2P (``p2p`` true);
  3. host memory: up to the shared host, through its memory (the ``memory`` self-loop), down again;
  4. network: to the nearest NIC over PCIe (GPUDirect RDMA), across switches/FSO terminals, down to the GPU.
Graphs with ``routing: shortest`` (the analytical shapes) use one plain fewest-hop path instead.

Network paths are computed once per pair of NIC attachment switches (cached); with ``ecmp`` a pair's flows are
spread over all equal-cost paths by a deterministic hash of (source, destination, flow key). Links marked down
(``up`` false) or, unless the primaries are down, marked ``backup`` are avoided; call :meth:`Router.invalidate`
after changing link state.
"""
from __future__ import annotations

import zlib
from collections import deque

import networkx as nx

from gpusim.errors import GpusimError

Path = list[str]  # node sequence; consecutive pairs are directed edges (a self-loop appears as a repeated node)

_CORE_KINDS = {"switch", "fso_terminal"}


class Router:
    """Routes on one topology graph; all answers are cached until :meth:`invalidate`."""

    def __init__(self, g: nx.DiGraph, ecmp: bool = False):
        self.g = g
        self.ecmp = ecmp
        self.invalidate()

    def invalidate(self) -> None:
        """Forget cached paths (after links went up or down)."""
        self._cache: dict[tuple, Path] = {}
        self._core_paths: dict[tuple[str, str], list[Path]] = {}
        self._attach: dict[str, tuple[str, Path]] = {}
        self._core_graphs: dict[bool, nx.DiGraph] = {}
        self._islands: dict[str, int] | None = None
        self._all_up: bool | None = None

    # -- public -------------------------------------------------------------------------------------------
    def path(self, src: str, dst: str, key: int = 0) -> Path:
        """Node path from ``src`` to ``dst`` (GPU names or any nodes); ``key`` picks among ECMP paths."""
        if src == dst:
            return [src]
        ck = (src, dst, key if self.ecmp else 0)
        p = self._cache.get(ck)
        if p is None:
            p = self._compute(src, dst, key)
            self._cache[ck] = p
        return p

    def transport(self, src: str, dst: str) -> str:
        """Which NCCL-like transport the GPU pair uses: 'nvlink', 'p2p', 'shm', 'net' (or 'direct' on shapes)."""
        p = self.path(src, dst)
        if self.g.graph.get("routing") == "shortest":
            return "direct"
        techs = [self.g.edges[u, v]["technology"] for u, v in zip(p, p[1:])]
        if "memory" in techs:
            return "shm"
        if any(t.startswith("nvlink") for t in techs):
            return "nvlink"
        if all(t.startswith("pcie") for t in techs):
            return "p2p"
        return "net"

    # -- tiers ----------------------------------------------------------------------------------------------
    def _compute(self, src: str, dst: str, key: int) -> Path:
        g = self.g
        for n in (src, dst):
            if n not in g:
                raise GpusimError("route", f"no node named '{n}'")
        if g.graph.get("routing") == "shortest":
            return self._shortest(src, dst, key)
        both_gpu = g.nodes[src]["kind"] == "gpu" and g.nodes[dst]["kind"] == "gpu"
        same_island = self._island(src) == self._island(dst)
        if same_island:     # NVLink also joins a GPU to its NVSwitch (NVLS sends into the switch)
            p = self._bfs(src, dst, lambda t: t.startswith("nvlink"), lambda n, d: d["kind"] == "nvswitch")
            if p:
                return p
        if both_gpu and same_island:
            p = self._bfs(src, dst, lambda t: t.startswith("pcie"),
                          lambda n, d: d["kind"] in ("pcie_switch", "host") and d.get("p2p", False))
            if p:
                return p
            p = self._via_host_memory(src, dst)
            if p:
                return p
        return self._network(src, dst, key)

    def _island(self, node: str) -> int:
        """Id of the set of nodes joined by NVLink, PCIe or host memory (a server): only GPUs on the same island can
        skip the network, so the local tiers are not searched for pairs on different islands."""
        if self._islands is None:
            self._islands = {}
            local = ("nvlink", "pcie", "memory")
            for start in self.g.nodes:
                if start in self._islands:
                    continue
                self._islands[start] = len(self._islands)
                ident, queue = self._islands[start], deque([start])
                while queue:
                    u = queue.popleft()
                    for v, d in self.g.adj[u].items():
                        if v not in self._islands and d["technology"].startswith(local):
                            self._islands[v] = ident
                            queue.append(v)
        return self._islands[node]

    def _usable(self, u: str, v: str, d: dict) -> bool:
        return d.get("up", True)

    def _bfs(self, src: str, dst: str, tech_ok, transit_ok) -> Path | None:
        """Fewest-hop path using only edges whose technology passes ``tech_ok`` and transit nodes passing ``transit_ok``."""
        g = self.g
        prev = {src: None}
        queue = deque([src])
        while queue:
            u = queue.popleft()
            if u != src and not transit_ok(u, g.nodes[u]):
                continue
            for v, d in g.adj[u].items():
                if v in prev or v == u or not tech_ok(d["technology"]) or not self._usable(u, v, d):
                    continue
                prev[v] = u
                if v == dst:
                    out = [dst]
                    while prev[out[-1]] is not None:
                        out.append(prev[out[-1]])
                    return out[::-1]
                queue.append(v)
        return None

    def _via_host_memory(self, src: str, dst: str) -> Path | None:
        """GPU -> host -> (memory) -> host -> GPU over PCIe, when both hang off the same host."""
        pcie = lambda t: t.startswith("pcie")  # noqa: E731
        transit = lambda n, d: d["kind"] == "pcie_switch"  # noqa: E731
        hosts = [n for n in self._reachable(src, pcie, transit) if self.g.nodes[n]["kind"] == "host"]
        for host in hosts:
            if not self.g.has_edge(host, host) or not self.g.edges[host, host].get("up", True):
                continue
            up = self._bfs(src, host, pcie, transit)
            down = self._bfs(host, dst, pcie, transit)
            if up and down:
                return up + down  # host appears twice: the memory self-loop
        return None

    def _reachable(self, src, tech_ok, transit_ok) -> list[str]:
        seen, queue, order = {src}, deque([src]), []
        while queue:
            u = queue.popleft()
            order.append(u)
            if u != src and not transit_ok(u, self.g.nodes[u]):
                continue
            for v, d in self.g.adj[u].items():
                if v not in seen and v != u and tech_ok(d["technology"]) and self._usable(u, v, d):
                    seen.add(v)
                    queue.append(v)
        return order

    def _attachment(self, node: str) -> tuple[str, Path]:
        """(first core switch, path node -> that switch) for a GPU/NIC/host: nearest NIC over PCIe, then its uplink."""
        hit = self._attach.get(node)
        if hit:
            return hit
        g = self.g
        kind = g.nodes[node]["kind"]
        if kind in _CORE_KINDS:
            hit = (node, [node])
        else:
            nic_path = [node] if kind == "nic" else None
            if nic_path is None:
                pcie = lambda t: t.startswith("pcie")  # noqa: E731
                transit = lambda n, d: d["kind"] in ("pcie_switch", "host")  # noqa: E731
                nics = [n for n in self._reachable(node, pcie, transit) if g.nodes[n]["kind"] == "nic"]
                # prefer the NIC on the GPU's own rail, then the nearest (BFS order)
                rail = g.nodes[node].get("local_rank")
                nics.sort(key=lambda n: 0 if g.nodes[n].get("rail") == rail else 1)
                for nic in nics:
                    nic_path = self._bfs(node, nic, pcie, transit)
                    if nic_path:
                        break
            if not nic_path:
                raise GpusimError("route", f"'{node}' has no network path: no NIC reachable over PCIe")
            nic = nic_path[-1]
            ups = [v for v, d in g.adj[nic].items() if g.nodes[v]["kind"] in _CORE_KINDS and d.get("up", True)]
            if not ups:
                raise GpusimError("route", f"NIC '{nic}' is not cabled to any switch")
            hit = (ups[0], nic_path + [ups[0]])
        self._attach[node] = hit
        return hit

    def _core(self, a: str, b: str) -> list[Path]:
        """All cheapest paths between two core switches through switches/FSO terminals (backups last resort)."""
        hit = self._core_paths.get((a, b))
        if hit is not None:
            return hit
        paths = self._core_search(a, b, allow_backup=False) or self._core_search(a, b, allow_backup=True)
        if not paths:
            raise GpusimError("route", f"no network path from '{a}' to '{b}' (links down or not cabled)")
        self._core_paths[(a, b)] = paths
        return paths

    def _core_graph(self, allow_backup: bool) -> nx.DiGraph:
        """The switches and FSO terminals with their usable links, as a small graph of its own (cached)."""
        hit = self._core_graphs.get(allow_backup)
        if hit is None:
            g = self.g
            hit = nx.DiGraph()
            core = [n for n, d in g.nodes(data=True) if d["kind"] in _CORE_KINDS]
            hit.add_nodes_from(core)
            for u in core:
                for v, d in g.adj[u].items():
                    if (g.nodes[v]["kind"] in _CORE_KINDS and d.get("up", True)
                            and (allow_backup or not d.get("backup", False))):
                        hit.add_edge(u, v, cost=d.get("cost", 1.0))
            self._core_graphs[allow_backup] = hit
        return hit

    def _core_search(self, a: str, b: str, allow_backup: bool) -> list[Path]:
        try:
            return sorted(nx.all_shortest_paths(self._core_graph(allow_backup), a, b, weight="cost"))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return []

    def _network(self, src: str, dst: str, key: int) -> Path:
        sa, up = self._attachment(src)
        sb, down = self._attachment(dst)
        candidates = self._core(sa, sb) if sa != sb else [[sa]]
        core = candidates[_hash(src, dst, key) % len(candidates)] if self.ecmp else candidates[0]
        return up[:-1] + core + down[::-1][1:]

    def _shortest(self, src: str, dst: str, key: int) -> Path:
        """One fewest-hop path (analytical shapes have one, or a mirror pair on even rings). A direct link, or a
        single node joining the two (the switch of a star), is that path; anything else is searched."""
        g = self.g
        if g.has_edge(src, dst) and g.edges[src, dst].get("up", True):
            return [src, dst]
        joins = [m for m, d in g.adj[src].items() if d.get("up", True) and m != src and g.has_edge(m, dst)
                 and g.edges[m, dst].get("up", True)]
        if len(joins) == 1:
            return [src, joins[0], dst]
        if self._all_up is None:
            self._all_up = all(d.get("up", True) for _, _, d in self.g.edges(data=True))
        # the same search on the graph itself when no link is down: a filtered view costs a Python call per edge
        view = self.g if self._all_up else \
            nx.subgraph_view(self.g, filter_edge=lambda u, v: self.g.edges[u, v].get("up", True))
        try:
            return nx.bidirectional_shortest_path(view, src, dst)
        except nx.NetworkXNoPath:
            raise GpusimError("route", f"no path from '{src}' to '{dst}'") from None


def _hash(src: str, dst: str, key: int) -> int:
    """Deterministic across runs and machines (unlike Python's salted hash())."""
    return zlib.crc32(f"{src}>{dst}#{key}".encode())


def edges_of(path: Path) -> list[tuple[str, str]]:
    """Directed edges along a node path (a repeated node is the host-memory self-loop)."""
    return list(zip(path, path[1:]))
