"""Weather timelines (constant, schedule from YAML/CSV, seeded Markov chain) and the capacity steps they give."""
import math

import numpy as np
import pytest

from gpusim.errors import GpusimError
from gpusim.links import fso, goodput, weather as wx


def test_constant_weather_holds_everywhere():
    tl = wx.constant_weather(fso.Weather(visibility_m=2000))
    assert tl.at(0.0).visibility_m == 2000 and tl.at(1e9).visibility_m == 2000
    assert tl.segments() == [(0.0, math.inf, fso.Weather(visibility_m=2000))]


def test_schedule_entries_carry_fields_forward():
    tl = wx.weather_schedule([
        {"time": "0 s", "visibility": "10 km", "cn2": 1e-15},
        {"time": "30 min", "visibility": "400 m", "rain": "5 mm/h"},
        {"time": "1 h", "rain": "0 mm/h"},
    ], end_s=7200)
    assert tl.times_s == (0.0, 1800.0, 3600.0)
    assert tl.at(1799.9).visibility_m == 10_000
    assert tl.at(1800.0) == fso.Weather(visibility_m=400, rain_mm_per_h=5, cn2_m_minus_2_3=1e-15)
    assert tl.at(5000) == fso.Weather(visibility_m=400, rain_mm_per_h=0, cn2_m_minus_2_3=1e-15)
    with pytest.raises(GpusimError):
        tl.at(7200)


@pytest.mark.parametrize("entries,path", [
    ([{"time": "0 s", "visibility": "1 km"}, {"time": "10 min", "rain": "5"}], "weather.schedule[1].rain"),
    ([{"time": "0 s", "visibility": "1 km"}, {"visibility": "2 km"}], "weather.schedule[1].time"),
    ([{"time": "5 s", "visibility": "1 km"}], "weather.schedule[0].time"),
    ([{"time": "0 s"}], "weather.schedule[0].visibility"),
    ([{"time": "0 s", "visibility": "1 km"}, {"time": "0 s", "visibility": "2 km"}], "weather.schedule[1].time"),
    ([{"time": "0 s", "visibility": "0 m"}], "weather.schedule[0].visibility"),
    ([{"time": "0 s", "visibility": "1 km", "fog": "yes"}], "weather.schedule[0].fog"),
    ([{"time": "0 s", "visibility": "1 km", "snow_kind": "slush"}], "weather.schedule[0].snow_kind"),
    ([], "weather.schedule"),
])
def test_schedule_errors_name_the_entry_and_field(entries, path):
    with pytest.raises(GpusimError) as exc:
        wx.weather_schedule(entries)
    assert exc.value.path == path


def test_schedule_from_yaml():
    text = """
- {time: 0 s, visibility: 5 km}
- {time: 10 min, visibility: 300 m, snow: 2 mm/h, snow_kind: dry}
"""
    tl = wx.weather_schedule_from_yaml(text)
    assert tl.at(600).snow_kind == "dry" and tl.at(600).snow_mm_per_h == 2
    with pytest.raises(GpusimError) as exc:
        wx.weather_schedule_from_yaml("- {time: 0 s, visibility: [1")
    assert exc.value.path == "weather.schedule"


CSV = """time (min), visibility (km), rain (mm/h), snow, snow_kind
0, 10, 0, 0 mm/h, wet
15, 0.4, , ,
30, 400 m, 12, 1 mm/h, dry
"""


def test_schedule_from_csv_with_units_in_header_and_cells():
    tl = wx.weather_schedule_from_csv(CSV)
    assert tl.times_s == (0.0, 900.0, 1800.0)
    assert tl.at(900) == fso.Weather(visibility_m=400)  # empty cells keep the row before
    assert tl.at(1800) == fso.Weather(visibility_m=400, rain_mm_per_h=12, snow_mm_per_h=1, snow_kind="dry")


@pytest.mark.parametrize("text,path,match", [
    ("time,visibility\n0 s,1 km\n60 s,-3 km\n", "weather.csv[line 3].visibility", "positive"),
    ("time (s),visibility\n0,1 km\n60,2\n", "weather.csv[line 3].visibility", "missing unit"),
    ("time,visibility,fog\n0 s,1 km,1\n", "weather.csv[line 1]", "fog"),
    ("visibility\n1 km\n", "weather.csv[line 1]", "time"),
    ("time,visibility\n0 s,1 km\n60 s\n", "weather.csv[line 3]", "cells"),
    ("time (s),visibility (m)\n0,1000\n\n60,2000,5\n", "weather.csv[line 4]", "cells"),
    ("time (s),visibility (m),rain (mm/h)\n0,1000,0\n30,900,x\n", "weather.csv[line 3].rain", "x"),
    ("time (s),visibility (m)\n10,1000\n", "weather.csv[line 2].time", "time 0"),
    ("", "weather.csv", "header"),
])
def test_csv_errors_name_the_line_and_column(text, path, match):
    with pytest.raises(GpusimError, match=match) as exc:
        wx.weather_schedule_from_csv(text)
    assert exc.value.path == path


