"""Each builder: node and link counts, attributes, and the paths GPUs take."""
import pytest

from gpusim.errors import GpusimError
from gpusim.topology import builders as b
from gpusim.topology.graph import capacity_Bps, gpus, summary
from gpusim.topology.routing import Router


def test_nvswitch_server_counts_and_bandwidth():
    g = b.nvswitch_server(gpus=8)
    s = summary(g)
    assert s["nodes"] == {"host": 1, "nvswitch": 1, "gpu": 8, "pcie_switch": 4}
    assert s["links"]["nvlink4"] == 8
    # 18 NVLink4 links x 25 GB/s per direction = 450 GB/s raw; NCCL's 20.6 GB/s effective per link -> 370.8 GB/s
    e = g.edges["s0.gpu0", "s0.nvswitch"]
    assert e["bandwidth_Bps"] == pytest.approx(450e9)
    assert capacity_Bps(e) == pytest.approx(18 * 20.6e9)


def test_full_duplex_links_have_both_directions():
    g = b.cluster(servers=2)
    for u, v in g.edges():
        assert g.has_edge(v, u)


def test_nvlink_route_inside_server():
    r = Router(b.nvswitch_server())
    assert r.path("s0.gpu0", "s0.gpu7") == ["s0.gpu0", "s0.nvswitch", "s0.gpu7"]
    assert r.transport("s0.gpu0", "s0.gpu7") == "nvlink"


def test_pcie_without_p2p_goes_through_host_memory_crossing_pcie_twice():
    r = Router(b.pcie_box(gpus=2, p2p=False))
    p = r.path("s0.gpu0", "s0.gpu1")
    assert r.transport("s0.gpu0", "s0.gpu1") == "shm"
    assert p.count("s0.host") == 2  # the memory self-loop
    techs = [r.g.edges[e]["technology"] for e in zip(p, p[1:])]
    assert techs.count("memory") == 1 and sum(t.startswith("pcie") for t in techs) == 4


def test_pcie_with_p2p_stays_under_the_switch():
    r = Router(b.pcie_box(gpus=4, p2p=True))
    assert r.path("s0.gpu0", "s0.gpu3") == ["s0.gpu0", "s0.pcie0", "s0.gpu3"]
    assert r.transport("s0.gpu0", "s0.gpu3") == "p2p"


def test_rail_optimized_same_rail_is_one_switch_hop():
    g = b.cluster(servers=4, fabric="rail_optimized")
    r = Router(g)
    p = r.path("s0.gpu3", "s2.gpu3")
    assert [n for n in p if g.nodes[n]["kind"] == "switch"] == ["leaf.r3.b0"]
    cross = r.path("s0.gpu3", "s2.gpu5")
    assert any(g.nodes[n]["kind"] == "switch" and n.startswith("spine") for n in cross)


def test_fat_tree_ecmp_spreads_over_spines_deterministically():
    g = b.cluster(servers=32, fabric="fat_tree", nics="per_server", servers_per_leaf=8, spines=4)
    r = Router(g, ecmp=True)
    spines = {next(n for n in r.path("s0.gpu0", "s20.gpu0", key=k) if n.startswith("spine")) for k in range(32)}
    assert len(spines) > 1
    assert r.path("s0.gpu0", "s20.gpu0", key=5) == Router(g, ecmp=True).path("s0.gpu0", "s20.gpu0", key=5)


def test_fat_tree_oversubscription_sets_uplink_capacity():
    g = b.cluster(servers=16, fabric="fat_tree", nics="per_server", servers_per_leaf=8, spines=2, oversubscription=2,
                  nic_rate_Bps=50e9)
    up = g.edges["leaf0", "spine0"]["bandwidth_Bps"]
    assert up == pytest.approx(8 * 50e9 / 2 / 2)


def test_fso_sites_prefers_laser_and_keeps_backup_for_outages():
    g = b.fso_sites(backup="fiber")
    r = Router(g)
    assert "site0.fso0" in r.path("s0.gpu0", "s1.gpu0")
    g.edges["site0.fso0", "site1.fso0"]["up"] = g.edges["site1.fso0", "site0.fso0"]["up"] = False
    r.invalidate()
    p = r.path("s0.gpu0", "s1.gpu0")
    assert "site0.fso0" not in p and ("site0.switch", "site1.switch") in list(zip(p, p[1:]))


@pytest.mark.parametrize("builder,n_links", [(b.ring, 8), (b.switch, 8), (b.fully_connected, 28)])
def test_shapes(builder, n_links):
    g = builder(8, 50e9, 1e-6)
    assert len(gpus(g)) == 8
    assert summary(g)["links"]["generic"] == n_links


def test_ring_shape_routes_around_the_ring():
    assert Router(b.ring(8, 1.0, 0.0)).path("gpu0", "gpu2") == ["gpu0", "gpu1", "gpu2"]


def test_ring_shape_goes_the_other_way_round_a_link_that_is_down():
    """A shape's route avoids a link marked down once the router is told (invalidate), and comes back after."""
    g = b.ring(8, 1.0, 0.0)
    r = Router(g)
    assert r.path("gpu0", "gpu2") == ["gpu0", "gpu1", "gpu2"]
    g.edges["gpu1", "gpu2"]["up"] = False
    r.invalidate()
    assert r.path("gpu0", "gpu2") == ["gpu0", "gpu7", "gpu6", "gpu5", "gpu4", "gpu3", "gpu2"]
    g.edges["gpu1", "gpu2"]["up"] = True
    r.invalidate()
    assert r.path("gpu0", "gpu2") == ["gpu0", "gpu1", "gpu2"]


@pytest.mark.parametrize("call,field", [
    (lambda: b.cluster(servers=-2), "cluster.servers"),
    (lambda: b.cluster(fabric="torus"), "cluster.fabric"),
    (lambda: b.cluster(nics="per_server", fabric="rail_optimized"), "cluster.fabric"),
    (lambda: b.nvswitch_server(nvlink="nvlink9"), "cluster.nvlink"),
    (lambda: b.pcie_box(lanes=3), "cluster.pcie.lanes"),
    (lambda: b.switch(1, 1.0, 0.0), "cluster.gpus"),
    (lambda: b.switch(4, -1.0, 0.0), "cluster.bandwidth"),
])
def test_bad_builder_arguments_name_the_field(call, field):
    with pytest.raises(GpusimError) as err:
        call()
    assert err.value.path == field
