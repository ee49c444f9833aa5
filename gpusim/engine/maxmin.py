r"""Max-min fair sharing of directional link capacity among flows (progressive filling).

The model (as in SimGrid's LMM, ``src/kernel/lmm/maxmin.hpp``, restricted to the max-min objective):

    maximise the smallest rate, then the next smallest, ...   subject to
        sum_f  w[f, l] * r[f]  <=  C[l]      for every link l
        r[f] <= cap[f]                      for every flow f (optional per-flow ceiling)

``w[f, l]`` is how many times flow f crosses link l: 1 for an ordinary transfer, more for a *coupled* flow (a
pipelined ring whose every hop moves the same bytes at one common rate). Progressive filling raises every
unfrozen flow's rate by the same amount until a link saturates (or a flow hits its ceiling); the flows on that
link freeze; repeat. Each round is a handful of numpy passes over the (flow, link) incidence list, and there are at
most as many rounds as distinct bottleneck levels, so thousands of flows cost milliseconds.

A link of capacity 0 (an outage) freezes its flows at rate 0: they stall until the capacity returns.
"""
from __future__ import annotations

import numpy as np

_REL_TOL = 1e-12


def max_min_rates(flow_of: np.ndarray, link_of: np.ndarray, weight: np.ndarray, capacity: np.ndarray,
                  n_flows: int, flow_cap: np.ndarray | None = None) -> np.ndarray:
    """Rates (bytes/s) of ``n_flows`` flows.

    ``flow_of[k], link_of[k], weight[k]``: the k-th (flow, link, times-crossed) incidence; ``capacity[l]`` in
    bytes/s; ``flow_cap[f]`` an optional ceiling (``inf`` for none). A flow with no links and no ceiling is an error
    (its rate would be unbounded).
    """
    rates = np.zeros(n_flows)
    if n_flows == 0:
        return rates
    n_links = capacity.shape[0]
    active = np.ones(n_flows, dtype=bool)
    residual = capacity.astype(float).copy()
    cap = np.full(n_flows, np.inf) if flow_cap is None else np.asarray(flow_cap, dtype=float)
    has_link = np.zeros(n_flows, dtype=bool)
    has_link[flow_of] = True
    if not np.all(has_link | np.isfinite(cap)):
        raise ValueError("a flow with no link and no rate ceiling would have unbounded rate")
    tol = _REL_TOL * np.maximum(capacity, 1.0)
    while active.any():
        load = np.bincount(link_of, weights=weight * active[flow_of], minlength=n_links)
        used = load > 0
        delta = np.inf
        if used.any():
            delta = float(np.min(residual[used] / load[used]))
        headroom = cap[active] - rates[active]
        if headroom.size:
            delta = min(delta, float(headroom.min()))
        delta = max(delta, 0.0)
        rates[active] += delta
        residual -= delta * load
        saturated = used & (residual <= tol)
        frozen = np.zeros(n_flows, dtype=bool)
        frozen[flow_of[saturated[link_of]]] = True
        frozen |= rates >= cap * (1 - _REL_TOL)
        newly = active & frozen
        if not newly.any():  # numerical safety: freeze the flows on the tightest link
            share = np.where(used, residual / np.where(used, load, 1.0), np.inf)
            tight = share <= share.min() * (1 + 1e-9) + 1e-300
            frozen[flow_of[(tight & used)[link_of]]] = True
            newly = active & frozen
            if not newly.any():
                break
        active &= ~frozen
    return rates
