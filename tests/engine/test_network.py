"""The fluid engine against closed forms: exact times where they exist, invariants everywhere."""
import numpy as np
import pytest
import simpy
from hypothesis import example, given, settings, strategies as st

from gpusim.engine.network import FlowNetwork, FlowSpec


def run(capacities, specs, until=None):
    env = simpy.Environment()
    net = FlowNetwork(env, capacities)
    group = net.submit(specs)
    env.run(until=until)
    return net, group


def test_one_flow_is_latency_plus_size_over_bandwidth():
    _, g = run([4e9], [FlowSpec([0], 1e9, latency_s=2e-6)])
    assert g.finish_s[0] == pytest.approx(2e-6 + 0.25, rel=1e-12)


def test_n_flows_on_one_link_each_get_one_nth():
    n, size, cap = 7, 3e6, 1e9
    _, g = run([cap], [FlowSpec([0], size) for _ in range(n)])
    np.testing.assert_allclose(g.finish_s, n * size / cap, rtol=1e-12)


def test_early_finisher_releases_capacity():
    """Two flows share 10 B/s: the 20 B one finishes at 4 s; the 100 B one then runs alone: 4 + 80/10 = 12 s."""
    _, g = run([10.0], [FlowSpec([0], 20.0), FlowSpec([0], 100.0)])
    np.testing.assert_allclose(g.finish_s, [4.0, 12.0], rtol=1e-12)


def test_parking_lot_times():
    """Long flow A over links 0-2, short B, C, D on one each; C is small. A's rate stays 5 (B and D hold it)."""
    _, g = run([10.0] * 3, [FlowSpec([0, 1, 2], 100), FlowSpec([0], 100), FlowSpec([1], 50), FlowSpec([2], 100)])
    np.testing.assert_allclose(g.finish_s, [20.0, 20.0, 10.0, 20.0], rtol=1e-12)


def test_flows_started_later_share_from_then_on(env):
    net = FlowNetwork(env, [10.0])
    first = net.submit([FlowSpec([0], 100.0)])

    def later():
        yield env.timeout(5.0)
        second = net.submit([FlowSpec([0], 25.0)])
        yield second.done
        assert env.now == pytest.approx(10.0)

    env.process(later())
    env.run()
    # first: 50 B alone in [0,5], 25 B at 5 B/s in [5,10], 25 B alone -> 12.5
    assert first.finish_s[0] == pytest.approx(12.5)


def test_outage_stalls_then_resumes(env):
    net = FlowNetwork(env, [10.0])
    g = net.submit([FlowSpec([0], 100.0)])

    def weather():
        yield env.timeout(3.0)
        net.set_capacity(0, 0.0)
        yield env.timeout(4.0)
        assert net.stalled
        net.set_capacity(0, 10.0)

    env.process(weather())
    env.run()
    assert g.finish_s[0] == pytest.approx(14.0)
    assert net.link_bytes[0] == pytest.approx(100.0)


def test_zero_byte_flow_costs_its_latency():
    _, g = run([1.0], [FlowSpec([0], 0.0, latency_s=3e-6)])
    assert g.finish_s[0] == pytest.approx(3e-6)


def test_simultaneous_submissions_coalesce_into_one_recomputation(env):
    net = FlowNetwork(env, [1.0] * 4)
    for i in range(4):
        net.submit([FlowSpec([i], 1.0)])
    env.run()
    assert net.recomputations == 2  # one at start, one when all four end together


flow_st = st.lists(st.tuples(st.lists(st.integers(0, 4), min_size=1, max_size=3), st.floats(1.0, 1e4),
                             st.floats(0.0, 5.0)), min_size=1, max_size=10)


@settings(max_examples=50, deadline=None)
@given(flow_st, st.lists(st.floats(1.0, 50.0), min_size=5, max_size=5))
@example(flows=[([0], 1.0, 0.0), ([0], 1.0, 5.960464477539063e-08)], caps=[1.0] * 5)  # retired 6e-8 B short
def test_bytes_conserved_and_capacity_respected(flows, caps):
    env = simpy.Environment()
    net = FlowNetwork(env, caps)
    over = []

    def starter(links, size, at):
        yield env.timeout(at)
        net.submit([FlowSpec(links, size)])

    schedule_next = net._schedule_next

    def check_after_every_recomputation():  # rates only change here, so this sees every instant's load
        over.append(np.any(net.link_load_Bps() > np.array(caps) * (1 + 1e-9)))
        schedule_next()

    net._schedule_next = check_after_every_recomputation
    for links, size, at in flows:
        env.process(starter(links, size, at))
    env.run()
    expected = np.zeros(5)
    for links, size, _ in flows:
        for link in links:
            expected[link] += size
    np.testing.assert_allclose(net.link_bytes, expected, rtol=1e-9)
    assert not any(over)
    assert not net._group and not net._new         # every flow retired
    # a link holds flows back only while full: it carried at least capacity x that time, and no longer than the run
    assert np.all(net.link_bytes >= np.array(caps) * net.limiting_seconds * (1 - 1e-9))
    assert np.all(net.limiting_seconds <= env.now * (1 + 1e-12))


