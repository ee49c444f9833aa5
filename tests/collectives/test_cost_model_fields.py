"""The calibration terms of the cost model, each against its closed form: per-protocol latency scales, per-op
bandwidth scales, the own-chunk pass of ring all_reduce / all_gather / reduce_scatter and all_to_all, the launch
floor, and back-to-back chains; and bad values named by field."""
import math

import pytest

from gpusim.collectives import nccl_model as nm
from gpusim.collectives.cost_model import OWN_CHUNK_OPS, CostModel, expected_max_normal, own_chunk_rates
from gpusim.collectives.oracle import RingPipeline
from gpusim.collectives.run import Collectives, measure
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError
from gpusim.topology import builders as b

B, LAT = 50e9, 500e-9
GiB = 1 << 30


def _time(model, op, n, size, shape=b.switch, **kw):
    return measure(Fabric(shape(n, B, LAT)), model, op, range(n), size, algo="ring", **kw).time_s


def test_op_bandwidth_scale_divides_the_bytes_term_of_that_op_only():
    """all_gather at half rate: the bytes term doubles, the latency stays; all_reduce is untouched."""
    n, oracle = 8, RingPipeline(8, B, 2 * LAT)
    slow = CostModel.ideal().with_overrides(op_bandwidth_scale={"all_gather": 0.5})
    lat = oracle.time_s("all_gather", 0)
    assert _time(slow, "all_gather", n, GiB) - lat == pytest.approx(2 * (oracle.time_s("all_gather", GiB) - lat),
                                                                    rel=1e-9)
    assert _time(slow, "all_reduce", n, GiB) == pytest.approx(oracle.time_s("all_reduce", GiB), rel=1e-9)


def test_expected_maximum_of_normals_has_its_closed_forms():
    """E[max of n standard normals]: 0, 1/sqrt(pi), 3/(2 sqrt(pi)) for n = 1, 2, 3 (closed forms), and the tabulated
    1.0294, 1.1630, 1.4236, 3.2414 for 4, 5, 8 and 1000 (Harter 1961); it grows with n."""
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-9)
    assert expected_max_normal(3) == pytest.approx(1.5 / math.sqrt(math.pi), abs=1e-9)
    for n, want in ((4, 1.0294), (5, 1.1630), (8, 1.4236), (1000, 3.2414)):
        assert expected_max_normal(n) == pytest.approx(want, abs=1e-4), n
    assert all(expected_max_normal(n) < expected_max_normal(n + 1) for n in range(1, 64))


@pytest.mark.parametrize("op, algo", [("all_reduce", "ring"), ("all_gather", "ring"), ("broadcast", "ring"),
                                      ("all_reduce", "tree"), ("all_to_all", "auto"), ("sendrecv", "auto")])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_straggler_spread_stretches_the_bytes_term_by_the_slowest_of_n(op, algo, n):
    """With a rate spread s every call's bytes term grows by 1 + s * E[max of n normals] (a step ends when its
    slowest rank's stream does), on every algorithm; the latency term does not change."""
    model = CostModel.ideal().with_overrides(straggler_cv=0.25)
    f = 1 + 0.25 * expected_max_normal(n)

    def t(m, size):
        return measure(Fabric(b.switch(n, B, LAT)), m, op, range(n), size, algo=algo).time_s

    base = CostModel.ideal()
    assert t(model, GiB) - t(model, GiB / 2) == pytest.approx(f * (t(base, GiB) - t(base, GiB / 2)), rel=1e-9)
    assert t(model, 8) == pytest.approx(t(base, 8), rel=1e-3)


@pytest.mark.parametrize("op", ["sendrecv", "all_to_all"])
def test_straggler_spread_also_slows_sends_held_to_their_p2p_channels(op):
    """Point-to-point sends held to their channels' rate (1 GB/s a channel) wait for the slowest rank too."""
    capped = CostModel.ideal().with_overrides(p2p_channel_Bps=1e9)
    f = 1 + 0.2 * expected_max_normal(4)
    slow = capped.with_overrides(straggler_cv=0.2)

    def t(m, size):
        return measure(Fabric(b.switch(4, B, LAT)), m, op, range(4), size).time_s

    assert t(capped, GiB) > 1.2 * t(CostModel.ideal(), GiB)     # held to the channels, not the 50 GB/s links
    assert t(slow, GiB) - t(slow, GiB / 2) == pytest.approx(f * (t(capped, GiB) - t(capped, GiB / 2)), rel=1e-9)


