"""NCCL 2.30.7's own cost model: the latency/bandwidth tables NCCL builds at init and the (algorithm, protocol)
choice it makes per call.

Source: NVIDIA/nccl v2.30.7 (``makefiles/version.mk``), ``src/graph/tuning.cc`` (``ncclTopoTuneModel``,
``ncclTopoGetAlgoTime``, ``ncclTunerConstantsDefaults``), ``src/enqueue.cc`` (``topoGetAlgoInfo``,
``ncclFuncMaxSendRecvCount``), as summarised in physics.md §1.1-1.6. Latencies are NCCL's µs and bandwidths NCCL's
GB/s (1e9 B/s) inside the tables, named ``*_us`` / ``*_GBps``; :func:`predict_time_s` and :func:`choose` speak SI.

The model, per collective c, algorithm a, protocol p (n ranks, N nodes, ppn = n/N):

    time_us = lat[c][a][p] * latCount + nBytes / (1000 * bw[c][a][p])        bw = algorithm bandwidth, GB/s

* ``lat`` = base latency + per-step hardware latencies (``_latency_us``, physics.md §1.4);
* ``bw``  = per-channel graph bandwidth x nChannels, protocol factors and caps (busBw), converted to algBw
  (``_bus_bandwidth_GBps`` / ``_algo_bandwidth_GBps``, physics.md §1.5);
* size corrections: Tree (and NVLSTree on Blackwell + x86) AllReduce bw x treeCorrectionFactor[p][log2(nBytes/64)];
  Ring/Simple AllReduce on >1 node with ``nBytes/(nChannels*nRanks) >= 64``: lat x 1.4 (x 1.9 before sm80), the
  "plateau effect of ring";
* ``bw == 0`` means disabled; :func:`choose` takes the minimum time among enabled entries, first in NCCL's
  (algorithm, protocol) index order on ties, as ``topoGetAlgoInfo`` does.

Conventions chosen here:

* ``size_bytes`` is NCCL's ``nBytes``: ``count * typesize`` for all_reduce, broadcast and reduce, and
  ``count * typesize * nRanks`` for all_gather and reduce_scatter (``ncclFuncMaxSendRecvCount``: the whole gathered
  output / the whole scattered input). That is also nccl-tests' size column, so a measured (size, time) row feeds
  straight in.
* One operation per call: ``latCount = numPipeOps = 1`` (no grouped aggregation), no tuner plugin, no FP8 penalty.
* ``NcclSystem`` holds what NCCL's topology search would have found (channels and per-channel bandwidths after
  channel duplication); one ring/tree graph shape is assumed for every algorithm except NVLS's channel count.
* Not modelled: the CUDA 11.8 two-rank LL128 exclusion, per-datatype/op NVLS support, CollNet plugin capabilities
  (assumed present when ``collnet=True``), MNNVL.
"""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from gpusim.collectives.bus_bandwidth import canonical_op
from gpusim.errors import GpusimError, unknown


# --------------------------------------------------------------------------------------------------------------
# enumerations (src/init.cc ncclAlgoStr / ncclProtoStr, src/include/nccl_tuner.h; NCCL 2.30.7)

class Coll(StrEnum):
    """Collectives NCCL's tuner models, in ``ncclFunc_t`` order."""

    BROADCAST = "broadcast"
    REDUCE = "reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_REDUCE = "all_reduce"


class Algo(StrEnum):
    """NCCL algorithms, in ``NCCL_ALGO_*`` index order; values are NCCL's names (``ncclAlgoStr``)."""

    TREE = "Tree"
    RING = "Ring"
    COLLNET_DIRECT = "CollNetDirect"
    COLLNET_CHAIN = "CollNetChain"
    NVLS = "NVLS"
    NVLS_TREE = "NVLSTree"
    PAT = "PAT"


class Proto(StrEnum):
    """NCCL protocols, in ``NCCL_PROTO_*`` index order; values are NCCL's names (``ncclProtoStr``)."""

    LL = "LL"
    LL128 = "LL128"
    SIMPLE = "Simple"


class Hw(IntEnum):
    """Hardware classes of ``hwLatencies`` (``NCCL_HW_*``, nccl_tuner.h)."""

    NVLINK = 0
    PCI = 1
    NET = 2


LL, LL128, SIMPLE = Proto.LL, Proto.LL128, Proto.SIMPLE
_PROTO_INDEX = {LL: 0, LL128: 1, SIMPLE: 2}

# --------------------------------------------------------------------------------------------------------------
# constants: NCCL 2.30.7 src/graph/tuning.cc, ncclTunerConstantsDefaults (physics.md §1.2-1.3, §1.5)

