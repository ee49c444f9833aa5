"""NCCL 2.30.7 tuning model: the [DERIVED] numbers of physics.md §1.4, the bandwidth assembly of §1.5, the
size corrections of §1.2, the enable rules and the choice NCCL makes."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpusim.collectives import nccl_model as nm
from gpusim.collectives.nccl_model import Algo, Coll, NcclSystem, Proto
from gpusim.errors import GpusimError

GiB = 1 << 30


@pytest.fixture
def one_node():
    """8 Hopper GPUs behind NVSwitch, 16 channels of 20 GB/s, NVLS available."""
    return NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0, nvls=True)


@pytest.fixture
def sixteen_nodes():
    """16 nodes x 8 Hopper GPUs, Intel hosts, IB plugin (latencyInter 0), 8 channels of 12 GB/s between nodes."""
    return NcclSystem(n_ranks=128, n_nodes=16, n_channels=8, bw_intra_GBps=20.0, bw_inter_GBps=12.0, cpu="intel")


# ---------------------------------------------------------------------------------------------------------
# physics.md §1.4 [DERIVED] examples

@pytest.mark.parametrize("algo, proto, expected_us", [
    ("Ring", "LL", 15.0), ("Ring", "LL128", 40.6), ("Ring", "Simple", 56.0),
    ("Tree", "LL", 15.2), ("Tree", "LL128", 31.5), ("Tree", "Simple", 64.4),
    ("NVLS", "Simple", 25.0),
])
def test_single_node_allreduce_latencies_match_physics_derived(one_node, algo, proto, expected_us):
    """8 GPUs, 1 node, NVLink, AllReduce: base + 14 ring steps / 2*7 tree hops of NVLink latency; NVLS is 25 µs
    flat because NCCL does not add a base latency to NVLS."""
    assert nm.latency_us("all_reduce", algo, proto, one_node) == pytest.approx(expected_us, abs=1e-9)


@pytest.mark.parametrize("algo, proto, expected_us", [
    ("Ring", "Simple", 1190.0), ("Ring", "LL", 311.6), ("Ring", "LL128", 559.6),
    ("Tree", "Simple", 176.4), ("Tree", "LL", 55.2),
])
def test_sixteen_node_allreduce_latencies_match_physics_derived(sixteen_nodes, algo, proto, expected_us):
    """16 x 8 GPUs: 254 ring steps of which 30 cross the network; intra steps cost at least the net overhead
    (1 µs Intel, x3 for Simple); trees climb 7 NVLink hops and log2(16) = 4 network hops, twice."""
    assert nm.latency_us("all_reduce", algo, proto, sixteen_nodes) == pytest.approx(expected_us, abs=1e-9)


def test_sixteen_node_ring_simple_latency_by_hand(sixteen_nodes):
    """The 1190 µs spelled out: 8.4 + (254 - 30) * max(3.4, 3 * 1.0) + 30 * 14.0."""
    assert nm.latency_us("all_reduce", "Ring", "Simple", sixteen_nodes) == pytest.approx(8.4 + 224 * 3.4 + 30 * 14.0)


def test_ring_plateau_multiplies_latency_by_1_4_for_large_messages(sixteen_nodes):
    """Ring/Simple AllReduce on >1 node pays 1.4 x 1190 = 1666 µs once nBytes/(nChannels*nRanks) >= 64."""
    bw = nm.algo_bandwidth_GBps("all_reduce", "Ring", "Simple", sixteen_nodes)
    threshold = 64 * 8 * 128
    below, above = threshold - 1, threshold
    t_below = nm.predict_time_us("all_reduce", "Ring", "Simple", below, sixteen_nodes)
    t_above = nm.predict_time_us("all_reduce", "Ring", "Simple", above, sixteen_nodes)
    assert t_below - below / (1000 * bw) == pytest.approx(1190.0)
    assert t_above - above / (1000 * bw) == pytest.approx(1190.0 * 1.4)
    assert t_above - above / (1000 * bw) == pytest.approx(1666.0)


def test_ring_plateau_is_1_9_before_ampere():
    volta = NcclSystem(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0, arch="volta")
    lat = nm.latency_us("all_reduce", "Ring", "Simple", volta)
    bw = nm.algo_bandwidth_GBps("all_reduce", "Ring", "Simple", volta)
    t = nm.predict_time_us("all_reduce", "Ring", "Simple", GiB, volta)
    assert t - GiB / (1000 * bw) == pytest.approx(1.9 * lat)


def test_no_plateau_on_a_single_node_or_for_other_protocols(one_node, sixteen_nodes):
    bw = nm.algo_bandwidth_GBps("all_reduce", "Ring", "Simple", one_node)
    assert nm.predict_time_us("all_reduce", "Ring", "Simple", GiB, one_node) == pytest.approx(56.0 + GiB / (1000 * bw))
    bw = nm.algo_bandwidth_GBps("all_reduce", "Ring", "LL128", sixteen_nodes)
    assert nm.predict_time_us("all_reduce", "Ring", "LL128", GiB, sixteen_nodes) == \
        pytest.approx(559.6 + GiB / (1000 * bw))


def test_latency_inter_adds_twice_for_simple_once_for_ll():
    """A NIC-reported latency L adds L per network step, and 2L for Simple (the flush)."""
    base = dict(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0)
    s0, s5 = NcclSystem(**base), NcclSystem(**base, latency_inter_us=5.0)
    n_inter = 2 * (2 - 1)
    assert nm.latency_us("all_reduce", "Ring", "LL", s5) - nm.latency_us("all_reduce", "Ring", "LL", s0) == \
        pytest.approx(n_inter * 5.0)
    assert nm.latency_us("all_reduce", "Ring", "Simple", s5) - nm.latency_us("all_reduce", "Ring", "Simple", s0) == \
        pytest.approx(n_inter * 10.0)


def test_amd_net_overhead_raises_intra_steps_of_multi_node_rings():
    """AMD hosts: 2 µs overhead, 6 µs for Simple, above NVLink's 3.4 µs: 8.4 + 14 * 6 + 2 * 14 for 2 x 8 GPUs."""
    amd = NcclSystem(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0, cpu="amd")
    assert nm.latency_us("all_reduce", "Ring", "Simple", amd) == pytest.approx(8.4 + 28 * 6.0 + 2 * 14.0)
    override = NcclSystem(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0,
                          net_overhead_us=0.0)
    assert nm.latency_us("all_reduce", "Ring", "Simple", override) == pytest.approx(8.4 + 28 * 3.4 + 2 * 14.0)