def test_straggler_spread_also_slows_a_flow_held_to_its_channel_rate():
    """A ring channel held to its measured rate (here 1 GB/s, far below the links) waits for its slowest rank too."""
    capped = CostModel.ideal().with_overrides(ring_channel_Bps={"Simple": {"all_gather": 1e9}})
    f = 1 + 0.2 * expected_max_normal(4)
    slow = capped.with_overrides(straggler_cv=0.2)
    assert _time(slow, "all_gather", 4, GiB) - _time(slow, "all_gather", 4, GiB / 2) == pytest.approx(
        f * (_time(capped, "all_gather", 4, GiB) - _time(capped, "all_gather", 4, GiB / 2)), rel=1e-9)


@pytest.mark.parametrize("n", [2, 3, 4, 8])
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter"])
def test_own_chunk_pass_adds_s_over_n_at_its_rate_after_the_ring(op, n):
    """t = ring time + (S/n) / R: the pass costs 1/n of the buffer, so its share of the call shrinks as n grows
    (what makes ring busbw rise with n on NVLink); broadcast, which has none, is untouched."""
    own = 100e9
    model = CostModel.ideal().with_overrides(own_chunk_Bps={op: own})
    ring = RingPipeline(n, B, 2 * LAT).time_s(op, GiB)
    assert _time(model, op, n, GiB) == pytest.approx(ring + GiB / n / own, rel=1e-9)
    coll = Collectives(Fabric(b.switch(n, B, LAT)), model)
    assert coll.estimate(op, coll.ranks(range(n)), GiB, "ring", "Simple", 1) == pytest.approx(ring + GiB / n / own,
                                                                                             rel=1e-9)
    assert _time(model, "broadcast", n, GiB) == pytest.approx(_time(CostModel.ideal(), "broadcast", n, GiB), rel=1e-12)


@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter", "broadcast"])
@pytest.mark.parametrize("channels", [1, 2, 4, 8])
def test_a_ring_channel_runs_at_most_at_its_rate_and_the_channels_add_up_to_the_link(op, channels):
    """A Simple ring or chain of c channels, each at most R: the ring runs at min(B, c R), exactly the closed form
    at that rate; on 8 channels (8 R > B) the link binds and the time is the uncapped one. Other operations and
    protocols keep their rates."""
    n, rate = 4, 10e9
    model = CostModel.ideal().with_overrides(ring_channel_Bps={"Simple": {op: rate}}, channels=channels)
    want = RingPipeline(n, min(B, channels * rate), 2 * LAT).time_s(op, GiB)
    assert _time(model, op, n, GiB) == pytest.approx(want, rel=1e-9)
    coll = Collectives(Fabric(b.switch(n, B, LAT)), model)
    assert coll.estimate(op, coll.ranks(range(n)), GiB, "ring", "Simple", channels) == pytest.approx(want, rel=1e-9)
    bare = CostModel.ideal().with_overrides(channels=channels)
    other = "all_gather" if op == "all_reduce" else "all_reduce"
    assert _time(model, other, n, GiB) == pytest.approx(_time(bare, other, n, GiB), rel=1e-12)
    ll = dict(allowed_protocols=("LL", "Simple"))
    assert _time(model.with_overrides(**ll), op, n, GiB, proto="LL") == \
        pytest.approx(_time(bare.with_overrides(**ll), op, n, GiB, proto="LL"), rel=1e-12)


@pytest.mark.parametrize("proto", ["LL", "LL128"])
def test_an_ll_or_ll128_ring_channel_is_held_to_its_measured_rate_below_nccls_cap(proto):
    """NCCL caps LL's total (shared by the channels) and each LL128 channel; a measured one-channel rate below
    those caps binds, per operation: on one channel an all_reduce runs at exactly that payload rate, and an
    all_gather without one keeps NCCL's cap."""
    n, rate = 2, 5e9
    base = CostModel.nccl(channels=1, allowed_protocols=("LL", "LL128", "Simple"))
    model = base.with_overrides(ring_channel_Bps={proto: {"all_reduce": rate}})
    assert model.channel_cap_Bps("ring", proto, 1, 1, "all_reduce") == rate
    assert model.channel_cap_Bps("ring", proto, 1, 1, "all_gather") == base.channel_cap_Bps("ring", proto, 1, 1) > rate
    assert model.channel_cap_Bps("tree", proto, 1, 1, "all_reduce") == base.channel_cap_Bps("tree", proto, 1, 1)
    fabric = Fabric(b.nvswitch_server(n))
    t_small, t_big = (measure(fabric, model, "all_reduce", range(n), s, algo="ring", proto=proto).time_s
                      for s in (GiB, 2 * GiB))
    assert GiB / (t_big - t_small) == pytest.approx(rate / model.efficiency(proto) * model.efficiency(proto), rel=1e-6)


