"""nccl-tests semantics (physics.md §1.7): size conventions, algbw, busbw factors, operation names."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpusim.collectives import bus_bandwidth as bb
from gpusim.errors import GpusimError


@pytest.mark.parametrize("op, factor", [
    ("all_reduce", 2 * 7 / 8), ("reduce_scatter", 7 / 8), ("all_gather", 7 / 8), ("all_to_all", 7 / 8),
    ("broadcast", 1.0), ("reduce", 1.0), ("send_recv", 1.0),
])
def test_busbw_factors_for_eight_ranks(op, factor):
    assert bb.busbw_factor(op, 8) == pytest.approx(factor)


def test_factors_at_the_edges():
    """One rank moves nothing: busbw 0 for the ring-like ops; two ranks: all_reduce factor exactly 1."""
    assert bb.busbw_factor("all_reduce", 1) == 0.0
    assert bb.busbw_factor("all_gather", 1) == 0.0
    assert bb.busbw_factor("all_reduce", 2) == 1.0
    assert bb.busbw_factor("all_reduce", 1024) == pytest.approx(2 * 1023 / 1024)


def test_the_sample_nccl_tests_row():
    """physics.md §1.7 sample: 1073741824 B in 9306.7 µs prints algbw 115.37, and busbw 115.37 for a 2-rank
    all_reduce (factor 2(n-1)/n = 1)."""
    assert round(bb.algbw_GBps(1073741824, 9306.7e-6), 2) == 115.37
    assert round(bb.busbw_GBps("all_reduce", 2, 1073741824, 9306.7e-6), 2) == 115.37
    assert round(bb.busbw_GBps("all_reduce", 8, 1073741824, 9306.7e-6), 2) == round(115.373 * 1.75, 2)


def test_gb_is_1e9_bytes():
    assert bb.algbw_GBps(1e9, 1.0) == 1.0
    assert bb.algbw_GBps(2**30, 1.0) == pytest.approx(1.073741824)


@pytest.mark.parametrize("op, count, type_size, n, expected", [
    ("all_reduce", 1000, 4, 8, 4000),
    ("reduce_scatter", 1000, 4, 8, 32000),
    ("all_gather", 1000, 2, 8, 16000),
    ("alltoall", 1000, 4, 8, 32000),
    ("broadcast", 1000, 4, 8, 4000),
    ("reduce", 1000, 4, 8, 4000),
    ("sendrecv", 1000, 4, 8, 4000),
])
def test_size_conventions(op, count, type_size, n, expected):
    assert bb.op_size_bytes(op, count, type_size, n) == expected


def test_every_op_has_a_size_convention():
    assert set(bb.SIZE_CONVENTION) == set(bb.OPS)


@given(op=st.sampled_from(bb.OPS), n=st.integers(2, 4096), size=st.integers(1, 1 << 40),
       busbw=st.floats(0.01, 10_000))
@settings(max_examples=200, deadline=None)
def test_time_from_busbw_inverts_busbw(op, n, size, busbw):
    t = bb.time_from_busbw_s(op, n, size, busbw)
    assert bb.busbw_GBps(op, n, size, t) == pytest.approx(busbw, rel=1e-9)


@pytest.mark.parametrize("name, canonical", [
    ("allreduce", "all_reduce"), ("all_reduce", "all_reduce"), ("AllReduce", "all_reduce"),
    ("all-reduce", "all_reduce"), ("ncclAllReduce", "all_reduce"), ("all_reduce_perf", "all_reduce"),
    ("alltoall", "all_to_all"), ("AllToAll", "all_to_all"), ("all_to_all", "all_to_all"),
    ("allgather", "all_gather"), ("AllGather", "all_gather"), ("reducescatter", "reduce_scatter"),
    ("ReduceScatter", "reduce_scatter"), ("bcast", "broadcast"), ("Broadcast", "broadcast"),
    ("reduce", "reduce"), ("sendrecv", "send_recv"), ("sendrecv_perf", "send_recv"), ("SendRecv", "send_recv"),
])
def test_canonical_names(name, canonical):
    assert bb.canonical_op(name) == canonical


def test_unknown_name_suggests_and_lists():
    with pytest.raises(GpusimError) as err:
        bb.canonical_op("all_reduse", path="jobs[0].op")
    assert err.value.path == "jobs[0].op"
    assert "did you mean 'all_reduce'" in err.value.message
    assert "all_to_all" in err.value.message  # the accepted names are listed
    with pytest.raises(GpusimError):
        bb.canonical_op(3)


@pytest.mark.parametrize("call, path", [
    (lambda: bb.algbw_GBps(100, 0.0), "time_s"),
    (lambda: bb.algbw_GBps(-1, 1.0), "size_bytes"),
    (lambda: bb.algbw_GBps(float("nan"), 1.0), "size_bytes"),
    (lambda: bb.busbw_GBps("all_reduce", 0, 100, 1.0), "n_ranks"),
    (lambda: bb.busbw_GBps("all_reduce", 2.0, 100, 1.0), "n_ranks"),
    (lambda: bb.op_size_bytes("all_reduce", -1, 4, 8), "count"),
    (lambda: bb.op_size_bytes("all_reduce", 10, 0, 8), "type_size_bytes"),
    (lambda: bb.time_from_busbw_s("all_reduce", 8, 100, 0.0), "busbw_GBps"),
    (lambda: bb.time_from_busbw_s("all_reduce", 1, 100, 10.0), "n_ranks"),
])
def test_bad_arguments_name_the_argument(call, path):
    with pytest.raises(GpusimError) as err:
        call()
    assert err.value.path == path
