"""Inputs a fuzzer found accepted with a wrong answer, a traceback or a hang: each is now an error naming the field."""
import textwrap

import pytest
import yaml

from gpusim.errors import GpusimError
from gpusim.scenario import schema
from gpusim.simulate import simulate

AR = "jobs: [{op: all_reduce, size: 1 MiB}]"


def scenario(text: str):
    return schema.parse(yaml.safe_load(textwrap.dedent(text)))


def error(text: str, run: bool = False) -> GpusimError:
    with pytest.raises(GpusimError) as err:
        s = scenario(text)
        if run:
            simulate(s)
    return err.value


def load_error(tmp_path, data) -> GpusimError:
    f = tmp_path / "s.yaml"
    f.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(GpusimError) as err:
        schema.load(f)
    return err.value


@pytest.mark.parametrize("key", ["technology", "kind"])
def test_a_link_override_naming_null_links_is_refused(key):
    """`technology: null` matched every link: all of them turned 1 GB/s."""
    e = error(f"cluster: {{preset: dgx-h100-cluster, links: [{{{key}: null, bandwidth: 1 GB/s}}]}}\n{AR}")
    assert e.path == f"cluster.links[0].{key}" and "expected a string" in e.message


@pytest.mark.parametrize("text,path", [
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, size: 2 MiB}]", "jobs[0].size"),
    (f"cluster: switch\ncluster: dgx-h100\n{AR}", "cluster"),
    (f"clusters:\n  a: switch\n  a: dgx-h100\n{AR}", "clusters.a"),
])
def test_a_key_given_twice_is_refused(tmp_path, text, path):
    """YAML kept the last of two equal keys without a word."""
    e = load_error(tmp_path, text)
    assert e.path == path and "given twice" in e.message


def test_a_merge_key_may_still_be_overridden_and_schedules_refuse_repeats_too(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("description: {base: &b {op: all_reduce, size: 1 MiB}}\ncluster: switch\n"
                 "jobs: [{<<: *b, size: 2 MiB}]\n")
    assert schema.load(f).jobs[0].raw["size_bytes"] == 2 * 2**20
    from gpusim.links import weather as wx
    with pytest.raises(GpusimError) as err:
        wx.weather_schedule_from_yaml("- {time: 0 s, visibility: 5 km, visibility: 1 km}")
    assert err.value.path == "weather.schedule[0].visibility"


@pytest.mark.parametrize("text,path", [
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, start: 1e15 s}]", "jobs[0].start"),  # ran in 0 ns
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, gap: 1e15 s, repeat: 3}]", "jobs[0].gap"),
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, gap: 1e308 s, repeat: 3}]", "jobs[0].gap"),
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, gap: 1 h, repeat: 3000}]", "jobs[0].gap"),
    (f"cluster: switch\n{AR}\nrun: {{duration_limit: 1e8 s}}", "run.duration_limit"),
    (f"cluster: fso-sites\n{AR}\nweather: {{markov: {{duration: 1e300 s}}}}", "weather.markov.duration"),  # hung
    (f"cluster: fso-sites\n{AR}\nweather: {{schedule: [{{time: 0 s, visibility: 1 km}}, "
     "{time: 1e9 s, visibility: 2 km}]}", "weather.schedule[1].time"),
    ("cluster: 'switch:gpus=2,bandwidth=10MB/s'\njobs: [{type: transfer, src: 0, dst: 1, size: 1 PiB}]",
     "run.duration_limit"),                                               # 1e8 s: the clock passes 1e7 s
])
def test_times_past_the_simulators_resolution_are_refused(text, path):
    e = error(text, run=True)
    assert e.path == path and "1e+07 s" in e.message


@pytest.mark.parametrize("link,path", [("bandwidth: 1e-300 B/s", "bandwidth"), ("bandwidth: 1e30 B/s", "bandwidth"),
                                       ("efficiency: 1e-300", "efficiency")])
def test_a_link_override_beyond_any_link_is_refused_at_its_field(link, path):
    """A rate of 1e-300 B/s ran the clock to 1e+300 s; it is named where it was written."""
    e = error(f"cluster: {{preset: dgx-h100-cluster, links: [{{technology: roce, {link}}}]}}\n{AR}", run=True)
    assert e.path == f"cluster.links[0].{path}" and "expected a" in e.message