#: baseLatencies[algo] = (LL, LL128, Simple), µs.
BASE_LAT_US: dict[Algo, tuple[float, float, float]] = {
    Algo.TREE: (6.8, 14.0, 8.4),
    Algo.RING: (6.6, 14.0, 8.4),
    Algo.COLLNET_DIRECT: (0.0, 0.0, 0.0),
    Algo.COLLNET_CHAIN: (0.0, 0.0, 0.0),
    Algo.NVLS: (0.0, 0.0, 0.0),
    Algo.NVLS_TREE: (0.0, 0.0, 0.0),
    Algo.PAT: (8.0, 8.0, 8.0),
}

#: hwLatencies[hw][algo] = (LL, LL128, Simple), µs.
HW_LAT_US: dict[Hw, dict[Algo, tuple[float, float, float]]] = {
    Hw.NVLINK: {
        Algo.TREE: (0.6, 1.25, 4.0), Algo.RING: (0.6, 1.9, 3.4),
        Algo.COLLNET_DIRECT: (0.0, 0.0, 3.7), Algo.COLLNET_CHAIN: (0.0, 0.0, 2.8),
        Algo.NVLS: (0.0, 0.0, 25.0), Algo.NVLS_TREE: (0.0, 0.0, 25.0), Algo.PAT: (0.0, 0.0, 4.0),
    },
    Hw.PCI: {
        Algo.TREE: (1.0, 1.9, 4.0), Algo.RING: (1.0, 2.5, 5.7),
        Algo.COLLNET_DIRECT: (0.0, 0.0, 3.7), Algo.COLLNET_CHAIN: (0.0, 0.0, 2.8),
        Algo.NVLS: (0.0, 0.0, 0.0), Algo.NVLS_TREE: (0.0, 0.0, 0.0), Algo.PAT: (0.0, 0.0, 4.0),
    },
    Hw.NET: {
        Algo.TREE: (5.0, 8.5, 14.0), Algo.RING: (2.7, 4.0, 14.0),
        Algo.COLLNET_DIRECT: (0.0, 0.0, 31.0), Algo.COLLNET_CHAIN: (0.0, 0.0, 30.0),
        Algo.NVLS: (0.0, 0.0, 18.0), Algo.NVLS_TREE: (0.0, 0.0, 20.9), Algo.PAT: (0.0, 0.0, 14.0),
    },
}

#: GPU architectures: tuning-table row (NCCL_*_COMPCAP_IDX) and compute capability x10.
ARCHS: dict[str, tuple[int, int]] = {"volta": (0, 70), "ampere": (1, 80), "hopper": (2, 90), "blackwell": (3, 100)}

#: CPUs NCCL tells apart in the model: x86 Intel/AMD (net overhead, llMaxBws row), Arm, POWER (Tree/Simple PCI lat).
CPUS: tuple[str, ...] = ("intel", "amd", "arm", "power")

# Caps, GB/s, [arch row][N1, N2, N>=4]. llMaxBws rows: single node by GPU arch; multi-node row 0 (Intel / other)
# or row 1 (AMD / mixed), whatever the GPU.
LL_MAX_BWS_GBPS = ((39.0, 39.0, 20.4), (87.7, 22.5, 19.0), (141.0, 45.0, 35.0), (282.0, 90.0, 70.0))
PER_CH_MAX_RING_LL128_BWS_GBPS = ((20.0, 20.0, 20.0), (20.0, 20.0, 20.0), (36.7, 36.7, 36.7), (40.0, 40.0, 40.0))
PER_CH_MAX_TREE_LL128_BWS_GBPS = ((20.0, 20.0, 20.0), (20.0, 20.0, 20.0), (36.7, 36.7, 29.0), (55.6, 31.67, 20.0))
PER_CH_MAX_TREE_BWS_GBPS = ((26.5, 18.5, 10.0), (24.0, 23.6, 17.8), (38.7, 41.4, 36.0), (70.0, 42.8, 24.0))
PER_CH_MAX_NVLS_TREE_BWS_GBPS = ((26.5, 18.5, 10.0), (24.0, 23.6, 17.8), (0.0, 57.7, 45.5), (0.0, 96.0, 80.0))
#: nvlsEfficiency[arch row].
NVLS_EFFICIENCY = (0.0, 0.0, 0.85, 0.74)

#: treeCorrectionFactor[proto][floor(log2(nBytes/64))], 64 B .. 512 MiB.
TREE_CORRECTION_FACTOR: dict[Proto, tuple[float, ...]] = {
    LL: (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0, 1.0),
    LL128: (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0, 1.0),
    SIMPLE: (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9, .9),
}
#: Tree uses indices 0..22 (64 B-256 MiB), NVLSTree 0..23 (ncclTopoGetAlgoTime).
TREE_CORRECTION_MAX_INDEX = {Algo.TREE: 22, Algo.NVLS_TREE: 23}

