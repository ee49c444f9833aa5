"""Datasheet defaults per link technology: raw bandwidth per direction, efficiency and per-hop latency.

A link's *capacity* as the engine sees it is ``bandwidth_Bps * efficiency``: the payload rate one direction can
sustain once framing and protocol overhead are paid. Latency is per traversal of the link (serialisation of the
first bytes, propagation, and the port of the device it enters). Figures and their sources are in
``docs/physics.md`` (§3); calibrated presets replace these defaults with fitted values.
"""
from __future__ import annotations

from dataclasses import dataclass

from gpusim.errors import GpusimError, unknown

GB = 1e9
#: A link's efficiency as a user or a preset file may set it: far beyond any real link on both sides, so that every
#: flow's time stays a finite, normal float (an efficiency of 1e-300 is a cut link that never says so).
EFFICIENCY_RANGE = (1e-3, 1.0)

# NVLink per link, per direction: 25 GB/s (NVLink 3 and 4: 50 GB/s bidirectional per link), 50 GB/s (NVLink 5).
# Efficiency = NCCL's effective per-link bandwidth (src/graph/topo.h: SM80 20.0, SM90 20.6, SM100 40.1 GB/s) over raw.
_NVLINK = {
    "nvlink3": (25 * GB, 20.0 / 25.0),
    "nvlink4": (25 * GB, 20.6 / 25.0),
    "nvlink5": (50 * GB, 40.1 / 50.0),
}
# PCIe per lane, per direction after line coding (PCIe 3: 8 GT/s 128b/130b; 4: 16 GT/s; 5: 32 GT/s; 6: 64 GT/s PAM4
# with FLIT, 118 GB/s usable at x16 — glennklockwood.com/garden/PCIe-Gen6). Efficiency 0.8: TLP/DLLP overhead; an
# A100 on PCIe 4.0 x16 peaks at ~25 of 31.5 GB/s (ZaidQureshi/bam #54); NCCL models x16 as 12/24/48/96 GB/s (topo.cc).
_PCIE_LANE = {"pcie3": 15.75 * GB / 16, "pcie4": 31.5 * GB / 16, "pcie5": 63.0 * GB / 16, "pcie6": 118.0 * GB / 16}
PCIE_EFFICIENCY = 0.8
# Network payload efficiency. InfiniBand/RoCE: NDR 400G gives 46-48 of 50 GB/s busbw per NIC (nccl-tests #290) -> 0.94.
# TCP over 1500 B Ethernet: 1448 B payload (TCP with timestamps) per 1538 B on the wire (preamble, IFG, FCS) -> 0.9415.
_NETWORK_EFFICIENCY = {"ib": 0.94, "roce": 0.94, "ethernet": 1448.0 / 1538.0}
NETWORK_RATES_Gbps = (10, 25, 40, 50, 100, 200, 400, 800)

# Per-hop latencies. NVLink/NVSwitch and PCIe port latencies are of the order of a few hundred ns; switch
# port-to-port: InfiniBand 100-400 ns (physics.md §3.4, [UNVERIFIED] range), Ethernet cut-through ToR ~450 ns.
# They are starting points: software per-step latency (NCCL's 0.6-14 us hwLatencies) is added by the collective
# layer, and calibration fits both.
_LATENCY_S = {"nvlink": 0.3e-6, "pcie": 0.5e-6, "ib": 0.2e-6, "roce": 0.45e-6, "ethernet": 0.45e-6,
              "memory": 0.1e-6, "generic": 0.0, "fso": 0.0, "gpu_io": 0.0}
SPEED_OF_LIGHT_FIBRE_S_PER_M = 1 / 2.0e8  # ~5 ns/m in glass (n ~ 1.5)
SPEED_OF_LIGHT_AIR_S_PER_M = 1 / 299_792_458.0

TECHNOLOGIES = sorted([*_NVLINK, *_PCIE_LANE, *_NETWORK_EFFICIENCY, "fso", "generic", "memory", "gpu_io"])


@dataclass(frozen=True)
class LinkSpec:
    """One direction of a link: raw bandwidth, payload efficiency, latency per traversal."""

    technology: str
    bandwidth_Bps: float
    efficiency: float
    latency_s: float

    @property
    def capacity_Bps(self) -> float:
        """Payload rate the link sustains in one direction."""
        return self.bandwidth_Bps * self.efficiency

    def attrs(self) -> dict:
        return {"technology": self.technology, "bandwidth_Bps": self.bandwidth_Bps,
                "efficiency": self.efficiency, "latency_s": self.latency_s}


