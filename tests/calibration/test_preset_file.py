"""Calibrated preset files: they round-trip, build the topology with the fitted links, take gpus=N from a spec,
and every mistake in one names the file and the field."""
import copy

import pytest
import yaml

from gpusim import presets
from gpusim.calibration import preset_file, transports
from gpusim.errors import GpusimError
from gpusim.topology.graph import capacity_Bps, gpus

VALUES = {"step_latency_scale.LL": 1.25, "base_latency_scale.Simple": 0.5, "nvlink4.efficiency": 0.66,
          "payload_efficiency.LL": 0.4, "op_bandwidth_scale.sendrecv": 0.9, "p2p_channel_Bps": 19.5e9}
OWN = transports.TRANSPORTS["nvlink"].own_chunk      # fixed from measured copies, written with the fitted values


@pytest.fixture
def nvlink_file(tmp_path):
    preset = transports.TRANSPORTS["nvlink"].calibrated(VALUES, ("LL", "Simple"), {"fit_date": "2025-01-01",
                                                                              "heldout": {"median_rel_error": 0.07}})
    return preset_file.write(preset, tmp_path / "my-h200.yaml")


def _doc(path):
    return yaml.safe_load(path.read_text())


def test_round_trip_keeps_every_fitted_value(nvlink_file):
    p = preset_file.read(nvlink_file)
    assert p.name == "my-h200"
    assert p.links == {"nvlink4": {"efficiency": pytest.approx(0.66)}}
    assert p.model["step_latency_scale"] == {"LL": pytest.approx(1.25), "LL128": 1.0, "Simple": 1.0}
    assert p.model["base_latency_scale"]["Simple"] == pytest.approx(0.5)
    assert p.model["op_bandwidth_scale"]["sendrecv"] == pytest.approx(0.9)
    assert p.model["own_chunk_Bps"] == pytest.approx(OWN, rel=1e-5) and set(OWN) == {"all_reduce", "all_gather",
                                                                            "reduce_scatter", "all_to_all"}
    assert p.model["payload_efficiency"] == {"LL": pytest.approx(0.4), "LL128": 0.9375, "Simple": 1.0}
    assert p.model["allowed_protocols"] == ("LL", "Simple")
    assert (p.gpus_default, p.gpus_min, p.gpus_max) == (4, 2, 8)
    assert _doc(nvlink_file)["cost_model"]["own_chunk"]["all_reduce"] == "2110 GB/s"
    assert (p.model["p2p_channels"], p.model["p2p_channels_per_peer"], p.model["p2p_chunk_bytes"]) == \
        (32, 32, 512 * 1024)
    assert p.model["p2p_channel_Bps"] == pytest.approx(19.5e9)
    assert _doc(nvlink_file)["cost_model"]["p2p_chunk"] == "512 KiB"
    assert (p.model["graph_channels"], p.model["graph_bw_Bps"]) == (12, 30e9)       # NCCL's logged ring graph
    assert _doc(nvlink_file)["cost_model"]["graph_bw"] == "30 GB/s"
    ring = transports.TRANSPORTS["nvlink"].ring_channel     # fixed from the 1-channel probe, written alongside
    assert {k: pytest.approx(v, rel=1e-5) for k, v in ring.items()} == p.model["ring_channel_Bps"]
    assert ring["Simple"]["all_reduce"] == 20.9e9 and ring["LL"] == {"all_reduce": 7.2e9}
    assert _doc(nvlink_file)["cost_model"]["ring_channel"]["Simple"]["broadcast"] == "35.3 GB/s"


def test_the_socket_preset_carries_its_fitted_straggler_spread(tmp_path):
    """A fitted rate spread is written beside the other cost-model terms and read back into the model."""
    preset = transports.TRANSPORTS["socket"].calibrated({"straggler_cv": 0.146, "gpu_io.bandwidth_Bps": 6.2e9})
    path = preset_file.write(preset, tmp_path / "sock.yaml")
    assert _doc(path)["cost_model"]["straggler_cv"] == 0.146
    c = preset_file.load_calibrated(path, {"gpus": "4"}, "cluster")
    assert c.model.straggler_cv == 0.146 and c.model.straggler_factor(4) == pytest.approx(1 + 0.146 * 1.02938,
                                                                                          rel=1e-5)
    assert presets.build("h200-nvlink").model.straggler_cv == 0.0          # GPU-driven transports fitted none


