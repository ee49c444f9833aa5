"""Builders that return validated topology graphs (see :mod:`gpusim.topology.graph` for the attribute schema).

Servers:
  * ``nvswitch_server``: N GPUs, each with ``nvlinks`` NVLink lanes into the NVSwitch fabric (modelled as one
    non-blocking switch node, as the HGX baseboard's 4 NVSwitch chips give full bisection), PCIe switches shared by
    GPU pairs and their NICs, one host.
  * ``pcie_box``: N GPUs behind a PCIe switch (or the CPU's root ports); with ``p2p=False`` GPU-to-GPU copies are
    staged in host memory and cross PCIe twice, as consumer cards without peer-to-peer do.
Clusters of such servers: one NIC per GPU or per server, on one switch, a leaf-spine fat-tree, or rail-optimized.
Two sites joined by FSO links with an optional fibre backup. Analytical shapes (``ring``, ``switch``,
``fully_connected``) of N endpoints with one bandwidth and latency, to set results beside ASTRA-sim's.

>>> g = nvswitch_server(gpus=8)
>>> summary(g)["nodes"]["gpu"]
8
"""
from __future__ import annotations

import math

import networkx as nx

from gpusim.errors import GpusimError, unknown
from gpusim.links import technology as tech
from gpusim.topology.graph import add_link, add_node, new_topology, summary  # noqa: F401  (summary for doctest)

FABRICS = ("single_switch", "fat_tree", "rail_optimized")
NIC_PLACEMENTS = ("per_gpu", "per_server", "none")
SERVER_KINDS = ("nvswitch", "pcie")
# Size caps, so that a cluster a builder accepts also simulates in seconds and well under 1 GB. Measured on a 2-core
# machine, one 1 GiB all_reduce (tuner's choice) including build and routing: switch 16,384 GPUs 1.4 s / 114 MiB,
# 65,536 4.9 s / 312 MiB, 262,144 22 s / 1.1 GiB (the default 25-size `gpusim collective` sweep: 16 s at 16,384,
# 75 s at 65,536); ring 4,096 9.6 s / 350 MiB, 8,192 43 s / 1.2 GiB, 16,384 237 s / 4.6 GiB (a tree's paths run
# half-way round); dgx-h100-cluster 2,048 servers (16,384 GPUs) 7.6 s / 290 MiB, 4,096 36 s / 520 MiB, 8,192 151 s
# / 1 GiB; 32 servers of 512 GPUs 5.7 s; fso-sites 2 x 1,024 servers 2.5 s.
MAX_SWITCH_GPUS = 65_536
MAX_RING_GPUS = 4_096
MAX_FULLY_CONNECTED_GPUS = 512        # n(n-1)/2 links: 130,816 at 512
MAX_SERVERS = 2_048
MAX_CLUSTER_GPUS = 16_384             # servers x gpus_per_server, and both sites of fso_sites together


