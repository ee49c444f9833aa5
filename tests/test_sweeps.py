"""Visibility sweep: thicker fog never makes the all-reduce faster; a bad point keeps the others' results."""
from gpusim.sweeps import allreduce_vs_visibility


def test_allreduce_time_never_improves_as_visibility_drops():
    rows = allreduce_vs_visibility(("10 km", "1 km", "500 m", "300 m"), size="16 MiB")
    times = [r["mean_time_s"] for r in rows]
    assert all(r["status"] == "done" for r in rows)
    assert times == sorted(times)
    assert times[-1] > times[0]


def test_a_failing_point_loses_no_finished_results():
    rows = allreduce_vs_visibility(("10 km", "-5 m", "1 km"), size="1 MiB")
    assert [("error" in r) for r in rows] == [False, True, False]
    assert rows[0]["mean_time_s"] > 0 and rows[2]["mean_time_s"] > 0