def test_a_job_near_the_time_bound_still_times_to_nanoseconds():
    """Near 1e7 s float seconds still resolve ~2 ns: a 51 us all_reduce keeps its time to 1e-3."""
    text = "cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, start: START}]"
    at0, late = (simulate(scenario(text.replace("START", s))).clusters[0].jobs[0] for s in ("0 s", "9.9e6 s"))
    assert late.start_s == 9.9e6 and late.mean_time_s == pytest.approx(at0.mean_time_s, rel=1e-3)


@pytest.mark.parametrize("text,path", [
    (f"cluster: switch\n{AR}\nrun: 0", "run"),
    (f"cluster: switch\n{AR}\nrun: []", "run"),
    (f"cluster: switch\n{AR}\nrun: ''", "run"),
    (f"cluster: {{preset: switch, params: []}}\n{AR}", "cluster.params"),
    (f"cluster: {{preset: switch, params: 0}}\n{AR}", "cluster.params"),
    (f"cluster: {{preset: switch, links: 0}}\n{AR}", "cluster.links"),
    (f"cluster: {{preset: switch, links: {{}}}}\n{AR}", "cluster.links"),
    (f"cluster: {{preset: switch, cost_model: []}}\n{AR}", "cluster.cost_model"),
    (f"cluster: fso-sites\n{AR}\nweather: {{optics: [], constant: {{visibility: 1 km}}}}", "weather.optics"),
])
def test_a_falsy_value_of_the_wrong_type_is_refused(text, path):
    """`x or {}` read 0, [] and '' as 'not given'; null still is (a key left empty)."""
    e = error(text, run=True)
    assert e.path == path and "expected a" in e.message


def test_null_still_means_not_given():
    for text in (f"cluster: switch\n{AR}\nrun:", f"cluster: {{preset: switch, params: , links: , cost_model: }}\n{AR}",
                 f"cluster: fso-sites\n{AR}\nweather: {{optics: null, constant: {{visibility: 1 km}}}}"):
        assert simulate(scenario(text)).clusters[0].jobs[0].status == "done"


def test_a_range_with_non_ascii_digits_is_a_field_error():
    """'²'.isdigit() is True, then int('²') raised ValueError."""
    e = error("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, ranks: '²-3'}]")
    assert e.path == "jobs[0].ranks" and "a range such as '0-7'" in e.message


@pytest.mark.parametrize("data", ["description: caf\xe9\n".encode("latin-1"), "cluster: switch\n".encode("utf-16"),
                                  b"\x00\x01\xff\xfe"])
def test_a_scenario_that_is_not_utf8_is_refused(tmp_path, data):
    e = load_error(tmp_path, data + f"cluster: switch\n{AR}\n".encode())
    assert "s.yaml' is not UTF-8 text" in e.message


