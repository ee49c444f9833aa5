"""The command line end to end: exit codes, files written, formats, one-line errors."""
import json

import pytest

from gpusim.cli import main
from gpusim.cli.collective_cmd import CSV_HEADER


def test_run_writes_results_and_figures(tmp_path, capsys):
    assert main(["run", "scenarios/flagship.yaml", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dp-grad-allreduce" in out and "busiest link" in out
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