@settings(max_examples=40, deadline=None)
@given(st.floats(1.0, 1e6), st.floats(1.0, 1e6), st.integers(0, 5))
def test_larger_transfer_never_finishes_sooner(a, b, background):
    def finish(size):
        specs = [FlowSpec([0], size)] + [FlowSpec([0, 1], 500.0) for _ in range(background)]
        return run([100.0, 60.0], specs)[1].finish_s[0]

    small, large = sorted([a, b])
    assert finish(small) <= finish(large) * (1 + 1e-12)


def test_same_input_same_output():
    specs = lambda: [FlowSpec([i % 3, (i + 1) % 3], 10.0 * (i + 1)) for i in range(20)]  # noqa: E731
    assert np.array_equal(run([5.0, 7.0, 9.0], specs())[1].finish_s, run([5.0, 7.0, 9.0], specs())[1].finish_s)


def test_flows_late_in_a_long_run_finish_where_the_clock_cannot_resolve_their_last_bytes():
    """At t = 1e8 s the clock's step is ~15 ns: flows whose last bytes need less than that finish rather than waking
    the engine forever at the same instant (these six did, before). Bytes stay conserved."""
    env = simpy.Environment(initial_time=1e8)
    caps = [260792596103.0, 475727211200.0, 80638210233.0, 474838229097.0]
    net = FlowNetwork(env, caps)
    specs = [FlowSpec([1], 1866217508.0), FlowSpec([3, 0], 878748454.0), FlowSpec([0, 1], 1858836762.0),
             FlowSpec([2, 3, 1], 1693137748.0), FlowSpec([1], 267191831.0), FlowSpec([0, 2], 865678547.0)]
    group = net.submit(specs)
    for _ in range(10_000):         # bounded: a regression fails here instead of hanging the suite
        if env.peek() == simpy.core.Infinity:
            break
        env.step()
    assert group.done.triggered and max(group.finish_s) - 1e8 < 0.1
    carried = np.zeros(4)
    for f in specs:
        carried[f.links] += f.size_bytes
    np.testing.assert_allclose(net.link_bytes, carried, rtol=1e-6)


def test_a_user_error_raised_inside_a_simulated_process_reaches_the_caller_intact():
    """simpy re-raises a failed process's exception as type(e)(*e.args): a GpusimError must survive that."""
    import pickle
    from gpusim.errors import GpusimError

    def job(env):
        yield env.timeout(1.0)
        raise GpusimError("jobs[0].algo", "unknown algorithm 'RING'")
    env = simpy.Environment()
    env.process(job(env))
    with pytest.raises(GpusimError) as caught:
        env.run()
    assert (caught.value.path, caught.value.message) == ("jobs[0].algo", "unknown algorithm 'RING'")
    assert str(caught.value) == "jobs[0].algo: unknown algorithm 'RING'" == str(pickle.loads(pickle.dumps(caught.value)))
    assert str(GpusimError("", "no field")) == "no field"


def outage(net, link: int, at: float, lasting: float, then_Bps: float):
    """simpy process: ``link`` down from ``at`` for ``lasting`` seconds, then at ``then_Bps``."""
    yield net.env.timeout(at)
    net.set_capacity(link, 0.0)
    yield net.env.timeout(lasting)
    net.set_capacity(link, then_Bps)


def test_advance_brings_bytes_and_capacity_time_up_to_now():
    """10 B/s for 2 s, an outage for 1 s, 5 B/s for 1 s: a link could have carried 25 B; a 100 B flow on it has
    carried 20 + 5 = 25 B when the run stops at 4 s, mid-flight."""
    env = simpy.Environment()
    net = FlowNetwork(env, [10.0])
    g = net.submit([FlowSpec([0], 100.0)])
    env.process(outage(net, link=0, at=2.0, lasting=1.0, then_Bps=5.0))
    env.run(until=4.0)
    net.advance()
    assert net.capacity_seconds[0] == pytest.approx(25.0) and net.link_bytes[0] == pytest.approx(25.0)
    assert g.stalled_s == pytest.approx(1.0)       # the outage, though the flow has not finished
    assert net.stalled_s_by_label() == {"": pytest.approx(1.0)}


def test_limiting_time_counts_when_a_link_held_a_flow_back():
    """Link 0 (10 B/s) is the bottleneck of a 100 B flow over links 0 and 1 (20 B/s) except during an outage of
    link 1 from 2 to 3 s, when link 1 holds it (stalled); the flow ends at 11 s. A 30 B flow on link 2 with its own
    ceiling of 5 B/s (link 2: 10 B/s) is never held back by its link: 0 s for link 2."""
    env = simpy.Environment()
    net = FlowNetwork(env, [10.0, 20.0, 10.0])
    g = net.submit([FlowSpec([0, 1], 100.0), FlowSpec([2], 30.0, cap_Bps=5.0)])
    env.process(outage(net, link=1, at=2.0, lasting=1.0, then_Bps=20.0))
    env.run()
    np.testing.assert_allclose(g.finish_s, [11.0, 6.0], rtol=1e-12)
    np.testing.assert_allclose(net.limiting_seconds, [10.0, 1.0, 0.0], rtol=1e-12)
