"""Collectives driven through the engine: closed forms where nothing contends, NCCL's published bands,
NCCL-like automatic choice, and slowdown when collectives share links."""
from dataclasses import replace

import pytest

from gpusim import presets
from gpusim.collectives import nccl_model as nm
from gpusim.collectives.cost_model import CostModel
from gpusim.collectives.oracle import RingPipeline
from gpusim.collectives.run import Collectives, measure
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError
from gpusim.topology import builders as b

B, LAT = 50e9, 500e-9


@pytest.mark.parametrize("shape,hop_latency", [(b.switch, 2 * LAT), (b.ring, LAT)])
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter", "broadcast"])
@pytest.mark.parametrize("n", [2, 8, 64])
def test_ring_equals_alpha_beta_closed_form(shape, hop_latency, op, n):
    """Uncontended ring = steps * alpha + bytes term (oracle.RingPipeline), at every size."""
    fabric = Fabric(shape(n, B, LAT))
    oracle = RingPipeline(n, B, hop_latency)
    for size in (8, 1 << 20, 1 << 30):
        got = measure(fabric, CostModel.ideal(), op, range(n), size, algo="ring").time_s
        assert got == pytest.approx(oracle.time_s(op, size), rel=1e-9)


def test_small_sizes_are_steps_times_latency():
    fabric = Fabric(b.switch(16, B, LAT))
    t = measure(fabric, CostModel.ideal(), "all_reduce", range(16), 8, algo="ring").time_s
    assert t == pytest.approx(2 * 15 * 2 * LAT, rel=1e-3)


def test_dgx_h100_ring_simple_busbw_in_published_band():
    """8xH100 ring all_reduce (NVLS off) measures 360-380 GB/s busbw: sjeaugey in NVIDIA/nccl-tests #212 (~370),
    nccl-tests #309 (368.76 GB/s with NVLS disabled); physics.md §3.2."""
    c = presets.build("dgx-h100")
    r = measure(Fabric(c.graph), c.model, "all_reduce", range(8), 1 << 30, algo="ring", proto="Simple")
    assert 360 <= r.busbw_GBps <= 380


def test_auto_choice_follows_nccl_model_with_size():
    c = presets.build("dgx-h100")
    fabric = Fabric(c.graph)
    coll = Collectives(fabric, c.model)
    ranks = coll.ranks(range(8))
    system = coll.nccl_system(ranks)
    seen = []
    for size in [2**k for k in range(3, 31, 3)]:
        ch = coll.choose("all_reduce", ranks, size)
        ref = nm.choose("all_reduce", size, system, algos=[nm.Algo.RING, nm.Algo.TREE])
        assert (ch.algo, ch.proto) == ({"Ring": "ring", "Tree": "tree"}[str(ref.algo)], str(ref.proto))
        seen.append(ch.proto)
    assert seen[0] == "LL" and seen[-1] == "Simple" and "LL128" in seen  # switches as size grows


def test_forced_protocol_runs_where_nccl_leaves_it_off_by_default():
    """NCCL_PROTO=LL128 runs LL128 over host memory although NCCL's default rule enables it on NVLink only (the
    committed SHM data has such runs); the tuner then picks the algorithm among those LL128 allows."""
    c = presets.build("h200-pcie-shm")
    assert "LL128" not in c.model.allowed_protocols
    fabric = Fabric(c.graph)
    coll = Collectives(fabric, c.model)
    ranks = coll.ranks(range(4))
    assert coll.choose("all_reduce", ranks, 1 << 20).proto != "LL128"
    forced_on = replace(coll.nccl_system(ranks), ll128=True)
    for size in (1 << 10, 1 << 20, 1 << 30):
        ch = coll.choose("all_reduce", ranks, size, proto="LL128")
        ref = nm.choose("all_reduce", size, forced_on, algos=[nm.Algo.RING, nm.Algo.TREE], protos=["LL128"])
        assert (ch.algo, ch.proto) == (str(ref.algo).lower(), "LL128")
    assert coll.choose("all_gather", ranks, 1 << 20, proto="LL128").proto == "LL128"
    assert measure(fabric, c.model, "all_reduce", range(4), 1 << 20, proto="LL128").proto == "LL128"