def test_held_to_fewer_channels_the_tuner_still_decides_with_its_own():
    """NCCL's tuner decides with what its topology search found (12 channels of 30 GB/s over NVLink) whatever
    NCCL_MIN/MAX_NCHANNELS then hold the call to: the LL -> Simple switch does not move with the call's channels
    (on H200 it stayed at 2 MiB on 1, 2, 4 and 8 forced channels, extra/probe_channel_protocols)."""
    coll = Collectives(Fabric(b.nvswitch_server(2)), CostModel.nccl(channels=24, graph_channels=12, graph_bw_Bps=30e9))
    ranks = coll.ranks(range(2))

    def switch(channels):
        return next(s for s in (1 << k for k in range(10, 31))
                    if coll.choose("all_reduce", ranks, s, channels=channels).proto == "Simple")
    assert {switch(c) for c in (1, 2, 4, 8, 24)} == {switch(None)}


def test_own_chunk_rates_follow_the_copies_each_ring_ends_with():
    """From a local copy rate C and an out-of-place own-copy rate K: all_reduce and all_to_all pass S/n at C,
    all_gather at C and then K in series, reduce_scatter reduces (2 reads + 1 write) at 2/3 C; every rate is
    proportional to the copy rates and at most C."""
    c, k = 2e12, 3e12
    r = own_chunk_rates(c, k)
    assert set(r) == set(OWN_CHUNK_OPS)
    assert r["all_reduce"] == r["all_to_all"] == c
    assert 1 / r["all_gather"] == pytest.approx(1 / c + 1 / k)
    assert r["reduce_scatter"] == pytest.approx(2 * c / 3)
    assert own_chunk_rates(2 * c, 2 * k) == pytest.approx({op: 2 * x for op, x in r.items()})
    assert max(r.values()) == c
    # an infinitely fast own copy (in place) leaves all_gather the drain at C
    assert own_chunk_rates(c, math.inf)["all_gather"] == pytest.approx(c)


def test_own_chunk_pass_of_all_to_all_follows_the_exchange_and_crosses_no_link():
    """all_to_all: the direct exchange, then the rank's own S/n at its rate, as a last phase whose flows hold no
    link (a GPU-local pass does not compete with transfers)."""
    n, own = 4, 50e9
    fabric = Fabric(b.switch(n, B, LAT))
    plain = measure(fabric, CostModel.ideal(), "all_to_all", range(n), GiB).time_s
    model = CostModel.ideal().with_overrides(own_chunk_Bps={"all_to_all": own})
    assert measure(Fabric(b.switch(n, B, LAT)), model, "all_to_all", range(n), GiB).time_s == pytest.approx(
        plain + GiB / n / own, rel=1e-9)
    coll = Collectives(fabric, model)
    phases = coll.planner.plan("all_to_all", coll.ranks(range(n)), GiB, "direct", "Simple", 1)
    assert phases[-1].label == "own-chunk" and all(f.links.size == 0 for f in phases[-1].flows)
    assert all(f.links.size > 0 for f in phases[0].flows)


MiB = 1 << 20


@pytest.mark.parametrize("n, size, want", [
    (2, 64 << 10, 1), (2, 256 << 10, 4), (2, MiB, 16), (2, 256 * MiB, 16), (2, 512 * MiB, 32), (2, GiB, 32),
    (4, MiB, 8), (4, 128 * MiB, 8), (4, 256 * MiB, 16), (4, 512 * MiB, 32),
    (3, 16 * MiB, 8), (8, 16 * MiB, 4), (8, 64 * MiB, 4), (8, 128 * MiB, 8), (16, 64 * MiB, 4)])