#: Net post overhead, µs per step (getNetOverhead): Intel x86 1.0, AMD x86 2.0, otherwise 1.0; x3 for Simple.
NET_OVERHEAD_US = {"intel": 1.0, "amd": 2.0, "arm": 1.0, "power": 1.0}
#: Ring plateau multiplier of Ring/Simple AllReduce latency on >1 node: 1.9 before sm80, 1.4 from sm80.
RING_PLATEAU = (1.9, 1.4)
#: NCCL_MAX_CHANNELS / MAXCHANNELS (src/include/device.h).
MAX_CHANNELS = 64

# NCCL path types (src/graph/topo.h, PATH_*), nearest first; LL128 needs GPU-NIC paths up to PXB (up to PXN on sm90+).
NIC_PATHS: tuple[str, ...] = ("pix", "pxb", "p2c", "pxn", "phb", "sys")
_PATH_RANK = {name: i for i, name in enumerate(NIC_PATHS)}

#: Tree graph patterns (NCCL_TOPO_PATTERN_*); "tree" (all NIC traffic through one GPU) costs Tree x0.85.
TREE_PATTERNS: tuple[str, ...] = ("balanced_tree", "split_tree", "tree")


# --------------------------------------------------------------------------------------------------------------
# the system NCCL's topology search found

@dataclass(frozen=True, kw_only=True)
class NcclSystem:
    """What NCCL's topology search would have found for a communicator; all the tuning model needs.

    n_ranks, n_nodes        GPUs in the communicator and nodes they span (n_ranks a multiple of n_nodes)
    n_channels              channels of the ring/tree graphs (after NCCL's channel duplication), 1..64
    bw_intra_GBps           per-channel intra-node graph bandwidth, GB/s (``graph->bwIntra``)
    bw_inter_GBps           per-channel inter-node graph bandwidth, GB/s (``graph->bwInter``); None = same as
                            intra, which is what the search reports for a single node
    intra                   "nvlink" (graph typeIntra NVL, assumed behind NVSwitch) or "pci"
    arch                    "volta" | "ampere" | "hopper" | "blackwell" (all GPUs alike)
    cpu                     "intel" | "amd" | "arm" | "power"
    latency_inter_us        NIC-reported latency (``graph->latencyInter``); NCCL's IB and socket plugins report 0
    net_overhead_us         overrides the per-step net post overhead (NCCL_NET_OVERHEAD, which NCCL reads in ns)
    nvls                    NVLink SHARP usable (NVLS; NVLSTree when n_nodes > 1); needs hopper+ and NVLink
    nvls_n_channels         channels of the NVLS graph; None = n_channels
    collnet                 a CollNet (in-network reduction) plugin is present: CollNetDirect/Chain, multi-node NVLS
    pat                     allow PAT for all_gather/reduce_scatter (needs one GPU per node); NCCL turns it on by
                            default there with a host-side network, here it is off unless asked
    ll128                   None = NCCL's default LL128 rule; True/False forces it like ``NCCL_PROTO``
    nic_path                GPU-to-NIC path type of the graphs (``typeInter``): pix, pxb, p2c, pxn, phb, sys
    same_channels           ring channels all alike (``graph->sameChannels``): Ring Broadcast/Reduce latency
    tree_pattern            "balanced_tree" | "split_tree" | "tree" (``maxTreePattern``)
    """

    n_ranks: int
    n_nodes: int
    n_channels: int
    bw_intra_GBps: float
    bw_inter_GBps: float | None = None
    intra: str = "nvlink"
    arch: str = "hopper"
    cpu: str = "intel"
    latency_inter_us: float = 0.0
    net_overhead_us: float | None = None
    nvls: bool = False
    nvls_n_channels: int | None = None
    collnet: bool = False
    pat: bool = False
    ll128: bool | None = None
    nic_path: str = "pxb"
    same_channels: bool = True
    tree_pattern: str = "balanced_tree"

    def __post_init__(self):
        _positive_int(self.n_ranks, "n_ranks", minimum=2, why="NCCL's tuning model needs at least 2 ranks")
        _positive_int(self.n_nodes, "n_nodes")
        if self.n_nodes > self.n_ranks or self.n_ranks % self.n_nodes:
            raise GpusimError("n_nodes", f"n_ranks ({self.n_ranks}) must be a multiple of n_nodes ({self.n_nodes}): "
                                         f"NCCL's model assumes the same number of GPUs on every node")
        _positive_int(self.n_channels, "n_channels", maximum=MAX_CHANNELS)
        if self.nvls_n_channels is not None:
            _positive_int(self.nvls_n_channels, "nvls_n_channels", maximum=MAX_CHANNELS)
        _positive_real(self.bw_intra_GBps, "bw_intra_GBps", "a positive finite per-channel bandwidth in GB/s")
        if self.bw_inter_GBps is not None:
            _positive_real(self.bw_inter_GBps, "bw_inter_GBps", "a positive finite per-channel bandwidth in GB/s")
        _non_negative_real(self.latency_inter_us, "latency_inter_us")
        if self.net_overhead_us is not None:
            _non_negative_real(self.net_overhead_us, "net_overhead_us")
        _choice(self.intra, "intra", ("nvlink", "pci"), "intra-node link type")
        _choice(self.arch, "arch", ARCHS, "GPU architecture")
        _choice(self.cpu, "cpu", CPUS, "CPU")
        _choice(self.nic_path, "nic_path", NIC_PATHS, "GPU-NIC path type")
        _choice(self.tree_pattern, "tree_pattern", TREE_PATTERNS, "tree pattern")
        for name in ("nvls", "collnet", "pat", "same_channels"):
            if not isinstance(getattr(self, name), bool):
                raise GpusimError(name, f"expected true or false, got {getattr(self, name)!r}")
        if self.ll128 is not None and not isinstance(self.ll128, bool):
            raise GpusimError("ll128", f"expected true, false or null (NCCL's default rule), got {self.ll128!r}")
        if self.nvls and (self.intra != "nvlink" or ARCHS[self.arch][1] < 90):
            raise GpusimError("nvls", f"NVLink SHARP needs intra 'nvlink' and arch hopper or blackwell, got intra "
                                      f"'{self.intra}', arch '{self.arch}'")
        if self.pat and self.n_ranks != self.n_nodes:
            raise GpusimError("pat", f"PAT supports one GPU per node only; got {self.n_ranks} ranks on "
                                     f"{self.n_nodes} nodes")

    @property
    def ppn(self) -> int:
        """GPUs (ranks) per node."""
        return self.n_ranks // self.n_nodes

    @property
    def compute_capability(self) -> int:
        """SM version x10 of the architecture (70, 80, 90, 100)."""
        return ARCHS[self.arch][1]

    @property
    def bw_inter_effective_GBps(self) -> float:
        """``bw_inter_GBps``, or the intra bandwidth when it was left out."""
        return self.bw_intra_GBps if self.bw_inter_GBps is None else self.bw_inter_GBps


