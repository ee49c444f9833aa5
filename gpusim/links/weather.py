"""Weather over time, and what it does to an FSO link's capacity.

A :class:`WeatherTimeline` is piecewise constant: ``weathers[i]`` holds from ``times_s[i]`` until ``times_s[i+1]``
(the last until ``end_s``). Three ways to make one:

* :func:`constant_weather` — one state;
* :func:`weather_schedule` (entries already loaded from YAML), :func:`weather_schedule_from_yaml` and
  :func:`weather_schedule_from_csv` (text; the caller reads the file) — ``{time, visibility, rain, snow, snow_kind,
  cn2}`` entries with units, each field carried over from the entry before when left out;
* :func:`markov_weather` — a seeded continuous-time Markov chain over weather states (clear, haze, mist, fog, dense
  fog, rain by default). In state s the weather holds for an exponential time of mean ``mean_dwell_s``, with
  visibility drawn log-uniformly in the state's band (and rain/snow likewise), then jumps to a next state drawn
  from ``next_states``. Changes happen only at jumps, so the engine sees events, not ticks. The default states and
  rates are illustrative, not fitted to any site's climatology.

:func:`link_capacity_timeline` turns a timeline into the capacity steps the engine applies: goodput for the
transport while the margin is non-negative, 0 and ``up=False`` in outage.
"""
from __future__ import annotations

import csv
import io
import math
import numbers
import re
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from gpusim import units
from gpusim.errors import GpusimError, unknown
from gpusim.links import fso, goodput
from gpusim import yaml_strict


@dataclass(frozen=True)
class WeatherTimeline:
    """Piecewise-constant weather; ``times_s`` starts at 0 and strictly increases."""

    times_s: tuple[float, ...]
    weathers: tuple[fso.Weather, ...]
    end_s: float = math.inf

    def __post_init__(self):
        times = tuple(float(t) for t in self.times_s)
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "weathers", tuple(self.weathers))
        if not times or len(times) != len(self.weathers):
            raise GpusimError("weather", "a timeline needs one weather per start time, and at least one")
        if times[0] != 0.0:
            raise GpusimError("weather.times_s[0]", f"the first weather must start at time 0, got {times[0]!r}")
        for i in range(1, len(times)):
            if not times[i] > times[i - 1]:
                raise GpusimError(f"weather.times_s[{i}]", f"times must strictly increase; {times[i]!r} follows "
                                                           f"{times[i - 1]!r}")
        if not self.end_s > times[-1]:
            raise GpusimError("weather.end_s", f"the end {self.end_s!r} must come after the last start {times[-1]!r}")

    def at(self, time_s: float) -> fso.Weather:
        """The weather at ``time_s`` (0 <= time_s < end_s)."""
        if not 0.0 <= time_s < self.end_s:
            raise GpusimError("time_s", f"{time_s!r} is outside the timeline [0, {self.end_s!r})")
        i = int(np.searchsorted(self.times_s, time_s, side="right")) - 1
        return self.weathers[i]

    def segments(self) -> list[tuple[float, float, fso.Weather]]:
        """``(start_s, end_s, weather)`` for every piece."""
        ends = self.times_s[1:] + (self.end_s,)
        return list(zip(self.times_s, ends, self.weathers))

    def __len__(self) -> int:
        return len(self.times_s)


def constant_weather(weather: fso.Weather | None = None, end_s: float = math.inf) -> WeatherTimeline:
    """One weather for all time (default :class:`gpusim.links.fso.Weather`)."""
    return WeatherTimeline((0.0,), (weather or fso.Weather(),), end_s)


# --------------------------------------------------------------------------------------------------- schedules
_SCHEDULE_FIELDS = ("time", "visibility", "rain", "snow", "snow_kind", "cn2")