def test_one_gpu_per_node_uses_tree_network_latency_for_ring():
    """ppn == 1: interLat = hwLat[NET][Tree][p] (LL 5.0 instead of Ring's 2.7); all 2(n-1) steps are network."""
    s = NcclSystem(n_ranks=4, n_nodes=4, n_channels=2, bw_intra_GBps=12.0)
    assert nm.latency_us("all_reduce", "Ring", "LL", s) == pytest.approx(6.6 + 6 * 5.0)


def test_ring_broadcast_latency_same_channels_or_not():
    s = NcclSystem(n_ranks=8, n_nodes=1, n_channels=4, bw_intra_GBps=20.0)
    assert nm.latency_us("broadcast", "Ring", "Simple", s) == pytest.approx(8.4 + 3.4)
    diff = NcclSystem(n_ranks=8, n_nodes=1, n_channels=4, bw_intra_GBps=20.0, same_channels=False)
    # Simple then uses Tree's hardware latency per step, n steps.
    assert nm.latency_us("broadcast", "Ring", "Simple", diff) == pytest.approx(8.4 + 8 * 4.0)
    assert nm.latency_us("reduce", "Ring", "LL", diff) == pytest.approx(6.6 + 8 * 0.6)


def test_pci_and_power_latencies():
    pci = NcclSystem(n_ranks=4, n_nodes=1, n_channels=2, bw_intra_GBps=12.0, intra="pci")
    assert nm.latency_us("all_reduce", "Tree", "Simple", pci) == pytest.approx(8.4 + 2 * 3 * 4.0)
    power = NcclSystem(n_ranks=4, n_nodes=1, n_channels=2, bw_intra_GBps=12.0, intra="pci", cpu="power")
    assert nm.latency_us("all_reduce", "Tree", "Simple", power) == pytest.approx(8.4 + 2 * 3 * 5.7)