def test_p2p_channels_follow_nccl_on_one_node(n, size, want):
    """NCCL 2.28 over NVLink (32 p2p channels, 32 per peer, 512 KiB chunks): at least 32 / 2^k channels with
    k the smallest giving <= 32 / n, doubled while a part exceeds 16 MiB; a small send uses one per 64 KiB."""
    assert nm.p2p_channels(size, n, False, 32, 32, 512 << 10) == want


def test_p2p_sends_use_ll_up_to_16_kib_a_channel_inside_a_node():
    """NCCL's addP2pToPlan: LL while a send's bytes are at most its channels x NCCL_P2P_LL_THRESHOLD (16 KiB), on
    connections with LL buffers (inside a node); across nodes always Simple. A model that does not allow LL keeps
    Simple. The tuner follows it for all_to_all (bytes per peer) and sendrecv."""
    assert nm.p2p_protocol(16384, 1, False) == "LL" and nm.p2p_protocol(16385, 1, False) == "Simple"
    assert nm.p2p_protocol(4 * 16384, 4, False) == "LL" and nm.p2p_protocol(8, 1, True) == "Simple"
    model = CostModel.nccl(channels=4, p2p_channels=32, p2p_channels_per_peer=32, p2p_chunk_bytes=512 << 10)
    assert model.p2p_protocol(64 << 10, 2, False) == "Simple"       # 64 KiB on 1 channel (parts of >= 64 KiB)
    assert model.p2p_protocol(8 << 10, 2, False) == "LL"
    assert model.with_overrides(allowed_protocols=("Simple",)).p2p_protocol(8, 2, False) == "Simple"
    coll = Collectives(Fabric(b.nvswitch_server(4)), model)
    ranks = coll.ranks(range(4))
    assert coll.choose("all_to_all", ranks, 4 * (8 << 10)).proto == "LL"
    assert coll.choose("all_to_all", ranks, 4 * (64 << 10)).proto == "Simple"
    assert coll.choose("sendrecv", ranks, 8 << 10).proto == "LL"
    assert coll.choose("sendrecv", ranks, 8 << 10, proto="Simple").proto == "Simple"
    apart = Collectives(Fabric(b.switch(4, B, LAT)), model)      # one GPU per node: network connections
    assert apart.choose("sendrecv", apart.ranks(range(4)), 8).proto == "Simple"


def test_p2p_channels_across_nodes_and_on_few_channels():
    """Across nodes parts are at most one chunk and at least half of one; SHM's 4 channels, 2 per peer, give a
    send to one of 4 peers one channel up to 4 MiB (one chunk x 32) and two above."""
    assert nm.p2p_channels(64 << 10, 2, True, 2, 2, 128 << 10) == 1
    assert nm.p2p_channels(MiB, 4, True, 2, 2, 128 << 10) == 2
    assert nm.p2p_channels(4 * MiB, 4, False, 4, 2, 128 << 10) == 1
    assert nm.p2p_channels(4 * MiB + 1, 4, False, 4, 2, 128 << 10) == 2
    assert nm.p2p_channels(0, 4, False, 32, 32, 512 << 10) == 1
    sizes = [1 << k for k in range(3, 33)]
    for n in (2, 3, 4, 8, 64):
        got = [nm.p2p_channels(s, n, False, 32, 32, 512 << 10) for s in sizes]
        assert got == sorted(got) and 1 <= min(got) and max(got) <= 32


#: NCCL's 24 collective channels over NVLink on H200, which give it 32 point-to-point channels
NVLINK_CHANNELS = 24


def _sendrecv_s(n, size, per_channel):
    model = CostModel.ideal().with_overrides(p2p_channel_Bps=per_channel, channels=NVLINK_CHANNELS)
    return measure(Fabric(b.nvswitch_server(n)), model, "sendrecv", range(n), size).time_s


@pytest.mark.parametrize("n, size, channels", [(2, 64 * MiB, 16), (4, 64 * MiB, 8), (4, 512 * MiB, 32)])
def test_sendrecv_runs_at_its_channels_times_one_channels_rate(n, size, channels):
    """Inside one NVSwitch server (NVLink far faster than the channels here) a ring shift of S costs
    S / (channels x per-channel rate): halving the rate adds exactly S / (channels x rate)."""
    slow, fast = _sendrecv_s(n, size, 2.5e9), _sendrecv_s(n, size, 5e9)
    assert slow - fast == pytest.approx(size / (channels * 5e9), rel=1e-9)