def weather_schedule(entries: list, path: str = "weather.schedule", end_s: float = math.inf,
                     max_time_s: float = math.inf) -> WeatherTimeline:
    """A timeline from ``[{time: "0 s", visibility: "10 km"}, {time: "30 min", visibility: "400 m", rain:
    "5 mm/h"}, ...]``.

    ``time`` is required and starts at 0; the first entry must give ``visibility``; rain and snow default to 0,
    ``snow_kind`` to wet and ``cn2`` to 1e-14 there. Later entries keep every field they leave out from the entry
    before. Errors name the entry and field (``weather.schedule[2].rain``); a time past ``max_time_s`` (a
    scenario's bound on its times) is one.
    """
    if not isinstance(entries, (list, tuple)) or not entries:
        raise GpusimError(path, "expected a non-empty list of entries such as {time: '0 s', visibility: '10 km'}")
    times, weathers = [], []
    prev = None
    for i, entry in enumerate(entries):
        p = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise GpusimError(p, f"expected a mapping with fields {', '.join(_SCHEDULE_FIELDS)}, got {entry!r}")
        for key in entry:
            if key not in _SCHEDULE_FIELDS:
                raise unknown(f"{p}.{key}", key, _SCHEDULE_FIELDS, "field")
        if "time" not in entry:
            raise GpusimError(f"{p}.time", "required, e.g. time: '30 min'")
        t = units.time(entry["time"], f"{p}.time")
        if prev is None and "visibility" not in entry:
            raise GpusimError(f"{p}.visibility", "required in the first entry, e.g. visibility: '10 km'")
        fields = {k: v for k, v in entry.items() if k != "time"}
        w = fso.weather_from_dict(fields, p, base=prev or fso.Weather())
        _check_time(times, t, f"{p}.time", max_time_s)
        times.append(t)
        weathers.append(w)
        prev = w
    return WeatherTimeline(tuple(times), tuple(weathers), end_s)


def weather_schedule_from_yaml(text: str, path: str = "weather.schedule", end_s: float = math.inf) -> WeatherTimeline:
    """:func:`weather_schedule` from YAML text holding the list of entries."""
    entries = yaml_strict.load(text, "the schedule", path)    # strict: a key given twice is an error
    return weather_schedule(entries, path, end_s)


_HEADER = re.compile(r"^\s*([A-Za-z_0-9²]+)\s*(?:[\(\[]\s*(.+?)\s*[\)\]])?\s*$")


def weather_schedule_from_csv(text: str, path: str = "weather.csv", end_s: float = math.inf,
                              max_time_s: float = math.inf) -> WeatherTimeline:
    """A timeline from CSV text with a header row of ``time, visibility, rain, snow`` (and optionally ``snow_kind``,
    ``cn2``).

    A header may carry the unit for its column, ``visibility (km)`` or ``time [min]``; cells then may be bare
    numbers, and a cell with its own unit (``"400 m"``) overrides. An empty cell keeps the row before's value.
    Errors name the line and column: ``weather.csv[line 4].visibility``.
    """
    rows = list(csv.reader(io.StringIO(text)))
    numbered = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise GpusimError(path, "empty CSV; expected a header row such as 'time (s), visibility (m), rain (mm/h)'")
    header_line, header = numbered[0]
    columns = []
    for c in header:
        m = _HEADER.match(c)
        name = m.group(1).lower() if m else c.strip()
        if name not in _SCHEDULE_FIELDS:
            raise unknown(f"{path}[line {header_line}]", name, _SCHEDULE_FIELDS, "column")
        columns.append((name, m.group(2) if m else None))
    names = [n for n, _ in columns]
    if "time" not in names:
        raise GpusimError(f"{path}[line {header_line}]", "a 'time' column is required")
    if len(set(names)) != len(names):
        raise GpusimError(f"{path}[line {header_line}]", f"a column appears twice in {header!r}")
    entries, line_of = [], []
    for line, row in numbered[1:]:
        if len(row) != len(columns):
            raise GpusimError(f"{path}[line {line}]", f"expected {len(columns)} cells like the header, got {len(row)}")
        entry = {}
        for (name, unit), cell in zip(columns, row):
            cell = cell.strip()
            if not cell:
                continue
            if unit is not None and name not in ("snow_kind",) and _is_number(cell):
                cell = cell if name == "cn2" else f"{cell} {unit}"
            entry[name] = cell
        entries.append(entry)
        line_of.append(line)
    if not entries:
        raise GpusimError(path, "no rows after the header")
    try:
        return weather_schedule(entries, "\0", end_s, max_time_s)
    except GpusimError as exc:  # "\0[3].rain" -> "weather.csv[line 5].rain"
        m = re.match(r"^\0\[(\d+)\](.*)$", exc.path)
        where = f"{path}[line {line_of[int(m.group(1))]}]{m.group(2)}" if m else path
        raise GpusimError(where, exc.message) from None


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _check_time(times: list, t: float, path: str, max_time_s: float = math.inf) -> None:
    if t > max_time_s:
        raise GpusimError(path, f"expected a time up to {max_time_s:g} s, got {t!r} s")
    if not times and t != 0.0:
        raise GpusimError(path, f"the first entry must be at time 0, got {t!r} s")
    if times and not t > times[-1]:
        raise GpusimError(path, f"times must strictly increase; {t!r} s follows {times[-1]!r} s")