# ---------------------------------------------------------------------------------------------------------
# bandwidth assembly (physics.md §1.5)

def test_ring_simple_algbw_is_busbw_times_n_over_nsteps(one_node):
    bus = 16 * 20.0
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "Simple", one_node) == pytest.approx(bus)
    assert nm.algo_bandwidth_GBps("all_reduce", "Ring", "Simple", one_node) == pytest.approx(bus * 8 / 14)
    assert nm.algo_bandwidth_GBps("all_gather", "Ring", "Simple", one_node) == pytest.approx(bus * 8 / 7)
    assert nm.algo_bandwidth_GBps("broadcast", "Ring", "Simple", one_node) == pytest.approx(bus)


def test_ring_ll_is_half_of_bus_capped_by_llmaxbw():
    """Hopper single node: llMaxBw 141 GB/s caps 0.5 x 16 x 20 = 160; 4 channels stay under it (40)."""
    big = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0)
    small = NcclSystem(n_ranks=8, n_nodes=1, n_channels=4, bw_intra_GBps=20.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL", big) == pytest.approx(141.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL", small) == pytest.approx(40.0)


def test_multi_node_llmaxbw_row_follows_the_cpu():
    """Multi-node LL caps come from the CPU row: Intel 20.4, AMD 19.0 GB/s at >= 4 nodes (whatever the GPU)."""
    kw = dict(n_ranks=32, n_nodes=4, n_channels=16, bw_intra_GBps=20.0, bw_inter_GBps=12.0, arch="blackwell")
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL", NcclSystem(**kw, cpu="intel")) == pytest.approx(20.4)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL", NcclSystem(**kw, cpu="amd")) == pytest.approx(19.0)


