"""Per-cluster parameters of collective execution: protocol payload efficiency, software latencies, overheads.

Two stock models:

* :meth:`CostModel.nccl` — NCCL 2.30.7's constants (``src/graph/tuning.cc`` via :mod:`gpusim.collectives.nccl_model`):
  base latency per (algorithm, protocol), per-step hardware latency per (hw class, algorithm, protocol), protocol
  caps; protocol payload on the wire LL 50 % (16-byte line = 2 x (4 B data + 4 B flag)), LL128 93.75 % (120 of 128
  bytes, NCCL_LL128_DATAELEMS), Simple 100 % (device.h, physics.md §1.6). Algorithm and protocol are chosen as
  NCCL's tuner does.
* :meth:`CostModel.ideal` — pure alpha-beta: no software latency, every protocol carries 100 % payload, so a ring
  on an analytical shape costs exactly ``steps * link latency + bytes / bandwidth`` (ASTRA-sim's analytical backend).

A fixed ``call_overhead_s`` is paid once per collective, and a call lasts at least its issue interval,
``launch_floor_s`` plus ``p2p_launch_s`` per send and receive it posts (:meth:`CostModel.issue_interval_s`):
back-to-back calls cannot start faster than the host issues them (validation/data/h200: 20-55 us per eager
torch.distributed call, 8-15 us per NCCL C-API call from Python, and a 4-rank all_to_all's eight grouped sends and
receives 27 us where a CUDA graph replays it in 6.5). Calibration fits these together with per-protocol scales of
NCCL's base and per-step latencies, payload efficiencies, a bandwidth scale per operation (NCCL's kernels for all_gather,
broadcast ... reach different fractions of a link than all_reduce's) and link efficiencies, per transport.

``own_chunk_Bps[op]`` is the rate of each rank's pass over its own chunk (S/n) in a ring all_reduce, all_gather,
reduce_scatter or an all_to_all, after the transfer: 1/n of the buffer, so it weighs most on few ranks (2 H200s
over NVLink: all_gather 304 GB/s busbw where broadcast reached 366; 4 H200s: 345). :func:`own_chunk_rates` derives
it from a GPU's local copy rate. ``p2p_channel_Bps`` caps each
channel of a point-to-point send, striped over as many channels as NCCL gives it (``nccl_model.p2p_channels``).
``ring_channel_Bps[proto][op]`` caps each channel of a ring or chain at the payload rate one channel (one thread
block a GPU) reached alone in ``op`` with ``proto``, where NCCL's own tables have no cap (Simple) or one above it
(LL's is a total, LL128's per channel higher): without it a call given fewer channels would keep the links' rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy import special

from gpusim.collectives import nccl_model as nm
from gpusim.errors import GpusimError

PROTOCOLS = ("LL", "LL128", "Simple")
_HW = {"nvlink": nm.Hw.NVLINK, "pci": nm.Hw.PCI, "net": nm.Hw.NET}
_NCCL_ALGO = {"ring": nm.Algo.RING, "tree": nm.Algo.TREE, "nvls": nm.Algo.NVLS, "direct": nm.Algo.RING,
              "hierarchical": nm.Algo.RING}
PAYLOAD_EFFICIENCY = {"LL": 0.5, "LL128": 120.0 / 128.0, "Simple": 1.0}
OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all", "sendrecv")
#: operations in which every rank also passes its own chunk (S/n) through its kernel without sending it
OWN_CHUNK_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
#: operations run as rings or chains, whose channels ``ring_channel_Bps`` caps
RING_OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce")


def p2p_calls(op: str, n_ranks: int) -> int:
    """Sends and receives one rank posts in a group for ``op``: all_to_all one of each to every rank, itself
    included (nccl-tests alltoall_perf and PyTorch's all_to_all_single post them so), sendrecv one of each; 0 for
    the collectives, one NCCL call each."""
    return 2 * n_ranks if op == "all_to_all" else 2 if op == "sendrecv" else 0


# One channel of a ring or chain is one thread block a GPU, and it has a rate of its own. Simple: on 2 H200 SXM over
# NVLink4 forced to NCCL_MIN_NCHANNELS=NCCL_MAX_NCHANNELS=1, 2, 4 and 8, busbw at 1 GiB grew in proportion to the
# channels, from all_reduce 20.9, all_gather 15.2 and broadcast 35.3 GB/s on one channel
# (validation/data/h200/extra/probe_channels, 1-channel rows); reduce_scatter, not measured, takes all_reduce's (its
# steps are all_reduce's first half). LL and LL128: NCCL caps LL's total (141 GB/s on Hopper inside a node, shared by
# the channels) and LL128's channels above what one reached, so one channel would keep the links' rate; forced
# all_reduce grew in proportion to 1-8 channels too (extra/probe_channel_protocols): one channel's busbw with LL at
# 16 MiB (the largest size before LL's rate falls, to 5.2 GB/s at 64 MiB on every channel count; NCCL runs LL below
# 2 MiB) and with LL128 at 256 MiB, 7.20 and 16.0 GB/s. Measured on all_reduce only, so the other operations keep
# NCCL's LL and LL128 caps (a broadcast runs one way, and with Simple one channel of it moved 1.7x all_reduce's).
# Measured on 2 ranks and assumed the same on more. The Hopper NVSwitch presets (H100 and H200 SXM: the same SM and
# 18 NVLink4 links a GPU) carry them; at NCCL's 24 channels there only all_gather's (24 x 15.2 = 365 GB/s) comes near
# the links' 371.
H200_NVLINK_RING_CHANNEL_Bps = {
    "Simple": {"all_reduce": 20.9e9, "all_gather": 15.2e9, "reduce_scatter": 20.9e9, "broadcast": 35.3e9},
    "LL": {"all_reduce": 7.20e9}, "LL128": {"all_reduce": 16.0e9}}
# One point-to-point channel's rate over NVLink: 2-rank sendrecv under NCCL_MIN_NCHANNELS=NCCL_MAX_NCHANNELS=1, one p2p
# channel, moved 21.0 GB/s at 256 MiB (20.8 at 64 MiB; extra/probe_channel_protocols/c1_collectives.csv), 2, 4 and 8
# channels 42.9, 84.0 and 165.0. The Hopper NVSwitch presets carry it (h200-nvlink fits its own, 19.7).
H200_NVLINK_P2P_CHANNEL_Bps = 21.0e9


def expected_max_normal(n: int) -> float:
    """E[max of ``n`` independent standard normal variables]: 0 for one, 1/sqrt(pi) = 0.5642 for two, 1.0294 for
    four, 1.4236 for eight (order statistics of the normal distribution; H. L. Harter, "Expected values of normal
    order statistics", Biometrika 48, 1961): the integral of x * d/dx Phi(x)^n by the midpoint rule on [-9, 9],
    within 1e-12 of adaptive quadrature up to n = 4096."""
    return 0.0 if n <= 1 else _expected_max_normal(int(n))


@lru_cache(maxsize=None)
def _expected_max_normal(n: int) -> float:
    step = 1e-3
    x = (np.arange(-9000, 9000) + 0.5) * step
    return float(np.sum(x * n * special.ndtr(x) ** (n - 1) * np.exp(-0.5 * x * x)) * step / math.sqrt(2.0 * math.pi))


#: Largest latency scale accepted: NCCL's per-step latencies are 0.6-31 us (hwLatencies, physics.md), so 1e6 makes a step
#: seconds long; a scale of 1e300 is a typo, and its times stop meaning anything.
MAX_LATENCY_SCALE = 1e6


@dataclass(frozen=True)
class CostModel:
    """How collectives turn into flows and latencies on a given cluster."""

    name: str = "nccl"
    tuner: str = "nccl"                  # "nccl": NCCL's own (algo, proto) choice; "estimate": min of our estimate
    arch: str = "hopper"
    cpu: str = "intel"
    channels: int = 16
    payload_efficiency: dict = field(default_factory=lambda: dict(PAYLOAD_EFFICIENCY))
    use_nccl_latencies: bool = True
    call_overhead_s: float = 0.0
    step_latency_scale: float | dict = 1.0   # multiplies NCCL's per-step hw latencies: one number, or per protocol
    base_latency_scale: float | dict = 1.0   # multiplies NCCL's base latencies: one number, or per protocol
    launch_floor_s: float = 0.0              # shortest call: the host's issue interval of back-to-back calls
    p2p_launch_s: float = 0.0                # and the host's time per send or receive a grouped p2p call posts
    op_bandwidth_scale: dict = field(default_factory=dict)   # op -> rate relative to all_reduce's (default 1)
    straggler_cv: float = 0.0               # a stream's rate spread; a call waits for its slowest (straggler_factor)
    own_chunk_Bps: dict = field(default_factory=dict)   # op -> rate of a rank's pass over its own chunk (S/n)
    p2p_channels: int = 32                  # NCCL's p2pnChannels, p2pnChannelsPerPeer and p2pChunkSize: how many
    p2p_channels_per_peer: int = 32         # channels a send / receive is striped over (nccl_model.p2p_channels)
    p2p_chunk_bytes: int = 512 * 1024
    p2p_channel_Bps: float = math.inf       # one p2p channel's rate (one thread block's copy through the transport)
    ring_channel_Bps: dict = field(default_factory=dict)   # proto -> op -> payload rate of one ring/chain channel
    nvls: bool = False
    allowed_protocols: tuple = PROTOCOLS
    graph_channels: int | None = None       # the ring graph NCCL's topology search reported (nChannels, bw of
    graph_bw_Bps: float | None = None       # "Pattern 4 ... nChannels 12, bw 30/30"): what its tuner decides with,
    #                                         nominal where the links' rates are achieved; None: from the links

    @classmethod
    def nccl(cls, arch: str = "hopper", channels: int = 16, call_overhead_s: float = 0.0, **kw) -> "CostModel":
        return cls(name="nccl", tuner="nccl", arch=arch, channels=channels, call_overhead_s=call_overhead_s, **kw)

    @classmethod
    def ideal(cls, channels: int = 1) -> "CostModel":
        return cls(name="ideal", tuner="estimate", channels=channels,
                   payload_efficiency={p: 1.0 for p in PROTOCOLS}, use_nccl_latencies=False,
                   allowed_protocols=("Simple",))

    def with_overrides(self, **kw) -> "CostModel":
        return replace(self, **kw)

    def graph_replayed(self) -> "CostModel":
        """This model for calls replayed from a CUDA graph: the host issues none of them, so no issue interval."""
        return replace(self, launch_floor_s=0.0, p2p_launch_s=0.0)

    def issue_interval_s(self, op: str, n_ranks: int) -> float:
        """The host's time to issue one call of ``op`` on ``n_ranks`` (the shortest a back-to-back call can last):
        ``launch_floor_s``, plus ``p2p_launch_s`` per send and receive the call posts."""
        return self.launch_floor_s + self.p2p_launch_s * p2p_calls(op, n_ranks)

    # -- latencies ------------------------------------------------------------------------------------------
    def base_latency_s(self, algo: str, proto: str) -> float:
        if not self.use_nccl_latencies:
            return 0.0
        return nm.BASE_LAT_US[_NCCL_ALGO[algo]][PROTOCOLS.index(proto)] * 1e-6 * _per(self.base_latency_scale, proto)

    def step_latency_s(self, algo: str, proto: str, hw: str) -> float:
        """Software latency of one step over a hop of hardware class ``hw`` (NCCL hwLatencies)."""
        if not self.use_nccl_latencies:
            return 0.0
        a = nm.Algo.TREE if algo == "tree" else nm.Algo.RING
        lat = nm.HW_LAT_US[_HW[hw]][a][PROTOCOLS.index(proto)]
        if hw == "net":
            lat = max(lat, nm.NET_OVERHEAD_US[self.cpu] * (3 if proto == "Simple" else 1))
        return lat * 1e-6 * _per(self.step_latency_scale, proto)

    def step_scale(self, proto: str) -> float:
        return _per(self.step_latency_scale, proto)

    def own_chunk_rate(self, op: str) -> float:
        """Rate of a rank's pass over its own chunk (S/n) in ``op``, serial with the transfer (inf: none)."""
        return self.own_chunk_Bps.get(op, math.inf)

    def p2p_channel_counts(self, channels: int | None = None) -> tuple[int, int]:
        """NCCL's p2pnChannels and p2pnChannelsPerPeer on ``channels`` collective channels: the model's own
        (logged) counts on its own channel count; on another, as NCCL derives them (src/graph/paths.cc,
        ncclTopoComputeP2pChannels), the next power of two of the channels (24 give 32; under
        NCCL_MIN/MAX_NCHANNELS 1, 2, 4, 8 gave as many, validation/data/h200/extra/probe_channels and
        probe_shm_channels), a peer getting at most its logged share (SHM: 2 on 4 and on 8 channels)."""
        if channels is None or channels == self.channels:
            return self.p2p_channels, self.p2p_channels_per_peer
        total = 1 << (channels - 1).bit_length()
        return total, min(self.p2p_channels_per_peer, total)

    def p2p_cap_Bps(self, size_bytes: float, n_ranks: int, multi_node: bool, channels: int | None = None) -> float:
        """Payload-rate ceiling of one send of ``size_bytes`` to one peer: NCCL's channel count for it times one
        channel's rate (inf where the model has no per-channel rate)."""
        if self.p2p_channel_Bps == math.inf:
            return math.inf
        return self.p2p_channel_Bps * self.p2p_send_channels(size_bytes, n_ranks, multi_node, channels)

    def p2p_budget_Bps(self, channels: int | None = None) -> float:
        """What all of one GPU's concurrent sends can move together: its p2p channels (p2pnChannels) times one
        channel's rate. An all_to_all's sends to more peers than it has channels share them: on 2 channels a 4-rank
        SHM all_to_all moved 21.6 GB/s busbw (extra/probe_shm_channels), 2 x 11.8 GB/s shared by three peers,
        where one channel for each would give 35."""
        return self.p2p_channel_Bps * self.p2p_channel_counts(channels)[0]

    def p2p_send_channels(self, size_bytes: float, n_ranks: int, multi_node: bool, channels: int | None = None) -> int:
        """Channels NCCL stripes one send of ``size_bytes`` to one peer over (:func:`nccl_model.p2p_channels`) in a
        call on ``channels`` collective channels (:meth:`p2p_channel_counts`)."""
        total, per_peer = self.p2p_channel_counts(channels)
        return nm.p2p_channels(size_bytes, n_ranks, multi_node, total, per_peer, self.p2p_chunk_bytes)

    def p2p_protocol(self, size_bytes: float, n_ranks: int, multi_node: bool, channels: int | None = None) -> str:
        """The protocol NCCL gives one send of ``size_bytes`` to one peer (:func:`nccl_model.p2p_protocol`), among
        this model's allowed protocols."""
        proto = nm.p2p_protocol(size_bytes, self.p2p_send_channels(size_bytes, n_ranks, multi_node, channels),
                                multi_node)
        return proto if proto in self.allowed_protocols else "Simple"

    def efficiency(self, proto: str, op: str | None = None, n_ranks: int = 1) -> float:
        """Payload bytes per wire byte of ``proto``, times ``op``'s bandwidth scale when an op is given, over the
        straggler factor of a call on ``n_ranks``."""
        scale = self.op_bandwidth_scale.get(op, 1.0) if op else 1.0
        return self.payload_efficiency[proto] * scale / self.straggler_factor(n_ranks)

    def straggler_factor(self, n_ranks: int) -> float:
        """How much longer a call's transfer takes on ``n_ranks`` because each step waits for the slowest of its
        ranks' streams: ``1 + straggler_cv * E[max of n_ranks standard normals]``, where ``straggler_cv`` is the
        relative spread of one stream's rate from step to step. The expected delay of a synchronising step is that
        of the maximum of the ranks' noise (T. Hoefler, T. Schneider, A. Lumsdaine, "Characterizing the influence of
        system noise on large-scale applications by simulation", SC 2010). 1 where ``straggler_cv`` is 0."""
        return 1.0 + self.straggler_cv * expected_max_normal(n_ranks) if self.straggler_cv else 1.0

    def channel_cap_Bps(self, algo: str, proto: str, n_nodes: int, channels: int, op: str | None = None) -> float:
        """Payload-rate ceiling of one channel: NCCL's protocol caps (physics.md §1.5), and for a ring or chain the
        measured rate of one channel (``ring_channel_Bps[proto][op]``); inf where none."""
        measured = self.ring_channel_Bps.get(proto, {}).get(op, math.inf) if algo == "ring" else math.inf
        if algo == "ring" and proto == "Simple":
            return measured
        if not self.use_nccl_latencies:
            return measured
        arch = nm.ARCHS[self.arch][0]
        col = 0 if n_nodes == 1 else (1 if n_nodes == 2 else 2)
        if proto == "LL":
            row = arch if n_nodes == 1 else (0 if self.cpu == "intel" else 1)
            return min(nm.LL_MAX_BWS_GBPS[row][col] * 1e9 / channels, measured)
        if proto == "LL128":
            table = nm.PER_CH_MAX_TREE_LL128_BWS_GBPS if algo == "tree" else nm.PER_CH_MAX_RING_LL128_BWS_GBPS
            return min(table[arch][col] * 1e9, measured)
        if algo == "tree":
            return nm.PER_CH_MAX_TREE_BWS_GBPS[arch][col] * 1e9
        return float("inf")

    def validate(self, path: str = "cost_model") -> "CostModel":
        if self.tuner not in ("nccl", "estimate"):
            raise GpusimError(f"{path}.tuner", f"expected 'nccl' or 'estimate', got {self.tuner!r}")
        if self.arch not in nm.ARCHS:
            raise GpusimError(f"{path}.arch", f"expected one of {', '.join(nm.ARCHS)}, got {self.arch!r}")
        if not isinstance(self.channels, int) or not 1 <= self.channels <= 64:
            raise GpusimError(f"{path}.channels", f"expected an integer 1..64, got {self.channels!r}")
        for name, low in (("p2p_channels", 1), ("p2p_channels_per_peer", 1), ("p2p_chunk_bytes", 1024)):
            x = getattr(self, name)
            if isinstance(x, bool) or not isinstance(x, int) or x < low:
                raise GpusimError(f"{path}.{name}", f"expected an integer of at least {low}, got {x!r}")
        if (self.graph_channels is None) != (self.graph_bw_Bps is None):
            raise GpusimError(f"{path}.graph_channels", "give both graph_channels and graph_bw_Bps (NCCL's ring "
                                                        "graph) or neither")
        if self.graph_channels is not None:
            if isinstance(self.graph_channels, bool) or not isinstance(self.graph_channels, int) or \
                    not 1 <= self.graph_channels <= 64:
                raise GpusimError(f"{path}.graph_channels", f"expected an integer 1..64, got {self.graph_channels!r}")
            if isinstance(self.graph_bw_Bps, bool) or not isinstance(self.graph_bw_Bps, (int, float)) or \
                    not 0 < self.graph_bw_Bps < math.inf:
                raise GpusimError(f"{path}.graph_bw_Bps", f"expected a positive rate, got {self.graph_bw_Bps!r}")
        if not self.p2p_channel_Bps > 0:
            raise GpusimError(f"{path}.p2p_channel_Bps", f"expected a positive rate, got {self.p2p_channel_Bps!r}")
        if not isinstance(self.own_chunk_Bps, dict):
            raise GpusimError(f"{path}.own_chunk_Bps", f"expected a mapping of operation to rate, e.g. "
                                                      f"{{'all_gather': 1.1e12}}, got {self.own_chunk_Bps!r}")
        for op, x in self.own_chunk_Bps.items():
            if op not in OWN_CHUNK_OPS:
                raise GpusimError(f"{path}.own_chunk_Bps.{op}", f"expected an operation ({', '.join(OWN_CHUNK_OPS)})")
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0:
                raise GpusimError(f"{path}.own_chunk_Bps.{op}", f"expected a positive rate, got {x!r}")
        rates = self.ring_channel_Bps
        if not isinstance(rates, dict) or not all(isinstance(v, dict) for v in rates.values()):
            raise GpusimError(f"{path}.ring_channel_Bps", f"expected a mapping of protocol to a mapping of operation "
                                                         f"to rate, e.g. {{'Simple': {{'all_reduce': 2.1e10}}}}, "
                                                         f"got {rates!r}")
        for proto, per_op in rates.items():
            if proto not in PROTOCOLS:
                raise GpusimError(f"{path}.ring_channel_Bps.{proto}", f"expected a protocol ({', '.join(PROTOCOLS)})")
            for op, x in per_op.items():
                where = f"{path}.ring_channel_Bps.{proto}.{op}"
                if op not in RING_OPS:
                    raise GpusimError(where, f"expected an operation run as a ring ({', '.join(RING_OPS)})")
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0:
                    raise GpusimError(where, f"expected a positive rate, got {x!r}")
        for name in ("call_overhead_s", "launch_floor_s", "p2p_launch_s"):
            if not getattr(self, name) >= 0:
                raise GpusimError(f"{path}.{name}", f"expected a non-negative number, got {getattr(self, name)!r}")
        for name in ("step_latency_scale", "base_latency_scale"):
            v = getattr(self, name)
            items = v.items() if isinstance(v, dict) else [(None, v)]
            for proto, x in items:
                where = f"{path}.{name}" + (f".{proto}" if proto else "")
                if proto is not None and proto not in PROTOCOLS:
                    raise GpusimError(where, f"expected a protocol ({', '.join(PROTOCOLS)}), got {proto!r}")
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= MAX_LATENCY_SCALE:
                    raise GpusimError(where, f"expected a number from 0 to {MAX_LATENCY_SCALE:g} (a multiple of NCCL's "
                                             f"latencies), got {x!r}")
        cv = self.straggler_cv
        if isinstance(cv, bool) or not isinstance(cv, (int, float)) or not 0 <= cv <= 1:
            raise GpusimError(f"{path}.straggler_cv", "expected a relative spread from 0 to 1 (0: every stream keeps "
                                                      f"its rate), got {cv!r}")
        for op, x in self.op_bandwidth_scale.items():
            if op not in OPS:
                raise GpusimError(f"{path}.op_bandwidth_scale.{op}", f"expected an operation ({', '.join(OPS)})")
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0:
                raise GpusimError(f"{path}.op_bandwidth_scale.{op}", f"expected a positive number, got {x!r}")
        return self


def own_chunk_rates(local_copy_Bps: float, own_copy_Bps: float) -> dict:
    """Own-chunk pass rates of the ring operations and all_to_all, from NCCL's ring primitives (src/device/
    all_gather.h, reduce_scatter.h, all_reduce.h), with data staged in NCCL's buffers (no user-buffer
    registration):

    * the last step of a ring all_gather or all_reduce only receives: it copies the chunk that arrived in NCCL's
      buffer into the output (``directRecv``), S/n that no link transfer overlaps, at the local copy rate;
    * out of place, all_gather's first step also copies the rank's own input chunk into the output
      (``directCopySend``), which measured as a further S/n at ``own_copy_Bps`` (partly hidden by the send);
    * reduce_scatter's last step reduces the arrived chunk with the rank's input into the output
      (``directRecvReduceCopy``): two reads and a write where a copy has one of each, so 2/3 of the copy rate;
    * all_to_all's part to itself is a local copy of S/n.
    """
    return {"all_reduce": local_copy_Bps,
            "all_gather": 1.0 / (1.0 / local_copy_Bps + 1.0 / own_copy_Bps),
            "reduce_scatter": local_copy_Bps * 2.0 / 3.0,
            "all_to_all": local_copy_Bps}


def _per(scale: float | dict, proto: str) -> float:
    """A latency scale for ``proto``: the number itself, or the protocol's entry (1 where it has none)."""
    return scale.get(proto, 1.0) if isinstance(scale, dict) else scale