def test_load_builds_the_fitted_topology_and_model(nvlink_file):
    c = preset_file.load_calibrated(nvlink_file, {"gpus": "2"}, "cluster")
    assert len(gpus(c.graph)) == 2
    nv = [capacity_Bps(d) for _, _, d in c.graph.edges(data=True) if d["technology"] == "nvlink4"]
    assert nv and all(cap == pytest.approx(18 * 25e9 * 0.66) for cap in nv)
    assert c.model.channels == 24 and c.model.step_scale("LL") == pytest.approx(1.25)
    assert c.model.step_scale("Simple") == 1.0
    assert c.model.efficiency("LL") == pytest.approx(0.4)
    assert c.model.efficiency("Simple", "sendrecv") == pytest.approx(0.9)
    assert c.model.own_chunk_rate("all_gather") == pytest.approx(OWN["all_gather"])
    assert c.model.allowed_protocols == ("LL", "Simple")
    assert c.spec == "my-h200:gpus=2" and c.params == {"gpus": 2}
    assert len(gpus(preset_file.load_calibrated(nvlink_file, {}, "cluster").graph)) == 4


@pytest.mark.parametrize("params, path, words", [
    ({"gpu": "4"}, "cluster.gpu", "did you mean 'gpus'"),
    ({"gpus": "16"}, "cluster.gpus", "calibrated for 2..8 GPUs"),
    ({"gpus": "four"}, "cluster.gpus", "expected an integer"),
])
def test_spec_parameters_are_checked(nvlink_file, params, path, words):
    with pytest.raises(GpusimError, match=words) as e:
        preset_file.load_calibrated(nvlink_file, params, "cluster")
    assert e.value.path == path


def _set(doc, dotted, value):
    *head, last = dotted.split(".")
    for k in head:
        doc = doc[k]
    if value is KeyError:
        del doc[last]
    else:
        doc[last] = value