def test_ring_ll128_capped_per_channel():
    """LL128: 0.92 x bus, at most 36.7 GB/s per channel on Hopper, 20 on Ampere."""
    fast = NcclSystem(n_ranks=8, n_nodes=1, n_channels=8, bw_intra_GBps=50.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL128", fast) == pytest.approx(8 * 36.7)
    slow = NcclSystem(n_ranks=8, n_nodes=1, n_channels=8, bw_intra_GBps=20.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL128", slow) == pytest.approx(0.92 * 160.0)
    ampere = NcclSystem(n_ranks=8, n_nodes=1, n_channels=8, bw_intra_GBps=24.0, arch="ampere")
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "LL128", ampere) == pytest.approx(8 * 20.0)


def test_tree_bandwidths(sixteen_nodes):
    """Tree AllReduce: min(0.92 bus, nCh x perChMaxTreeBw); LL /3.8 capped by llMaxBw; LL128 x120/128 capped;
    algBw = busBw / 2."""
    bus = 8 * 12.0
    simple = min(0.92 * bus, 8 * 36.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Tree", "Simple", sixteen_nodes) == pytest.approx(simple)
    assert nm.algo_bandwidth_GBps("all_reduce", "Tree", "Simple", sixteen_nodes) == pytest.approx(simple / 2)
    assert nm.bus_bandwidth_GBps("all_reduce", "Tree", "LL", sixteen_nodes) == pytest.approx(min(simple / 3.8, 20.4))
    assert nm.bus_bandwidth_GBps("all_reduce", "Tree", "LL128", sixteen_nodes) == \
        pytest.approx(min(simple * 120 / 128, 8 * 29.0))


def test_tree_cap_binds_with_fast_channels():
    """The Tree cap (38.7 GB/s per channel, Hopper, 1 node) applies before the LL128 factor 7/9 on one node."""
    fast = NcclSystem(n_ranks=8, n_nodes=1, n_channels=8, bw_intra_GBps=60.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Tree", "Simple", fast) == pytest.approx(8 * 38.7)
    assert nm.bus_bandwidth_GBps("all_reduce", "Tree", "LL128", fast) == pytest.approx(8 * 38.7 * 7 / 9)
    assert nm.algo_bandwidth_GBps("all_reduce", "Tree", "LL128", fast) == pytest.approx(8 * 38.7 * 7 / 9 / 2)


def test_tree_pattern_tree_costs_15_percent():
    kw = dict(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0)
    plain = nm.bus_bandwidth_GBps("all_reduce", "Tree", "Simple", NcclSystem(**kw))
    tree = nm.bus_bandwidth_GBps("all_reduce", "Tree", "Simple", NcclSystem(**kw, tree_pattern="tree"))
    assert tree == pytest.approx(0.85 * plain)


def test_multi_node_uses_inter_bandwidth_only_beyond_two_nodes():
    two = NcclSystem(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0)
    four = NcclSystem(n_ranks=32, n_nodes=4, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "Simple", two) == pytest.approx(80.0)
    assert nm.bus_bandwidth_GBps("all_reduce", "Ring", "Simple", four) == pytest.approx(48.0)


def test_nvls_bandwidth_single_node():
    """intraBw = bwIntra x 0.85 x (nCh-1)/nCh x 2 (AllReduce); bounded by bwInter; algBw x n/nsteps."""
    s = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=40.0, bw_inter_GBps=100.0, nvls=True)
    per_ch = 40.0 * 0.85 * 15 / 16 * 2
    assert nm.bus_bandwidth_GBps("all_reduce", "NVLS", "Simple", s) == pytest.approx(16 * per_ch)
    assert nm.algo_bandwidth_GBps("all_reduce", "NVLS", "Simple", s) == pytest.approx(16 * per_ch * 8 / 14)
    ag = 40.0 * 0.85 * 15 / 16 * 7 / 8
    assert nm.bus_bandwidth_GBps("all_gather", "NVLS", "Simple", s) == pytest.approx(16 * ag)
    # AG/RS on non-ring algorithms are not converted to algBw.
    assert nm.algo_bandwidth_GBps("all_gather", "NVLS", "Simple", s) == pytest.approx(16 * ag)


def test_nvls_needs_two_channels_and_a_switch():
    s = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, nvls_n_channels=1, bw_intra_GBps=20.0, nvls=True)
    assert not nm.is_enabled("all_reduce", "NVLS", "Simple", s)
    off = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0)
    assert not nm.is_enabled("all_reduce", "NVLS", "Simple", off)
    assert nm.predict_time_s("all_reduce", "NVLS", "Simple", 1 << 20, off) == math.inf


def test_nvls_tree_multi_node_only_and_capped():
    s = NcclSystem(n_ranks=32, n_nodes=4, n_channels=16, bw_intra_GBps=40.0, bw_inter_GBps=100.0, nvls=True)
    assert nm.is_enabled("all_reduce", "NVLSTree", "Simple", s)
    assert not nm.is_enabled("all_reduce", "NVLS", "Simple", s)  # multi-node NVLS needs CollNet
    per_ch = min(40.0 * 0.85 * 15 / 16 * 2, 100.0, 45.5)
    assert nm.bus_bandwidth_GBps("all_reduce", "NVLSTree", "Simple", s) == pytest.approx(16 * per_ch)
    assert nm.latency_us("all_reduce", "NVLSTree", "Simple", s) == pytest.approx(25.0 + 2 * 2 * 20.9)
    single = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0, nvls=True)
    assert not nm.is_enabled("all_reduce", "NVLSTree", "Simple", single)


