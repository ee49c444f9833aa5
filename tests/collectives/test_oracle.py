"""Closed-form alpha-beta-gamma costs: hand-computed values, identities between algorithms, lower bounds,
monotonicity, and the fluid ring the flow-level engine must equal when nothing contends."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpusim.collectives import oracle as o
from gpusim.errors import GpusimError

A = 2e-6          # alpha: 2 µs per message
B = 1 / 10e9      # beta: 10 GB/s
G = 1 / 100e9     # gamma: 100 GB/s reduction
N = 8e6           # 8 MB


# ---------------------------------------------------------------------------------------------------------
# hand-computed values, p = 8 (lg p = 3), n = 8 MB: n b = 800 µs, n g = 80 µs, (p-1)/p = 7/8

@pytest.mark.parametrize("fn, expected_s", [
    (o.all_reduce_ring, 14 * A + 2 * 7 / 8 * 800e-6 + 7 / 8 * 80e-6),
    (o.all_reduce_recursive_doubling, 3 * (A + 800e-6 + 80e-6)),
    (o.all_reduce_rabenseifner, 6 * A + 2 * 7 / 8 * 800e-6 + 7 / 8 * 80e-6),
    (o.all_gather_ring, 7 * A + 7 / 8 * 800e-6),
    (o.all_gather_recursive_doubling, 3 * A + 7 / 8 * 800e-6),
    (o.all_gather_bruck, 3 * A + 7 / 8 * 800e-6),
    (o.reduce_scatter_ring, 7 * A + 7 / 8 * 880e-6),
    (o.reduce_scatter_recursive_halving, 3 * A + 7 / 8 * 880e-6),
    (o.broadcast_binomial, 3 * (A + 800e-6)),
    (o.broadcast_scatter_ring_allgather, (3 + 7) * A + 2 * 7 / 8 * 800e-6),
    (o.broadcast_scatter_recursive_doubling_allgather, 6 * A + 2 * 7 / 8 * 800e-6),
    (o.reduce_binomial, 3 * (A + 800e-6 + 80e-6)),
    (o.reduce_rabenseifner, 6 * A + 2 * 7 / 8 * 800e-6 + 7 / 8 * 80e-6),
    (o.gather_binomial, 3 * A + 7 / 8 * 800e-6),
    (o.scatter_binomial, 3 * A + 7 / 8 * 800e-6),
    (o.all_to_all_pairwise, 7 * A + 7 / 8 * 800e-6),
    (o.all_to_all_bruck, 3 * A + 4e6 * 3 * B),
    (o.send_recv, A + 800e-6),
])
def test_closed_forms_by_hand(fn, expected_s):
    assert fn(8, N, A, B, G) == pytest.approx(expected_s, rel=1e-12)


def test_non_power_of_two_forms():
    """p = 6: floor(lg p) = 2, ceil(lg p) = 3, (p-1)/p = 5/6."""
    f = 5 / 6
    assert o.all_reduce_rabenseifner(6, N, A, B, G) == pytest.approx(6 * A + (2 * f + 2) * 800e-6 + (1 + f) * 80e-6)
    assert o.reduce_rabenseifner(6, N, A, B, G) == pytest.approx(5 * A + (2 * f + 1) * 800e-6 + (1 + f) * 80e-6)
    assert o.all_gather_bruck(6, N, A, B) == pytest.approx(3 * A + f * 800e-6)
    assert o.broadcast_binomial(6, N, A, B) == pytest.approx(3 * (A + 800e-6))
    assert o.broadcast_scatter_ring_allgather(6, N, A, B) == pytest.approx((3 + 5) * A + 2 * f * 800e-6)


@pytest.mark.parametrize("fn", [o.all_reduce_recursive_doubling, o.all_gather_recursive_doubling,
                                o.reduce_scatter_recursive_halving,
                                o.broadcast_scatter_recursive_doubling_allgather])
def test_power_of_two_algorithms_refuse_other_p(fn):
    with pytest.raises(GpusimError) as err:
        fn(6, N, A, B, G)
    assert err.value.path == "p" and "power-of-two" in err.value.message


def test_one_process_costs_nothing():
    for op, algos in o.ALGORITHMS.items():
        for name, fn in algos.items():
            assert fn(1, N, A, B, G) == 0.0, (op, name)
        assert o.lower_bound(op, 1, N, A, B, G) == 0.0


# ---------------------------------------------------------------------------------------------------------
# identities

@given(p=st.integers(1, 512), n=st.floats(0, 1e10), a=st.floats(0, 1e-3), b=st.floats(0, 1e-8), g=st.floats(0, 1e-8))
@settings(max_examples=200, deadline=None)
def test_ring_all_reduce_is_reduce_scatter_plus_all_gather(p, n, a, b, g):
    assert o.all_reduce_ring(p, n, a, b, g) == pytest.approx(
        o.reduce_scatter_ring(p, n, a, b, g) + o.all_gather_ring(p, n, a, b), rel=1e-12, abs=1e-300)


@given(k=st.integers(1, 9), n=st.floats(1, 1e10))
@settings(max_examples=50, deadline=None)
def test_rabenseifner_moves_as_few_bytes_as_ring(k, n):
    """Power-of-two p: Rabenseifner and ring share the bandwidth term; only the latency differs."""
    p = 2 ** k
    assert o.all_reduce_rabenseifner(p, n, 0.0, B, G) == pytest.approx(o.all_reduce_ring(p, n, 0.0, B, G))
    assert o.all_reduce_rabenseifner(p, 0.0, A, B, G) == pytest.approx(2 * k * A)


def test_ring_all_reduce_meets_the_bandwidth_bound_exactly():
    assert o.all_reduce_ring(16, N, 0.0, B) == pytest.approx(o.lower_bound("all_reduce", 16, N, 0.0, B))


# ---------------------------------------------------------------------------------------------------------
# lower bounds and monotonicity

@given(op=st.sampled_from(sorted(o.ALGORITHMS)), p=st.integers(1, 300), n=st.floats(0, 1e11),
       a=st.floats(0, 1e-3), b=st.floats(0, 1e-8), g=st.floats(0, 1e-8))
@settings(max_examples=300, deadline=None)
def test_no_algorithm_beats_the_lower_bound(op, p, n, a, b, g):
    bound = o.lower_bound(op, p, n, a, b, g)
    for name, fn in o.ALGORITHMS[op].items():
        if (op, name) in o.POW2_ONLY and p & (p - 1):
            continue
        assert fn(p, n, a, b, g) >= bound * (1 - 1e-12), (op, name)


@given(op=st.sampled_from(sorted(o.ALGORITHMS)), p=st.integers(1, 300), n=st.floats(0, 1e10),
       extra=st.floats(0, 1e10), a=st.floats(0, 1e-3), b=st.floats(0, 1e-8), g=st.floats(0, 1e-8))
@settings(max_examples=300, deadline=None)
def test_a_larger_message_never_finishes_sooner(op, p, n, extra, a, b, g):
    for name, fn in o.ALGORITHMS[op].items():
        if (op, name) in o.POW2_ONLY and p & (p - 1):
            continue
        assert fn(p, n + extra, a, b, g) >= fn(p, n, a, b, g), (op, name)


@given(p=st.integers(2, 300), a=st.floats(1e-9, 1e-3))
@settings(max_examples=100, deadline=None)
def test_latency_bound_is_ceil_lg_p(p, a):
    assert o.lower_bound("all_gather", p, 0.0, a, B) == pytest.approx(math.ceil(math.log2(p)) * a)
    assert o.all_gather_bruck(p, 0.0, a, B) == pytest.approx(o.lower_bound("all_gather", p, 0.0, a, B))


def test_lower_bound_by_hand():
    assert o.lower_bound("all_reduce", 8, N, A, B, G) == pytest.approx(3 * A + 2 * 7 / 8 * 800e-6 + 7 / 8 * 80e-6)
    assert o.lower_bound("broadcast", 8, N, A, B) == pytest.approx(3 * A + 800e-6)
    assert o.lower_bound("reduce", 8, N, A, B, G) == pytest.approx(3 * A + 800e-6 + 7 / 8 * 80e-6)
    assert o.lower_bound("AllToAll", 8, N, A, B) == pytest.approx(3 * A + 7 / 8 * 800e-6)
    assert o.lower_bound("sendrecv", 2, N, A, B) == pytest.approx(A + 800e-6)


# ---------------------------------------------------------------------------------------------------------
# pipelining

def test_pipelined_chain_by_hand_and_its_limits():
    """(p - 2 + k)(a + n b / k): k = 1 is store-and-forward over p-1 hops; with a = 0 and many pieces the time
    tends to n b, the streaming limit."""
    assert o.pipelined_chain(8, N, A, B, 1) == pytest.approx(7 * (A + 800e-6))
    assert o.pipelined_chain(8, N, A, B, 4) == pytest.approx(10 * (A + 200e-6))
    assert o.pipelined_chain(8, N, 0.0, B, 10_000) == pytest.approx(800e-6, rel=1e-3)
    k_star = math.sqrt(6 * N * B / A)
    best = min(range(1, 200), key=lambda k: o.pipelined_chain(8, N, A, B, k))
    assert abs(best - k_star) <= 1


@given(p=st.integers(2, 64), k=st.integers(1, 64), n=st.floats(0, 1e10))
@settings(max_examples=100, deadline=None)
def test_chunked_ring_phase_never_beats_the_unchunked_bandwidth(p, k, n):
    """Cutting ring blocks into k pieces adds (p-1)(k-1) latencies and leaves the (p-1)/p n b term as it is."""
    t = o.pipelined_ring_phase(p, n, A, B, k)
    assert t == pytest.approx((p - 1) * k * A + (p - 1) / p * n * B)
    assert t >= o.all_gather_ring(p, n, A, B) * (1 - 1e-12)
    assert o.pipelined_ring_phase(p, n, A, B, 1) == pytest.approx(o.all_gather_ring(p, n, A, B))


# ---------------------------------------------------------------------------------------------------------
# fluid ring

def test_ring_pipeline_matches_the_closed_forms():
    """2(p-1)a + 2(p-1)/p n/B for all_reduce, (p-1)a + (p-1)/p n/B for AG/RS, (p-1)a + n/B for broadcast."""
    ring = o.RingPipeline(p=8, link_bandwidth_Bps=100e9, step_latency_s=3e-6)
    n = 1 << 30
    assert ring.all_reduce_s(n) == pytest.approx(14 * 3e-6 + 2 * 7 / 8 * n / 100e9)
    assert ring.all_reduce_s(n) == pytest.approx(o.all_reduce_ring(8, n, 3e-6, 1 / 100e9))
    assert ring.all_gather_s(n) == pytest.approx(7 * 3e-6 + 7 / 8 * n / 100e9)
    assert ring.reduce_scatter_s(n) == pytest.approx(o.reduce_scatter_ring(8, n, 3e-6, 1 / 100e9))
    assert ring.broadcast_s(n) == pytest.approx(7 * 3e-6 + n / 100e9)
    assert ring.reduce_s(n) == ring.broadcast_s(n)
    assert ring.time_s("AllReduce", n) == ring.all_reduce_s(n)
    assert ring.time_s("allgather", n) == ring.all_gather_s(n)


def test_ring_pipeline_all_reduce_busbw_equals_link_bandwidth():
    """With no latency the nccl-tests busbw of the fluid ring all-reduce is exactly the link bandwidth."""
    from gpusim.collectives.bus_bandwidth import busbw_GBps
    ring = o.RingPipeline(p=16, link_bandwidth_Bps=50e9)
    n = 1 << 28
    assert busbw_GBps("all_reduce", 16, n, ring.all_reduce_s(n)) == pytest.approx(50.0)
    assert busbw_GBps("all_gather", 16, n, ring.all_gather_s(n)) == pytest.approx(50.0)


def test_ring_pipeline_validation():
    with pytest.raises(GpusimError) as err:
        o.RingPipeline(p=4, link_bandwidth_Bps=0.0)
    assert err.value.path == "link_bandwidth_Bps"
    with pytest.raises(GpusimError) as err:
        o.RingPipeline(p=0, link_bandwidth_Bps=1e9)
    assert err.value.path == "p"
    with pytest.raises(GpusimError) as err:
        o.RingPipeline(p=4, link_bandwidth_Bps=1e9).time_s("all_to_all", 10)
    assert err.value.path == "op"


# ---------------------------------------------------------------------------------------------------------
# dispatch and validation

def test_cost_dispatches_by_name():
    assert o.cost("allreduce", "ring", 8, N, A, B, G) == o.all_reduce_ring(8, N, A, B, G)
    with pytest.raises(GpusimError, match="did you mean 'bruck'"):
        o.cost("all_gather", "brook", 8, N, A, B)


@pytest.mark.parametrize("args, path", [
    ((0, N, A, B), "p"), ((2.0, N, A, B), "p"), ((True, N, A, B), "p"),
    ((8, -1.0, A, B), "n_bytes"), ((8, float("nan"), A, B), "n_bytes"),
    ((8, N, -A, B), "alpha_s"), ((8, N, A, float("inf")), "beta_s_per_byte"), ((8, N, A, B, -G), "gamma_s_per_byte"),
])
def test_arguments_are_checked(args, path):
    with pytest.raises(GpusimError) as err:
        o.all_reduce_ring(*args)
    assert err.value.path == path


def test_chunks_are_checked():
    with pytest.raises(GpusimError) as err:
        o.pipelined_chain(8, N, A, B, 0)
    assert err.value.path == "chunks"
