"""What a run reports is measured over the jobs' span: from 0 until the last job ended, or until the duration limit
when it cut a job off. Timers left after the jobs (weather steps, outage detection) neither stretch the span nor
change what it reports; bytes still in flight at the limit count; figures are written whatever the times."""
import pytest
import yaml

from gpusim.report import figures
from gpusim.scenario import schema
from gpusim.simulate import simulate


def run(text: str):
    return simulate(schema.parse(yaml.safe_load(text)))


def fso_run(schedule: str, delay: str = "1 h", size: str = "16 MiB", repeat: int = 3):
    return run(f"""
        cluster: fso-sites
        jobs: [{{name: ar, op: all_reduce, size: {size}, repeat: {repeat}, algo: ring, proto: Simple}}]
        weather: {{detection_delay: {delay}, schedule: [{schedule}]}}
    """).clusters[0]


CLEAR = "{time: 0 s, visibility: 10 km}"
FSO = "site0.fso0->site1.fso0"


def link(cluster, name):
    hits = [l for l in cluster.links if l["link"] == name]
    return hits[0] if hits else None


@pytest.mark.parametrize("text", [
    "cluster: switch:gpus=2\njobs: [{name: empty, op: all_reduce, size: 0}]",
    "cluster: switch:gpus=2,bandwidth=1GB/s\njobs: [{name: ar, op: all_reduce, size: 1 GiB}]\n"
    "run: {duration_limit: 1 us}",
])
def test_figures_are_written_when_no_job_has_a_positive_time(text, tmp_path):
    result = run(text)
    assert not any(j.mean_time_s for j in result.clusters[0].jobs)
    written = figures.write_all(result, tmp_path)
    assert [p.name for p in written] == ["job_times.png", "link_utilisation.png", "timeline.png"]
    assert all(p.stat().st_size > 0 for p in written)


def test_availability_is_over_the_jobs_span_not_a_pending_detection_timer():
    """The outage (10-20 ms) outlasts nothing: detection would come after 1 h, yet the run ends with the jobs."""
    c = fso_run(f"{CLEAR}, {{time: 10 ms, visibility: 60 m}}, {{time: 20 ms, visibility: 10 km}}")
    fso0 = c.extra["links"]["fso0"]
    assert c.makespan_s == pytest.approx(max(j.end_s for j in c.jobs)) and c.makespan_s > 0.020
    assert fso0["outages"] == [[pytest.approx(0.010), pytest.approx(0.020)]]
    assert fso0["downtime_s"] == pytest.approx(0.010)
    assert fso0["availability"] == pytest.approx(1 - 0.010 / c.makespan_s)


def test_weather_after_the_jobs_changes_nothing_reported():
    """Fog at 1 h, long after the jobs: no outage, and the FSO link keeps its place as the bottleneck."""
    clear = fso_run(CLEAR)
    late = fso_run(f"{CLEAR}, {{time: 1 h, visibility: 60 m}}")
    assert late.makespan_s == pytest.approx(clear.makespan_s)
    assert late.extra["links"]["fso0"]["outages"] == []
    assert late.extra["links"]["fso0"]["downtime_s"] == 0 and late.extra["links"]["fso0"]["availability"] == 1
    assert late.links == clear.links
    assert late.links[0]["link"] in (FSO, "site1.fso0->site0.fso0")


def test_utilisation_divides_by_the_capacity_the_link_had():
    """During the outage the FSO link could carry nothing: utilisation = bytes / (C x (span - downtime)), with C
    the clear-sky capacity, read off a clear run as bytes / (utilisation x span)."""
    clear = fso_run(CLEAR)
    c_fso = link(clear, FSO)["bytes"] / (link(clear, FSO)["utilisation"] * clear.makespan_s)
    foggy = fso_run(f"{CLEAR}, {{time: 10 ms, visibility: 60 m}}, {{time: 20 ms, visibility: 10 km}}")
    down = foggy.extra["links"]["fso0"]["downtime_s"]
    assert down == pytest.approx(0.010)
    got = link(foggy, FSO)
    assert got["utilisation"] == pytest.approx(got["bytes"] / (c_fso * (foggy.makespan_s - down)), rel=1e-9)
    assert all(l["utilisation"] <= 1 + 1e-9 for l in foggy.links)


def test_bytes_in_flight_at_the_duration_limit_are_counted():
    """A 1 GiB transfer over a 1 GB/s link from 0.5 ms, cut at 2 ms: it moved 1.5 MB at full rate."""
    c = run("""
        cluster: switch:gpus=2,bandwidth=1GB/s,latency=1us
        jobs: [{name: t, type: transfer, src: 0, dst: 1, size: 1 GiB, start: 0.5 ms}]
        run: {duration_limit: 2 ms}
    """).clusters[0]
    assert c.jobs[0].status == "timeout"
    assert c.makespan_s == pytest.approx(0.002)
    assert {l["link"] for l in c.links} == {"gpu0->switch0", "switch0->gpu1"}
    for l in c.links:
        assert l["bytes"] == pytest.approx(1.5e6, rel=1e-9)
        assert l["utilisation"] == pytest.approx(0.75, rel=1e-9)



