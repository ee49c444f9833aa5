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


def test_p2p_launch_lengthens_grouped_calls_by_their_sends_and_receives():
    """cost_model p2p_launch adds the host's time per send and receive to the floor: an 8-rank all_to_all posts 16
    (10 + 16 x 2 = 42 us), a sendrecv 2 (14 us), an all_reduce none: it takes its 14 us on the wire, as without."""
    text = """
        cluster: {preset: "switch:gpus=8,bandwidth=50GB/s,latency=500ns",
                  cost_model: {launch_floor: 10 us, p2p_launch: 2 us}}
        jobs: [{name: a, op: all_to_all, size: 64, repeat: 3}, {name: s, op: sendrecv, size: 8, repeat: 3, start: 1 ms},
               {name: r, op: all_reduce, size: 8, algo: ring, repeat: 3, start: 2 ms}]
    """
    jobs = {j.name: j for j in simulate(scenario(text)).clusters[0].jobs}
    for name, want in (("a", 42e-6), ("s", 14e-6), ("r", 2 * 7 * 1e-6 + 2 * 7 / 8 * 8 / 50e9)):
        assert jobs[name].mean_time_s == pytest.approx(want, rel=1e-9), name
    with pytest.raises(GpusimError, match="cost_model.p2p_launch"):
        scenario(text.replace("p2p_launch: 2 us", "p2p_launch: -2 us"))


def test_straggler_spread_in_the_scenario_slows_each_call_by_its_slowest_rank():
    """cost_model straggler_cv: an 8-rank ring all_reduce of 1 GiB on 50 GB/s links moves its bytes
    1 + 0.2 * E[max of 8 normals] = 1.285 times slower; the latency term stays. Outside 0..1 it is refused."""
    from gpusim.collectives.cost_model import expected_max_normal
    text = """
        cluster: {preset: "switch:gpus=8,bandwidth=50GB/s,latency=500ns", cost_model: {straggler_cv: 0.2}}
        jobs: [{op: all_reduce, size: 1 GiB, algo: ring}]
    """
    job = simulate(scenario(text)).clusters[0].jobs[0]
    want = 2 * 7 * 1e-6 + 2 * 7 / 8 * (1 << 30) / 50e9 * (1 + 0.2 * expected_max_normal(8))
    assert job.mean_time_s == pytest.approx(want, rel=1e-9)
    for bad in ("1.5", "-0.1", "lots"):
        with pytest.raises(GpusimError, match="cost_model.straggler_cv"):
            scenario(text.replace("straggler_cv: 0.2", f"straggler_cv: {bad}"))


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


@pytest.mark.parametrize("ranks", ["[]", "[0]", '"0-0"', "5", '[3, "3-3"]'])
def test_a_collective_on_fewer_than_two_ranks_is_refused_at_parse_time(ranks):
    """Every collective needs 2 distinct ranks (the tuner, the bus bandwidth); [] crashed, [0] was named n_ranks.
    The scenario is refused while parsing, before any cluster is built."""
    with pytest.raises(GpusimError) as err:
        scenario(f"cluster: switch\njobs: [{{op: all_reduce, size: 1 MiB}}, {{op: sendrecv, size: 1 MiB, ranks: {ranks}}}]")
    assert err.value.path == "jobs[1].ranks"
    assert "at least 2 distinct ranks" in str(err.value) or "appears twice" in str(err.value)


def test_ranks_are_read_as_spans_and_out_of_range_names_the_cluster():
    """A traffic pattern on fewer than 2 ranks is no traffic (not an error); a huge range is refused without
    expanding it; the cluster whose GPUs a rank exceeds is named when one is given."""
    from gpusim.scenario import fields as F
    r = simulate(scenario("cluster: switch:gpus=4\njobs: [{type: traffic, pattern: shift, ranks: [2], size: 1 MiB}]"))
    assert r.clusters[0].jobs[0].status == "done" and r.clusters[0].jobs[0].mean_time_s == 0
    assert F.ranks([0, "2-3"], "r", 4) == [0, 2, 3]
    with pytest.raises(GpusimError, match="rank 4 is outside 0..3"):
        F.ranks(["2-99999999999999"], "r", 4)
    with pytest.raises(GpusimError, match="rank 2 appears twice"):
        F.rank_spans([0, "1-3", 2], "r")
    with pytest.raises(GpusimError, match=r"rank 2 is outside 0\.\.1 \(cluster 'c' has 2 GPUs\)"):
        F.ranks([0, 2], "jobs[0].ranks", 2, cluster="c")
    two = "clusters: {a: switch:gpus=4, c: pcie-2gpu}\njobs: [{op: all_reduce, size: 1 MiB, ranks: '0-3'}]"
    with pytest.raises(GpusimError, match=r"jobs\[0\]\.ranks: rank 2 is outside 0\.\.1 \(cluster 'c' has 2 GPUs\)"):
        simulate(scenario(two))