def _int(value, path: str, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f" between {low:,} and {high:,}" if high is not None else (" >= %d" % low if low != 1 else "")
        what = "a positive integer" if low == 1 else "an integer"
        raise GpusimError(path, f"expected {what}{bound}, got {value!r}")
    return value


def _choice(value, choices, path: str, what: str) -> str:
    if value not in choices:
        raise unknown(path, value, choices, what)
    return value


def _add_server(g: nx.DiGraph, s: int, rank0: int, *, kind: str, gpus: int, nvlink: str, nvlinks: int,
                pcie: str, pcie_lanes: int, p2p: bool, nics: str, pcie_switch: bool, path: str,
                gpu_io_Bps: float | None = None) -> list[str]:
    """Add one server's nodes and links; returns its NIC names (in GPU-rail order)."""
    host = add_node(g, f"s{s}.host", "host", server=s, p2p=p2p)
    add_link(g, host, host, tech.host_memory())
    pcie_spec = tech.pcie(pcie, pcie_lanes, path=f"{path}.pcie")
    if kind == "nvswitch":
        nvsw = add_node(g, f"s{s}.nvswitch", "nvswitch", server=s)
        nv_spec = tech.nvlink(nvlink, nvlinks, path=f"{path}.nvlink")
    # GPUs share PCIe switches two by two (HGX: 4 switches for 8 GPUs, each with 2 GPUs and 2 NICs)
    per_switch = 2 if kind == "nvswitch" else gpus
    nic_names: list[str] = []
    switch_of: dict[int, str] = {}
    for i in range(gpus):
        gpu = add_node(g, f"s{s}.gpu{i}", "gpu", server=s, rank=rank0 + i, local_rank=i)
        if gpu_io_Bps is not None:
            add_link(g, gpu, gpu, tech.gpu_io(gpu_io_Bps, f"{path}.gpu_io"))
        if pcie_switch:
            k = i // per_switch
            if k not in switch_of:
                switch_of[k] = add_node(g, f"s{s}.pcie{k}", "pcie_switch", server=s, p2p=p2p)
                add_link(g, switch_of[k], host, pcie_spec)
            attach = switch_of[k]
        else:
            attach = host
        add_link(g, gpu, attach, pcie_spec)
        if kind == "nvswitch":
            add_link(g, gpu, nvsw, nv_spec)
        if nics == "per_gpu":
            nic = add_node(g, f"s{s}.nic{i}", "nic", server=s, rail=i)
            add_link(g, nic, attach, pcie_spec)
            nic_names.append(nic)
    if nics == "per_server":
        nic = add_node(g, f"s{s}.nic0", "nic", server=s, rail=0)
        add_link(g, nic, switch_of.get(0, host), pcie_spec)
        nic_names.append(nic)
    return nic_names


def nvswitch_server(gpus: int = 8, nvlink: str = "nvlink4", nvlinks: int = 18, pcie: str = "pcie5",
                    gpu_io_Bps: float | None = None, name: str = "nvswitch-server", path: str = "cluster") -> nx.DiGraph:
    """One server of ``gpus`` GPUs on NVSwitch, each with ``nvlinks`` lanes of ``nvlink`` (H100: nvlink4 x 18; at most
    64, beyond any GPU's 18)."""
    _int(gpus, f"{path}.gpus", high=576)
    g = new_topology(name)
    _add_server(g, 0, 0, kind="nvswitch", gpus=gpus, nvlink=nvlink, nvlinks=_int(nvlinks, f"{path}.nvlinks", high=64),
                pcie=pcie, pcie_lanes=16, p2p=True, nics="none", pcie_switch=True, path=path, gpu_io_Bps=gpu_io_Bps)
    return g


def pcie_box(gpus: int = 2, pcie: str = "pcie4", lanes: int = 16, p2p: bool = False, pcie_switch: bool = True,
             gpu_io_Bps: float | None = None, name: str = "pcie-box", path: str = "cluster") -> nx.DiGraph:
    """``gpus`` GPUs on PCIe; without ``p2p`` a GPU-to-GPU copy goes through host memory (two PCIe traversals)."""
    _int(gpus, f"{path}.gpus", high=64)
    if not isinstance(p2p, bool):
        raise GpusimError(f"{path}.p2p", f"expected true or false, got {p2p!r}")
    g = new_topology(name)
    _add_server(g, 0, 0, kind="pcie", gpus=gpus, nvlink="nvlink4", nvlinks=1, pcie=pcie, pcie_lanes=lanes,
                p2p=p2p, nics="none", pcie_switch=pcie_switch, path=path, gpu_io_Bps=gpu_io_Bps)
    return g


def cluster(servers: int = 2, gpus_per_server: int = 8, server: str = "nvswitch", nvlink: str = "nvlink4",
            nvlinks: int = 18, pcie: str = "pcie5", p2p: bool = True, nics: str = "per_gpu",
            network: str = "roce", nic_rate_Bps: float = 400e9 / 8, fabric: str = "rail_optimized",
            servers_per_leaf: int = 16, spines: int | None = None, oversubscription: float = 1.0,
            gpu_io_Bps: float | None = None, name: str = "cluster", path: str = "cluster") -> nx.DiGraph:
    """Servers joined by a network: NICs per GPU or per server, on one switch, a fat-tree, or rail-optimized.

    fat_tree: leaves of ``servers_per_leaf`` servers, every leaf wired to every spine; a leaf's uplink capacity is
    its downlink capacity divided by ``oversubscription``. rail_optimized: NIC r of every server meets NIC r of
    the others on rail leaf r (one hop for same-rail traffic); rail leaves join through spines. ``gpu_io_Bps``
    caps each GPU's send + receive total (:func:`gpusim.links.technology.gpu_io`).
    """
    _int(servers, f"{path}.servers", high=MAX_SERVERS)
    _int(gpus_per_server, f"{path}.gpus_per_server", high=576)
    _total_gpus(servers * gpus_per_server, f"{path}.servers", f"{servers} servers x {gpus_per_server} GPUs")
    _choice(server, SERVER_KINDS, f"{path}.server", "server kind")
    _choice(nics, NIC_PLACEMENTS[:2], f"{path}.nics", "NIC placement")
    _choice(fabric, FABRICS, f"{path}.fabric", "fabric")
    _int(servers_per_leaf, f"{path}.servers_per_leaf")
    if not (isinstance(oversubscription, (int, float)) and oversubscription >= 1):
        raise GpusimError(f"{path}.oversubscription", f"expected a number >= 1, got {oversubscription!r}")
    if fabric == "rail_optimized" and nics != "per_gpu":
        raise GpusimError(f"{path}.fabric", "rail_optimized needs nics: per_gpu (one NIC per GPU, one rail per local rank)")
    nic_spec = tech.network(network, nic_rate_Bps, path=f"{path}.network")
    g = new_topology(name)
    server_nics = []
    for s in range(servers):
        server_nics.append(_add_server(
            g, s, s * gpus_per_server, kind=server, gpus=gpus_per_server, nvlink=nvlink,
            nvlinks=_int(nvlinks, f"{path}.nvlinks", high=64), pcie=pcie, pcie_lanes=16, p2p=p2p, nics=nics,
            pcie_switch=True, path=path, gpu_io_Bps=gpu_io_Bps))
    switch_spec = tech.network(network, nic_rate_Bps, path=f"{path}.network")
    if fabric == "single_switch":
        sw = add_node(g, "switch0", "switch")
        for nic_list in server_nics:
            for nic in nic_list:
                add_link(g, nic, sw, nic_spec)
        return g
    # groups of NICs that share a leaf: fat-tree by server blocks, rail-optimized by (rail, server block)
    n_blocks = math.ceil(servers / servers_per_leaf)
    leaves: dict[tuple[int, int], list[str]] = {}
    for s, nic_list in enumerate(server_nics):
        for nic in nic_list:
            rail = g.nodes[nic]["rail"] if fabric == "rail_optimized" else 0
            leaves.setdefault((rail, s // servers_per_leaf), []).append(nic)
    leaf_names = []
    for (rail, block), nic_list in sorted(leaves.items()):
        leaf = add_node(g, f"leaf.r{rail}.b{block}" if fabric == "rail_optimized" else f"leaf{block}", "switch",
                        tier=1, rail=rail)
        leaf_names.append((leaf, len(nic_list)))
        for nic in nic_list:
            add_link(g, nic, leaf, nic_spec)
    if len(leaf_names) == 1:
        return g
    n_spines = spines if spines is not None else max(1, min(64, max(n for _, n in leaf_names)))
    _int(n_spines, f"{path}.spines")
    spine_names = [add_node(g, f"spine{k}", "switch", tier=2) for k in range(n_spines)]
    for leaf, n_down in leaf_names:
        up_Bps = n_down * nic_rate_Bps / oversubscription / n_spines
        up_spec = tech.LinkSpec(switch_spec.technology, up_Bps, switch_spec.efficiency, switch_spec.latency_s)
        for spine in spine_names:
            add_link(g, leaf, spine, up_spec)
    g.graph["blocks"] = n_blocks
    return g


def fso_sites(servers_per_site: int = 1, gpus_per_server: int = 8, server: str = "nvswitch",
              nic_rate_Bps: float = 100e9 / 8, network: str = "roce", fso_links: int = 1,
              fso_rate_Bps: float = 10e9 / 8, distance_m: float = 1000.0, backup: str | None = None,
              backup_rate_Bps: float = 10e9 / 8, backup_latency_s: float | None = None,
              name: str = "fso-sites", path: str = "cluster") -> nx.DiGraph:
    """Two sites, each a switch with servers (one NIC per server), joined by ``fso_links`` laser links.

    ``backup``: None, or 'fiber'/'microwave' — a slower path used only while every FSO link is down. FSO links
    carry ``link_id`` attributes 'fso0', 'fso1', ... so weather can be attached to them.
    """
    _int(servers_per_site, f"{path}.servers_per_site", high=MAX_SERVERS // 2)
    _int(gpus_per_server, f"{path}.gpus_per_server", high=576)
    _total_gpus(2 * servers_per_site * gpus_per_server, f"{path}.servers_per_site",
                f"2 sites x {servers_per_site} servers x {gpus_per_server} GPUs")
    _int(fso_links, f"{path}.fso_links", high=64)
    if not distance_m > 0:
        raise GpusimError(f"{path}.distance", f"expected a positive length, got {distance_m!r}")
    if backup not in (None, "fiber", "microwave"):
        raise unknown(f"{path}.backup", backup, ["fiber", "microwave"], "backup kind")
    g = new_topology(name)
    nic_spec = tech.network(network, nic_rate_Bps, path=f"{path}.network")
    site_switches = []
    s = 0
    for site in range(2):
        sw = add_node(g, f"site{site}.switch", "switch", site=site)
        site_switches.append(sw)
        for _ in range(servers_per_site):
            for nic in _add_server(g, s, s * gpus_per_server, kind=server, gpus=gpus_per_server, nvlink="nvlink4",
                                   nvlinks=18, pcie="pcie5", pcie_lanes=16, p2p=True, nics="per_server",
                                   pcie_switch=True, path=path):
                add_link(g, nic, sw, nic_spec)
            g.nodes[f"s{s}.host"]["site"] = site
            s += 1
    for k in range(fso_links):
        a = add_node(g, f"site0.fso{k}", "fso_terminal", site=0)
        b = add_node(g, f"site1.fso{k}", "fso_terminal", site=1)
        add_link(g, site_switches[0], a, nic_spec)
        add_link(g, b, site_switches[1], nic_spec)
        add_link(g, a, b, tech.fso(fso_rate_Bps, distance_m), link_id=f"fso{k}", distance_m=distance_m)
    if backup is not None:
        per_m = tech.SPEED_OF_LIGHT_FIBRE_S_PER_M if backup == "fiber" else tech.SPEED_OF_LIGHT_AIR_S_PER_M
        latency = distance_m * per_m if backup_latency_s is None else backup_latency_s
        spec = tech.network("ethernet", backup_rate_Bps, cable_m=0.0, path=f"{path}.backup")
        spec = tech.LinkSpec(spec.technology, spec.bandwidth_Bps, spec.efficiency, latency)
        add_link(g, site_switches[0], site_switches[1], spec, cost=1000.0, backup=True, link_id=backup)
    return g


def _total_gpus(n: int, path: str, how: str) -> None:
    if n > MAX_CLUSTER_GPUS:
        raise GpusimError(path, f"{how} make {n:,} GPUs; at most {MAX_CLUSTER_GPUS:,} (larger clusters take minutes "
                                f"and gigabytes to simulate)")


def _shape(name: str, n: int, path: str, high: int) -> nx.DiGraph:
    _int(n, f"{path}.gpus", low=2, high=high)
    g = new_topology(name, routing="shortest")
    for i in range(n):
        add_node(g, f"gpu{i}", "gpu", rank=i, server=i)
    return g


def ring(gpus: int, bandwidth_Bps: float, latency_s: float, bidirectional: bool = True, path: str = "cluster") -> nx.DiGraph:
    """N endpoints in a ring, each joined to the next by one link (ASTRA-sim's analytical 'Ring')."""
    g = _shape("ring", gpus, path, MAX_RING_GPUS)
    spec = tech.generic(bandwidth_Bps, latency_s, path)
    for i in range(gpus):
        add_link(g, f"gpu{i}", f"gpu{(i + 1) % gpus}", spec)
    return g


def switch(gpus: int, bandwidth_Bps: float, latency_s: float, path: str = "cluster") -> nx.DiGraph:
    """N endpoints on one non-blocking switch (ASTRA-sim's 'Switch'); ``latency_s`` is per link (two per path)."""
    g = _shape("switch", gpus, path, MAX_SWITCH_GPUS)
    add_node(g, "switch0", "switch")
    spec = tech.generic(bandwidth_Bps, latency_s, path)
    for i in range(gpus):
        add_link(g, f"gpu{i}", "switch0", spec)
    return g


def fully_connected(gpus: int, bandwidth_Bps: float, latency_s: float, path: str = "cluster") -> nx.DiGraph:
    """N endpoints with a direct link between every pair (ASTRA-sim's 'FullyConnected')."""
    if isinstance(gpus, int) and gpus > MAX_FULLY_CONNECTED_GPUS:
        raise GpusimError(f"{path}.gpus", f"fully_connected builds n(n-1)/2 links; expected at most "
                                          f"{MAX_FULLY_CONNECTED_GPUS} endpoints, got {gpus}")
    g = _shape("fully_connected", gpus, path, MAX_FULLY_CONNECTED_GPUS)
    spec = tech.generic(bandwidth_Bps, latency_s, path)
    for i in range(gpus):
        for j in range(i + 1, gpus):
            add_link(g, f"gpu{i}", f"gpu{j}", spec)
    return g