def test_collnet_and_pat_are_off_unless_asked(sixteen_nodes):
    for algo in ("CollNetDirect", "CollNetChain", "PAT"):
        for coll in ("all_reduce", "all_gather"):
            assert not nm.is_enabled(coll, algo, "Simple", sixteen_nodes)


def test_collnet_when_asked():
    s = NcclSystem(n_ranks=32, n_nodes=4, n_channels=8, bw_intra_GBps=20.0, bw_inter_GBps=12.0, collnet=True)
    assert nm.is_enabled("all_reduce", "CollNetDirect", "Simple", s)
    assert nm.is_enabled("all_reduce", "CollNetChain", "Simple", s)
    assert not nm.is_enabled("all_reduce", "CollNetChain", "LL", s)
    # CollNetDirect AllReduce: busBw / (f - (f-1)/2) with f = ppn/nCh = 1, x0.85 on Hopper, then x0.5.
    assert nm.algo_bandwidth_GBps("all_reduce", "CollNetDirect", "Simple", s) == pytest.approx(8 * 20.0 * 0.85 / 2)
    assert nm.latency_us("all_reduce", "CollNetDirect", "Simple", s) == pytest.approx(2 * (3.7 + 7 * 0.4) + 31.0)
    assert nm.latency_us("all_reduce", "CollNetChain", "Simple", s) == pytest.approx(2 * 7 * 2.8 + 30.0)
    assert nm.bus_bandwidth_GBps("all_gather", "CollNetDirect", "Simple", s) == pytest.approx(8 * min(20.0, 0.9 * 12))


def test_pat_for_one_gpu_per_node():
    """PAT (AG/RS, Simple): 8 + log2(N) x 14/3.5 + 2.8 n µs; busBw x 0.75, not converted."""
    s = NcclSystem(n_ranks=16, n_nodes=16, n_channels=4, bw_intra_GBps=12.0, bw_inter_GBps=12.0, pat=True)
    assert nm.latency_us("all_gather", "PAT", "Simple", s) == pytest.approx(8.0 + 4 * 14.0 / 3.5 + 2.8 * 16)
    assert nm.algo_bandwidth_GBps("reduce_scatter", "PAT", "Simple", s) == pytest.approx(0.75 * 4 * 12.0)
    assert not nm.is_enabled("all_reduce", "PAT", "Simple", s)
    assert not nm.is_enabled("all_gather", "PAT", "LL", s)


def test_algorithms_each_collective_supports(one_node):
    assert not nm.is_enabled("broadcast", "Tree", "Simple", one_node)
    assert not nm.is_enabled("all_gather", "Tree", "Simple", one_node)
    assert not nm.is_enabled("all_reduce", "NVLS", "LL", one_node)
    assert nm.is_enabled("reduce", "Ring", "LL128", one_node)
    assert nm.latency_us("broadcast", "Tree", "Simple", one_node) == math.inf


# ---------------------------------------------------------------------------------------------------------
# LL128 enablement

def test_ll128_needs_nvlink():
    pci = NcclSystem(n_ranks=4, n_nodes=1, n_channels=2, bw_intra_GBps=12.0, intra="pci")
    assert not nm.is_enabled("all_reduce", "Ring", "LL128", pci)
    assert nm.is_enabled("all_reduce", "Ring", "LL", pci)
    forced = NcclSystem(n_ranks=4, n_nodes=1, n_channels=2, bw_intra_GBps=12.0, intra="pci", ll128=True)
    assert nm.is_enabled("all_reduce", "Ring", "LL128", forced)


@pytest.mark.parametrize("arch, nic_path, enabled", [
    ("hopper", "pix", True), ("hopper", "pxb", True), ("hopper", "pxn", True), ("hopper", "phb", False),
    ("ampere", "pxb", True), ("ampere", "pxn", False), ("blackwell", "p2c", True), ("volta", "sys", False),
])
def test_ll128_gpu_nic_path_rule(arch, nic_path, enabled):
    s = NcclSystem(n_ranks=16, n_nodes=2, n_channels=4, bw_intra_GBps=20.0, bw_inter_GBps=12.0, arch=arch,
                   nic_path=nic_path)
    assert nm.is_enabled("all_reduce", "Ring", "LL128", s) is enabled