def test_links_carry_the_payload_not_the_modelled_slowdowns():
    """A 4-rank ring all_reduce of 64 MiB puts 2(n-1)/n x S on each GPU's uplink; a straggler spread of 0.3 makes it
    slower but carries no bytes, so the link then shows less than full use while it still held the flows back."""
    def run_with(cost):
        return run(f"""
            cluster: {{preset: "switch:gpus=4,bandwidth=50GB/s,latency=500ns", cost_model: {{{cost}}}}}
            jobs: [{{name: ar, op: all_reduce, size: 64 MiB, algo: ring}}]
        """).clusters[0]
    plain, slowed = run_with(""), run_with("straggler_cv: 0.3")
    want = 2 * 3 / 4 * (64 << 20)
    for c in (plain, slowed):
        assert link(c, "gpu0->switch0")["bytes"] == pytest.approx(want, rel=1e-9)
    assert slowed.jobs[0].mean_time_s > 1.2 * plain.jobs[0].mean_time_s
    assert link(slowed, "gpu0->switch0")["utilisation"] < 0.9 * link(plain, "gpu0->switch0")["utilisation"]
    assert link(slowed, "gpu0->switch0")["limiting_share"] == pytest.approx(
        link(plain, "gpu0->switch0")["limiting_share"], abs=0.02)


def test_a_job_cut_off_during_an_outage_reports_its_stall_so_far():
    """Fog from 10 ms, no detection before the 50 ms limit: the all_reduce sits stalled ~40 ms when it is cut off."""
    c = run(f"""
        cluster: fso-sites
        jobs: [{{name: ar, op: all_reduce, size: 1 GiB, algo: ring, proto: Simple}}]
        weather: {{detection_delay: 1 h, schedule: [{CLEAR}, {{time: 10 ms, visibility: 60 m}}]}}
        run: {{duration_limit: 50 ms}}
    """).clusters[0]
    assert c.jobs[0].status in ("timeout", "stalled") and c.makespan_s == pytest.approx(0.050)
    assert c.extra["stalled_s_by_job"]["ar"] == pytest.approx(0.040, rel=0.05)


def test_a_link_up_for_microseconds_is_not_the_bottleneck():
    """Fog 2 us into a 256 MiB all_reduce over fso-sites; detection after 10 us moves the flows to the Ethernet
    backup. The FSO link carried a few kB at full rate (utilisation 100 %), yet held flows back only 12 us (2 us full,
    10 us down under them); the backup was full for the rest of the run and comes first."""
    c = run("""
        cluster: fso-sites
        jobs: [{name: ar, op: all_reduce, size: 256 MiB, algo: ring, proto: Simple}]
        weather: {detection_delay: 10 us, schedule: [{time: 0 s, visibility: 10 km}, {time: 2 us, visibility: 60 m}]}
    """).clusters[0]
    fso = link(c, FSO)
    assert fso["utilisation"] == pytest.approx(1.0) and fso["bytes"] < 1e4
    assert fso["limiting_share"] * c.makespan_s == pytest.approx(12e-6, rel=1e-6)
    assert c.links[0]["technology"] == "ethernet" and c.links[0]["limiting_share"] > 0.999
    assert c.links.index(fso) > 1


def test_a_run_cut_by_its_limit_reports_each_job_stalled_or_cut_off_on_its_own():
    """Fog (10 m) downs the FSO link for the whole second the run lasts, detection only after 1 h: job x, across the
    link, sits stalled; a 1 PiB transfer inside one site still moves when the limit cuts it (timeout), and a
    transfer that would start after the limit never began (timeout), whatever x does."""
    c = run("""
        cluster: fso-sites
        jobs: [{name: x, type: transfer, src: 0, dst: 8, size: 1 MiB},
               {name: local, type: transfer, src: 0, dst: 1, size: 1 PiB},
               {name: later, type: transfer, src: 0, dst: 1, size: 1 MiB, start: 5 s}]
        weather: {detection_delay: 1 h, constant: {visibility: 10 m}}
        run: {duration_limit: 1 s}
    """).clusters[0]
    assert {j.name: j.status for j in c.jobs} == {"x": "stalled", "local": "timeout", "later": "timeout"}
    assert c.extra["stalled_s_by_job"]["x"] == pytest.approx(1.0)


def test_where_no_link_held_a_flow_back_the_report_names_no_bottleneck():
    """A 2-rank sendrecv held to one channel runs at that channel's measured rate (19.7 GB/s), far below NVLink's:
    no link limited it, so the text names the busiest link without calling it the bottleneck; a link-bound run
    (a 1 GB/s switch) names its bottleneck."""
    from gpusim.report.results import job_table
    capped = run("cluster: h200-nvlink:gpus=2\njobs: [{name: s, op: sendrecv, size: 1 GiB, channels: 1}]")
    c = capped.clusters[0]
    assert all(l["limiting_share"] == 0 for l in c.links) and 0 < c.links[0]["utilisation"] < 0.1
    text = job_table(capped)
    assert "bottleneck" not in text and "no link held a flow back" in text
    bound = run("cluster: switch:gpus=2,bandwidth=1GB/s\njobs: [{name: t, type: transfer, src: 0, dst: 1, size: 1 GiB}]")
    assert bound.clusters[0].links[0]["limiting_share"] == pytest.approx(1.0)
    assert "bottleneck link: gpu0->switch0" in job_table(bound) or "bottleneck link: switch0->gpu1" in job_table(bound)
