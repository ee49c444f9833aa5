"""Flow-level network on a simpy Environment.

A *flow* moves ``size_bytes`` over a fixed set of directional links (with multiplicities: a coupled flow is a
pipelined ring whose hops all move at one rate). All active flows share every link max-min fairly
(:mod:`gpusim.engine.maxmin`). A flow's time is its fluid service time plus its ``latency_s``, paid once at the end
(the last byte's trip): uncontended, ``latency_s + size_bytes / rate``.

Rates are recomputed only when something changes — flows start or finish, a link's capacity changes, a flow is
rerouted — and all changes at one instant are coalesced into one recomputation. Between changes nothing happens
in Python: one simpy timeout marks the next completion. Callers submit whole *groups* of flows (a collective step)
and wait on one event per group, so a 1,024-flow step costs one event, not 1,024.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from gpusim.engine.maxmin import max_min_rates

_EPS_BYTES = 1e-6


@dataclass
class FlowSpec:
    """What to move: ``links`` (indices into the network's link arrays; repeats allowed), optional ``weights``
    (times each link is crossed; defaults to 1 each), bytes, end latency, optional rate ceiling, a label, and
    ``carried``: the bytes a link carries per byte of ``size_bytes``, below 1 where the size also stands for a
    modelled slowdown that moves no bytes (an operation's bandwidth scale, waiting for a straggler)."""

    links: np.ndarray
    size_bytes: float
    latency_s: float = 0.0
    weights: np.ndarray | None = None
    cap_Bps: float = np.inf
    label: str = ""
    hops: list | None = None      # (src, dst) node pairs the links were routed from, for rerouting
    carried: float = 1.0

    def __post_init__(self):
        links = np.asarray(self.links, dtype=np.int64)
        if self.weights is None:
            uniq, counts = np.unique(links, return_counts=True)
            self.links, self.weights = uniq, counts.astype(float)
        else:
            self.links, self.weights = links, np.asarray(self.weights, dtype=float)
        if not (self.size_bytes >= 0 and np.isfinite(self.size_bytes)):
            raise ValueError(f"flow size must be a finite non-negative number of bytes, got {self.size_bytes!r}")
        if not (0 < self.carried < np.inf):
            raise ValueError(f"bytes carried per byte of a flow must be positive and finite, got {self.carried!r}")

    def copy(self) -> "FlowSpec":
        """A shallow copy (the arrays shared: the engine replaces a rerouted flow's arrays, never writes into
        them), without re-running the checks; ``copy.copy`` costs several times more per flow."""
        new = object.__new__(FlowSpec)
        new.__dict__.update(self.__dict__)
        return new


def incidence(specs: list[FlowSpec], first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flow position, link, weight) arrays of ``specs``, flow positions numbered from ``first``."""
    lens = np.fromiter((s.links.size for s in specs), dtype=np.int64, count=len(specs))
    fo = np.repeat(np.arange(first, first + len(specs)), lens)
    lo = np.concatenate([s.links for s in specs]) if specs else np.zeros(0, dtype=np.int64)
    w = np.concatenate([s.weights for s in specs]) if specs else np.zeros(0)
    return fo, lo, w


@dataclass
class Group:
    """Flows submitted together; ``done`` fires when the last one has arrived (value: this group)."""

    done: simpy.Event
    start_s: float
    specs: list[FlowSpec]
    finish_s: np.ndarray = field(default=None)
    pending: int = 0
    label: str = ""
    stalled_s: float = 0.0     # longest time any of its flows sat at rate 0 while active

    @property
    def end_s(self) -> float:
        return float(self.finish_s.max()) if len(self.finish_s) else self.start_s


class FlowNetwork:
    """The shared fluid network: ``capacity_Bps[l]`` per directional link ``l``."""

    def __init__(self, env: simpy.Environment, capacity_Bps):
        self.env = env
        self.capacity = np.array(capacity_Bps, dtype=float)
        if np.any(~np.isfinite(self.capacity)) or np.any(self.capacity < 0):
            raise ValueError("link capacities must be finite and non-negative")
        n = self.capacity.shape[0]
        self.link_bytes = np.zeros(n)           # bytes carried per link so far
        self.capacity_seconds = np.zeros(n)     # integral of capacity over time so far: what each link could carry
        self.limiting_seconds = np.zeros(n)     # time each link held a flow's rate down: full, or down under flows
        self._limiting = np.zeros(n, dtype=bool)
        self._finished_stall: dict[str, float] = {}   # label -> summed stalled_s of its finished groups
        # active flows, aligned arrays
        self._group: list[Group] = []
        self._index = np.zeros(0, dtype=np.int64)   # index of the flow within its group
        self._rem = np.zeros(0)
        self._carried = np.zeros(0)                 # link bytes per byte of each active flow
        self._rate = np.zeros(0)
        self._lat = np.zeros(0)
        self._cap = np.zeros(0)
        self._stall = np.zeros(0)                   # seconds each active flow has spent at rate 0
        self._fo = np.zeros(0, dtype=np.int64)      # incidence: flow position
        self._lo = np.zeros(0, dtype=np.int64)      # incidence: link
        self._w = np.zeros(0)
        self._new: list[tuple[Group, int]] = []
        self._t_last = env.now
        self._generation = 0
        self._update_pending = False
        self._dirty = False
        self.recomputations = 0

    # -- public API ---------------------------------------------------------------------------------------
    def submit(self, specs: list[FlowSpec], label: str = "") -> Group:
        """Start ``specs`` now as one group; returns it (``yield group.done`` to wait)."""
        g = Group(self.env.event(), self.env.now, specs, np.full(len(specs), np.nan), len(specs), label)
        if not specs:
            g.finish_s = np.zeros(0)
            g.done.succeed(g)
            return g
        n = self.capacity.shape[0]
        links = np.concatenate([s.links for s in specs])
        if links.size and (links.min() < 0 or links.max() >= n):
            bad = next(i for i, s in enumerate(specs) if s.links.size and (s.links.min() < 0 or s.links.max() >= n))
            raise ValueError(f"flow {specs[bad].label or bad} uses a link index outside 0..{n - 1}")
        self._new.extend((g, i) for i in range(len(specs)))
        self._request_update()
        return g

    def set_capacity(self, link: int | np.ndarray, capacity_Bps: float) -> None:
        """Change link capacity from now on (0 = outage: its flows stall)."""
        if not (capacity_Bps >= 0 and np.isfinite(capacity_Bps)):
            raise ValueError(f"capacity must be finite and non-negative, got {capacity_Bps!r}")
        self._advance()
        self.capacity[link] = capacity_Bps
        self._dirty = True
        self._request_update()

    def active_flows(self) -> list[tuple[Group, int]]:
        """(group, index) of every flow still moving bytes."""
        return [(g, int(i)) for g, i in zip(self._group, self._index)]

    def reroute(self, group: Group, index: int, links, weights=None) -> None:
        """Move an active flow onto new links; bytes already delivered stay delivered."""
        self._advance()
        spec = FlowSpec(links, 0.0, weights=weights)
        pos = [k for k, (g, i) in enumerate(zip(self._group, self._index)) if g is group and i == index]
        if not pos:
            return
        p = pos[0]
        group.specs[index].links, group.specs[index].weights = spec.links, spec.weights
        keep = self._fo != p
        self._fo = np.concatenate([self._fo[keep], np.full(spec.links.size, p)])
        self._lo = np.concatenate([self._lo[keep], spec.links])
        self._w = np.concatenate([self._w[keep], spec.weights])
        self._dirty = True
        self._request_update()

    def flows_on(self, link: int) -> list[tuple[Group, int]]:
        """(group, index) of the active flows that cross ``link``."""
        pos = np.unique(self._fo[self._lo == link])
        return [(self._group[p], int(self._index[p])) for p in pos]

    def rates(self) -> dict[tuple[int, int], float]:
        """Current rate of each active flow keyed by (id of group, index), for inspection and tests."""
        return {(id(g), int(i)): float(r) for g, i, r in zip(self._group, self._index, self._rate)}

    def link_load_Bps(self) -> np.ndarray:
        """Current load on every link (bytes/s)."""
        return np.bincount(self._lo, weights=self._w * self._rate[self._fo], minlength=self.capacity.shape[0])

    def stalled_labels(self) -> set[str]:
        """Labels of the groups with flows in flight that all sit at rate 0 now (each crosses a dead link)."""
        moving = {g.label for g, r in zip(self._group, self._rate) if r > 0}
        return {g.label for g in self._group} - moving

    @property
    def stalled(self) -> bool:
        """True when flows remain but none can move (every one crosses a dead link)."""
        return self._rem.size > 0 and not np.any(self._rate > 0) and not self._new

    # -- internals ----------------------------------------------------------------------------------------
    def _request_update(self) -> None:
        if not self._update_pending:
            self._update_pending = True
            ev = self.env.event()
            ev.callbacks.append(self._update)
            ev.succeed()

    def advance(self) -> None:
        """Bring ``link_bytes``, ``capacity_seconds`` and groups' ``stalled_s`` up to now (between events they lag): at
        a run's end, flows still in flight count what they moved and how long they have sat stalled."""
        self._advance()
        for g, stall in zip(self._group, self._stall):
            g.stalled_s = max(g.stalled_s, float(stall))

    def stalled_s_by_label(self) -> dict[str, float]:
        """Per group label, the summed ``stalled_s`` of its groups, finished or in flight (call :meth:`advance` first
        for the in-flight ones' time up to now). Finished groups are not kept, only their sums: a run of a million
        calls holds no more than a run of one."""
        out = dict(self._finished_stall)
        for g in {id(g): g for g in self._group}.values():
            out[g.label] = out.get(g.label, 0.0) + g.stalled_s
        return out

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._t_last
        if dt > 0:
            self.capacity_seconds += self.capacity * dt
            self.limiting_seconds += self._limiting * dt
            if self._rem.size:
                moved = self._rate * dt
                self._rem -= moved
                self._stall += np.where(self._rate > 0, 0.0, dt)
                self.link_bytes += np.bincount(self._lo, weights=self._w * (moved * self._carried)[self._fo],
                                               minlength=self.capacity.shape[0])
        self._t_last = now

    def _update(self, _event=None) -> None:
        self._update_pending = False
        self._advance()
        now = self.env.now
        changed = self._dirty
        self._dirty = False
        # retire finished flows
        if self._rem.size:
            # within a picosecond, or within the clock's resolution late in a long run, where now + dt == now
            done = self._rem <= np.maximum(_EPS_BYTES, max(1e-12, 4 * np.spacing(now)) * self._rate)
            if done.any():
                self._retire(done, now)
                changed = True
        if self._new:
            self._admit(now)
            changed = True
        if changed:
            self.recomputations += 1
            self._rate = max_min_rates(self._fo, self._lo, self._w, self.capacity, self._rem.size, self._cap)
            self._limiting = self._limiting_links()
        self._schedule_next()

    def _limiting_links(self) -> np.ndarray:
        """Links that bound an active flow's rate now: crossed by a flow and full (a link of capacity 0 under a
        flow is full too: an outage stalls it). A flow held by its own ceiling leaves its links below capacity."""
        limiting = np.zeros(self.capacity.shape[0], dtype=bool)
        if self._lo.size:
            lo = self._lo
            limiting[lo] = self.link_load_Bps()[lo] >= self.capacity[lo] * (1 - 1e-9)
        return limiting

    def _retire(self, done: np.ndarray, now: float) -> None:
        # the few bytes left within the tolerance count as carried: bytes stay conserved
        left = np.where(done, self._rem, 0.0) * self._carried
        self.link_bytes += np.bincount(self._lo, weights=self._w * left[self._fo], minlength=self.capacity.shape[0])
        for p in np.flatnonzero(done):
            g = self._group[p]
            i = self._index[p]
            g.finish_s[i] = now + self._lat[p]
            g.stalled_s = max(g.stalled_s, float(self._stall[p]))
            g.pending -= 1
            if g.pending == 0:
                self._finished_stall[g.label] = self._finished_stall.get(g.label, 0.0) + g.stalled_s
                self._finish_group(g, now)
        keep = ~done
        new_pos = np.cumsum(keep) - 1
        inc_keep = keep[self._fo]
        self._fo = new_pos[self._fo[inc_keep]]
        self._lo = self._lo[inc_keep]
        self._w = self._w[inc_keep]
        self._group = [g for g, k in zip(self._group, keep) if k]
        self._index = self._index[keep]
        self._rem, self._carried, self._rate, self._lat, self._cap, self._stall = (
            a[keep] for a in (self._rem, self._carried, self._rate, self._lat, self._cap, self._stall))

    def _finish_group(self, g: Group, now: float) -> None:
        delay = g.end_s - now
        if delay > 0:
            t = self.env.timeout(delay)
            t.callbacks.append(lambda _e, g=g: g.done.succeed(g))
        else:
            g.done.succeed(g)

    def _admit(self, now: float) -> None:
        new, self._new = self._new, []
        base = self._rem.size
        specs = [g.specs[i] for g, i in new]
        fo, lo, w = incidence(specs, base)
        self._fo = np.concatenate([self._fo, fo])
        self._lo = np.concatenate([self._lo, lo])
        self._w = np.concatenate([self._w, w])
        self._group.extend(g for g, _ in new)
        self._index = np.concatenate([self._index, np.fromiter((i for _, i in new), dtype=np.int64, count=len(new))])
        self._rem = np.concatenate([self._rem, [s.size_bytes for s in specs]])
        self._carried = np.concatenate([self._carried, [s.carried for s in specs]])
        self._lat = np.concatenate([self._lat, [s.latency_s for s in specs]])
        self._cap = np.concatenate([self._cap, [s.cap_Bps for s in specs]])
        self._rate = np.concatenate([self._rate, np.zeros(len(specs))])
        self._stall = np.concatenate([self._stall, np.zeros(len(specs))])
        # zero-byte flows finish at once (their latency still applies)
        zero = self._rem <= 0
        if zero.any():
            self._retire(zero, now)

    def _schedule_next(self) -> None:
        self._generation += 1
        if not self._rem.size:
            return
        moving = self._rate > 0
        if not moving.any():
            return  # stalled: a capacity change will wake us
        dt = float(np.min(self._rem[moving] / self._rate[moving]))
        gen = self._generation
        t = self.env.timeout(max(dt, 0.0))
        t.callbacks.append(lambda _e: self._update() if gen == self._generation else None)
