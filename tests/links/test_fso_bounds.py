"""FSO inputs are bounded where they are parsed (flags, scenario optics/weather) and a budget line that is not finite
is an error: a NaN margin once read as "outage: no" with BER 0 and full goodput, and huge inputs overflowed."""
import json
import math

import pytest

from gpusim.cli import main
from gpusim.errors import GpusimError
from gpusim.links import fso, goodput


@pytest.mark.parametrize("argv,flag", [
    (["--visibility", "10km", "--cn2", "1e300"], "--cn2"),           # margin +nan dB, outage no, BER 0
    (["--tx-power", "1e308dBm"], "--tx-power"),                      # OverflowError tracebacks ...
    (["--rx-aperture", "1e300m"], "--rx-aperture"),
    (["--distance", "1e300m"], "--distance"),
    (["--sensitivity=-1e308dBm"], "--sensitivity"),
    (["--cn2", "1e280"], "--cn2"),
    (["--divergence", "1e-300rad", "--tx-aperture", "0m"], "--divergence"),
    (["--pointing-jitter", "1e300rad"], "--pointing-jitter"),
    (["--visibility", "1m"], "--visibility"),
    (["--rain", "1e300mm/h"], "--rain"),
    (["--line-rate", "1e-300b/s"], "--line-rate"),
    (["--system-loss", "1e300dB"], "--system-loss"),
    (["--rtt", "1e308s"], "--rtt"),                                  # 1 + 0 * inf: a NaN goodput
    (["--mtu", "1e9"], "--mtu"),
    (["--distance", "200km", "--rain", "1e-200mm/h", "--rain-model", "itu_p1814"], "--rain"),
])
def test_out_of_range_flags_are_one_line_errors(argv, flag, capsys):
    assert main(["fso", "--distance", "1km", "--visibility", "500m", *argv, "--format", "json"]) == 2   # last wins
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"gpusim fso: error: {flag}: ")
    assert len(captured.err.strip().splitlines()) == 1


def test_the_bounds_themselves_give_finite_json(capsys):
    argv = ["fso", "--distance", "200km", "--visibility", "10m", "--cn2", "1e-10", "--tx-power", "50dBm",
            "--sensitivity=-100dBm", "--rx-aperture", "10m", "--divergence", "1urad", "--rain", "2000mm/h",
            "--snow", "2000mm/h", "--snow-kind", "dry", "--rtt", "1s", "--format", "json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert r["outage"] is True and all(g == 0 for g in r["goodput_Bps"].values())


@pytest.mark.parametrize("fields,path", [
    ({"tx_power": "1e308 dBm"}, "weather.optics.tx_power"),
    ({"rx_aperture": "1e300 m"}, "weather.optics.rx_aperture"),
    ({"frame_size": "1 GiB"}, "weather.optics.frame_size"),
    ({"adaptive_rates": ["10 Gb/s", "1e-300 b/s"]}, "weather.optics.adaptive_rates"),
])
def test_scenario_optics_are_bounded_at_the_users_field(fields, path):
    with pytest.raises(GpusimError) as e:
        fso.optics_from_dict(fields, "weather.optics")
    assert e.value.path.startswith(path)


@pytest.mark.parametrize("fields,path", [
    ({"cn2": 1e300}, "weather.schedule[0].cn2"), ({"visibility": "1e300 m"}, "weather.schedule[0].visibility"),
    ({"snow": "1e300 mm/h"}, "weather.schedule[0].snow"), ({"rain": "5000 mm/h"}, "weather.schedule[0].rain"),
])
def test_scenario_weather_is_bounded_at_the_users_field(fields, path):
    with pytest.raises(GpusimError) as e:
        fso.weather_from_dict(fields, "weather.schedule[0]")
    assert e.value.path == path


def test_a_budget_line_that_is_not_finite_is_an_error_never_no_outage(monkeypatch):
    monkeypatch.setattr(fso, "scintillation_margin_db", lambda *a, **k: math.nan)
    with pytest.raises(GpusimError, match="scintillation_margin_db is nan"):
        fso.link_budget(fso.Optics(), 1000.0, fso.Weather())


def test_link_length_is_bounded():
    with pytest.raises(GpusimError, match="from 1 m to 200 km"):
        fso.link_budget(fso.Optics(), 1e300, fso.Weather())
    assert math.isfinite(fso.link_budget(fso.Optics(), 200e3, fso.Weather()).margin_db)


def test_go_back_n_without_loss_is_full_rate_even_with_an_endless_round_trip():
    assert goodput.go_back_n_utilisation(0.0, math.inf, math.inf) == 1.0


@pytest.mark.parametrize("text", ["0", "0 rad", "0urad"])
def test_zero_pointing_jitter_is_accepted_with_or_without_a_unit(text):
    from gpusim.links import fso as f
    assert f.optics_from_dict({"pointing_jitter": text}, "optics").pointing_jitter_rad == 0.0


def test_the_model_table_leaves_out_fog_models_outside_their_wavelengths():
    """At 400 nm the table printed Al Naboulsi's values, a model that is refused below 690 nm."""
    w = fso.Weather(visibility_m=1000.0)
    assert set(fso.attenuation_by_model_db_per_km(w, 400e-9)) == {"kim", "kruse"}
    assert set(fso.attenuation_by_model_db_per_km(w, 1550e-9)) == {"kim", "kruse", "al_naboulsi_advection",
                                                                   "al_naboulsi_convection"}
