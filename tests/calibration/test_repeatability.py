"""Run-to-run spread: each run of a point predicted by the mean of the other runs, summarised like the model's
error; checked with hand values and on the committed H200 runs."""
from pathlib import Path

import pytest

from gpusim import presets
from gpusim.calibration import fit, measurements, preset_file, repeatability

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((ROOT / "validation" / "data" / "h200").glob("collectives*.csv"))


def _row(time_s, run, size=1 << 20, n=2, op="all_reduce"):
    return fit.Row(op, n, float(size), time_s, "auto", "auto", "socket", "default", run)


def test_each_run_is_predicted_by_the_others_with_hand_values():
    """Runs a, b, c of one point at 1.0, 1.0, 1.3 s: a and b are predicted 1.15 (15 % off), c 1.0 (0.3/1.3 off).
    A point measured once has nothing to compare with and is left out; two repeats inside run a count as one run
    at their mean."""
    rows = [_row(0.9, "a"), _row(1.1, "a"), _row(1.0, "b"), _row(1.3, "c"), _row(5.0, "a", size=8)]
    repeated, predicted = repeatability.leave_one_run_out(rows)
    got = sorted((r.run, r.time_s, p) for r, p in zip(repeated, predicted))
    assert got == [("a", pytest.approx(1.0), pytest.approx(1.15)), ("b", 1.0, pytest.approx(1.15)),
                   ("c", 1.3, pytest.approx(1.0))]
    s = repeatability.spread(rows)
    assert set(s) == {">=1MiB", "all"} and s[">=1MiB"]["rows"] == 3
    assert s[">=1MiB"]["median_rel_error"] == pytest.approx(0.15)
    assert s[">=1MiB"]["bias"] == pytest.approx(0.15)
    assert repeatability.spread([_row(1.0, "a")]) == {}
    assert set(repeatability.by_world_size(rows + [_row(2.0, "a", n=4)])) == {"2"}


def test_a_graph_replay_is_not_a_repeat_of_host_launched_calls():
    """The same call replayed from a CUDA graph lasts its GPU time, launched from the host at least the host's
    interval: a graph run of a point predicts no host run of it, and the reverse."""
    from dataclasses import replace
    rows = [_row(10e-6, "a", size=8), _row(11e-6, "b", size=8), replace(_row(5e-6, "g", size=8), host=False)]
    repeated, predicted = repeatability.leave_one_run_out(rows)
    assert sorted((r.run, p) for r, p in zip(repeated, predicted)) == [("a", pytest.approx(11e-6)),
                                                                        ("b", pytest.approx(10e-6))]
    assert all(r.host for r in repeated)


def test_a_measurement_run_is_its_file():
    """The run of a record is its source without the line number, so the rows of one file are one run."""
    m = measurements.load_csv(RUNS[1])[0]
    assert RUNS[1].name == "collectives_run2.csv"
    assert m.source.endswith("collectives_run2.csv:2") and m.run.endswith("collectives_run2.csv")
    rows, _ = fit.rows_from([m])
    assert rows[0].run == m.run
    assert measurements.Measurement("all_reduce", 2, 8, 1e-5, "nvlink", source="C:/logs/x.txt").run == "C:/logs/x.txt"


def test_committed_runs_reproduce_except_loopback_sockets_and_forced_ll_on_shm():
    """NVLink and SHM calls of >= 1 MiB repeat within 4 % from one machine start to the next; loopback sockets do
    not (the host's TCP stack), least on 2 ranks, where a run predicts another to a median 9 %, and the socket
    preset fitted on 4 ranks to 8.5 % (its recorded cross-validation): about as well. Forced Tree/LL on 4-rank SHM
    repeats worst of all."""
    data = [m for path in RUNS for m in measurements.load_csv(path)]
    spread = {t: repeatability.by_world_size(fit.rows_from(data, t)[0]) for t in ("nvlink", "pcie_shm", "socket")}
    for t in ("nvlink", "pcie_shm"):
        for n in ("2", "4"):
            assert spread[t][n][">=1MiB"]["median_rel_error"] < 0.04, (t, n)
    socket_2 = spread["socket"]["2"][">=1MiB"]["median_rel_error"]
    assert 0.06 < socket_2 and socket_2 > 1.5 * spread["socket"]["4"][">=1MiB"]["median_rel_error"]
    shipped = preset_file.read(presets.calibrated()["h200-socket"]).provenance["cross_validation"]
    four_to_two = next(b for b in shipped if b["train"] == [4])["bands"][">=1MiB"]["median_rel_error"]
    assert four_to_two < 0.10 and abs(four_to_two - socket_2) < 0.03
    shm_4 = [r for r in fit.rows_from(data, "pcie_shm")[0] if r.n == 4 and r.size_bytes >= 1 << 20]
    tree_ll = repeatability.spread([r for r in shm_4 if r.variant == "Tree/LL"])[">=1MiB"]["median_rel_error"]
    assert tree_ll > 0.3