def test_ll128_can_be_forced_off(one_node):
    off = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0, ll128=False)
    assert nm.is_enabled("all_reduce", "Ring", "LL128", one_node)
    assert not nm.is_enabled("all_reduce", "Ring", "LL128", off)


# ---------------------------------------------------------------------------------------------------------
# tree size correction and time formula

@pytest.mark.parametrize("proto, size, index", [
    ("LL", 64, 0), ("LL", 64 << 12, 12), ("LL128", 64 << 13, 13), ("Simple", 64 << 11, 11), ("Simple", 100, 0),
])
def test_tree_correction_factor_applied(sixteen_nodes, proto, size, index):
    lat = nm.latency_us("all_reduce", "Tree", proto, sixteen_nodes)
    bw = nm.algo_bandwidth_GBps("all_reduce", "Tree", proto, sixteen_nodes)
    factor = nm.TREE_CORRECTION_FACTOR[Proto(proto)][index]
    assert nm.predict_time_us("all_reduce", "Tree", proto, size, sixteen_nodes) == \
        pytest.approx(lat + size / (1000 * bw * factor))


def test_tree_correction_stops_at_256_MiB_and_below_64_B(sixteen_nodes):
    """Index 22 (256 MiB) is the last one used by Tree; 512 MiB and 63 B go uncorrected."""
    lat = nm.latency_us("all_reduce", "Tree", "Simple", sixteen_nodes)
    bw = nm.algo_bandwidth_GBps("all_reduce", "Tree", "Simple", sixteen_nodes)
    for size in (63, 512 << 20):
        assert nm.predict_time_us("all_reduce", "Tree", "Simple", size, sixteen_nodes) == \
            pytest.approx(lat + size / (1000 * bw))
    size = 256 << 20
    assert nm.predict_time_us("all_reduce", "Tree", "Simple", size, sixteen_nodes) == \
        pytest.approx(lat + size / (1000 * bw * 0.9))


def test_tree_correction_makes_nccls_model_non_monotone(sixteen_nodes):
    """NCCL's own model predicts a 1 MiB Tree/LL AllReduce faster than one byte less (factor 0.4 -> 0.5):
    faithful to tuning.cc, so callers must not assume monotone tree times."""
    edge = 64 << 14
    assert nm.predict_time_us("all_reduce", "Tree", "LL", edge, sixteen_nodes) < \
        nm.predict_time_us("all_reduce", "Tree", "LL", edge - 1, sixteen_nodes)


def test_time_is_latency_plus_bytes_over_bandwidth(one_node):
    """time_us = lat + nBytes / (1000 * algBw) with algBw in GB/s; predict_time_s is the same in seconds."""
    size = 3 << 20
    lat = nm.latency_us("all_reduce", "Ring", "LL128", one_node)
    bw = nm.algo_bandwidth_GBps("all_reduce", "Ring", "LL128", one_node)
    expected_us = lat + size / (1000 * bw)
    assert nm.predict_time_us("all_reduce", "Ring", "LL128", size, one_node) == pytest.approx(expected_us)
    assert nm.predict_time_s("all_reduce", "Ring", "LL128", size, one_node) == pytest.approx(expected_us * 1e-6)


def test_all_gather_size_is_the_whole_output(one_node):
    """AG nBytes = count x typesize x nRanks; its ring moves (n-1)/n of it over each link at busBw."""
    total = 8 * (1 << 20)
    bus = nm.bus_bandwidth_GBps("all_gather", "Ring", "Simple", one_node)
    lat = nm.latency_us("all_gather", "Ring", "Simple", one_node)
    assert lat == pytest.approx(8.4 + 7 * 3.4)
    assert nm.predict_time_us("all_gather", "Ring", "Simple", total, one_node) == \
        pytest.approx(lat + total * 7 / 8 / (1000 * bus))