@pytest.mark.parametrize("job,path,accepted", [
    ("{op: all_reduce, size: 1 MiB, algo: RING}", "jobs[0].algo", "auto, hierarchical, nvls, ring, tree"),
    ("{op: all_to_all, size: 1 MiB, algo: ring}", "jobs[0].algo", "auto, direct"),
    ("{op: all_reduce, size: 1 MiB, proto: ll}", "jobs[0].proto", "LL, LL128, Simple, auto"),
    ("{op: all_reduce, size: 1 MiB, proto: 5}", "jobs[0].proto", "got 5"),
])
def test_algo_and_proto_are_checked_per_op_when_parsed(job, path, accepted):
    """They were only checked inside the run, named 'algo'/'proto' without the job."""
    with pytest.raises(GpusimError) as err:
        scenario(f"cluster: switch\njobs: [{job}]")
    assert err.value.path == path and str(err.value).endswith(accepted)


def test_every_accepted_algo_and_proto_still_parses():
    from gpusim.collectives.plans import ALGOS_FOR
    for op, algos in ALGOS_FOR.items():
        for algo in (*algos, "auto"):
            for proto in ("LL", "LL128", "Simple", "auto"):
                job = scenario(f"cluster: switch\njobs: [{{op: {op}, size: 1 MiB, algo: {algo}, proto: {proto}}}]").jobs[0]
                assert (job.raw["algo"], job.raw["proto"]) == (algo, proto)


@pytest.mark.parametrize("text,path,fragment", [
    ("run: {duration_limit: 0 s}", "run.duration_limit", "positive"),
    ("cluster: {preset: switch, cost_model: {step_latency_scale: .inf}}", "cluster.cost_model.step_latency_scale",
     "finite number"),
    ("cluster: {preset: switch, cost_model: {base_latency_scale: -.inf}}", "cluster.cost_model.base_latency_scale",
     "finite number"),
    ("cluster: {preset: dgx-h100-cluster, links: [{technology: roce, efficiency: .inf}]}",
     "cluster.links[0].efficiency", "finite number"),
    ("cluster: {preset: dgx-h100-cluster, links: [{technology: roce, bandwidth: 0 Gb/s}]}",
     "cluster.links[0].bandwidth", "expected a positive"),
    ("cluster: {preset: dgx-h100-cluster, links: roce}", "cluster.links", "expected a list"),
    ("cluster: {preset: dgx-h100-cluster, links: {technology: roce}}", "cluster.links", "expected a list"),
    ("cluster: 5", "cluster", "a preset name such as 'dgx-h100' or a mapping"),
    ("clusters: {a: [dgx-h100]}", "clusters.a", "a preset name such as 'dgx-h100' or a mapping"),
])
def test_bad_values_are_refused_when_parsed(text, path, fragment):
    """Each was accepted and then crashed, hung, or failed later under another field's name."""
    if not text.startswith("cluster"):
        text = "cluster: switch\n" + text
    with pytest.raises(GpusimError) as err:
        scenario(text + "\njobs: [{op: all_reduce, size: 1 MiB}]")
    assert err.value.path == path and fragment in str(err.value)


@pytest.mark.parametrize("jobs,path,fragment", [
    ("[{op: all_reduce, size: 1}, {name: collective0, op: all_reduce, size: 1}]", "jobs[1].name",
     "default name (<type><index>) of the unnamed jobs[0]"),
    ("[{name: collective1, op: all_reduce, size: 1}, {op: all_reduce, size: 1}]", "jobs[0].name",
     "default name (<type><index>) of the unnamed jobs[1]"),
    ("[{name: a, op: all_reduce, size: 1}, {name: a, op: all_reduce, size: 1}]", "jobs[1].name",
     "the name of jobs[0]"),
])
def test_a_duplicate_job_name_points_at_the_name_written(jobs, path, fragment):
    with pytest.raises(GpusimError) as err:
        scenario(f"cluster: switch\njobs: {jobs}")
    assert err.value.path == path and fragment in str(err.value)


