"""Scenario YAML -> Result end to end, determinism, and one test per class of user error."""
import textwrap

import pytest

from gpusim.errors import GpusimError
from gpusim.scenario import schema
from gpusim.simulate import simulate


def scenario(text: str):
    return schema.parse(__import__("yaml").safe_load(textwrap.dedent(text)))


BASIC = """
seed: 5
cluster: switch:gpus=8,bandwidth=50GB/s,latency=500ns
jobs:
  - {name: ar, op: all_reduce, ranks: all, size: 1 GiB, algo: ring}
  - {name: copy, type: transfer, src: 0, dst: 3, size: 100 MB, after: ar}
  - {name: perm, type: traffic, pattern: permutation, ranks: "0-7", size: 10 MB, after: copy}
"""


def test_yaml_to_result_matches_closed_forms():
    r = simulate(scenario(BASIC))
    jobs = {j.name: j for j in r.clusters[0].jobs}
    assert all(j.status == "done" for j in jobs.values())
    assert jobs["ar"].mean_time_s == pytest.approx(2 * 7 * 1e-6 + 2 * 7 / 8 * 2**30 / 50e9, rel=1e-9)
    assert jobs["copy"].mean_time_s == pytest.approx(1e-6 + 100e6 / 50e9, rel=1e-9)
    assert jobs["copy"].start_s == pytest.approx(jobs["ar"].end_s)
    # a derangement over one switch: every sender and receiver link carries exactly one flow
    assert jobs["perm"].mean_time_s == pytest.approx(1e-6 + 10e6 / 50e9, rel=1e-9)


def test_same_seed_same_numbers_and_echo():
    a, b = simulate(scenario(BASIC)).to_dict(), simulate(scenario(BASIC)).to_dict()
    for d in (a, b):
        d.pop("runtime_s")
    assert a == b
    assert a["seed"] == 5 and a["input"]["jobs"][0]["name"] == "ar"


def test_compare_runs_every_cluster_on_the_same_jobs():
    r = simulate(scenario("""
        clusters:
          fast: switch:gpus=4,bandwidth=100GB/s,latency=1us
          slow: switch:gpus=4,bandwidth=10GB/s,latency=1us
        jobs: [{op: all_gather, size: 64 MiB}]
    """))
    fast, slow = (c.jobs[0].mean_time_s for c in r.clusters)
    assert slow > 5 * fast


def test_link_override_changes_the_result():
    base = "cluster: {preset: dgx-h100, links: [{technology: nvlink, bandwidth: 100 GB/s}]}\njobs: [{op: all_reduce, size: 1 GiB, algo: ring, proto: Simple}]"
    r = simulate(scenario(base))
    assert r.clusters[0].jobs[0].metrics()["busbw_GBps"] < 100


def test_launch_floor_spaces_repeated_small_calls():
    """A framework that issues a call every 40 us (PyTorch eager launches measured 20-55 us per call,
    validation/data/h200/extra): ten 8-byte all_reduces take 40 us each instead of their 14 us on the wire."""
    text = """
        cluster: {preset: "switch:gpus=8,bandwidth=50GB/s,latency=500ns", cost_model: {launch_floor: 40 us}}
        jobs: [{op: all_reduce, size: 8, algo: ring, repeat: 10}]
    """
    job = simulate(scenario(text)).clusters[0].jobs[0]
    assert job.mean_time_s == pytest.approx(40e-6, rel=1e-9)
    free = simulate(scenario(text.replace(", cost_model: {launch_floor: 40 us}", ""))).clusters[0].jobs[0]
    assert free.mean_time_s == pytest.approx(2 * 7 * 1e-6 + 2 * 7 / 8 * 8 / 50e9, rel=1e-9)


def test_nccl_graph_in_the_scenario_sets_what_the_tuner_sees():
    """cost_model graph_channels/graph_bw give NCCL's tuner the ring graph a real NCCL logged: on a 2-GPU dgx-h100
    a 64 KiB all_reduce stays on LL with the links' own capacity, but if NCCL found 1 channel of 1 GB/s, LL's half
    rate costs more than Simple's extra latency (7.4 us) from 8 KiB on; a half-given graph names the field."""
    def choice(cost):
        text = f"cluster: {{preset: 'dgx-h100:gpus=2', cost_model: {cost}}}\njobs: [{{op: all_reduce, size: 64 KiB}}]"
        return simulate(scenario(text)).clusters[0].jobs[0].metrics()["proto"]
    assert choice("{}") == "LL"
    assert choice("{graph_channels: 1, graph_bw: 1 GB/s}") == "Simple"
    with pytest.raises(GpusimError) as e:
        choice("{graph_channels: 1}")
    assert e.value.path == "cluster.cost_model.graph_channels"


def test_duration_limit_reports_timeout():
    r = simulate(scenario("""
        cluster: switch:gpus=4,bandwidth=1GB/s,latency=1us
        jobs: [{op: all_reduce, size: 1 GiB}]
        run: {duration_limit: 1 ms}
    """))
    assert r.clusters[0].jobs[0].status == "timeout"


@pytest.mark.parametrize("text,path,fragment", [
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 GiB, rank: all}]", "jobs[0].rank", "did you mean 'ranks'"),
    ("cluster: dgx-h10\njobs: [{op: all_reduce, size: 1 GiB}]", "cluster", "did you mean 'dgx-h100'"),
    ("cluster: switch:gpus=-2\njobs: [{op: all_reduce, size: 1 GiB}]", "cluster.gpus", "positive integer"),
    ("cluster: switch\njobs: [{op: all_reduce, size: 12}]", None, None),
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 GX}]", "jobs[0].size", "unknown size unit"),
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 GiB, ranks: [0, 99]}]", "jobs[0].ranks", "outside 0..7"),
    ("cluster: switch\njobs: [{op: allreduce_x, size: 1 GiB}]", "jobs[0].op", "unknown"),
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 GiB, after: nope}]", "jobs[0].after", "earlier job"),
    ("cluster: switch\njobs: []", "jobs", "non-empty"),
    ("clusters: {a: switch}\ncluster: switch\njobs: [{op: all_reduce, size: 1}]", "cluster", "exactly one"),
    ("cluster: {preset: switch, links: [{technology: nvlink, bandwidth: 1 GB/s}]}\njobs: [{op: all_reduce, size: 1 MiB}]",
     "cluster.links[0]", "matches no link"),
    ("cluster: switch\njobs: [{type: transfer, src: 0, dst: 0, size: 1 MiB}]", "jobs[0].dst", "two different"),
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB}]\nrun: {duration: 1 s}", "run.duration", "did you mean"),
])
def test_user_errors_name_the_field(text, path, fragment):
    if path is None:  # a bare number of bytes is documented as bytes: no error
        simulate(scenario(text))
        return
    with pytest.raises(GpusimError) as err:
        simulate(scenario(text))
    assert err.value.path == path
    assert fragment in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(GpusimError, match="not found"):
        schema.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobs: [unclosed\n")
    with pytest.raises(GpusimError, match="not valid YAML at line"):
        schema.load(bad)