@given(k=st.integers(0, 36), extra=st.integers(0, 1000))
@settings(max_examples=100, deadline=None)
def test_ring_and_nvls_times_never_shrink_with_size(k, extra):
    s = NcclSystem(n_ranks=16, n_nodes=2, n_channels=8, bw_intra_GBps=20.0, bw_inter_GBps=12.0)
    one = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0, nvls=True)
    small = (1 << k) + extra
    for system, algo, proto in ((s, "Ring", "LL"), (s, "Ring", "LL128"), (s, "Ring", "Simple"),
                                (one, "NVLS", "Simple"), (one, "Ring", "Simple")):
        assert nm.predict_time_s("all_reduce", algo, proto, 2 * small, system) >= \
            nm.predict_time_s("all_reduce", algo, proto, small, system)


# ---------------------------------------------------------------------------------------------------------
# choice

@pytest.mark.parametrize("size, algo, proto", [
    (1, "Ring", "LL"), (64 << 10, "Ring", "LL"), (1 << 20, "Ring", "LL"),
    (8 << 20, "Ring", "LL128"), (64 << 20, "Ring", "Simple"), (1 << 30, "Ring", "Simple"),
])
def test_single_node_choice_moves_from_ll_to_ll128_to_simple(size, algo, proto):
    s = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0)
    c = nm.choose("all_reduce", size, s)
    assert (c.algo.value, c.proto.value) == (algo, proto)


@pytest.mark.parametrize("size, algo, proto", [
    (4096, "Tree", "LL"), (1 << 20, "Tree", "LL128"), (1 << 30, "Ring", "Simple"), (4 << 30, "Ring", "Simple"),
])
def test_multi_node_choice_tree_then_ring(sixteen_nodes, size, algo, proto):
    """16 nodes: Tree's log-depth latency wins small and medium sizes, Ring's bandwidth (algBw ~ busBw/2 vs
    0.46 busBw for Tree) wins from 1 GiB."""
    c = nm.choose("all_reduce", size, sixteen_nodes)
    assert (c.algo.value, c.proto.value) == (algo, proto)


def test_tree_ring_crossover_exists_where_times_cross(sixteen_nodes):
    tree = nm.predict_time_s("all_reduce", "Tree", "Simple", 1 << 30, sixteen_nodes)
    ring = nm.predict_time_s("all_reduce", "Ring", "Simple", 1 << 30, sixteen_nodes)
    assert ring < tree
    tree = nm.predict_time_s("all_reduce", "Tree", "Simple", 1 << 20, sixteen_nodes)
    ring = nm.predict_time_s("all_reduce", "Ring", "Simple", 1 << 20, sixteen_nodes)
    assert tree < ring


def test_nvls_wins_large_single_node_allreduce(one_node):
    assert nm.choose("all_reduce", 1 << 30, one_node).algo is Algo.NVLS
    assert nm.choose("all_reduce", 1024, one_node).algo is Algo.RING


@given(size=st.integers(0, 1 << 34))
@settings(max_examples=100, deadline=None)
def test_choice_is_the_minimum_of_the_table(size):
    s = NcclSystem(n_ranks=32, n_nodes=4, n_channels=8, bw_intra_GBps=20.0, bw_inter_GBps=12.0, nvls=True)
    c = nm.choose("all_reduce", size, s)
    table = nm.time_table_s("all_reduce", size, s)
    assert c.time_s == min(table.values())
    assert table[(c.algo, c.proto)] == c.time_s


def test_choice_respects_restrictions(one_node):
    c = nm.choose("all_reduce", 1 << 30, one_node, algos=["ring", "tree"], protos="LL128")
    assert (c.algo, c.proto) == (Algo.RING, Proto.LL128)
    with pytest.raises(GpusimError) as err:
        nm.choose("broadcast", 1024, one_node, algos=["Tree"])
    assert err.value.path == "algos"
    assert "Ring/LL" in err.value.message