def _positive_int(x, path: str, minimum: int = 1, maximum: int | None = None, why: str = "") -> None:
    ok = isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= minimum
    ok = ok and (maximum is None or x <= maximum)
    if not ok:
        span = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise GpusimError(path, f"expected {span}{' (' + why + ')' if why else ''}, got {x!r}")


def _positive_real(x, path: str, what: str) -> None:
    if not isinstance(x, numbers.Real) or isinstance(x, bool) or not math.isfinite(x) or not x > 0:
        raise GpusimError(path, f"expected {what}, got {x!r}")


def _non_negative_real(x, path: str) -> None:
    if not isinstance(x, numbers.Real) or isinstance(x, bool) or not math.isfinite(x) or x < 0:
        raise GpusimError(path, f"expected a non-negative finite number, got {x!r}")


def _choice(x, path: str, choices, what: str) -> None:
    if x not in choices:
        raise unknown(path, str(x), choices, what=what)


# --------------------------------------------------------------------------------------------------------------
# names

def as_coll(coll, path: str = "coll") -> Coll:
    """A :class:`Coll` from any spelling NCCL or nccl-tests uses (``AllReduce``, ``allreduce``, ``all_reduce``)."""
    if isinstance(coll, Coll):
        return coll
    name = canonical_op(coll, path)
    try:
        return Coll(name)
    except ValueError:
        raise unknown(path, str(coll), [c.value for c in Coll], what="collective NCCL's tuner models") from None


def as_algo(algo, path: str = "algo") -> Algo:
    """An :class:`Algo` from NCCL's name in any case, with or without ``_`` (``ring``, ``NVLS_TREE``)."""
    return _by_name(algo, Algo, path, "algorithm")


def as_proto(proto, path: str = "proto") -> Proto:
    """A :class:`Proto` from NCCL's name in any case (``ll128``, ``simple``)."""
    return _by_name(proto, Proto, path, "protocol")


def _by_name(x, enum, path: str, what: str):
    if isinstance(x, enum):
        return x
    if isinstance(x, str):
        key = x.replace("_", "").replace("-", "").replace(" ", "").lower()
        for member in enum:
            if member.value.lower() == key:
                return member
    raise unknown(path, str(x), [m.value for m in enum], what=what)


# --------------------------------------------------------------------------------------------------------------
# model

def _nsteps(coll: Coll, n: int) -> int:
    if coll is Coll.ALL_REDUCE:
        return 2 * (n - 1)
    if coll in (Coll.REDUCE_SCATTER, Coll.ALL_GATHER):
        return n - 1
    return n


def _log2i(x: int) -> int:
    """NCCL's log2i: floor(log2 x), -1 for 0."""
    return x.bit_length() - 1