@pytest.mark.parametrize("name", ["<tmp>/abs", "../x", "a/b", "a\\\\b", ".", ".."])
def test_a_scenario_name_that_is_no_plain_folder_name_is_refused_as_the_output_folder(tmp_path, monkeypatch, capsys,
                                                                                      name):
    """gpusim run writes to out/<name> without -o: '../x' or '/tmp/x' wrote outside out/. Such a name is refused
    there, before the run, naming the field; with -o it is only a label and runs."""
    from gpusim.cli import main
    monkeypatch.chdir(tmp_path)
    name = name.replace("<tmp>", str(tmp_path))
    f = tmp_path / "s.yaml"
    f.write_text(f"name: {name}\ncluster: switch:gpus=2\njobs: [{{op: all_reduce, size: 1 KiB}}]\n")
    assert main(["run", str(f), "--no-figures"]) == 2
    assert capsys.readouterr().err.startswith("gpusim run: error: name: ")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.yaml"]
    assert main(["run", str(f), "--no-figures", "-o", "mine"]) == 0
    assert (tmp_path / "mine" / "results.json").is_file()


def test_cli_refuses_a_negative_seed(tmp_path, capsys):
    """--seed -1 reached numpy (ValueError); it is refused as the scenario's seed field is, naming --seed."""
    from gpusim.cli import main
    f = tmp_path / "s.yaml"
    f.write_text("cluster: switch:gpus=2\njobs: [{op: all_reduce, size: 1 KiB}]\n")
    assert main(["run", str(f), "-o", str(tmp_path / "out"), "--no-figures", "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seed: expected an integer in 0.., got -1" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cluster,path", [
    ("{preset: fso-sites, params: {fso_rate: 0 Gb/s}}", "cluster.params.fso_rate"),   # stalled the network before
    ("{preset: dgx-h100-cluster, params: {nic_rate: 0 Gb/s}}", "cluster.params.nic_rate"),
    ("'switch:bandwidth=0GB/s'", "cluster.bandwidth"),
    ("{preset: dgx-h100-cluster, params: {srvers: 2}}", "cluster.params.srvers"),
])
def test_preset_parameters_are_checked_at_the_field_written(cluster, path):
    with pytest.raises(GpusimError) as e:
        simulate(scenario(f"cluster: {cluster}\njobs: [{{op: sendrecv, size: 1 MiB}}]"))
    assert e.value.path == path


def test_numbers_yaml_reads_as_text_are_read_and_repeated_or_empty_names_refused():
    """PyYAML reads 1e6 (no decimal point) as the string '1e6': it is the number it spells. A preset parameter given
    twice in a spec, and an empty job name, are errors rather than one silently winning."""
    s = scenario("cluster: {preset: switch, cost_model: {call_overhead: 1 us, step_latency_scale: 1e6}}\n"
                 "jobs: [{op: all_reduce, size: 1 MiB}]")
    assert s.clusters[0].cost_model["step_latency_scale"] == 1e6
    with pytest.raises(GpusimError, match="cluster.gpus: given twice in 'switch:gpus=4,gpus=8'"):
        simulate(scenario("cluster: 'switch:gpus=4,gpus=8'\njobs: [{op: all_reduce, size: 1 MiB}]"))
    with pytest.raises(GpusimError, match=r"jobs\[0\]\.name: expected a non-empty name"):
        scenario("cluster: switch\njobs: [{name: '', op: all_reduce, size: 1 MiB}]")


@pytest.mark.parametrize("name", ["null", "''", "[a, b]", "true"])
def test_a_scenario_name_that_is_no_name_is_refused(name):
    """``name: null`` ran as a scenario called 'None' (and wrote out/None/); a list ran as '[a, b]'."""
    with pytest.raises(GpusimError, match=r"^name: expected a non-empty name"):
        scenario(f"name: {name}\ncluster: switch\njobs: [{{op: all_reduce, size: 1 MiB}}]")
    assert scenario("name: 7\ncluster: switch\njobs: [{op: all_reduce, size: 1 MiB}]").name == "7"