def test_p2p_across_servers_uses_nccls_multi_node_parts():
    """GPUs on separate servers (a switch): parts of at most one 512 KiB chunk, so 64 MiB gets all 32 channels."""
    model = CostModel.ideal().with_overrides(p2p_channel_Bps=5e9)
    coll = Collectives(Fabric(b.switch(4, 1e12, LAT)), model)
    flows = coll.planner.plan("sendrecv", coll.ranks(range(4)), 64 * MiB, "direct", "Simple", NVLINK_CHANNELS)[0].flows
    assert all(f.cap_Bps == pytest.approx(32 * 5e9) for f in flows)


def test_all_to_all_channels_come_from_each_pairs_bytes():
    """all_to_all on 4 ranks sends S/4 to each peer: 64 MiB moves 16 MiB per pair on 8 channels."""
    per_channel, n, size = 5e9, 4, 64 * MiB
    model = CostModel.ideal().with_overrides(p2p_channel_Bps=per_channel)
    coll = Collectives(Fabric(b.nvswitch_server(n)), model)
    flows = coll.planner.plan("all_to_all", coll.ranks(range(n)), size, "direct", "Simple", NVLINK_CHANNELS)[0].flows
    assert len(flows) == 12 and all(f.cap_Bps == pytest.approx(8 * per_channel) for f in flows)


@pytest.mark.parametrize("channels, want", [(24, (32, 32)), (16, (16, 16)), (8, (8, 8)), (3, (4, 4)), (1, (1, 1)),
                                           (32, (32, 32)), (None, (32, 32))])
def test_p2p_channels_are_the_collective_channels_rounded_up_to_a_power_of_two(channels, want):
    """NCCL's p2pnChannels is its channel count rounded up to a power of two (24 -> 32 over NVLink, as logged;
    NCCL_MIN/MAX_NCHANNELS 1, 2, 4, 8 logged as many), a peer's share at most that. Over SHM (4 channels, 2 per peer)
    8 forced channels gave 8 and still 2 per peer, as logged. On the model's own channel count its logged counts
    hold. A send's cap follows them."""
    nvlink = CostModel.nccl(channels=24, p2p_channels=32, p2p_channels_per_peer=32, p2p_channel_Bps=5e9)
    assert nvlink.p2p_channel_counts(channels) == want
    shm = CostModel.nccl(channels=4, p2p_channels=4, p2p_channels_per_peer=2)
    assert shm.p2p_channel_counts(8) == (8, 2) and shm.p2p_channel_counts(2) == (2, 2)
    assert shm.p2p_channel_counts(1) == (1, 1) and shm.p2p_channel_counts(4) == (4, 2)
    assert nvlink.p2p_cap_Bps(GiB, 2, False, channels) == pytest.approx(want[1] * 5e9)


def test_step_latency_scale_per_protocol_scales_only_that_protocol():
    """Ring all_reduce on 4 ranks takes 2(n-1) steps; scaling LL's per-step latency by 3 adds 2 x 6 LL steps and
    leaves Simple alone."""
    model = CostModel.nccl(channels=1)
    fabric = Fabric(b.switch(4, B, LAT))
    coll = Collectives(fabric, model)
    ranks = coll.ranks(range(4))
    scaled = Collectives(fabric, model.with_overrides(step_latency_scale={"LL": 3.0}))
    step_ll = model.step_latency_s("ring", "LL", "net")
    for proto, extra in (("LL", 2 * 6 * step_ll), ("Simple", 0.0)):
        base = coll.estimate("all_reduce", ranks, 8, "ring", proto, 1)
        assert scaled.estimate("all_reduce", ranks, 8, "ring", proto, 1) - base == pytest.approx(extra, rel=1e-9)
    assert model.with_overrides(step_latency_scale={"LL": 3.0}).step_scale("LL128") == 1.0