def _computed(coll: Coll, algo: Algo, proto: Proto) -> bool:
    """Whether ncclTopoTuneModel fills the (coll, algo, proto) entry at all (others stay 0: disabled)."""
    if coll in (Coll.BROADCAST, Coll.REDUCE) and algo is not Algo.RING:
        return False
    if coll in (Coll.REDUCE_SCATTER, Coll.ALL_GATHER) and algo not in (Algo.PAT, Algo.RING, Algo.NVLS,
                                                                       Algo.COLLNET_DIRECT):
        return False
    if coll is Coll.ALL_REDUCE and algo is Algo.PAT:
        return False
    if algo in (Algo.NVLS, Algo.NVLS_TREE, Algo.PAT) and proto is not SIMPLE:
        return False
    return True


def _channels(system: NcclSystem, algo: Algo) -> int:
    if algo in (Algo.NVLS, Algo.NVLS_TREE) and system.nvls_n_channels is not None:
        return system.nvls_n_channels
    return system.n_channels


def _scale_index(system: NcclSystem) -> int:
    return system.n_nodes - 1 if system.n_nodes <= 2 else 2


def _ll_max_bw_GBps(system: NcclSystem) -> float:
    if system.n_nodes == 1:
        row = ARCHS[system.arch][0]
    else:
        row = 1 if system.cpu == "amd" else 0
    return LL_MAX_BWS_GBPS[row][_scale_index(system)]


def _bus_bandwidth_raw_GBps(system: NcclSystem, coll: Coll, algo: Algo, proto: Proto) -> float:
    """busBw of ncclTopoTuneModel before the enable rules (0 where NCCL computes nothing)."""
    if not _computed(coll, algo, proto):
        return 0.0
    arch_row = ARCHS[system.arch][0]
    scale = _scale_index(system)
    n, n_nodes = system.n_ranks, system.n_nodes
    ppn = n / n_nodes
    n_ch = _channels(system, algo)
    bw_intra, bw_inter = system.bw_intra_GBps, system.bw_inter_effective_GBps
    collnet = algo in (Algo.COLLNET_DIRECT, Algo.COLLNET_CHAIN)
    bw = bw_intra if n_nodes <= 2 or collnet else bw_inter
    if algo in (Algo.NVLS, Algo.NVLS_TREE):
        if n_ch < 2:  # NVLS/NVLSTree need at least 2 channels
            return 0.0
        intra_bw = bw_intra * NVLS_EFFICIENCY[arch_row] * (n_ch - 1) / n_ch
        intra_bw *= 2.0 if coll is Coll.ALL_REDUCE else (ppn - 1) / ppn  # AllReduce pipelines two operations
        inter_bw = bw_inter * (2.0 if n_nodes <= 2 and algo is Algo.NVLS_TREE else 1.0)
        cap = PER_CH_MAX_NVLS_TREE_BWS_GBPS[arch_row][scale] if algo is Algo.NVLS_TREE else math.inf
        bw = min(intra_bw, inter_bw, cap)
    bus = n_ch * bw
    if algo is Algo.RING and proto is LL:
        bus = min(_ll_max_bw_GBps(system), bus * 0.5)
    if algo is Algo.RING and proto is LL128:
        bus = min(bus * 0.92, n_ch * PER_CH_MAX_RING_LL128_BWS_GBPS[arch_row][scale])
    if algo is Algo.TREE and coll is Coll.ALL_REDUCE:
        bus = min(bus * 0.92, n_ch * PER_CH_MAX_TREE_BWS_GBPS[arch_row][scale])
    if algo is Algo.TREE and proto is LL:
        bus = min(bus / 3.8, _ll_max_bw_GBps(system))
    if algo is Algo.TREE and proto is LL128:
        bus = min(bus * (7.0 / 9.0 if n_nodes == 1 else 120.0 / 128.0),
                  n_ch * PER_CH_MAX_TREE_LL128_BWS_GBPS[arch_row][scale])
    if algo is Algo.TREE and system.tree_pattern == "tree":
        bus *= 0.85
    if algo is Algo.PAT:
        bus *= 0.75
    if collnet and proto is not SIMPLE:
        bus = 0.0
    if algo is Algo.COLLNET_DIRECT and proto is SIMPLE:
        if coll in (Coll.ALL_GATHER, Coll.REDUCE_SCATTER):
            bus = ppn * min(bw_intra, bw_inter * 0.9)
        else:
            factor = ppn / n_ch  # GPU/NIC ratio: CollNet+Direct wants a local NIC per GPU
            factor -= (factor - 1) / 2
            bus /= factor
            if system.compute_capability >= 90:
                bus *= 0.85
    return bus


def _ratio_bus_to_alg(system: NcclSystem, coll: Coll, algo: Algo) -> float:
    """busBw -> algBw factor; AG/RS on non-ring algorithms are not converted."""
    if algo is not Algo.RING and coll in (Coll.ALL_GATHER, Coll.REDUCE_SCATTER):
        return 1.0
    if algo in (Algo.RING, Algo.NVLS, Algo.NVLS_TREE):
        return system.n_ranks / _nsteps(coll, system.n_ranks)
    return 0.5