def test_a_latency_scale_beyond_any_network_is_refused_at_its_field():
    """1e300 x NCCL's microsecond latencies is a typo, not a network (the run reported it as given)."""
    with pytest.raises(GpusimError, match=r"cluster\.cost_model\.step_latency_scale: expected a number from 0 to 1e\+06"):
        simulate(scenario("cluster: {preset: switch, cost_model: {step_latency_scale: 1.0e+300}}\n"
                          "jobs: [{op: all_reduce, size: 1 MiB}]"))
    assert simulate(scenario("cluster: {preset: switch, cost_model: {step_latency_scale: 1.0e+6}}\n"
                             "jobs: [{op: all_reduce, size: 1 MiB}]")).clusters[0].jobs[0].status == "done"


def test_ring_channel_override_sets_named_operations_and_keeps_the_presets_others():
    """cost_model.ring_channel: one Simple ring channel's rate per operation; the preset's other operations keep
    theirs. One channel of an h200-nvlink all_reduce then runs at the given rate."""
    from gpusim.simulate import build_cluster
    text = ("cluster: {preset: h200-nvlink, cost_model: {ring_channel: {Simple: {all_reduce: 10 GB/s}}, channels: 1}}\n"
            "jobs: [{op: all_reduce, size: 1 GiB, algo: ring, proto: Simple}]")
    s = scenario(text)
    assert s.clusters[0].cost_model["ring_channel_Bps"] == {"Simple": {"all_reduce": 10e9}}
    _, model = build_cluster(s.clusters[0])
    simple = model.ring_channel_Bps["Simple"]
    assert simple["all_reduce"] == 10e9 and simple["broadcast"] == 35.3e9
    assert model.ring_channel_Bps["LL"] == {"all_reduce": 7.2e9}
    job = simulate(s).clusters[0].jobs[0]
    assert job.metrics()["busbw_GBps"] == pytest.approx(10.0, rel=0.01)      # one channel, 4 ranks
    with pytest.raises(GpusimError) as e:
        scenario(text.replace("all_reduce: 10", "all_to_all: 10"))
    assert e.value.path == "cluster.cost_model.ring_channel.Simple.all_to_all"
    with pytest.raises(GpusimError) as e:
        scenario(text.replace("10 GB/s", "0 GB/s"))
    assert e.value.path == "cluster.cost_model.ring_channel.Simple.all_reduce"
    with pytest.raises(GpusimError) as e:
        scenario(text.replace("Simple:", "Simpel:"))
    assert e.value.path == "cluster.cost_model.ring_channel.Simpel"


def test_a_collective_job_on_a_calibrated_preset_carries_its_measured_error():
    """results.json: a collective job on a calibrated preset carries the preset's error on measured calls like it
    (op, forced variant, ranks, size band, from the preset's provenance); 'not measured' for a channel count the data
    never held; nothing on a stock preset."""
    from gpusim import presets
    from gpusim.calibration.preset_file import measured_error, read
    s = scenario("clusters: {nv: h200-nvlink, stock: 'hgx-h200:gpus=4'}\n"
                 "jobs: [{name: big, op: all_reduce, size: 256 MiB, ranks: '0-3'},\n"
                 "       {name: forced, op: all_reduce, size: 4 MiB, algo: tree, proto: LL128, ranks: '0-3'},\n"
                 "       {name: eight, op: broadcast, size: 1 MiB, ranks: '0-1', channels: 8}]")
    nv, stock = simulate(s).clusters
    prov = read(presets.calibrated()["h200-nvlink"]).provenance
    got = {j.name: j.metrics().get("measured_error") for j in nv.jobs}
    want_big = measured_error(prov, "all_reduce", "default", 4)[">=1MiB"]
    want_forced = measured_error(prov, "all_reduce", "Tree/LL128", 4)[">=1MiB"]
    assert got["big"] == {k: want_big[k] for k in ("median", "p90", "bias", "rows")}
    assert got["forced"]["median"] == want_forced["median"] != got["big"]["median"]
    assert got["eight"] == "not measured"
    assert all("measured_error" not in j.metrics() for j in stock.jobs)


def test_the_example_in_docs_scenarios_runs():
    """The short-version scenario at the top of docs/scenarios.md parses and runs, as written, on both its clusters
    (its weather line is a comment: neither cluster has an FSO link)."""
    from pathlib import Path
    text = (Path(__file__).parents[2] / "docs" / "scenarios.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    r = simulate(scenario(block))
    assert [c.label for c in r.clusters] == ["ib", "roce"]
    for c in r.clusters:
        assert {j.name: j.status for j in c.jobs} == {"ar": "done", "copy": "done", "shuffle": "done"}
