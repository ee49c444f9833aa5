"""How each NCCL transport is modelled for calibration: the topology builder and its arguments, what NCCL logged
about it (channels, p2p channels, protocols), the constants taken from measurements rather than fitted (with their
sources), and the free parameters :mod:`gpusim.calibration.fit` fits, each with its first guess, bounds and prior.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from gpusim.calibration.preset_file import CalibratedPreset
from gpusim.collectives.cost_model import H200_NVLINK_RING_CHANNEL_Bps, PAYLOAD_EFFICIENCY, PROTOCOLS, own_chunk_rates
from gpusim.errors import GpusimError, unknown

#: Cost-model fields that map a protocol or an operation to a number; a parameter ``<field>.<key>`` is one entry.
MODEL_MAPS = ("payload_efficiency", "base_latency_scale", "step_latency_scale", "op_bandwidth_scale", "own_chunk_Bps")


@dataclass(frozen=True)
class Param:
    """A free parameter: the per-rank call overhead, one entry of a cost-model map (``step_latency_scale.LL``,
    ``op_bandwidth_scale.all_gather``, ``own_chunk_Bps.all_reduce``) or ``<technology>.<field>`` of a link
    (``nvlink4.efficiency``)."""

    name: str
    initial: float
    low: float
    high: float
    unit: str = ""          # how to print it: 'us', 'GB/s' or '' (a plain number)
    prior: float = 0.0      # width (natural log) of a log-normal prior around ``initial``; 0: none
    min_world_sizes: int = 1    # training world sizes it takes to tell it apart; with fewer, held at ``initial``

    @property
    def entry(self) -> tuple[str, str] | None:
        """(map, key) for an entry of a cost-model map, else None."""
        head, _, tail = self.name.partition(".")
        return (head, tail) if head in MODEL_MAPS else None

    @property
    def link(self) -> tuple[str, str] | None:
        if "." not in self.name or self.entry:
            return None
        techname, fieldname = self.name.split(".", 1)
        return techname, fieldname

    def show(self, value: float) -> str:
        if self.unit == "us":
            return f"{value * 1e6:.3f} us"
        if self.unit == "GB/s":
            return f"{value / 1e9:.3f} GB/s"
        return f"{value:.4g}"


#: Latency scales of the cost model (per protocol): every flow latency is affine in them.
LATENCY_TERMS = ("base_latency_scale", "step_latency_scale")
# not fitted by the shipped transports: on NCCL C-API launches it went to ~0.1 us and traded off against the
# per-step latencies; on eager torch.distributed launches it carried the framework's 20-55 us per call
PER_RANK = Param("call_overhead_per_rank_s", 1e-6, 1e-9, 1e-3, "us")
# Back-to-back calls issued one by one from the host last max(the host's issue interval, the GPU's time): small calls
# replayed from a CUDA graph of the same C-API calls took 5.0 (2 ranks) and 6.6 us (4 ranks) on the GPU over NVLink
# where the host's calls took 7.6 and 10.8 us, and max(host time of the smallest calls, GPU time) gave every C-API
# time to a median 1.7-2.5 % (validation/data/h200/extra/probe_graph_vs_api). Without the floor, the latencies fit
# to host-launched calls carry the host's interval into every call: the GPU's own latency came out at twice its
# measured value. The floor is the host's, not the network's: a workload replayed from a CUDA graph has none
# (cost_model launch_floor 0). fit() starts it at the smallest calls' time: from below every call it has no gradient.
FLOOR = Param("launch_floor_s", 10e-6, 1e-7, 1e-3, "us")
# Grouped point-to-point calls cost the host more per call: a 4-rank all_to_all (four sends and four receives a rank,
# itself included) took 27.3 us through the C API and 6.5 us replayed from a CUDA graph over NVLink, where a 4-rank
# all_reduce took 10.0 and 7.7 (extra/probe_graph_vs_api, 8 B-64 KiB); in the C-API runs small all_to_all took
# 19, 28 and 29 us on 2, 3 and 4 ranks and the collectives 11-13 (NVLink; SHM alike). The issue interval of such a
# call is the floor plus this much per send and receive (cost_model.issue_interval_s). Zero where no call waits on it.
P2P_LAUNCH = Param("p2p_launch_s", 1e-6, 1e-9, 1e-4, "us")
PRIOR_WIDTH = 1.0
LATENCY_SCALES = tuple(Param(f"{term}.{proto}", 1.0, 1e-3, 1e2, prior=PRIOR_WIDTH)
                       for term in LATENCY_TERMS for proto in PROTOCOLS)
LL_EFFICIENCY = Param("payload_efficiency.LL", PAYLOAD_EFFICIENCY["LL"], 0.01, 1.0, prior=PRIOR_WIDTH)
LL128_EFFICIENCY = Param("payload_efficiency.LL128", PAYLOAD_EFFICIENCY["LL128"], 0.01, 1.0, prior=PRIOR_WIDTH)
# all_reduce's rate is the link's (fitted efficiency); the others' relative to it
OP_SCALES = tuple(Param(f"op_bandwidth_scale.{op}", 1.0, 0.25, 4.0, prior=PRIOR_WIDTH)
                  for op in ("all_gather", "reduce_scatter", "broadcast", "all_to_all", "sendrecv"))
_COMMON = (*LATENCY_SCALES, LL_EFFICIENCY, LL128_EFFICIENCY, *OP_SCALES)
# Over NVLink, one-way transfers (broadcast, sendrecv) reach 360-366 GB/s busbw at 4 GiB on 2 and on 4 ranks, but
# ring collectives are slower on 2 ranks than on 4 (all_gather 304 vs 345, all_reduce 348 vs 361): each rank also
# passes its own chunk, S/n, through its kernel outside the pipelined transfer (the last step's copy out of NCCL's
# buffer, cost_model.own_chunk_rates), which costs less per byte sent as n grows. The pass is not fitted: on 4 ranks
# it is under 2 % of a ring's time and a fit lets it wander (all_reduce's went to 5 PB/s and mispredicted 2 ranks
# by 12 %). Its rates come from measured copies instead: the H200 copies 2.11 TB/s locally (1 GiB,
# validation/data/h200/extra/copy_bandwidth.csv), and out-of-place all_gather took as long as in place plus a pass
# over S/n at 3.3 TB/s (median at 1-4 GiB on 2 and 4 ranks, extra/probe_in_place).
H200_LOCAL_COPY_Bps = 2.11e12
H200_OWN_COPY_Bps = 3.3e12
#: Local copy rates accepted (bytes/s): any GPU's, with room on both sides (the fit's residuals stay finite).
LOCAL_COPY_RANGE_Bps = (1e9, 1e14)
# NVLink sendrecv on 3 and 4 ranks ran at half its 2-rank rate from 8 to 128 MiB and equal from 256 MiB: NCCL gives
# a send 8 channels there (16 on 2 ranks, 16 at 256 MiB, 32 from 512 MiB, nccl_model.p2p_channels), and a channel
# moves ~19 GB/s (2 ranks, 256 MiB: 303 GB/s busbw on 16 channels; 4 ranks, 16-128 MiB: 135-161 GB/s on 8). Over
# SHM a send to one of 3 or 4 peers gets 1 channel up to 4 MiB; over sockets 2 channels never bind (not fitted).
P2P_CHANNEL = Param("p2p_channel_Bps", 20e9, 1e9, 1e13, "GB/s")
# One channel of a ring or chain is one thread block a GPU, and it has a rate of its own: over NVLink the measured
# rates are cost_model.H200_NVLINK_RING_CHANNEL_Bps (where the measurement is described). Over SHM, the same probes
# (validation/data/h200/extra/probe_channels and probe_channel_protocols, 1-channel rows) gave Simple all_reduce 14.0,
# all_gather 14.3 and broadcast 34.8 GB/s (reduce_scatter takes all_reduce's), LL 2.63 and LL128 9.39 (all_reduce).
# Not fitted: on NCCL's own 24 and 4 channels the links and the protocols' efficiencies bind first.
H200_SHM_RING_CHANNEL_Bps = {
    "Simple": {"all_reduce": 14.0e9, "all_gather": 14.3e9, "reduce_scatter": 14.0e9, "broadcast": 34.8e9},
    "LL": {"all_reduce": 2.63e9}, "LL128": {"all_reduce": 9.39e9}}
_NVLINK_OP_SCALES = tuple(p for p in OP_SCALES if p.name == "op_bandwidth_scale.sendrecv")
# SHM's all_to_all, like NVLink's, is timed by its point-to-point channels alone: a scale of its own, fitted on
# 2 ranks (where each peer's send gets 2 channels), carried 2-rank limits to 4 ranks (1 channel per peer, three peers
# sharing each GPU's budget) and predicted 4-rank all_to_all 24 % slow; without it the SHM cross-validation at
# >= 1 MiB went from 19.3 to 15.5 % (2 -> 4) and from 7.0 to 4.4 % (4 -> 2). Over sockets, whose 2 channels never
# bind, all_to_all keeps its scale (the TCP stack's cost of many connections).
_SHM_COMMON = tuple(p for p in _COMMON if p.name != "op_bandwidth_scale.all_to_all")


# Sockets: a call's transfer waits, step by step, for the slowest of its ranks' streams (CostModel.straggler_factor).
# The loopback TCP streams are driven by each rank's proxy thread and vary; NVLink's and SHM's, driven by the GPUs,
# fitted a spread of 1e-4 and 0.004, so only sockets carry it. On one world size the factor is a constant that the
# bandwidths absorb, so the spread is fitted only on two or more; on one it stays at 0.116, the geometric mean of
# what the 1-GPU machine's 2 and 4 ranks fitted on its three starts (0.185, 0.053 and 0.157; extra/probe_shared_gpu,
# another host than the data it is used on). Fitted on 2 and 4 ranks of the 4-GPU machine: 0.146 (2, 3 and 4: 0.144).
STRAGGLER = Param("straggler_cv", 0.116, 1e-4, 1.0, min_world_sizes=2)


def _gpu_io(initial_Bps: float) -> tuple[dict, Param]:
    """A GPU's send + receive budget (technology gpu_io): starts at about 1.5x one direction's capacity, where it
    just binds two-way traffic, so the data decide whether one direction slows the other (one-way broadcast vs
    two-way rings) or the budget rises out of the way."""
    return {"gpu_io_Bps": initial_Bps}, Param("gpu_io.bandwidth_Bps", initial_Bps, 1e9, 1e14, "GB/s")


# Sockets: a 2-rank broadcast (one way) ran at 4.5-6.4 GB/s where two-way rings ran at ~3.5 GB/s each way
# (validation/data/h200), the loopback TCP stack's CPU work being shared by both directions. SHM: a 2-rank
# broadcast moved 49.5 GB/s one way, a 2-rank all_gather 25 + 25 GB/s both ways, so the copies in and out of a GPU
# share ~50 GB/s. On NVLink a fitted budget rose out of the way (no row depended on it).
_SOCKET_IO = _gpu_io(7e9)
_SHM_IO = _gpu_io(60e9)


@dataclass(frozen=True)
class Transport:
    """How one NCCL transport is modelled: topology builder and arguments, fixed link overrides, channels, the
    protocols NCCL's tuner enables on it, and the free parameters."""

    name: str
    preset: str
    description: str
    builder: str
    arguments: dict
    gpus_argument: str
    protocols: tuple[str, ...]
    params: tuple[Param, ...]
    logged: dict                                  # cost-model fields NCCL logged (nccl_log.constants' keys)
    links: dict = field(default_factory=dict)     # fixed link overrides (technology -> fields)
    own_chunk: dict = field(default_factory=dict)   # fixed own-chunk pass rates (op -> B/s), from measured copies
    ring_channel: dict = field(default_factory=dict)   # fixed rates of one ring channel (proto -> op -> B/s), measured

    def fixed_model(self) -> dict:
        """Cost-model fields that are not fitted: what NCCL logged for this transport."""
        return {"arch": "hopper", **self.logged}

    def calibrated(self, values: dict, protocols=None, provenance: dict | None = None,
                   gpus: tuple[int, int, int] = (4, 2, 8)) -> CalibratedPreset:
        """The calibrated preset for parameter ``values`` (missing ones at their initial guess)."""
        links: dict = {t: dict(f) for t, f in self.links.items()}
        model = {**self.fixed_model(), "allowed_protocols": tuple(self.protocols if protocols is None else protocols)}
        if self.own_chunk:
            model["own_chunk_Bps"] = dict(self.own_chunk)
        if self.ring_channel:
            model["ring_channel_Bps"] = {p: dict(ops) for p, ops in self.ring_channel.items()}
        for p in self.params:
            v = values.get(p.name, p.initial)
            if p.link:
                techname, fieldname = p.link
                links.setdefault(techname, {})[fieldname] = v
            elif p.entry:
                group, key = p.entry
                model.setdefault(group, dict(PAYLOAD_EFFICIENCY) if group == "payload_efficiency" else {})[key] = v
            else:
                model[p.name] = v
        default, lo, hi = gpus
        return CalibratedPreset(self.preset, self.description, self.name, self.builder, self.gpus_argument,
                                dict(self.arguments), default, lo, hi, links, model, dict(provenance or {}))