def _ll128_enabled(system: NcclSystem) -> bool:
    """NCCL's default LL128 rule (tuning.cc, NCCL_LL128_C2C=1): NVLink inside the node and a GPU-NIC path up to
    PXB, or up to PXN on sm90+. A single-node communicator has no NIC in its graphs (typeInter stays PIX)."""
    if system.ll128 is not None:
        return system.ll128
    if system.intra != "nvlink":
        return False
    if system.n_nodes == 1:
        return True
    limit = "pxn" if system.compute_capability >= 90 else "pxb"
    return _PATH_RANK[system.nic_path] <= _PATH_RANK[limit]


def _algo_enabled(system: NcclSystem, coll: Coll, algo: Algo) -> bool:
    multi = system.n_nodes > 1
    if algo is Algo.NVLS_TREE and (not multi or not system.nvls):
        return False
    if algo is Algo.NVLS and (not system.nvls or (multi and not system.collnet)):
        return False
    if algo in (Algo.COLLNET_DIRECT, Algo.COLLNET_CHAIN) and not system.collnet:
        return False
    if algo is Algo.COLLNET_DIRECT and system.intra != "nvlink":  # CollNet+Direct needs an NVSwitch system
        return False
    if algo is Algo.PAT and not system.pat:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _entry(system: NcclSystem, coll: Coll, algo: Algo, proto: Proto) -> tuple[float, float, float]:
    """(latency µs, busBw GB/s, algBw GB/s) as NCCL stores them; bandwidths 0 when disabled."""
    bus = _bus_bandwidth_raw_GBps(system, coll, algo, proto)
    if proto is LL128 and not _ll128_enabled(system):
        bus = 0.0
    if not _algo_enabled(system, coll, algo):
        bus = 0.0
    alg = bus * _ratio_bus_to_alg(system, coll, algo)
    lat = _latency_raw_us(system, coll, algo, proto) if _computed(coll, algo, proto) else 0.0
    return lat, bus, alg


def _hw_lat_us(system: NcclSystem, hw: Hw, algo: Algo, proto: Proto) -> float:
    if system.cpu == "power" and hw is Hw.PCI and algo is Algo.TREE and proto is SIMPLE:
        # De-penalise Tree/Simple on POWER so Tree is favoured over Ring.
        return HW_LAT_US[Hw.PCI][Algo.RING][_PROTO_INDEX[SIMPLE]]
    return HW_LAT_US[hw][algo][_PROTO_INDEX[proto]]


def _latency_raw_us(system: NcclSystem, coll: Coll, algo: Algo, proto: Proto) -> float:
    """``comm->latencies[coll][algo][proto]`` (physics.md §1.4)."""
    n, n_nodes = system.n_ranks, system.n_nodes
    ppn_int = n // n_nodes
    intra_hw = Hw.NVLINK if system.intra == "nvlink" else Hw.PCI
    hw = intra_hw if n_nodes == 1 else Hw.NET
    base = BASE_LAT_US[algo][_PROTO_INDEX[proto]]
    intra_lat = _hw_lat_us(system, intra_hw, algo, proto)
    # With one rank per node the latency cannot be hidden: use Tree's network latency.
    inter_lat = _hw_lat_us(system, Hw.NET, Algo.TREE if ppn_int == 1 else algo, proto)
    inter_lat += system.latency_inter_us
    if proto is SIMPLE:
        inter_lat += system.latency_inter_us  # flush
    nsteps = _nsteps(coll, n)
    log2_nodes = _log2i(n_nodes)

    if algo is Algo.RING:
        if coll in (Coll.BROADCAST, Coll.REDUCE):
            lat = _hw_lat_us(system, hw, Algo.RING, proto)
            if system.same_channels:
                return base + lat
            if proto is SIMPLE:  # chunk latency stand-in
                lat = _hw_lat_us(system, hw, Algo.TREE, proto)
            return base + nsteps * lat
        net_overhead = 0.0
        if n_nodes > 1:
            net_overhead = NET_OVERHEAD_US[system.cpu] if system.net_overhead_us is None else system.net_overhead_us
            if proto is SIMPLE:
                net_overhead *= 3
        intra_lat = max(intra_lat, net_overhead)
        n_inter = 0 if n_nodes == 1 else (2 * (n_nodes - 1) if coll is Coll.ALL_REDUCE else n_nodes - 1)
        return base + (nsteps - n_inter) * intra_lat + n_inter * inter_lat
    if algo is Algo.TREE:
        if coll is not Coll.ALL_REDUCE:
            return base
        return base + 2 * ((ppn_int - 1) * intra_lat + log2_nodes * inter_lat)
    if algo is Algo.COLLNET_DIRECT:  # 0.4 µs arity serialisation per local rank
        return base + 2 * (min(1, ppn_int - 1) * intra_lat + (ppn_int - 1) * 0.4) + inter_lat
    if algo is Algo.COLLNET_CHAIN:
        return base + 2 * (ppn_int - 1) * intra_lat + inter_lat
    if algo is Algo.NVLS:  # base latency not added
        return intra_lat + (inter_lat if n_nodes > 1 else 0.0)
    if algo is Algo.NVLS_TREE:
        return base + intra_lat + 2 * log2_nodes * inter_lat
    # PAT (AG/RS): log part plus a linear part per rank
    return base + log2_nodes * (inter_lat / 3.5) + n * 2.8


