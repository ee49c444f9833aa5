"""Max-min fair rates against hand-solved cases and invariants."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gpusim.engine.maxmin import max_min_rates


def incidence(paths):
    fo = np.concatenate([np.full(len(p), i) for i, p in enumerate(paths)])
    lo = np.concatenate([np.asarray(p) for p in paths])
    return fo, lo, np.ones(lo.size)


def test_n_flows_on_one_link_share_equally():
    fo, lo, w = incidence([[0]] * 5)
    np.testing.assert_allclose(max_min_rates(fo, lo, w, np.array([10.0]), 5), [2.0] * 5)


def test_parking_lot():
    """Long flow over 3 links, one short flow per link, all capacities 1: everyone gets 1/2."""
    fo, lo, w = incidence([[0, 1, 2], [0], [1], [2]])
    np.testing.assert_allclose(max_min_rates(fo, lo, w, np.ones(3), 4), [0.5] * 4)


def test_parking_lot_unequal_capacities():
    """Link 1 has capacity 3: its short flow takes what the long flow (held to 1/2 elsewhere) leaves."""
    fo, lo, w = incidence([[0, 1, 2], [0], [1], [2]])
    np.testing.assert_allclose(max_min_rates(fo, lo, w, np.array([1.0, 3.0, 1.0]), 4), [0.5, 0.5, 2.5, 0.5])


def test_coupled_flow_weight_counts_crossings():
    """A flow crossing link 0 twice gets half of it."""
    rates = max_min_rates(np.array([0]), np.array([0]), np.array([2.0]), np.array([8.0]), 1)
    assert rates[0] == pytest.approx(4.0)


def test_flow_ceiling_releases_capacity():
    fo, lo, w = incidence([[0], [0]])
    rates = max_min_rates(fo, lo, w, np.array([10.0]), 2, flow_cap=np.array([1.0, np.inf]))
    np.testing.assert_allclose(rates, [1.0, 9.0])


def test_dead_link_stalls_only_its_flows():
    fo, lo, w = incidence([[0, 1], [1]])
    np.testing.assert_allclose(max_min_rates(fo, lo, w, np.array([0.0, 4.0]), 2), [0.0, 4.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True), min_size=1, max_size=12),
       st.lists(st.floats(0.5, 100.0), min_size=6, max_size=6))
def test_feasible_and_every_flow_bottlenecked(paths, caps):
    """No link over capacity; every flow crosses a saturated link on which it has the largest rate (max-min)."""
    cap = np.array(caps)
    fo, lo, w = incidence(paths)
    r = max_min_rates(fo, lo, w, cap, len(paths))
    load = np.bincount(lo, weights=r[fo], minlength=6)
    assert np.all(load <= cap * (1 + 1e-9))
    for i, p in enumerate(paths):
        ok = False
        for link in p:
            on_link = [j for j, q in enumerate(paths) if link in q]
            if load[link] >= cap[link] * (1 - 1e-9) and r[i] >= max(r[j] for j in on_link) * (1 - 1e-9):
                ok = True
        assert ok, f"flow {i} is not bottlenecked"