def test_a_utf8_bom_is_fine_and_a_latin1_weather_csv_is_refused(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_bytes(f"\ufeffcluster: fso-sites\n{AR}\nweather: {{csv: w.csv}}\n".encode())
    (tmp_path / "w.csv").write_bytes("time (s), visibility (m)\n0, 1000\n".encode())
    assert schema.load(f).weather_csv_text.startswith("time")
    (tmp_path / "w.csv").write_bytes("time (s), visibility (m)\n0, 1000 # café\n".encode("latin-1"))
    with pytest.raises(GpusimError) as err:
        schema.load(f)
    assert err.value.path == "weather.csv" and "is not UTF-8 text" in err.value.message


def laughs(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "description:\n" + "".join(f"  {line}\n" for line in lines)


@pytest.mark.parametrize("text,path,fragment", [
    (laughs(9), "", "expand the document by 1234567880 nodes"),           # MemoryError writing results.json
    ("description: &d [*d]\n", "description[0]", "recursive alias"),      # ValueError: Circular reference
    ("description: " + "[" * 5000 + "]" * 5000 + "\n", "", "nested deeper than 64 levels"),    # RecursionError
    ("description: &a " + "[" * 60 + "1" + "]" * 60 + "\nx: [[[[[*a]]]]]\n", "x[0][0][0][0][0]",
     "once aliases are expanded"),
    ("seed: " + "9" * 5000 + "\n", "seed", "5000 digits"),                # ValueError: int digits limit
    ("description: {2001-01-01: x}\n", "description.2001-01-01", "a key must be text"),   # TypeError in json
])
def test_yaml_structure_attacks_are_refused_when_loaded(tmp_path, text, path, fragment):
    e = load_error(tmp_path, text + f"cluster: switch\n{AR}\n")
    assert e.path == path and fragment in e.message


def test_a_few_aliases_and_deep_real_nesting_still_load(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(laughs(5) + "cluster: {preset: h200-nvlink, cost_model: {ring_channel: {Simple: {all_reduce: "
                             f"10 GB/s}}}}}}}}\n{AR}\n")
    assert schema.load(f).source["description"]["a4"][0][0][0][0][0] == "lol"


@pytest.mark.parametrize("weather,path", [
    ("{links: [[1]], schedule: [{time: 0 s, visibility: 10 km}]}", "weather.links[0]"),
    ("{markov: {duration: 1 h, start: [a]}}", "weather.markov.start"),
])
def test_unhashable_weather_values_are_field_errors(weather, path):
    """They raised TypeError: unhashable type: 'list'."""
    e = error(f"cluster: fso-sites\n{AR}\nweather: {weather}", run=True)
    assert e.path == path


def test_a_traffic_job_of_too_many_flows_is_refused_before_it_runs():
    """all_pairs on 2000 GPUs (4 M flows) ran for minutes in GBs."""
    e = error("cluster: switch:gpus=1001\njobs: [{type: traffic, pattern: all_pairs, size: 1 MiB}]", run=True)
    assert e.path == "jobs[0].ranks" and "makes 1001000 flows" in e.message and "at most 1000000" in e.message
    r = simulate(scenario("cluster: switch:gpus=1001\njobs: [{type: traffic, pattern: shift, size: 1 MiB}]"))
    assert r.clusters[0].jobs[0].status == "done"


@pytest.mark.parametrize("text,path,fragment", [
    ("cluster: switch\njobs: [{op: all_reduce, size: 1 MiB, algo: nvls}]", "jobs[0].algo", "nvls"),
    ("clusters: {a: dgx-h100, b: switch}\njobs: [{op: all_reduce, size: 1 MiB, algo: nvls}]", "jobs[0].algo",
     "(on clusters.b)"),
    ("cluster: dgx-h100\njobs: [{op: all_reduce, size: 1 MiB, algo: hierarchical, proto: Simple}]", "jobs[0].algo",
     "two or more servers"),
    (f"cluster: {{preset: switch, cost_model: {{protocols: []}}}}\n{AR}", "cluster.cost_model.protocols",
     "one or more of"),                                                   # TypeError before
    (f"cluster: {{preset: pcie-2gpu, cost_model: {{protocols: [LL128]}}}}\n{AR}", "cluster.cost_model.protocols",
     "no enabled NCCL algorithm/protocol"),                              # was 'algos: ...'
    (f"cluster: {{preset: dgx-a100, cost_model: {{nvls: true}}}}\n{AR}", "cluster.cost_model.nvls", "ampere"),
])
def test_collective_errors_name_the_field_written(text, path, fragment):
    e = error(text, run=True)
    assert e.path == path and fragment in e.message


@pytest.mark.parametrize("clusters,path,fragment", [
    ("{1: switch, '1': switch}", "clusters.1", "the label '1' is given twice"),    # two columns headed '1'
    ("{null: switch}", "clusters.None", "expected a non-empty name"),              # a column headed 'None'
])
def test_cluster_labels_are_text_each_once(clusters, path, fragment):
    e = error(f"clusters: {clusters}\n{AR}")
    assert e.path == path and fragment in e.message


def test_a_job_size_past_one_pebibyte_is_refused_at_its_field():
    e = error("cluster: switch\njobs: [{op: all_reduce, size: 1e30 B}]")
    assert e.path == "jobs[0].size" and "at most 1 PiB" in e.message


def test_hierarchical_forced_on_one_server_under_the_estimate_tuner_is_a_field_error():
    """The estimate tuner left a forced hierarchical algorithm on one server out of its candidates and crashed on
    having none; the plan's own reason now reaches the job's field."""
    e = error("cluster: {preset: dgx-h100, cost_model: {tuner: estimate}}\n"
              "jobs: [{op: all_reduce, size: 1 MiB, algo: hierarchical}]", run=True)
    assert e.path == "jobs[0].algo" and "two or more servers" in e.message


@pytest.mark.parametrize("weather,path,words", [
    ("{links: [fso0, fso0], constant: {visibility: 60 m}}", "weather.links[1]", "listed twice"),
    ("{links: [], constant: {visibility: 60 m}}", "weather.links", "non-empty"),
])
def test_weather_names_each_fso_link_once_and_at_least_one(weather, path, words):
    """Two drivers on one link fought over its capacity (0 flows rerouted where one driver reroutes 16); an empty
    list put weather on no link at all."""
    e = error(f"cluster: fso-sites\n{AR}\nweather: {weather}", run=True)
    assert e.path == path and words in e.message


def test_a_link_override_latency_is_a_links_at_most_one_second():
    e = error(f"cluster: {{preset: dgx-h100, links: [{{technology: nvlink4, latency: 2 s}}]}}\n{AR}")
    assert e.path == "cluster.links[0].latency" and "0 to 1 s" in e.message


@pytest.mark.parametrize("text,path", [
    ("cluster: dgx-h100\njobs: [{op: all_reduce, size: 1 MiB, algo: nvls, proto: LL}]", "jobs[0].proto"),
    ("cluster: {preset: dgx-h100, cost_model: {protocols: [LL]}}\njobs: [{op: all_reduce, size: 1 MiB, algo: nvls}]",
     "cluster.cost_model.protocols"),
])
def test_nvls_runs_simple_only_and_says_so(text, path):
    """A forced LL with nvls ran as nvls/Simple without a word; NCCL's NVLS has Simple only (physics.md §1.5)."""
    e = error(text, run=True)
    assert e.path == path and "only the Simple protocol" in e.message


def test_weather_in_a_comparison_acts_on_the_clusters_with_fso_links():
    """Weather made any comparison with a cluster without FSO links an error; it now acts where there are FSO links
    (the other clusters run in clear sky), and is an error only when no cluster has one."""
    text = ("clusters: {fso: fso-sites, nv: 'dgx-h100-cluster:servers=2'}\n"
            "jobs: [{op: all_reduce, ranks: all, size: 64 MiB}]\nweather: {constant: {visibility: 60 m}}")
    fog, clear = simulate(scenario(text)).clusters
    assert "links" in fog.extra and not clear.extra
    assert fog.jobs[0].status == clear.jobs[0].status == "done"
    e = error("clusters: {a: 'dgx-h100-cluster:servers=2', b: 'ib-ndr-cluster:servers=2'}\n"
              f"{AR}\nweather: {{constant: {{visibility: 60 m}}}}", run=True)
    assert e.path == "weather" and "no cluster" in e.message


def test_a_transfer_rank_outside_one_of_several_clusters_names_it():
    e = error("clusters: {big: 'dgx-h100-cluster:servers=2', small: dgx-h100}\n"
              "jobs: [{type: transfer, src: 0, dst: 12, size: 1 MiB}]", run=True)
    assert e.path == "jobs[0].dst" and "of cluster 'small'" in e.message


@pytest.mark.parametrize("name", ["a\\nb", "a\\tb", "a\\0b"])
def test_names_hold_printable_characters_only(name):
    e = error(f'cluster: switch\njobs: [{{name: "{name}", op: all_reduce, size: 1 MiB}}]')
    assert e.path == "jobs[0].name" and "printable" in e.message


@pytest.mark.parametrize("key", ["call_overhead", "launch_floor", "p2p_launch"])
def test_per_call_host_times_are_at_most_a_second(key):
    """A call's overhead or issue interval of 2 s is a typo (PyTorch eager calls take 20-55 us); a scenario bounds
    them at 1 s as preset files do, naming the field, where 1e7 s per send had run the clock past its bound."""
    text = f"cluster: {{preset: 'switch:gpus=4', cost_model: {{{key}: 2 s}}}}\njobs: [{{op: all_to_all, size: 1 KiB}}]"
    with pytest.raises(GpusimError, match=f"cluster.cost_model.{key}: expected a latency from 0 to 1 s"):
        schema.parse(yaml.safe_load(text))
    schema.parse(yaml.safe_load(text.replace("2 s", "1 s")))