# --------------------------------------------------------------------------------------------------------------
# public functions

def is_enabled(coll, algo, proto, system: NcclSystem) -> bool:
    """Whether NCCL would consider (algo, proto) for ``coll`` on ``system`` (its bandwidth entry is non-zero)."""
    return _entry(system, as_coll(coll), as_algo(algo), as_proto(proto))[2] > 0.0


def latency_us(coll, algo, proto, system: NcclSystem) -> float:
    """``comm->latencies[coll][algo][proto]`` in µs, before the size-dependent ring plateau; inf when disabled."""
    lat, _, alg = _entry(system, as_coll(coll), as_algo(algo), as_proto(proto))
    return lat if alg > 0.0 else math.inf


def bus_bandwidth_GBps(coll, algo, proto, system: NcclSystem) -> float:
    """NCCL's busBw (after protocol factors and caps, before conversion) in GB/s; 0 when disabled."""
    return _entry(system, as_coll(coll), as_algo(algo), as_proto(proto))[1]


def algo_bandwidth_GBps(coll, algo, proto, system: NcclSystem) -> float:
    """``comm->bandwidths[coll][algo][proto]``: algorithm bandwidth in GB/s, before the tree size correction;
    0 when disabled."""
    return _entry(system, as_coll(coll), as_algo(algo), as_proto(proto))[2]


def predict_time_us(coll, algo, proto, size_bytes, system: NcclSystem) -> float:
    """``ncclTopoGetAlgoTime`` for one operation of ``size_bytes`` (NCCL's nBytes, see module docstring), in µs;
    inf when the (algo, proto) is disabled."""
    c, a, p = as_coll(coll), as_algo(algo), as_proto(proto)
    n_bytes = _size(size_bytes)
    lat, _, bw = _entry(system, c, a, p)
    if bw == 0.0:
        return math.inf
    log_size = _log2i(n_bytes >> 6)
    if c is Coll.ALL_REDUCE and 0 <= log_size <= TREE_CORRECTION_MAX_INDEX.get(a, -1):
        nvls_tree_ok = system.compute_capability >= 100 and system.cpu in ("intel", "amd")
        if a is Algo.TREE or (a is Algo.NVLS_TREE and nvls_tree_ok):
            bw *= TREE_CORRECTION_FACTOR[p][log_size]
    if (a is Algo.RING and p is SIMPLE and c is Coll.ALL_REDUCE and system.n_nodes > 1
            and n_bytes // (system.n_channels * system.n_ranks) >= 64):
        lat *= RING_PLATEAU[0] if system.compute_capability < 80 else RING_PLATEAU[1]
    lat_count = 1  # numPipeOps of a single, ungrouped operation
    return lat * lat_count + n_bytes / (1000.0 * bw)


def predict_time_s(coll, algo, proto, size_bytes, system: NcclSystem) -> float:
    """:func:`predict_time_us` in seconds; ``math.inf`` when disabled."""
    return predict_time_us(coll, algo, proto, size_bytes, system) * 1e-6


@dataclass(frozen=True)
class Choice:
    """The (algorithm, protocol) NCCL's tuner picks and the time it predicts for it."""

    algo: Algo
    proto: Proto
    time_s: float


def time_table_s(coll, size_bytes, system: NcclSystem, algos: Iterable | None = None,
                 protos: Iterable | None = None) -> dict[tuple[Algo, Proto], float]:
    """Predicted seconds of every enabled (algo, proto) for this call, in NCCL's index order.

    ``algos`` / ``protos`` restrict the candidates like ``NCCL_ALGO`` / ``NCCL_PROTO`` lists (names in any case).
    """
    c = as_coll(coll)
    algo_set = list(Algo) if algos is None else _names(algos, as_algo, "algos")
    proto_set = list(Proto) if protos is None else _names(protos, as_proto, "protos")
    table = {}
    for a in Algo:
        if a not in algo_set:
            continue
        for p in Proto:
            if p not in proto_set:
                continue
            t = predict_time_s(c, a, p, size_bytes, system)
            if math.isfinite(t):
                table[(a, p)] = t
    return table


def choose(coll, size_bytes, system: NcclSystem, algos: Iterable | None = None,
           protos: Iterable | None = None) -> Choice:
    """NCCL's default choice (``topoGetAlgoInfo``): the enabled (algo, proto) of least predicted time, the first
    in index order on ties. Raises :class:`GpusimError` when the restrictions leave nothing enabled."""
    table = time_table_s(coll, size_bytes, system, algos, protos)
    best = None
    for key, t in table.items():
        if best is None or t < table[best]:
            best = key
    if best is None:
        c = as_coll(coll)
        raise GpusimError("algos" if algos is not None else "protos" if protos is not None else "coll",
                          f"no enabled NCCL algorithm/protocol for {c.value} on this system with algos="
                          f"{_fmt(algos)}, protos={_fmt(protos)}; enabled: {_fmt(_enabled_pairs(c, system))}")
    return Choice(best[0], best[1], table[best])


def tuning_table(system: NcclSystem) -> dict[tuple[Coll, Algo, Proto], tuple[float, float]]:
    """Every (coll, algo, proto) -> (latency µs, algBw GB/s), as NCCL prints with NCCL_DEBUG_SUBSYS=TUNING
    (0 bandwidth = disabled)."""
    return {(c, a, p): (_entry(system, c, a, p)[0], _entry(system, c, a, p)[2])
            for c in Coll for a in Algo for p in Proto}


def _enabled_pairs(coll: Coll, system: NcclSystem) -> list[str]:
    return [f"{a.value}/{p.value}" for a in Algo for p in Proto if _entry(system, coll, a, p)[2] > 0.0]


def _names(items, parse, path: str) -> list:
    if isinstance(items, (str, Algo, Proto)):
        items = [items]
    return [parse(x, f"{path}[{i}]") for i, x in enumerate(items)]


def _fmt(items) -> str:
    if items is None:
        return "all"
    if isinstance(items, str):
        return items
    return ",".join(str(x) for x in items) or "none"


def _size(size_bytes) -> int:
    """NCCL's nBytes is a size_t: non-negative whole bytes."""
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, numbers.Real) or not math.isfinite(size_bytes) \
            or size_bytes < 0 or int(size_bytes) != size_bytes:
        raise GpusimError("size_bytes", f"expected a non-negative whole number of bytes, got {size_bytes!r}")
    return int(size_bytes)