@pytest.mark.parametrize("field, value, path, words", [
    ("links.nvlink4.efficiency", 1.5, "links.nvlink4.efficiency", "from 0.001 to 1"),
    ("links.nvlink4.bandwith", "300 GB/s", "links.nvlink4.bandwith", "did you mean 'bandwidth'"),
    ("links.pcie4", {"efficiency": 0.5}, "links.pcie4", "no link of technology 'pcie4'"),
    ("links.nvlink9", {"efficiency": 0.5}, "links.nvlink9", "unknown link technology"),
    ("cost_model.call_overhead_per_rank", 21, "cost_model.call_overhead_per_rank", "missing unit"),
    ("cost_model.payload_efficiency", {"LL": 0}, "cost_model.payload_efficiency.LL", "from 0.001 to 1"),
    ("links.nvlink4.up", "no", "links.nvlink4.up", "true or false"),
    # bounds that keep every simulated flow finite: a subnormal efficiency made flows of infinite size
    ("cost_model.payload_efficiency", {"LL": 1e-320}, "cost_model.payload_efficiency.LL", "from 0.001 to 1"),
    ("cost_model.op_bandwidth_scale", {"sendrecv": 1e-320}, "cost_model.op_bandwidth_scale.sendrecv",
     "from 0.001 to 1000"),
    ("cost_model.launch_floor", "1e300 s", "cost_model.launch_floor", "from 0 to 1 s"),
    ("cost_model.straggler_cv", 2, "cost_model.straggler_cv", "from 0 to 1"),
    ("cost_model.straggler_cv", "0.1", "cost_model.straggler_cv", "from 0 to 1"),
    ("links.nvlink4.latency", "2 s", "links.nvlink4.latency", "from 0 to 1 s"),
    ("cost_model.p2p_channel", "1e-300 B/s", "cost_model.p2p_channel", "from 1 MB/s to 10 PB/s"),
    ("links.nvlink4.bandwidth", "1e30 GB/s", "links.nvlink4.bandwidth", "from 1 MB/s to 10 PB/s"),
    ("cost_model.ring_channel", {"LL": {"all_reduce": "1e-300 GB/s"}}, "cost_model.ring_channel.LL.all_reduce",
     "from 1 MB/s"),
    ("cost_model.p2p_chunk", "1e300 B", "cost_model.p2p_chunk", "from 1 KiB to 1 GiB"),
    # the provenance parts commands read (errors: quoted beside a prediction; data, heldout: gpusim presets)
    ("provenance.errors", 5, "provenance.errors", "expected a list of entries with op, variant, ranks"),
    ("provenance.errors", "x", "provenance.errors", "expected a list"),
    ("provenance.errors", [None], "provenance.errors[0]", "expected a mapping"),
    ("provenance.errors", [{"op": "all_reduce", "variant": "default", "band": "<1MiB", "rows": 3, "median": 0.1,
                            "p90": 0.2, "bias": 0.0}], "provenance.errors[0].ranks", "missing"),
    ("provenance.errors", [{"op": "all_reduce", "variant": "default", "ranks": 2, "band": "<1MiB", "rows": 3,
                            "p90": 0.2, "bias": 0.0}], "provenance.errors[0].median", "missing"),
    ("provenance.errors", [{"op": "all_reduce", "variant": "default", "ranks": "2", "band": "<1MiB", "rows": 3,
                            "median": 0.1, "p90": 0.2, "bias": 0.0}], "provenance.errors[0].ranks", "integer >= 1"),
    ("provenance.errors", [{"op": "all_reduce", "variant": "default", "ranks": 2, "band": "all", "rows": 3,
                            "median": 0.1, "p90": 0.2, "bias": 0.0}], "provenance.errors[0].band", ">=1MiB"),
    ("provenance.errors", [{"op": "all_reduce", "variant": "default", "ranks": 2, "band": "<1MiB", "rows": 3,
                            "median": "10 %", "p90": 0.2, "bias": 0.0}], "provenance.errors[0].median", "non-negative"),
    ("provenance.data", 5, "provenance.data", "list of measurement files"),
    ("provenance.heldout", 5, "provenance.heldout", "expected a mapping"),
    ("cost_model.call_overhed_per_rank", "2 us", "cost_model.call_overhed_per_rank",
     "did you mean 'call_overhead_per_rank'"),
    ("cost_model.channels", 100, "cost_model.channels", "1..64"),
    ("cost_model.step_latency_scale", {"LL129": 1.0}, "cost_model.step_latency_scale.LL129", "unknown protocol"),
    ("cost_model.base_latency_scale", -1, "cost_model.base_latency_scale", "non-negative"),
    ("cost_model.op_bandwidth_scale", {"allreduce": 0.9}, "cost_model.op_bandwidth_scale.allreduce",
     "did you mean 'all_reduce'"),
    ("cost_model.op_bandwidth_scale", {"broadcast": 0}, "cost_model.op_bandwidth_scale.broadcast",
     "from 0.001 to 1000"),
    ("cost_model.own_chunk", {"all_gather": "0 GB/s"}, "cost_model.own_chunk.all_gather",
     "positive|zero|non-zero|greater"),
    ("cost_model.own_chunk", {"broadcast": "1 TB/s"}, "cost_model.own_chunk.broadcast", "unknown operation"),
    ("cost_model.own_chunk", "1 TB/s", "cost_model.own_chunk", "expected a mapping"),
    ("cost_model.ring_channel", {"Simple": {"all_to_all": "20 GB/s"}}, "cost_model.ring_channel.Simple.all_to_all",
     "unknown operation"),
    ("cost_model.ring_channel", {"LL": {"broadcast": "0 GB/s"}}, "cost_model.ring_channel.LL.broadcast",
     "positive|zero|non-zero|greater"),
    ("cost_model.ring_channel", {"all_reduce": "20 GB/s"}, "cost_model.ring_channel.all_reduce", "unknown protocol"),
    ("cost_model.p2p_chunk", "100 B", "cost_model.p2p_chunk", "from 1 KiB to 1 GiB"),
    ("cost_model.p2p_channels", 0, "cost_model.p2p_channels", "1..64"),
    ("cost_model.p2p_channel", "19 GB", "cost_model.p2p_channel", "bandwidth|unit"),
    ("cost_model.launch_floor", "-3 us", "cost_model.launch_floor", "non-negative finite time"),
    ("cost_model.allowed_protocols", ["LL", "LL256"], "cost_model.allowed_protocols[1]", "unknown protocol"),
    ("cost_model.graph_channels", 0, "cost_model.graph_channels", "1..64"),
    ("cost_model.graph_bw", "30 GB", "cost_model.graph_bw", "unit"),
    ("cost_model.graph_bw", KeyError, "cost_model.graph_channels", "both graph_channels and graph_bw"),
    ("topology.builder", "nvswich_server", "topology.builder", "did you mean 'nvswitch_server'"),
    ("topology.arguments.nvlinkss", 18, "topology.arguments.nvlinkss", "did you mean 'nvlinks'"),
    ("topology.arguments.gpus", 4, "topology.arguments.gpus", "set by gpus.default"),
    ("gpus.default", 12, "gpus.default", "2..8"),
    ("format", "gpusim-calibrated-preset/9", "format", "expected 'gpusim-calibrated-preset/1'"),
    ("format", KeyError, "format", "not a calibrated preset"),
    ("cost_model", KeyError, "cost_model", "missing"),
    ("colour", "blue", "colour", "unknown top-level key"),
])
def test_yaml_errors_name_the_file_and_field(nvlink_file, tmp_path, field, value, path, words):
    doc = copy.deepcopy(_doc(nvlink_file))
    _set(doc, field, value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(GpusimError, match=words) as e:
        preset_file.read(bad)
    assert e.value.path == f"bad.yaml:{path}"


def test_unreadable_yaml_names_the_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("format: gpusim-calibrated-preset/1\ntopology: [unclosed\n")
    with pytest.raises(GpusimError, match="not valid YAML at line") as e:
        preset_file.read(bad)
    assert e.value.path.endswith("broken.yaml")


def test_a_preset_file_that_is_not_utf8_names_the_file(nvlink_file, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(nvlink_file.read_text().replace("description: ", "description: café ").encode("latin-1"))
    with pytest.raises(GpusimError, match="not UTF-8 text .*0xe9.*YAML file in UTF-8") as e:
        preset_file.read(bad)
    assert e.value.path == str(bad)


@pytest.mark.parametrize("edge", ["low", "high"])
def test_a_preset_at_the_edges_of_every_bound_simulates(nvlink_file, tmp_path, edge):
    """Every number at the end of its accepted range (efficiencies 0.001 or 1, rates 1 MB/s or 10 PB/s, times 0 or
    1 s, latency scales 0 or 10^6): each operation still takes a positive finite time on 8 ranks, up to 1 PiB."""
    import math
    from gpusim.collectives.run import measure
    from gpusim.engine.fabric import Fabric
    low = edge == "low"
    doc = _doc(nvlink_file)
    cm = doc["cost_model"]
    eff, rate, t = (1e-3, "1 MB/s", "0 s") if low else (1.0, "10 PB/s", "1 s")
    cm.update(payload_efficiency={p: eff for p in ("LL", "LL128", "Simple")},
              op_bandwidth_scale={op: 1e-3 if low else 1e3 for op in ("all_gather", "broadcast", "sendrecv")},
              own_chunk={op: rate for op in cm["own_chunk"]}, p2p_channel=rate, launch_floor=t, call_overhead=t,
              ring_channel={"Simple": {"all_reduce": rate}}, p2p_chunk="1 KiB" if low else "1 GiB",
              step_latency_scale=0 if low else 1e6, base_latency_scale=0 if low else 1e6)
    doc["links"] = {"nvlink4": {"efficiency": eff, "bandwidth": rate, "latency": t}}
    path = tmp_path / f"{edge}.yaml"
    path.write_text(yaml.safe_dump(doc))
    c = presets.build(f"{path}:gpus=8")
    for op in ("all_reduce", "all_gather", "broadcast", "sendrecv", "all_to_all"):
        for size in (8, 1 << 50):
            t_s = measure(Fabric(c.graph), c.model, op, range(8), size, back_to_back=True).time_s
            assert math.isfinite(t_s) and t_s > 0, (op, size)


def test_builder_arguments_with_units(tmp_path):
    """A builder argument named *_Bps is written without the suffix and with a unit, and read back in SI."""
    tr = transports.TRANSPORTS["socket"]
    preset = tr.calibrated({})
    preset.arguments["nic_rate_Bps"] = 12.5e9
    path = preset_file.write(preset, tmp_path / "sock.yaml")
    assert _doc(path)["topology"]["arguments"]["nic_rate"] == "12.5 GB/s"
    assert preset_file.read(path).arguments["nic_rate_Bps"] == pytest.approx(12.5e9)


@pytest.mark.parametrize("name", ["h200-nvlink", "h200-pcie-shm", "h200-socket"])
def test_shipped_presets_load_through_presets_build_and_describe(name):
    """The committed calibrated presets work wherever a preset name does, and say how well they fit."""
    assert name in presets.names()
    c = presets.build(f"{name}:gpus=2")
    assert len(gpus(c.graph)) == 2 and c.name == name
    row = next(r for r in presets.describe() if r["name"] == name)
    assert row["calibrated"] is True and row["params"] == {"gpus": 4}
    assert 0 < row["error"]["median_rel_error"] < 0.25
    assert row["error"]["world_sizes"] == [3]          # fitted on 2 and 4, held back on 3
    assert [cv["train"] for cv in preset_file.read(presets.calibrated()[name]).provenance["cross_validation"]] \
        == [[2], [4]]
    with pytest.raises(GpusimError, match="did you mean 'gpus'"):
        presets.build(f"{name}:gpu=2")


def test_a_preset_file_works_wherever_a_preset_name_does(nvlink_file, tmp_path):
    """A preset gpusim calibrate wrote is used by its path: on the command line, in a scenario file (relative to
    the scenario, as weather.csv is) and in a notebook's scenario mapping; a missing file names the field."""
    from gpusim.scenario import schema
    from gpusim.simulate import simulate
    c = presets.build(f"{nvlink_file}:gpus=2", "--cluster")
    assert len(gpus(c.graph)) == 2 and c.model.step_scale("LL") == pytest.approx(1.25)
    (tmp_path / "s.yaml").write_text("cluster: my-h200.yaml:gpus=3\n"
                                     "jobs: [{name: ar, op: all_reduce, size: 64 MiB}]\n")
    scenario = schema.load(tmp_path / "s.yaml")
    assert scenario.clusters[0].preset == f"{nvlink_file}:gpus=3"
    from_file = simulate(scenario).clusters[0].jobs[0].metrics()["mean_time_s"]
    mapping = simulate(schema.parse({"cluster": f"{nvlink_file}:gpus=3",
                                     "jobs": [{"name": "ar", "op": "all_reduce", "size": "64 MiB"}]}))
    assert mapping.clusters[0].jobs[0].metrics()["mean_time_s"] == from_file > 0
    (tmp_path / "bad.yaml").write_text("cluster: {preset: missing.yaml}\njobs: [{op: all_reduce, size: 1 MiB}]\n")
    with pytest.raises(GpusimError, match="no calibrated preset file .*missing.yaml") as e:
        simulate(schema.load(tmp_path / "bad.yaml"))
    assert e.value.path == "cluster"


def test_a_key_given_twice_in_a_preset_file_is_refused(nvlink_file, tmp_path):
    """YAML keeps the last of two equal keys; a preset file read strictly names the key instead."""
    bad = tmp_path / "twice.yaml"
    bad.write_text(nvlink_file.read_text().replace("cost_model:\n", "cost_model:\n  channels: 8\n", 1))
    with pytest.raises(GpusimError, match="given twice") as e:
        preset_file.read(bad)
    assert e.value.path == "twice.yaml:cost_model.channels"
