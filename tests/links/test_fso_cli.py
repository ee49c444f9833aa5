"""``gpusim fso`` end to end: exit codes, JSON keys, agreement with the library."""
import json

import pytest

from gpusim.cli import main
from gpusim.links import fso, goodput
from gpusim.links.weather import effective_capacity_Bps


def run_json(capsys, *argv):
    rc = main(["fso", *argv, "--format", "json"])
    out = capsys.readouterr().out
    assert rc == 0
    return json.loads(out)


def test_json_keys_and_values_match_the_library(capsys):
    r = run_json(capsys, "--distance", "1km", "--wavelength", "1550nm", "--visibility", "1km", "--cn2", "1e-14")
    assert set(r["attenuation_db_per_km"]) == {"kim", "kruse", "al_naboulsi_advection", "al_naboulsi_convection"}
    assert set(r["goodput_Bps"]) == {"roce", "tcp", "ib"}
    b = fso.link_budget(fso.Optics(), 1000, fso.Weather(visibility_m=1000, cn2_m_minus_2_3=1e-14))
    assert r["attenuation_db_per_km"]["kim"] == pytest.approx(10.12, abs=0.01)
    assert r["received_power_dbm"] == pytest.approx(b.received_power_dbm)
    assert r["margin_db"] == pytest.approx(b.margin_db)
    assert r["ber"] == pytest.approx(b.ber, rel=1e-9, abs=1e-300)
    assert r["packet_error_rate"] == pytest.approx(b.packet_error_rate, rel=1e-9, abs=1e-300)
    assert r["outage"] is False and r["geometric_loss_db"] == pytest.approx(b.geometric_loss_db)
    rtt = 2 * 1000 / 299_792_458.0
    assert r["inputs"]["rtt_s"] == pytest.approx(rtt)
    for t in goodput.TRANSPORTS:
        mtu = goodput.DEFAULT_MTU_BYTES[t]
        bt = fso.link_budget(fso.Optics(frame_size_bytes=goodput.wire_frame_bytes(t, mtu)), 1000,
                             fso.Weather(visibility_m=1000))
        assert r["goodput_Bps"][t] == pytest.approx(effective_capacity_Bps(bt, t, rtt, mtu))
        assert r["goodput_Bps"][t] > 0


def test_rain_and_snow_keys_appear_when_given(capsys):
    r = run_json(capsys, "--distance", "500m", "--visibility", "5km", "--rain", "25mm/h", "--snow", "1mm/h",
                 "--snow-kind", "dry", "--tx-power", "20dBm", "--divergence", "1mrad", "--line-rate", "25Gb/s")
    att = r["attenuation_db_per_km"]
    assert att["rain"] == pytest.approx(1.076 * 25**0.67)
    assert att["snow"] == pytest.approx(5.42e-5 * 1550 + 5.4958776)
    assert r["inputs"]["optics"]["tx_power_dbm"] == 20 and r["inputs"]["optics"]["line_rate_Bps"] == 25e9 / 8


def test_outage_gives_zero_goodput(capsys):
    r = run_json(capsys, "--distance", "2km", "--visibility", "200m")
    assert r["outage"] is True and r["margin_db"] < 0
    assert r["goodput_Bps"] == {"roce": 0.0, "ib": 0.0, "tcp": 0.0}


def test_table_output(capsys):
    assert main(["fso", "--distance", "1km", "--visibility", "500m", "--rain", "10mm/h"]) == 0
    out = capsys.readouterr().out
    for word in ("geometric loss", "fog (kim", "rain (carbonneau", "link margin", "BER", "packet error rate",
                 "roce", "tcp", "ib", "al_naboulsi_convection"):
        assert word in out


@pytest.mark.parametrize("argv,flag", [
    (["--distance=-1km", "--visibility", "1km"], "--distance"),
    (["--distance", "1km", "--visibility", "0m"], "--visibility"),
    (["--distance", "1km", "--visibility", "1km", "--wavelength", "2000nm"], "--wavelength"),
    (["--distance", "1km", "--visibility", "1km", "--tx-power", "17"], "--tx-power"),
    (["--distance", "1km", "--visibility", "1km", "--divergence", "2"], "--divergence"),
    (["--distance", "1km", "--visibility", "1km", "--rain", "5"], "--rain"),
    (["--distance", "1km", "--visibility", "1km", "--cn2", "lots"], "--cn2"),
    (["--distance", "1km", "--visibility", "1km", "--line-rate", "fast"], "--line-rate"),
    (["--distance", "1km", "--visibility", "1km", "--mtu", "100.5B"], "--mtu"),
    (["--distance", "1km", "--visibility", "1km", "--wavelength", "600nm",
      "--fog-model", "al_naboulsi_advection"], "--wavelength"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, flag):
    assert main(["fso", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"gpusim fso: error: {flag}:")