def test_multi_node_prefers_tree_for_mid_sizes_and_ring_for_large():
    c = presets.build("dgx-h100-cluster:servers=16")
    coll = Collectives(Fabric(c.graph), c.model)
    ranks = coll.ranks(range(128))
    assert coll.choose("all_reduce", ranks, 1 << 20).algo == "tree"
    assert coll.choose("all_reduce", ranks, 1 << 33).algo == "ring"


def _concurrent(graph, model, groups, size):
    fabric = Fabric(graph)
    coll = Collectives(fabric, model)
    procs = [fabric.env.process(coll.collective("all_reduce", g, size, "ring", "Simple")) for g in groups]
    fabric.env.run()
    return [p.value.time_s for p in procs]


def test_two_collectives_on_the_same_links_each_take_twice_as_long():
    graph, model, size = b.switch(8, B, 0.0), CostModel.ideal(), 1 << 30
    alone = _concurrent(graph, model, [range(8)], size)[0]
    both = _concurrent(graph, model, [range(8), range(8)], size)
    assert both == pytest.approx([2 * alone, 2 * alone], rel=1e-9)


def test_collectives_on_disjoint_links_do_not_slow_each_other():
    c = presets.build("dgx-h100-cluster:servers=2")
    alone = _concurrent(c.graph, c.model, [range(8)], 1 << 28)[0]
    both = _concurrent(c.graph, c.model, [range(8), range(8, 16)], 1 << 28)
    assert both == pytest.approx([alone, alone], rel=1e-12)


def test_hierarchical_two_level_and_tree_complete_and_are_bounded_by_ring_bandwidth_term():
    c = presets.build("dgx-h100-cluster:servers=4")
    fabric = Fabric(c.graph)
    size = 1 << 30
    for algo in ("ring", "tree", "hierarchical"):
        r = measure(fabric, c.model, "all_reduce", range(32), size, algo=algo, proto="Simple")
        # no algorithm beats the all-reduce lower bound 2(n-1)/n * S over the fastest GPU link
        assert r.time_s > 2 * 31 / 32 * size / fabric.net.capacity.max()


def test_sendrecv_ring_shift_on_switch_equals_closed_form():
    """Every rank sends S to the next over its own up- and downlink: S / B + 2 link latencies."""
    size = 1 << 26
    r = measure(Fabric(b.switch(4, B, LAT)), CostModel.ideal(), "sendrecv", range(4), size)
    assert r.time_s == pytest.approx(size / B + 2 * LAT, rel=1e-9)


def test_reduce_is_the_reversed_broadcast_chain():
    fabric = Fabric(b.switch(4, B, LAT))
    reduce = measure(fabric, CostModel.ideal(), "reduce", range(4), 1 << 26).time_s
    assert reduce == pytest.approx(RingPipeline(4, B, 2 * LAT).time_s("broadcast", 1 << 26), rel=1e-9)


def test_all_to_all_direct_on_switch_equals_closed_form():
    """Each rank sends S/n to each of n-1 peers over its one link: (n-1)/n * S / B + 2 link latencies."""
    n, size = 8, 1 << 26
    r = measure(Fabric(b.switch(n, B, LAT)), CostModel.ideal(), "all_to_all", range(n), size)
    assert r.time_s == pytest.approx((n - 1) / n * size / B + 2 * LAT, rel=1e-9)


def test_bad_collective_arguments():
    fabric = Fabric(b.switch(4, B, LAT))
    with pytest.raises(GpusimError, match="algo"):
        measure(fabric, CostModel.ideal(), "all_gather", range(4), 1024, algo="tree")
    with pytest.raises(GpusimError, match="rank 9"):
        measure(fabric, CostModel.ideal(), "all_reduce", [0, 9], 1024)
    with pytest.raises(GpusimError, match="did you mean 'all_reduce'"):
        measure(fabric, CostModel.ideal(), "allreduc", range(4), 1024)
    for op in ("sendrecv", "all_to_all", "all_gather"):     # one rank moved nothing and reported infinite busbw
        with pytest.raises(GpusimError, match="ranks: a collective needs at least 2 ranks, got 1"):
            measure(fabric, CostModel.ideal(), op, [0], 1024)


