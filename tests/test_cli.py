"""The command line end to end: exit codes, files written, formats, one-line errors."""
import json
from pathlib import Path

import pytest

from gpusim.cli import main
from gpusim.cli.collective_cmd import CSV_HEADER
from gpusim.errors import GpusimError


def test_run_writes_results_and_figures(tmp_path, capsys):
    assert main(["run", "scenarios/flagship.yaml", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dp-grad-allreduce" in out and "bottleneck link" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["seed"] == 7 and data["gpusim_version"] and data["runtime_s"] > 0
    assert {c["label"] for c in data["clusters"]} >= {"nvlink-roce", "pcie-no-p2p"}
    for name in ("results.csv", "job_times.png", "link_utilisation.png", "timeline.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_compare_prints_a_side_by_side_table(tmp_path, capsys):
    assert main(["compare", "scenarios/flagship.yaml", "-o", str(tmp_path), "--no-figures"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[:3] == ["job", "nvlink-roce", "nvlink-ib"]


def test_collective_csv_format(capsys):
    assert main(["collective", "--cluster", "switch:gpus=16,bandwidth=50GB/s,latency=500ns", "--ranks", "16",
                 "--op", "all_reduce", "--min-bytes", "1KiB", "--max-bytes", "1GiB", "--step-factor", "4",
                 "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == CSV_HEADER
    rows = [l.split(",") for l in lines[1:]]
    assert [int(r[2]) for r in rows] == [1024 * 4**k for k in range(11)]
    busbw = [float(r[5]) for r in rows]
    assert busbw == sorted(busbw) and busbw[-1] == pytest.approx(50.0, rel=0.01)


def test_collective_table_mimics_nccl_tests(capsys):
    assert main(["collective", "--cluster", "dgx-h100", "--op", "all_gather", "--max-bytes", "1MiB",
                 "--min-bytes", "1MiB"]) == 0
    out = capsys.readouterr().out
    assert "busbw" in out and "# Avg bus bandwidth" in out
    row = [l for l in out.splitlines() if not l.startswith("#")][0].split()
    assert row[0] == "1048576" and row[1] == str(1048576 // 4 // 8) and row[3] == "none"


def _csv_times(capsys, argv):
    assert main(["collective", *argv, "--format", "csv"]) == 0
    return [float(r.split(",")[3]) for r in capsys.readouterr().out.strip().splitlines()[1:]]


def test_collective_launch_host_holds_small_calls_to_the_floor_and_graph_does_not(capsys):
    """--launch host (nccl-tests' timing) lasts at least the calibrated preset's launch floor; --launch graph is the
    GPU's time alone: shorter for small calls, the same once the transfer outlasts the floor."""
    from gpusim import presets
    from gpusim.calibration import preset_file
    floor_us = preset_file.read(presets.calibrated()["h200-nvlink"]).model["launch_floor_s"] * 1e6
    argv = ["--cluster", "h200-nvlink:gpus=2", "--op", "all_gather", "--min-bytes", "8", "--max-bytes", "1GiB",
            "--step-factor", "1024"]
    host, graph = _csv_times(capsys, argv), _csv_times(capsys, argv + ["--launch", "graph"])
    assert host[0] == pytest.approx(floor_us, abs=1e-3) and graph[0] < 0.8 * floor_us
    assert host[-1] == graph[-1] > 2 * floor_us          # 8 MiB


def test_collective_times_a_broadcast_chain_as_nccl_tests_does(capsys):
    """nccl-tests times a loop of calls: a broadcast chain's root starts the next call once its own hop is free, so
    on 8 ranks of a switch a small broadcast costs one hop's latency, not seven (docs/validation.md)."""
    argv = ["--cluster", "switch:gpus=8,bandwidth=50GB/s,latency=5us", "--op", "broadcast", "--min-bytes", "8",
            "--max-bytes", "8", "--algo", "ring"]
    eight = _csv_times(capsys, argv + ["--ranks", "8"])[0]
    two = _csv_times(capsys, argv + ["--ranks", "2"])[0]
    assert eight == pytest.approx(two, rel=0.05)


def test_presets_lists_one_line_each_and_json(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [l.split()[0] for l in lines]
    assert {"dgx-h100", "dgx-a100", "hgx-h200", "pcie-2gpu", "pcie-4gpu-p2p", "dgx-h100-cluster", "ib-ndr-cluster",
            "ring", "switch", "fully_connected"} <= set(names)
    assert main(["presets", "--format", "json"]) == 0
    assert all("source" in row for row in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("argv,fragment", [
    (["collective", "--cluster", "dgx-h10", "--op", "all_reduce"], "did you mean 'dgx-h100'"),
    (["collective", "--cluster", "dgx-h100", "--op", "all_reduce", "--ranks", "9"], "--ranks"),
    (["collective", "--cluster", "dgx-h100", "--op", "all_reduce", "--max-bytes", "4 GX"], "--max-bytes"),
    (["run", "no/such/file.yaml"], "not found"),
])
def test_user_errors_exit_2_with_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err


def test_a_sweep_of_too_many_sizes_is_refused_before_it_runs(capsys):
    """--step-factor 1.0000001 from 8 B to 1 MiB would be floor(ln(2^17) / ln(1.0000001)) + 1 sizes (~1.2e8) and never
    return: the count is computed first and the error names the three options and the count."""
    import math
    import signal

    def hang(*_):
        raise TimeoutError("the sweep was not refused")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(10)
    try:
        rc = main(["collective", "--cluster", "dgx-h100", "--op", "all_reduce", "--max-bytes", "1MiB",
                   "--step-factor", "1.0000001"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err.strip()
    points = math.floor(math.log(2**17) / math.log(1.0000001)) + 1
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("gpusim collective: error: --step-factor:") and f"{points:,} sizes" in err
    assert "--min-bytes" in err and "--max-bytes" in err


def test_the_size_ladder_holds_at_most_max_points_sizes():
    """Just under the bound the ladder is built (MAX_POINTS sizes exactly); one more size is an error naming the
    caller's options."""
    from gpusim.collectives.sweep import MAX_POINTS, sizes
    f = 1.001
    names = ("--min-bytes", "--max-bytes", "--step-factor")
    assert len(sizes(1e6, 1e6 * f ** (MAX_POINTS - 0.5), f, names=names)) == MAX_POINTS
    with pytest.raises(GpusimError, match=f"makes {MAX_POINTS + 1:,} sizes") as e:
        sizes(1e6, 1e6 * f ** (MAX_POINTS + 0.5), f, names=names)
    assert e.value.path == "--step-factor"


@pytest.mark.parametrize("argv", [
    ["--cluster", "dgx-h100:gpus=1", "--op", "sendrecv"],
    ["--cluster", "dgx-h100", "--ranks", "1", "--op", "sendrecv"],
    ["--cluster", "pcie-2gpu:gpus=1", "--op", "all_to_all"],
    ["--cluster", "dgx-h100", "--ranks", "1", "--op", "all_reduce"],
    ["--cluster", "dgx-h100", "--ranks", "0", "--op", "broadcast"],
])
def test_one_rank_is_refused_for_every_op(argv, capsys):
    """One rank has no peer: sendrecv and all_to_all printed 0.00 us and busbw inf, all_reduce said 1..8 were
    accepted and then refused 1. Every op is refused on --ranks, with the range it accepts."""
    assert main(["collective", *argv, "--max-bytes", "64"]) == 2
    out, err = capsys.readouterr()
    assert not out and len(err.strip().splitlines()) == 1
    assert err.startswith("gpusim collective: error: --ranks:") and "at least 2 ranks" in err
    assert ("2..8" in err) == ("gpus=1" not in argv[1])


def test_sweep_refuses_one_rank():
    """The library call beneath `gpusim collective` refuses one rank for point-to-point ops too."""
    from gpusim import presets
    from gpusim.collectives.sweep import sweep
    from gpusim.engine.fabric import Fabric
    cluster = presets.build("dgx-h100")
    for op in ("sendrecv", "all_to_all", "all_reduce"):
        with pytest.raises(GpusimError, match="at least 2 ranks, got 1") as e:
            sweep(Fabric(cluster.graph), cluster.model, op, [0], [8])
        assert e.value.path == "ranks"


@pytest.mark.parametrize("argv, path, words", [
    (["collective", "--cluster", "dgx-h100", "--op", "all_reduce", "--min-bytes", "0"], "--min-bytes",
     "positive size"),
    (["collective", "--cluster", "dgx-h100", "--op", "all_reduce", "--min-bytes", "1MiB", "--max-bytes", "1KiB"],
     "--max-bytes", "at least --min-bytes"),
    (["calibrate", "validation/data/h200/collectives.csv", "--transport", "socket", "--protocols", "",
      "-o", "X.yaml"], "--protocols", "LL, LL128, Simple"),
    (["calibrate", "validation/data/h200/collectives.csv", "--transport", "socket", "--protocols", " , ",
      "-o", "X.yaml"], "--protocols", "LL, LL128, Simple"),
])
def test_errors_name_the_option_as_written(argv, path, words, capsys, tmp_path):
    assert main([str(tmp_path / a) if a == "X.yaml" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gpusim {argv[0]}: error: {path}: ") and words in err and len(err.splitlines()) == 1


def test_calibrate_and_validate_refuse_a_row_of_an_unknown_transport(tmp_path, capsys):
    """A misspelt transport (nvlinkx) vanished from calibrate's fit while the summary said '0 skipped': both
    commands now name its file, line and column."""
    from gpusim.calibration import measurements as M
    rows = [M.Measurement("all_reduce", 4, 1 << k, 1e-5 * (1 + k), "nvlink") for k in range(3, 20)]
    rows[2] = M.Measurement("all_reduce", 4, 32, 1.1e-5, "nvlinkx")
    data = M.write_csv(tmp_path / "trbad.csv", rows)
    for cmd in (["calibrate", str(data), "--transport", "nvlink", "-o", str(tmp_path / "x.yaml")],
                ["validate", str(data), "--no-figures", "-o", str(tmp_path / "v")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert f"{data}:4:transport: expected one of nvlink, pcie_shm, socket, got 'nvlinkx'" in err, err
    assert not (tmp_path / "x.yaml").exists()


def test_validate_nccl_tests_logs_with_their_transport(tmp_path, capsys):
    """nccl-tests logs do not record their transport: validate reads them as --nccl-tests-transport says (as
    calibrate does) and simulates every record of each log, its measured time exactly as the log printed it."""
    from gpusim.calibration import nccl_tests
    fixtures = Path(__file__).resolve().parent / "fixtures" / "nccl_tests"
    logs = [fixtures / "all_reduce_perf_h200x8.txt", fixtures / "all_gather_perf_h100.json"]
    argv = ["validate", *map(str, logs), "--estimate", "--no-figures", "-o", str(tmp_path)]
    assert main(argv) == 2
    assert "--nccl-tests-transport: all_reduce_perf_h200x8.txt: nccl-tests logs do not record their transport" \
        in capsys.readouterr().err
    assert main(["calibrate", str(logs[0]), "-o", str(tmp_path / "x.yaml")]) == 2     # calibrate reads them alike
    assert "--nccl-tests-transport: all_reduce_perf_h200x8.txt" in capsys.readouterr().err
    assert main([*argv, "--nccl-tests-transport", "nvlink"]) == 0
    doc = json.loads((tmp_path / "validation.json").read_text())
    assert doc["presets"] == {"nvlink": "h200-nvlink"}
    want = sorted((m.op, m.world_size, m.size_bytes, m.time_s) for log in logs for m in nccl_tests.load(log)
                  if not (m.op == "all_gather" and m.in_place))         # fit.rows_from leaves those out
    got = sorted((p["op"], p["n"], p["size_bytes"], p["measured_s"]) for p in doc["points"])
    assert got == want and all(p["simulated_s"] > 0 for p in doc["points"])
    assert main([*argv, "--nccl-tests-transport", "nvlinkx"]) == 2
    assert "--nccl-tests-transport: unknown transport 'nvlinkx'" in capsys.readouterr().err


# --- input robustness: collective sizes, flags and cluster specs; the did-you-mean helper ---------------------------
@pytest.mark.parametrize("argv,prefix,words", [
    (["--min-bytes", "0.5", "--max-bytes", "1KiB"], "--min-bytes", "whole number of bytes"),  # printed 'inf' rows
    (["--min-bytes", "1e-300", "--max-bytes", "1KiB"], "--min-bytes", "whole number of bytes"),
    (["--max-bytes", "1e30"], "--max-bytes", "at most 1 PiB"),
    (["--algo", "foo"], "--algo", "unknown algorithm"),                 # said 'algo:', 'proto:', 'op:', 'channels:'
    (["--proto", "foo"], "--proto", "unknown protocol"),
    (["--op", "foo"], "--op", "unknown operation"),
    (["--channels", "0"], "--channels", "1..64"),
    (["--cluster", "switch:gpus=+-5"], "--cluster.gpus", "positive integer"),          # a ValueError traceback
    (["--cluster", "switch:gpus=1000000"], "--cluster.gpus", "65,536"),
    (["--cluster", "dgx-h100:channels=100"], "--cluster.channels", "1..64"),           # said cost_model.channels
    (["--cluster", "switch:latency=1e308s"], "--cluster.latency", "0 to 1 s"),        # said 'time_s: ... got inf'
])
def test_collective_input_errors_name_the_flag(argv, prefix, words, capsys):
    args = {"--cluster": "dgx-h100", "--op": "all_reduce", "--max-bytes": "1KiB"}
    args.update(zip(argv[::2], argv[1::2]))
    assert main(["collective", *[x for kv in args.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gpusim collective: error: {prefix}: ") and words in err and len(err.splitlines()) == 1


def test_did_you_mean_never_suggests_the_word_itself():
    """'nccl' in a list of protocols read "unknown protocol 'nccl' (did you mean 'nccl'?)"."""
    from gpusim.errors import unknown
    e = unknown("--protocols", "nccl", ["LL", "LL128", "Simple", "nccl", "search"], "protocol")
    assert "did you mean" not in e.message and "unknown" not in e.message and "'nccl'" in e.message
    assert "did you mean 'nccl'" in unknown("--protocols", "ncl", ["LL", "nccl"], "protocol").message


def test_channels_on_a_cluster_without_a_one_channel_rate_says_what_they_change(capsys):
    """dgx-a100 carries no measured rate of one channel: --channels 1 leaves Simple at the links' rate, and the
    header says so; dgx-h100 carries the H200's and says nothing."""
    argv = ["collective", "--op", "all_reduce", "--channels", "1", "--min-bytes", "1GiB", "--max-bytes", "1GiB"]
    assert main([*argv, "--cluster", "dgx-a100"]) == 0
    assert "no measured rate of one channel" in capsys.readouterr().out
    assert main([*argv, "--cluster", "dgx-h100"]) == 0
    assert "no measured rate" not in capsys.readouterr().out


def test_a_negative_value_may_follow_its_option_with_a_space(capsys):
    """argparse took '-30dBm' for an option ('expected one argument'); it is the value of the option before it."""
    argv = ["fso", "--distance", "1km", "--visibility", "1km", "--format", "json"]
    assert main([*argv, "--sensitivity", "-30dBm"]) == 0
    spaced = capsys.readouterr().out
    assert main([*argv, "--sensitivity=-30dBm"]) == 0
    assert spaced == capsys.readouterr().out and '"sensitivity_dbm": -30.0' in spaced


def test_a_call_past_the_simulated_time_bound_is_refused_as_in_a_scenario(capsys):
    """On a 1 MB/s two-GPU switch a 2-rank all_reduce of S bytes takes ~S/1e6 s (each GPU sends S/2 twice, one
    hop each way): 1 TiB takes ~1.1e6 s, within the 1e7 s a scenario's run allows; 16 TiB, ~1.8e7 s, is refused
    with the same bound, naming --max-bytes, as a scenario refuses a job that runs past it; the sizes finished
    before it are printed first. When the smallest size is already past it, the error names --min-bytes."""
    from gpusim import units
    argv = ["collective", "--cluster", "switch:gpus=2,bandwidth=1MB/s", "--op", "all_reduce", "--format", "csv",
            "--min-bytes", "1TiB", "--max-bytes"]
    assert main(argv + ["1TiB"]) == 0
    t = float(capsys.readouterr().out.strip().splitlines()[1].split(",")[3]) * 1e-6
    assert t == pytest.approx(2**40 / 1e6, rel=0.01) and t < units.MAX_TIME_S
    assert main(argv + ["16TiB"]) == 2
    out, err = capsys.readouterr()
    done = [int(r.split(",")[2]) for r in out.strip().splitlines()[1:]]
    assert done == [2**40, 2**41, 2**42, 2**43]          # the sizes within the bound are not lost
    err = err.strip()
    assert err.startswith("gpusim collective: error: --max-bytes: all_reduce of 17,592,186,044,416 B takes more "
                          f"than the {units.MAX_TIME_S:g} s")
    # the smallest size already past the bound: nothing to print, and the option to change is --min-bytes
    assert main(["collective", "--cluster", "switch:gpus=2,bandwidth=1MB/s", "--op", "all_reduce", "--format", "csv",
                 "--min-bytes", "16TiB", "--max-bytes", "32TiB"]) == 2
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[1:] == [] and err.startswith("gpusim collective: error: --min-bytes:")