# --------------------------------------------------------------------------------------------------- Markov chain
@dataclass(frozen=True)
class WeatherState:
    """One state of :func:`markov_weather`: ranges to draw from on entry (log-uniform; equal ends fix the value)."""

    name: str
    visibility_m: tuple[float, float]
    mean_dwell_s: float
    next_states: dict[str, float]
    rain_mm_per_h: tuple[float, float] = (0.0, 0.0)
    snow_mm_per_h: tuple[float, float] = (0.0, 0.0)
    snow_kind: str = "wet"


# Illustrative, not a climatology: a ladder clear <-> haze <-> mist <-> fog <-> dense fog, and rain from clear.
# Visibility bands follow the international visibility code (dense fog < 200 m, fog < 1 km, mist 1-4 km ...).
DEFAULT_WEATHER_STATES = (
    WeatherState("clear", (10_000.0, 50_000.0), 4 * 3600.0, {"haze": 0.6, "rain": 0.4}),
    WeatherState("haze", (4_000.0, 10_000.0), 2 * 3600.0, {"clear": 0.5, "mist": 0.5}),
    WeatherState("mist", (1_000.0, 4_000.0), 3600.0, {"haze": 0.5, "fog": 0.5}),
    WeatherState("fog", (200.0, 1_000.0), 45 * 60.0, {"mist": 0.6, "dense_fog": 0.4}),
    WeatherState("dense_fog", (50.0, 200.0), 30 * 60.0, {"fog": 1.0}),
    WeatherState("rain", (4_000.0, 20_000.0), 3600.0, {"clear": 0.8, "haze": 0.2}, rain_mm_per_h=(1.0, 25.0)),
)