def _logged(channels: int, p2p_channels: int, p2p_per_peer: int, p2p_chunk: int, graph_channels: int,
            graph_bw_Bps: float) -> dict:
    """The cost-model fields NCCL logs (nccl_log.constants), by name."""
    return {"channels": channels, "p2p_channels": p2p_channels, "p2p_channels_per_peer": p2p_per_peer,
            "p2p_chunk_bytes": p2p_chunk, "graph_channels": graph_channels, "graph_bw_Bps": graph_bw_Bps}


TRANSPORTS: dict[str, Transport] = {
    # Measured with NCCL 2.28 on 2 and 4 H200 (validation/data/h200/nccl_info.txt): 24 channels over NVLink
    # ("Channel 00/24"), 4 over SHM, 2 over sockets; p2p channels, per peer and chunk 32, 32, 512 KiB over NVLink,
    # 4, 2, 128 KiB over SHM, 2, 2, 128 KiB over sockets ("32 p2p channels, 32 p2p channels per peer", "P2P
    # Chunksize set to 524288"); NCCL's tuning tables give LL128 zero bandwidth over SHM and sockets (it is enabled
    # on NVLink only), so the tuner here may pick LL128 on NVLink only. NCCL's tuner decides with the ring graph its
    # topology search reported ("Pattern 4, crossNic 0, nChannels 12, bw 30.000000/30.000000" over NVLink, 2 x 20
    # GB/s over SHM, 1 x 1.2 GB/s over sockets, 2 and 4 ranks alike): given those, the tuner here reproduces NCCL's
    # logged ring tuning tables (latency and bandwidth of every protocol), where the fitted links would have told it
    # 343 GB/s instead of 360 over NVLink and 5.7 GB/s instead of 1.2 over sockets (switching a socket all_reduce
    # from LL to Simple at 128 KiB where NCCL switched at 64 KiB).
    "nvlink": Transport(
        "nvlink", "h200-nvlink", "H200 SXM on NVSwitch (18 NVLink4 links each), NCCL P2P over NVLink",
        "nvswitch_server", {"nvlink": "nvlink4", "nvlinks": 18, "pcie": "pcie5"}, "gpus", PROTOCOLS,
        (*LATENCY_SCALES, LL_EFFICIENCY, LL128_EFFICIENCY, *_NVLINK_OP_SCALES,
         Param("nvlink4.efficiency", 20.6 / 25.0, 0.02, 1.0), P2P_CHANNEL, FLOOR, P2P_LAUNCH),
        _logged(24, 32, 32, 512 * 1024, 12, 30e9),
        own_chunk=own_chunk_rates(H200_LOCAL_COPY_Bps, H200_OWN_COPY_Bps), ring_channel=H200_NVLINK_RING_CHANNEL_Bps),
    # Each GPU on its own PCIe 5.0 x16 to the host (the VM shows no PCIe switch): pairs sharing a switch uplink
    # predicted a 4-rank broadcast chain at half the 2-rank rate where it ran at 0.7x; the limit is each GPU's
    # send + receive budget. Host memory is shared by all GPUs' staging: 4-rank rings slow down as channels
    # multiply (extra/probe_shm_channels) and four GPUs' copy engines moved 158 GB/s where two moved 145
    # (extra/probe_host_and_channels). Its capacity is set to the most SHM payload a 4-rank call moved through it,
    # all_to_all at 1 GiB (4 x 30 GB/s, runs 1 and 2): it binds on no call on 2-4 ranks (a fit without the per-GPU
    # budget puts it at 110 GB/s) but caps 8 GPUs' traffic, which under the builder's 200 GB/s guess only the
    # per-GPU budget would limit.
    "pcie_shm": Transport(
        "pcie_shm", "h200-pcie-shm", "H200 with peer-to-peer off (NCCL_P2P_DISABLE=1): NCCL's SHM transport "
        "stages copies in host memory, each GPU on its own PCIe 5.0 x16",
        "pcie_box", {"pcie": "pcie5", "lanes": 16, "p2p": False, "pcie_switch": False, **_SHM_IO[0]}, "gpus",
        ("LL", "Simple"), (*_SHM_COMMON, Param("pcie5.efficiency", 0.8, 0.02, 1.0), _SHM_IO[1], P2P_CHANNEL, FLOOR,
                           P2P_LAUNCH),
        _logged(4, 4, 2, 128 * 1024, 2, 20e9), links={"memory": {"bandwidth_Bps": 120e9}},
        ring_channel=H200_SHM_RING_CHANNEL_Bps),
    "socket": Transport(
        "socket", "h200-socket", "H200, one process per GPU talking over NCCL's TCP socket transport on loopback "
        "(each GPU a node with one NIC on one switch)",
        "cluster", {"gpus_per_server": 1, "server": "pcie", "nics": "per_server", "network": "ethernet",
                    "fabric": "single_switch", **_SOCKET_IO[0]}, "servers", ("LL", "Simple"),
        # the wire starts out of the way (loopback copies, not a cable): on 4-rank data alone a wire limit and the
        # per-GPU budget fit rings equally well, and only the budget also explains one-way broadcasts on 2 ranks
        # no launch floor: every socket call takes longer than the host's issue interval (a fitted one bound no row)
        (*_COMMON, _SOCKET_IO[1], Param("ethernet.bandwidth_Bps", 20e9, 1e7, 1e12, "GB/s"), STRAGGLER),
        _logged(2, 2, 2, 128 * 1024, 1, 1.2e9)),
}