def test_nvls_forced_where_nccl_cannot_run_it_says_why():
    """NVLS needs NVLink SHARP (Hopper NVSwitches) and one server's NVSwitch; forced elsewhere the error says
    which, not that a route is missing."""
    a100 = presets.build("dgx-a100")
    with pytest.raises(GpusimError, match="algo: nvls needs NVLink SHARP.*ampere"):
        measure(Fabric(a100.graph), a100.model, "all_reduce", range(8), 1 << 20, algo="nvls")
    two = presets.build("dgx-h100-cluster:servers=2")
    with pytest.raises(GpusimError, match="algo: .*span 2 servers"):
        measure(Fabric(two.graph), two.model, "all_reduce", range(16), 1 << 20, algo="nvls")


def test_nvls_on_8_h100_reaches_the_published_busbw_and_nccl_picks_it_for_large_calls():
    """8 H100s: NVLS ~480 GB/s busbw where rings reach ~370 (physics.md 3.2, nccl-tests #212); with NVLS enabled the
    tuner takes it for large all_reduces, which then run through the NVSwitch ports (they failed to route)."""
    c = presets.build("dgx-h100")
    fabric = Fabric(c.graph)
    nvls = measure(fabric, c.model, "all_reduce", range(8), 1 << 30, algo="nvls")
    ring = measure(fabric, c.model, "all_reduce", range(8), 1 << 30, algo="ring", proto="Simple")
    assert 450 <= nvls.busbw_GBps <= 500 and 350 <= ring.busbw_GBps <= 390
    auto = measure(fabric, c.model.with_overrides(nvls=True), "all_reduce", range(8), 1 << 30)
    assert auto.algo == "nvls" and auto.time_s == pytest.approx(nvls.time_s)


def test_stalled_network_is_reported_not_hung():
    g = b.switch(2, B, LAT)
    fabric = Fabric(g)
    fabric.reset()
    fabric.net.set_capacity(fabric.link_index[("gpu0", "switch0")], 0.0)
    coll = Collectives(fabric, CostModel.ideal())
    proc = fabric.env.process(coll.collective("all_reduce", [0, 1], 1 << 20))
    fabric.env.run()
    assert not proc.triggered and fabric.net.stalled


def test_estimate_tuner_picks_tree_for_tiny_messages_on_many_ranks():
    """Binary tree: 2 * log2(16) hops of latency beats the ring's 2 * 15 at 8 B."""
    fabric = Fabric(b.switch(16, B, LAT))
    r = measure(fabric, CostModel.ideal(), "all_reduce", range(16), 8)
    assert r.algo == "tree"
    assert r.time_s == pytest.approx(2 * 4 * 2 * LAT, rel=1e-3)


def test_hierarchical_all_reduce_is_its_reduce_scatter_plus_all_gather():
    """Two-level: (intra RS, inter AR, intra AG) moves the bytes of (intra RS, inter RS) + (inter AG, intra AG);
    only the inter step's base latency is counted once instead of twice."""
    c = presets.build("dgx-h100-cluster:servers=4")
    fabric = Fabric(c.graph)
    t = {op: measure(fabric, c.model, op, range(32), 1 << 30, algo="hierarchical", proto="Simple").time_s
         for op in ("all_reduce", "reduce_scatter", "all_gather")}
    assert t["reduce_scatter"] == pytest.approx(t["all_gather"], rel=1e-9)
    base = c.model.base_latency_s("ring", "Simple")
    assert t["all_reduce"] == pytest.approx(t["reduce_scatter"] + t["all_gather"] - base, rel=1e-9)