def test_ties_go_to_the_first_in_nccl_order():
    """Identical times: Tree (index 0) before Ring, as topoGetAlgoInfo's strict '<' keeps the first."""
    s = NcclSystem(n_ranks=8, n_nodes=1, n_channels=16, bw_intra_GBps=20.0)
    table = nm.time_table_s("all_reduce", 0, s)
    assert list(table)[0][0] is Algo.TREE
    assert table[(Algo.TREE, Proto.LL)] > table[(Algo.RING, Proto.LL)]  # 15.2 vs 15.0 µs
    c = nm.choose("all_reduce", 0, s)
    assert c.time_s == pytest.approx(15.0e-6)


def test_tuning_table_covers_every_entry(one_node):
    table = nm.tuning_table(one_node)
    assert len(table) == len(Coll) * len(Algo) * len(Proto)
    lat, bw = table[(Coll.ALL_REDUCE, Algo.RING, Proto.SIMPLE)]
    assert lat == pytest.approx(56.0) and bw == pytest.approx(320 * 8 / 14)
    assert table[(Coll.BROADCAST, Algo.TREE, Proto.SIMPLE)][1] == 0.0


# ---------------------------------------------------------------------------------------------------------
# names and validation

def test_names_in_any_spelling():
    assert nm.as_coll("AllReduce") is Coll.ALL_REDUCE
    assert nm.as_coll("reducescatter") is Coll.REDUCE_SCATTER
    assert nm.as_algo("nvls_tree") is Algo.NVLS_TREE
    assert nm.as_algo("COLLNETDIRECT") is Algo.COLLNET_DIRECT
    assert nm.as_proto("ll128") is Proto.LL128
    with pytest.raises(GpusimError, match="did you mean 'Ring'"):
        nm.as_algo("Rign")
    with pytest.raises(GpusimError) as err:
        nm.as_coll("all_to_all")
    assert err.value.path == "coll"


@pytest.mark.parametrize("kw, path", [
    (dict(n_ranks=1), "n_ranks"),
    (dict(n_ranks=12, n_nodes=5), "n_nodes"),
    (dict(n_channels=0), "n_channels"),
    (dict(n_channels=65), "n_channels"),
    (dict(bw_intra_GBps=0.0), "bw_intra_GBps"),
    (dict(bw_inter_GBps=float("nan")), "bw_inter_GBps"),
    (dict(latency_inter_us=-1.0), "latency_inter_us"),
    (dict(arch="hoper"), "arch"),
    (dict(cpu="risc"), "cpu"),
    (dict(intra="nvswitch"), "intra"),
    (dict(nic_path="far"), "nic_path"),
    (dict(nvls=True, arch="ampere"), "nvls"),
    (dict(pat=True), "pat"),
    (dict(collnet="yes"), "collnet"),
    (dict(n_ranks=True), "n_ranks"),
])
def test_system_validation_names_the_field(kw, path):
    base = dict(n_ranks=8, n_nodes=1, n_channels=4, bw_intra_GBps=20.0)
    base.update(kw)
    with pytest.raises(GpusimError) as err:
        NcclSystem(**base)
    assert err.value.path == path


def test_arch_typo_suggests_the_name():
    with pytest.raises(GpusimError, match="did you mean 'hopper'"):
        NcclSystem(n_ranks=8, n_nodes=1, n_channels=4, bw_intra_GBps=20.0, arch="hoper")


@pytest.mark.parametrize("size", [-1, 1.5, float("inf"), "1 MB", True])
def test_size_must_be_whole_bytes(one_node, size):
    with pytest.raises(GpusimError) as err:
        nm.predict_time_s("all_reduce", "Ring", "Simple", size, one_node)
    assert err.value.path == "size_bytes"