def test_launch_floor_is_a_lower_bound_on_each_call_in_estimate_and_engine():
    floor = 50e-6
    model = CostModel.ideal().with_overrides(launch_floor_s=floor)
    fabric = Fabric(b.switch(8, B, LAT))
    coll = Collectives(fabric, model)
    ranks = coll.ranks(range(8))
    assert coll.estimate("all_reduce", ranks, 8, "ring", "Simple", 1) == floor
    assert measure(fabric, model, "all_reduce", range(8), 8, algo="ring").time_s == pytest.approx(floor, rel=1e-12)
    big = RingPipeline(8, B, 2 * LAT).time_s("all_reduce", GiB)
    assert measure(fabric, model, "all_reduce", range(8), GiB, algo="ring").time_s == pytest.approx(big, rel=1e-9)


def test_grouped_sends_and_receives_lengthen_the_issue_interval_in_estimate_and_engine():
    """A floor of 10 us and 2 us a send or receive: a 4-rank all_to_all posts 8 (a send and a receive to every rank,
    itself included) and cannot last less than 26 us, a sendrecv 14, an all_reduce 10; replayed from a CUDA graph,
    none is held."""
    model = CostModel.ideal().with_overrides(launch_floor_s=10e-6, p2p_launch_s=2e-6)
    fabric = Fabric(b.switch(4, B, LAT))
    coll = Collectives(fabric, model)
    ranks = coll.ranks(range(4))
    for op, algo, want in (("all_to_all", "direct", 26e-6), ("sendrecv", "direct", 14e-6), ("all_reduce", "ring", 10e-6)):
        assert model.issue_interval_s(op, 4) == pytest.approx(want, rel=1e-12)
        assert coll.estimate(op, ranks, 8, algo, "Simple", 1) == pytest.approx(want, rel=1e-12)
        assert measure(fabric, model, op, range(4), 8, algo=algo).time_s == pytest.approx(want, rel=1e-12)
        free = measure(fabric, model.graph_replayed(), op, range(4), 8, algo=algo).time_s
        assert free < want and free == measure(fabric, CostModel.ideal(), op, range(4), 8, algo=algo).time_s
    assert model.issue_interval_s("all_to_all", 8) == pytest.approx(42e-6)


def test_launch_floor_does_not_choose_the_protocol():
    """The host's issue interval lasts as long whatever NCCL runs, so it must not decide the algorithm or protocol:
    under a floor longer than every call, the estimate tuner picks what it picks without one (it would otherwise
    take the first candidate, all being equal at the floor)."""
    fabric = Fabric(b.switch(4, B, LAT))
    free = Collectives(fabric, CostModel.nccl(channels=2).with_overrides(tuner="estimate"))
    floored = Collectives(fabric, free.model.with_overrides(launch_floor_s=1.0))
    ranks = free.ranks(range(4))
    picks = set()
    for op in ("all_reduce", "all_to_all", "sendrecv"):
        for size in (8, 64 << 10, 1 << 20, GiB):
            want = free.choose(op, ranks, size)
            assert floored.choose(op, ranks, size) == want, (op, size)
            picks.add(want.proto)
            assert floored.estimate(op, ranks, size, want.algo, want.proto, want.channels) == 1.0
    assert len(picks) > 1          # the sizes span a protocol switch, so a floored tie would have shown


def test_back_to_back_chain_pays_one_hop_of_latency_not_the_chain():
    """A broadcast chain over n ranks: alone it pays (n-1) hops of latency; in a run of identical calls the root
    starts the next call once its hop is free, so each call costs one hop's latency plus the bytes."""
    n = 8
    alone = _time(CostModel.ideal(), "broadcast", n, 8)
    repeated = _time(CostModel.ideal(), "broadcast", n, 8, back_to_back=True)
    assert alone == pytest.approx((n - 1) * 2 * LAT + 8 / B, rel=1e-9)
    assert repeated == pytest.approx(2 * LAT + 8 / B, rel=1e-9)
    assert _time(CostModel.ideal(), "all_reduce", n, 8, back_to_back=True) == pytest.approx(
        _time(CostModel.ideal(), "all_reduce", n, 8), rel=1e-12)