def transport(name: str, path: str = "transport") -> Transport:
    """The modelled transport ``name``; an unknown one is an error naming ``path``."""
    if name not in TRANSPORTS:
        raise unknown(path, name, TRANSPORTS, "transport")
    return TRANSPORTS[name]


def with_nccl_log(tr: Transport, logged: dict) -> Transport:
    """``tr`` with the constants another machine's NCCL logged (:func:`gpusim.calibration.nccl_log.constants`) in
    place of the H200's: channels, point-to-point channels and chunk, the ring graph its tuner decides with."""
    return replace(tr, logged={**tr.logged, **logged})


def with_local_copy(tr: Transport, local_copy_Bps: float | None, path: str = "local_copy_Bps") -> Transport:
    """``tr`` with its own-chunk pass rates derived from another GPU's local copy rate (bytes copied per second,
    ``measurements.local_copy_Bps``), the all_gather own-input copy keeping the H200's measured ratio to it;
    ``None`` keeps the H200's. Only a transport with an own-chunk pass (nvlink) takes one."""
    if local_copy_Bps is None:
        return tr
    if not tr.own_chunk:
        raise GpusimError(path, f"the {tr.name} transport has no own-chunk pass to set (only "
                                f"{', '.join(t for t, x in TRANSPORTS.items() if x.own_chunk)} has one)")
    if isinstance(local_copy_Bps, bool) or not isinstance(local_copy_Bps, (int, float)) or \
            not LOCAL_COPY_RANGE_Bps[0] <= local_copy_Bps <= LOCAL_COPY_RANGE_Bps[1]:
        raise GpusimError(path, f"expected a GPU's local copy rate in bytes/s, from 1 GB/s to 100 TB/s, got "
                                f"{local_copy_Bps!r}")
    own_copy = local_copy_Bps * H200_OWN_COPY_Bps / H200_LOCAL_COPY_Bps
    return replace(tr, own_chunk=own_chunk_rates(local_copy_Bps, own_copy))
