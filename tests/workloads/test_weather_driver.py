"""Weather on an FSO link during a run: the outage starts and ends on schedule, the collective stalls and is
rerouted to the backup, and every byte is delivered."""
import textwrap

import pytest
import yaml

from gpusim.errors import GpusimError
from gpusim.scenario import schema
from gpusim.simulate import simulate

SCENARIO = """
cluster: fso-sites
jobs: [{{name: ar, op: all_reduce, ranks: all, size: 64 MiB, algo: ring, proto: Simple}}]
weather:
  detection_delay: {delay}
  schedule:
    - {{time: 0 s, visibility: 10 km}}
    - {{time: 10 ms, visibility: 60 m}}
    - {{time: 200 ms, visibility: 10 km}}
"""


def run(delay: str, preset: str = "fso-sites"):
    text = SCENARIO.format(delay=delay).replace("fso-sites", preset)
    return simulate(schema.parse(yaml.safe_load(textwrap.dedent(text)))).clusters[0]


def test_outage_follows_the_schedule_and_flows_move_to_the_backup():
    c = run("20 ms")
    link = c.extra["links"]["fso0"]
    assert link["outages"] == [[pytest.approx(0.010), pytest.approx(0.200)]]
    assert link["downtime_s"] == pytest.approx(0.190)
    assert link["flows_rerouted"] > 0
    assert c.jobs[0].status == "done"
    assert c.extra["stalled_s_by_job"]["ar"] == pytest.approx(0.020, rel=1e-6)
    backup = [l for l in c.links if l["link"] == "site0.switch->site1.switch"]
    assert backup and backup[0]["bytes"] > 0


def test_without_reroute_the_collective_waits_for_the_sky_to_clear():
    c = run("10 s")  # detection slower than the outage: nobody reroutes
    assert c.extra["links"]["fso0"]["flows_rerouted"] == 0
    assert c.jobs[0].status == "done"
    assert c.jobs[0].end_s > 0.200
    assert c.extra["stalled_s_by_job"]["ar"] == pytest.approx(0.190, rel=1e-6)


def test_all_bytes_are_delivered_despite_the_outage():
    clear = simulate(schema.parse(yaml.safe_load(
        "cluster: fso-sites\njobs: [{name: ar, op: all_reduce, size: 64 MiB, algo: ring, proto: Simple}]"))).clusters[0]
    foggy = run("20 ms")
    total = lambda c: sum(l["bytes"] for l in c.links if "nvswitch" in l["link"])  # noqa: E731
    # the NVLink side moves the same bytes whatever path the inter-site hop took
    assert total(foggy) == pytest.approx(total(clear), rel=1e-9)


def test_weather_on_a_cluster_without_fso_is_an_error():
    with pytest.raises(GpusimError, match="no FSO link"):
        run("20 ms", preset="dgx-h100")


def test_weather_from_a_csv_file_next_to_the_scenario(tmp_path):
    (tmp_path / "fog.csv").write_text("time,visibility\n0 s,10 km\n10 ms,60 m\n200 ms,10 km\n")
    (tmp_path / "s.yaml").write_text("cluster: fso-sites\njobs: [{name: ar, op: all_reduce, size: 64 MiB}]\n"
                                     "weather: {csv: fog.csv, detection_delay: 20 ms}\n")
    c = simulate(schema.load(tmp_path / "s.yaml")).clusters[0]
    assert c.extra["links"]["fso0"]["outages"] == [[pytest.approx(0.010), pytest.approx(0.200)]]


@pytest.mark.parametrize("markov, where", [("{duration: 0 s}", "weather.markov.duration: expected a positive"),
                                           ("{duration: 1 s, start: x}", "weather.markov.start: unknown weather state")])
def test_markov_weather_errors_name_the_scenario_field(markov, where):
    text = f"cluster: fso-sites\njobs: [{{name: ar, op: all_reduce, size: 1 MiB}}]\nweather: {{markov: {markov}}}\n"
    with pytest.raises(GpusimError, match=where):
        simulate(schema.parse(yaml.safe_load(text)))
