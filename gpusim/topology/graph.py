"""The cluster as a networkx DiGraph with typed nodes and full-duplex links.

Nodes carry ``kind`` (one of :data:`NODE_KINDS`) and, where it applies, ``server`` (index of the server they sit
in), ``rank`` (GPUs: their global index), ``p2p`` (pcie_switch/host: whether peer-to-peer traffic may pass
through). Every link is two directed edges, one per direction, each with its own ``bandwidth_Bps``,
``efficiency``, ``latency_s`` and ``technology`` (see :mod:`gpusim.links.technology`), plus a routing ``cost``
(lower is preferred) and ``backup`` (used only when the primary path is down). Host-memory staging is a self-loop
edge ``(host, host)`` of technology ``memory``.
"""
from __future__ import annotations

import networkx as nx

from gpusim.errors import GpusimError
from gpusim.links.technology import LinkSpec

NODE_KINDS = ("gpu", "nvswitch", "pcie_switch", "host", "nic", "switch", "fso_terminal")


def new_topology(name: str, **graph_attrs) -> nx.DiGraph:
    """An empty topology graph; ``routing`` is 'nccl' (tiered GPU path choice) or 'shortest' (analytical shapes)."""
    g = nx.DiGraph(name=name, routing=graph_attrs.pop("routing", "nccl"), **graph_attrs)
    return g


def add_node(g: nx.DiGraph, name: str, kind: str, **attrs) -> str:
    if kind not in NODE_KINDS:
        raise GpusimError("node.kind", f"unknown node kind '{kind}'; accepted: {', '.join(NODE_KINDS)}")
    if name in g:
        raise GpusimError("node", f"duplicate node name '{name}'")
    g.add_node(name, kind=kind, **attrs)
    return name


def add_link(g: nx.DiGraph, u: str, v: str, spec: LinkSpec, cost: float = 1.0, backup: bool = False, **attrs) -> None:
    """A full-duplex link: both directions get the same spec (override one direction afterwards if asymmetric)."""
    for a, b in ((u, v), (v, u)):
        if a not in g:
            raise GpusimError("link", f"link endpoint '{a}' is not a node")
        g.add_edge(a, b, **spec.attrs(), cost=cost, backup=backup, up=True, **attrs)


def gpus(g: nx.DiGraph) -> list[str]:
    """GPU node names in rank order."""
    found = [(d.get("rank", i), n) for i, (n, d) in enumerate(g.nodes(data=True)) if d["kind"] == "gpu"]
    return [n for _, n in sorted(found)]


def capacity_Bps(edge: dict) -> float:
    """Payload capacity of one directed edge."""
    return edge["bandwidth_Bps"] * edge["efficiency"]


def summary(g: nx.DiGraph) -> dict:
    """Counts of nodes by kind and of links by technology (a full-duplex link counts once)."""
    nodes: dict[str, int] = {}
    for _, d in g.nodes(data=True):
        nodes[d["kind"]] = nodes.get(d["kind"], 0) + 1
    links: dict[str, int] = {}
    for u, v, d in g.edges(data=True):
        if u <= v:
            links[d["technology"]] = links.get(d["technology"], 0) + 1
    return {"name": g.graph.get("name", ""), "nodes": nodes, "links": links}