def markov_weather(rng: np.random.Generator, duration_s: float, states=DEFAULT_WEATHER_STATES,
                   start_state: str = "clear", cn2_m_minus_2_3: float = 1e-14, path: str = "") -> WeatherTimeline:
    """A seeded weather timeline over ``[0, duration_s)`` from a continuous-time Markov chain (module docstring).

    Draws, per visit, in this order: visibility, rain, snow, dwell time, next state — so the same generator state
    gives the same timeline. ``path``: the scenario's ``weather.markov``, which errors name (``.duration``, ``.start``).
    """
    if not isinstance(rng, np.random.Generator):
        raise GpusimError("rng", f"expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(duration_s, bool) or not isinstance(duration_s, numbers.Real) or not 0 < duration_s < math.inf:
        raise GpusimError(f"{path}.duration" if path else "duration_s",
                          f"expected a positive finite duration in seconds, got {duration_s!r}")
    by_name = {s.name: s for s in states}
    for s in states:
        _check_state(s, by_name)
    if start_state not in by_name:
        raise unknown(f"{path}.start" if path else "start_state", start_state, by_name, "weather state")
    times, weathers = [], []
    t, state = 0.0, by_name[start_state]
    while t < duration_s:
        w = fso.Weather(visibility_m=_log_uniform(rng, state.visibility_m),
                        rain_mm_per_h=_log_uniform(rng, state.rain_mm_per_h),
                        snow_mm_per_h=_log_uniform(rng, state.snow_mm_per_h),
                        snow_kind=state.snow_kind, cn2_m_minus_2_3=cn2_m_minus_2_3)
        times.append(t)
        weathers.append(w)
        t += float(rng.exponential(state.mean_dwell_s))
        names = list(state.next_states)
        probs = np.array([state.next_states[n] for n in names], dtype=float)
        state = by_name[names[int(rng.choice(len(names), p=probs / probs.sum()))]]
    return WeatherTimeline(tuple(times), tuple(weathers), float(duration_s))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    if lo == hi:
        return float(lo)
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _check_state(s: WeatherState, by_name: dict) -> None:
    p = f"states.{s.name}"
    for name, (lo, hi) in (("visibility_m", s.visibility_m), ("rain_mm_per_h", s.rain_mm_per_h),
                           ("snow_mm_per_h", s.snow_mm_per_h)):
        positive_lo = lo > 0 or (lo == hi == 0 and name != "visibility_m")
        if not (positive_lo and hi >= lo and math.isfinite(hi)):
            raise GpusimError(f"{p}.{name}", f"expected a range 0 < lo <= hi (or (0, 0) for none), got {(lo, hi)!r}")
    if not s.mean_dwell_s > 0:
        raise GpusimError(f"{p}.mean_dwell_s", f"expected a positive time, got {s.mean_dwell_s!r}")
    if not s.next_states or any(not (v >= 0) for v in s.next_states.values()) or sum(s.next_states.values()) <= 0:
        raise GpusimError(f"{p}.next_states", "expected non-negative weights with a positive sum")
    for n in s.next_states:
        if n not in by_name:
            raise unknown(f"{p}.next_states", n, by_name, "weather state")


# --------------------------------------------------------------------------------------------------- capacity
class CapacityStep(NamedTuple):
    """From ``time_s`` on, the link carries ``capacity_Bps`` of payload (0 when ``up`` is False)."""

    time_s: float
    capacity_Bps: float
    up: bool
    budget: fso.LinkBudget


def effective_capacity_Bps(budget: fso.LinkBudget, transport: str, rtt_s: float, mtu_bytes: int | None = None,
                           rto_s: float | None = None) -> float:
    """Goodput of ``transport`` over the budget's line rate and packet error rate; 0 in outage."""
    if budget.outage:
        return 0.0
    return goodput.goodput_Bps(transport, budget.line_rate_Bps, budget.packet_error_rate, rtt_s, mtu_bytes, rto_s)


def link_capacity_timeline(timeline: WeatherTimeline, optics: fso.Optics, distance_m: float, transport: str,
                           rtt_s: float, mtu_bytes: int | None = None, rto_s: float | None = None,
                           merge: bool = True, merge_rel_tol: float = 1e-6, **budget_kw) -> list[CapacityStep]:
    """Capacity steps for the engine, one per weather piece; ``merge`` folds a piece into the step before when
    both are up (or both down) and their capacities agree within ``merge_rel_tol``, keeping the earlier step.

    Packet error rates are for the transport's wire frame (``mtu_bytes`` + its headers), whatever
    ``optics.frame_size_bytes`` says; ``budget_kw`` goes to :func:`gpusim.links.fso.link_budget`.
    """
    if transport not in goodput.TRANSPORTS:
        raise unknown("transport", transport, goodput.TRANSPORTS, "transport")
    mtu = _mtu(transport, mtu_bytes)
    framed = replace(optics, frame_size_bytes=goodput.wire_frame_bytes(transport, mtu))
    cache: dict[fso.Weather, fso.LinkBudget] = {}
    steps: list[CapacityStep] = []
    for start, _, w in timeline.segments():
        if w not in cache:
            cache[w] = fso.link_budget(framed, distance_m, w, **budget_kw)
        b = cache[w]
        cap = effective_capacity_Bps(b, transport, rtt_s, mtu, rto_s)
        up = not b.outage
        if merge and steps and steps[-1].up == up and \
                abs(steps[-1].capacity_Bps - cap) <= merge_rel_tol * max(steps[-1].capacity_Bps, cap):
            continue
        steps.append(CapacityStep(start, cap, up, b))
    return steps


def visibility_sweep(optics: fso.Optics, distance_m: float, visibilities_m, transport: str = "roce",
                     rtt_s: float | None = None, mtu_bytes: int | None = None, fog_model: str = "kim",
                     **weather) -> list[dict]:
    """One row per visibility: losses, margin, BER, PER, outage and goodput, for tables and plots.

    ``weather`` holds the other :class:`~gpusim.links.fso.Weather` fields (``rain_mm_per_h=5`` ...); ``rtt_s``
    defaults to the link's own round-trip propagation ``2 L/c``.
    """
    if transport not in goodput.TRANSPORTS:
        raise unknown("transport", transport, goodput.TRANSPORTS, "transport")
    rtt = 2 * fso.propagation_delay_s(distance_m) if rtt_s is None else rtt_s
    mtu = _mtu(transport, mtu_bytes)
    framed = replace(optics, frame_size_bytes=goodput.wire_frame_bytes(transport, mtu))
    rows = []
    for v in visibilities_m:
        b = fso.link_budget(framed, distance_m, fso.Weather(visibility_m=float(v), **weather), fog_model=fog_model)
        rows.append({"visibility_m": float(v), "fog_db_per_km": b.fog_db_per_km,
                     "atmospheric_loss_db": b.atmospheric_loss_db, "received_power_dbm": b.received_power_dbm,
                     "margin_db": b.margin_db, "ber": b.ber, "packet_error_rate": b.packet_error_rate,
                     "outage": b.outage, "line_rate_Bps": b.line_rate_Bps,
                     "goodput_Bps": effective_capacity_Bps(b, transport, rtt, mtu)})
    return rows


def _mtu(transport: str, mtu_bytes) -> int:
    mtu = goodput.DEFAULT_MTU_BYTES[transport] if mtu_bytes is None else mtu_bytes
    if isinstance(mtu, bool) or not isinstance(mtu, numbers.Integral) or mtu <= 0:
        raise GpusimError("mtu_bytes", f"expected a positive whole number of bytes, got {mtu!r}")
    return mtu