def p2p_channels(size_bytes: float, n_ranks: int, multi_node: bool, total: int, per_peer: int,
                 chunk_bytes: int) -> int:
    """Channels NCCL stripes one send (or receive) of ``size_bytes`` over, to one peer.

    NCCL 2.28-2.30 ``src/enqueue.cc`` (``scheduleP2pTasksToPlan``, ``addP2pToPlan``): at least ``per_peer`` halved
    until ``min x n_ranks <= total`` (one channel per operation when every rank has one to each peer), then
    doubled while each part exceeds its largest size (``chunk_bytes x 32`` on one node, ``chunk_bytes`` across
    nodes), up to ``per_peer``; a small transfer uses as many as have ``chunk_bytes / 8`` (``/ 2`` across nodes)
    each. ``total``, ``per_peer`` and ``chunk_bytes`` are NCCL's ``p2pnChannels``,
    ``p2pnChannelsPerPeer`` and ``p2pChunkSize`` (logged at init: 32, 32 and 512 KiB over NVLink on H200).
    """
    if size_bytes <= 0:
        return 1
    lowest = per_peer
    while lowest * n_ranks > total and lowest > 1:
        lowest //= 2
    min_part = chunk_bytes // 2 if multi_node else chunk_bytes // 8
    max_part = chunk_bytes if multi_node else chunk_bytes * 32
    channels = min(lowest, math.ceil(size_bytes / min_part))
    part = max(min_part, math.ceil(size_bytes / channels))
    while part > max_part and channels <= per_peer // 2:
        channels *= 2
        part = math.ceil(size_bytes / channels)
    return channels


#: NCCL_P2P_LL_THRESHOLD's default (src/enqueue.cc, NCCL 2.14-2.30; NCCL's environment-variable docs).
P2P_LL_THRESHOLD_BYTES = 16384


def p2p_protocol(size_bytes: float, channels: int, multi_node: bool) -> str:
    """The protocol of one send (or receive) of ``size_bytes`` striped over ``channels`` (:func:`p2p_channels`).

    NCCL 2.28-2.30 ``src/enqueue.cc`` (``addP2pToPlan``): LL when the bytes are at most ``channels`` times
    NCCL_P2P_LL_THRESHOLD (16 KiB a channel) and the connection has LL buffers, Simple otherwise. Connections inside a
    node (P2P over NVLink or PCIe, SHM) have them; a network connection (IB, RoCE, sockets) has none unless
    NCCL_ALLOC_P2P_NET_LL_BUFFERS=1 (default 0), so point-to-point traffic between nodes is always Simple."""
    if multi_node or size_bytes > channels * P2P_LL_THRESHOLD_BYTES:
        return "Simple"
    return "LL"