def test_markov_weather_is_seeded():
    a = wx.markov_weather(np.random.default_rng(7), 7 * 86400)
    b = wx.markov_weather(np.random.default_rng(7), 7 * 86400)
    c = wx.markov_weather(np.random.default_rng(8), 7 * 86400)
    assert a == b
    assert a != c
    assert len(a) > 10 and a.end_s == 7 * 86400
    assert all(t1 > t0 for t0, t1 in zip(a.times_s, a.times_s[1:]))


def test_markov_states_stay_in_their_bands_and_visit_fog(rng):
    tl = wx.markov_weather(rng, 60 * 86400)
    lo = min(s.visibility_m[0] for s in wx.DEFAULT_WEATHER_STATES)
    hi = max(s.visibility_m[1] for s in wx.DEFAULT_WEATHER_STATES)
    vis = np.array([w.visibility_m for w in tl.weathers])
    assert vis.min() >= lo and vis.max() <= hi
    assert (vis < 1000).any() and (vis > 10_000).any()
    rain = np.array([w.rain_mm_per_h for w in tl.weathers])
    assert ((rain == 0) | ((rain >= 1) & (rain <= 25))).all() and (rain > 0).any()


def test_markov_chain_follows_its_transitions(rng):
    """Two states that always swap: the weather alternates, and mean dwell times come out near the given ones."""
    states = (wx.WeatherState("a", (1000.0, 1000.0), 100.0, {"b": 1.0}),
              wx.WeatherState("b", (5000.0, 5000.0), 300.0, {"a": 1.0}))
    tl = wx.markov_weather(rng, 2e6, states, start_state="a")
    vis = [w.visibility_m for w in tl.weathers]
    assert vis[::2] == [1000.0] * len(vis[::2]) and vis[1::2] == [5000.0] * len(vis[1::2])
    dwell = np.diff(tl.times_s)
    assert np.mean(dwell[0::2]) == pytest.approx(100, rel=0.1)
    assert np.mean(dwell[1::2]) == pytest.approx(300, rel=0.1)


def test_markov_rejects_bad_states(rng):
    bad = (wx.WeatherState("a", (1000.0, 1000.0), 100.0, {"c": 1.0}),)
    with pytest.raises(GpusimError, match="states.a.next_states"):
        wx.markov_weather(rng, 1000, bad, start_state="a")
    with pytest.raises(GpusimError, match="start_state"):
        wx.markov_weather(rng, 1000, start_state="tornado")
    with pytest.raises(GpusimError, match="rng"):
        wx.markov_weather(42, 1000)


def test_capacity_timeline_goes_down_in_fog_and_comes_back():
    tl = wx.weather_schedule([{"time": "0 s", "visibility": "20 km"}, {"time": "10 min", "visibility": "300 m"},
                              {"time": "40 min", "visibility": "20 km"}])
    optics, rtt = fso.Optics(), 20e-6
    steps = wx.link_capacity_timeline(tl, optics, 1000, "roce", rtt)
    assert [s.time_s for s in steps] == [0.0, 600.0, 2400.0]
    assert [s.up for s in steps] == [True, False, True]
    assert steps[1].capacity_Bps == 0.0
    # clear air: goodput at the PER of a 4178 B RoCE frame
    b = fso.link_budget(fso.Optics(frame_size_bytes=4096 + 82), 1000, fso.Weather(visibility_m=20_000))
    assert steps[0].budget == b
    assert steps[0].capacity_Bps == pytest.approx(goodput.goodput_Bps("roce", optics.line_rate_Bps,
                                                                      b.packet_error_rate, rtt))
    assert steps[0].capacity_Bps == pytest.approx(optics.line_rate_Bps * 4096 / 4178, rel=1e-6)
    time_s, cap, up, budget = steps[2]
    assert up and cap == steps[0].capacity_Bps


def test_capacity_timeline_merges_equal_steps():
    tl = wx.weather_schedule([{"time": "0 s", "visibility": "20 km"}, {"time": "1 s", "visibility": "30 km"},
                              {"time": "2 s", "visibility": "100 m"}, {"time": "3 s", "visibility": "50 m"}])
    merged = wx.link_capacity_timeline(tl, fso.Optics(), 500, "tcp", 1e-5)
    full = wx.link_capacity_timeline(tl, fso.Optics(), 500, "tcp", 1e-5, merge=False)
    assert [s.time_s for s in full] == [0.0, 1.0, 2.0, 3.0]
    assert [(s.time_s, s.up) for s in merged] == [(0.0, True), (2.0, False)]


def test_visibility_sweep_rows():
    rows = wx.visibility_sweep(fso.Optics(), 1000, [20_000, 2000, 1000, 600, 300], transport="ib")
    assert [r["visibility_m"] for r in rows] == [20_000, 2000, 1000, 600, 300]
    margins = [r["margin_db"] for r in rows]
    assert margins == sorted(margins, reverse=True)
    assert rows[0]["goodput_Bps"] > 0 and rows[-1]["outage"] and rows[-1]["goodput_Bps"] == 0
    assert rows[2]["fog_db_per_km"] == pytest.approx(fso.kim_db_per_km(1000, 1550e-9))
    assert {"ber", "packet_error_rate", "received_power_dbm", "line_rate_Bps"} <= set(rows[0])