def family(technology: str) -> str:
    """'nvlink4' -> 'nvlink', 'pcie5' -> 'pcie'; network and other names map to themselves."""
    if technology.startswith("nvlink"):
        return "nvlink"
    if technology.startswith("pcie"):
        return "pcie"
    return technology


def nvlink(generation: str = "nvlink4", links: int = 18, path: str = "nvlink") -> LinkSpec:
    """``links`` NVLink lanes of one generation bundled into one logical link (per direction)."""
    if generation not in _NVLINK:
        raise unknown(path, generation, _NVLINK, "NVLink generation")
    _positive_int(links, f"{path}.links")
    raw, eff = _NVLINK[generation]
    return LinkSpec(generation, raw * links, eff, _LATENCY_S["nvlink"])


def pcie(generation: str = "pcie5", lanes: int = 16, path: str = "pcie") -> LinkSpec:
    """A PCIe link of ``lanes`` lanes (per direction)."""
    if generation not in _PCIE_LANE:
        raise unknown(path, generation, _PCIE_LANE, "PCIe generation")
    if lanes not in (1, 2, 4, 8, 16, 32):
        raise GpusimError(f"{path}.lanes", f"expected one of 1, 2, 4, 8, 16, 32, got {lanes!r}")
    return LinkSpec(generation, _PCIE_LANE[generation] * lanes, PCIE_EFFICIENCY, _LATENCY_S["pcie"])


def network(technology: str = "roce", rate_Bps: float = 400e9 / 8, cable_m: float = 3.0, path: str = "nic") -> LinkSpec:
    """An InfiniBand, RoCE or TCP/Ethernet port of ``rate_Bps`` (bytes/s per direction) with a cable of ``cable_m``."""
    if technology not in _NETWORK_EFFICIENCY:
        raise unknown(path, technology, _NETWORK_EFFICIENCY, "network technology")
    if not rate_Bps > 0:
        raise GpusimError(f"{path}.rate", f"expected a positive bandwidth, got {rate_Bps!r}")
    latency = _LATENCY_S[technology] + cable_m * SPEED_OF_LIGHT_FIBRE_S_PER_M
    return LinkSpec(technology, rate_Bps, _NETWORK_EFFICIENCY[technology], latency)


def host_memory(bandwidth_Bps: float = 200e9) -> LinkSpec:
    """Staging through host DRAM (the self-loop a no-P2P copy takes). 200 GB/s is a dual-socket DDR5 order of
    magnitude; the PCIe links around it are the bottleneck in practice."""
    return LinkSpec("memory", bandwidth_Bps, 1.0, _LATENCY_S["memory"])


def gpu_io(bandwidth_Bps: float, path: str = "gpu_io") -> LinkSpec:
    """A GPU's combined send + receive rate (a self-loop every transfer into or out of the GPU crosses).

    Each link direction has its own capacity, but what drives them may not: over NCCL's SHM transport two H200s
    moved 49 GB/s one way yet 25 + 25 GB/s both ways (validation/data/h200, 2-rank broadcast vs ring ops), so the
    copies in and out share one budget. Unset, a GPU has no such limit."""
    if not bandwidth_Bps > 0:
        raise GpusimError(f"{path}", f"expected a positive bandwidth, got {bandwidth_Bps!r}")
    return LinkSpec("gpu_io", bandwidth_Bps, 1.0, _LATENCY_S["gpu_io"])


def generic(bandwidth_Bps: float, latency_s: float, path: str = "link") -> LinkSpec:
    """A link with exactly the given bandwidth and latency (efficiency 1): the analytical shapes' links."""
    if not bandwidth_Bps > 0:
        raise GpusimError(f"{path}.bandwidth", f"expected a positive bandwidth, got {bandwidth_Bps!r}")
    if not latency_s >= 0:
        raise GpusimError(f"{path}.latency", f"expected a non-negative time, got {latency_s!r}")
    return LinkSpec("generic", bandwidth_Bps, 1.0, latency_s)


def fso(line_rate_Bps: float, distance_m: float, efficiency: float = 1.0) -> LinkSpec:
    """A free-space optical hop: line rate, propagation at the speed of light in air."""
    return LinkSpec("fso", line_rate_Bps, efficiency, distance_m * SPEED_OF_LIGHT_AIR_S_PER_M)


def _positive_int(value, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GpusimError(path, f"expected a positive integer, got {value!r}")