def test_gpu_io_budget_is_shared_by_sending_and_receiving():
    """With a send + receive budget D per GPU and links of capacity C > D/2: a one-way broadcast runs at
    min(C, D), a two-way ring at D/2 each way (each GPU sends and receives at the ring's rate)."""
    C, D, size = 50e9, 60e9, 1 << 30
    fabric = Fabric(b.switch(2, C, 0.0))
    plain = measure(fabric, CostModel.ideal(), "broadcast", range(2), size, algo="ring").busbw_GBps
    g = b.pcie_box(2, "pcie5", 16, p2p=True, gpu_io_Bps=D)
    one_way = measure(Fabric(g), CostModel.ideal(), "broadcast", range(2), size, algo="ring")
    two_way = measure(Fabric(g), CostModel.ideal(), "all_gather", range(2), size, algo="ring")
    link = 63e9 / 16 * 16 * 0.8  # PCIe 5.0 x16 payload capacity
    assert plain == pytest.approx(C / 1e9, rel=1e-9)
    # PCIe hop latencies (a few us) are all that separates these from the fluid rates over a 1 GiB transfer
    assert one_way.busbw_GBps == pytest.approx(min(link, D) / 1e9, rel=2e-4)
    assert two_way.busbw_GBps == pytest.approx(D / 2 / 1e9, rel=2e-4)


def test_an_identical_call_reuses_its_plan_as_fresh_flows_until_routes_change():
    """The second identical call gets flows equal to the first's but its own objects (the engine reroutes the flows
    it is given in place); after a link goes down its plan is made again, on the new routes."""
    fabric = Fabric(b.fso_sites(backup="fiber"))
    coll = Collectives(fabric, CostModel.nccl())
    ranks = coll.ranks(range(16))
    first, again = (coll.planner.plan("all_reduce", ranks, 1 << 30, "ring", "Simple", 4) for _ in range(2))
    assert [len(p.flows) for p in first] == [len(p.flows) for p in again]
    for a, b_ in zip(first[0].flows, again[0].flows):
        assert a is not b_ and (a.links == b_.links).all() and a.size_bytes == b_.size_bytes
    fso = [fabric.link_index[e] for e in (("site0.fso0", "site1.fso0"), ("site1.fso0", "site0.fso0"))]
    assert any(set(fso) & set(f.links.tolist()) for f in again[0].flows)
    fabric.set_link_up("site0.fso0", "site1.fso0", False)
    rerouted = coll.planner.plan("all_reduce", ranks, 1 << 30, "ring", "Simple", 4)
    assert not any(set(fso) & set(f.links.tolist()) for f in rerouted[0].flows)
    t_first = measure(Fabric(b.fso_sites(backup="fiber")), CostModel.nccl(), "all_reduce", range(16), 1 << 30).time_s
    fresh = Fabric(b.fso_sites(backup="fiber"))
    coll = Collectives(fresh, CostModel.nccl())
    for _ in range(3):      # repeated calls on one Collectives time as a fresh one does
        fresh.reset()
        proc = fresh.env.process(coll.collective("all_reduce", range(16), 1 << 30))
        fresh.env.run()
        assert proc.value.time_s == pytest.approx(t_first, rel=1e-12)


@pytest.mark.parametrize("channels", [[1], "4", 0, 65])
def test_a_malformed_channel_count_is_named_even_when_choices_are_kept(channels):
    """Choices are kept per call shape; an argument that cannot be a key (a list) still reaches the check that names
    it, as do out-of-range ones."""
    cluster = presets.build("dgx-h100")
    coll = Collectives(Fabric(cluster.graph), cluster.model)
    with pytest.raises(GpusimError, match=r"^channels: expected an integer 1\.\.64"):
        coll.choose("all_reduce", coll.ranks(range(8)), 1024, channels=channels)


def test_kept_plans_stay_within_their_flow_budget():
    """Plans are kept per call shape up to CACHED_PLAN_FLOWS flows in all: many distinct sizes do not grow it
    without bound, and the last plan made is kept."""
    from gpusim.collectives import plans
    coll = Collectives(Fabric(b.switch(32, 50e9, 1e-6)), CostModel.ideal())
    ranks = coll.ranks(range(32))
    made = 0
    for k in range(100):
        made += len(coll.planner.plan("all_to_all", ranks, 32 * (k + 1), "direct", "Simple", 1)[0].flows)
        assert coll.planner._cached_flows <= plans.CACHED_PLAN_FLOWS
    assert made == 100 * 32 * 31 > plans.CACHED_PLAN_FLOWS
    assert ("all_to_all", tuple(ranks), 32 * 100, "direct", "Simple", 1, False, 0) in coll.planner._plans