@pytest.mark.parametrize("fields, path", [
    ({"step_latency_scale": {"LL9": 1.0}}, "cost_model.step_latency_scale.LL9"),
    ({"base_latency_scale": -1.0}, "cost_model.base_latency_scale"),
    ({"op_bandwidth_scale": {"allreduce": 1.0}}, "cost_model.op_bandwidth_scale.allreduce"),
    ({"op_bandwidth_scale": {"broadcast": 0.0}}, "cost_model.op_bandwidth_scale.broadcast"),
    ({"own_chunk_Bps": {"all_reduce": 0.0}}, "cost_model.own_chunk_Bps.all_reduce"),
    ({"own_chunk_Bps": {"broadcast": 1e12}}, "cost_model.own_chunk_Bps.broadcast"),
    ({"own_chunk_Bps": 1e12}, "cost_model.own_chunk_Bps"),
    ({"p2p_channel_Bps": math.nan}, "cost_model.p2p_channel_Bps"),
    ({"ring_channel_Bps": {"Simple": {"all_to_all": 1e10}}}, "cost_model.ring_channel_Bps.Simple.all_to_all"),
    ({"ring_channel_Bps": {"LL": {"broadcast": -1.0}}}, "cost_model.ring_channel_Bps.LL.broadcast"),
    ({"ring_channel_Bps": {"LL256": {"broadcast": 1e9}}}, "cost_model.ring_channel_Bps.LL256"),
    ({"ring_channel_Bps": {"all_reduce": 1e10}}, "cost_model.ring_channel_Bps"),
    ({"launch_floor_s": -1e-6}, "cost_model.launch_floor_s"),
    ({"p2p_channels": 0}, "cost_model.p2p_channels"),
    ({"p2p_chunk_bytes": 100}, "cost_model.p2p_chunk_bytes"),
    ({"p2p_channel_Bps": 0.0}, "cost_model.p2p_channel_Bps"),
    ({"launch_floor_s": math.nan}, "cost_model.launch_floor_s"),
    ({"p2p_launch_s": -1e-6}, "cost_model.p2p_launch_s"),
    ({"straggler_cv": -0.1}, "cost_model.straggler_cv"),
    ({"straggler_cv": 1.5}, "cost_model.straggler_cv"),
    ({"straggler_cv": math.nan}, "cost_model.straggler_cv"),
])
def test_bad_values_are_named(fields, path):
    with pytest.raises(GpusimError) as e:
        CostModel.nccl(**fields).validate()
    assert e.value.path == path


@pytest.mark.parametrize("preset, op, proto, n", [("h200-nvlink", "sendrecv", "Simple", 2),
                                                  ("h200-nvlink", "all_reduce", "LL", 4),
                                                  ("h200-socket", "all_reduce", "Simple", 4),
                                                  ("h200-socket", "all_to_all", "Simple", 4),
                                                  ("h200-socket", "broadcast", "Simple", 3)])
def test_a_calibrated_presets_slowdowns_move_no_bytes(preset, op, proto, n):
    """Op bandwidth scales and the straggler factor lengthen a call but move no bytes: every link carries what it
    carries without them (the payload over the protocol's efficiency: LL's flags count); a GPU's NVLink uplink a
    sendrecv's S (h200-nvlink's sendrecv scale 1.03 had shown 973.6 MiB a GiB)."""
    from gpusim import presets
    cluster = presets.build(f"{preset}:gpus={n}")
    bare = cluster.model.with_overrides(op_bandwidth_scale={}, straggler_cv=0.0)
    size = 1 << 30 if proto == "Simple" else 1 << 20
    runs = []
    for model in (cluster.model, bare):
        fabric = Fabric(cluster.graph)
        runs.append((measure(fabric, model, op, range(n), size, proto=proto).time_s, fabric.net.link_bytes.copy()))
    (t, carried), (t_bare, carried_bare) = runs
    slowed = op in cluster.model.op_bandwidth_scale or cluster.model.straggler_cv > 0
    assert slowed == (t != pytest.approx(t_bare, rel=1e-3))
    assert carried == pytest.approx(carried_bare, rel=1e-12) and carried.sum() > 0
    if preset == "h200-nvlink":      # each GPU's busiest outgoing link: its NVLinks to the NVSwitch
        fabric = Fabric(cluster.graph)
        measure(fabric, cluster.model, op, range(n), size, proto=proto)
        out = max(fabric.net.link_bytes[fabric.link_index[(fabric.gpu(0), v)]]
                  for v in fabric.g.successors(fabric.gpu(0)))
        sent = size if op == "sendrecv" else 2 * (n - 1) / n * size
        assert out == pytest.approx(sent / cluster.model.payload_efficiency[proto], rel=1e-12)
