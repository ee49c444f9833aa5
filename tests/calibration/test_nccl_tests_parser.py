"""nccl-tests output -> Measurement rows: every layout nccl-tests has printed, checked number by number against the
fixture text, and bad input refused with the file and line named."""
import re
from pathlib import Path

import pytest

from gpusim.calibration import nccl_tests
from gpusim.calibration.measurements import Measurement
from gpusim.errors import GpusimError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "nccl_tests"


def us(m: Measurement) -> float:
    return m.time_s * 1e6


def by_size(rows, size, in_place=False):
    hits = [m for m in rows if m.size_bytes == size and m.in_place == in_place]
    assert len(hits) == 1, f"expected one row of {size} B (in_place={in_place}), got {len(hits)}"
    return hits[0]


def test_current_format_with_nccl_info_lines_interleaved():
    """all_reduce_perf on 8 H200s: op from 'Collective test starting', 8 ranks from the Rank lines, NCCL INFO lines
    ignored, one out-of-place and one in-place record per size, exactly as printed."""
    rows = nccl_tests.load(FIX / "all_reduce_perf_h200x8.txt", transport="nvlink")
    assert len(rows) == 2 * 31
    assert {(m.op, m.world_size, m.transport, m.algo, m.proto) for m in rows} == {
        ("all_reduce", 8, "nvlink", "default", "default")}
    m = by_size(rows, 1048576)
    assert us(m) == pytest.approx(40.66, abs=1e-9)
    assert (m.algbw_GBps, m.busbw_GBps, m.count, m.dtype) == (25.79, 45.13, 262144, "float")
    assert m.source == "all_reduce_perf_h200x8.txt:41"
    mi = by_size(rows, 1048576, in_place=True)
    assert us(mi) == pytest.approx(40.51, abs=1e-9) and mi.busbw_GBps == 45.30
    big = by_size(rows, 8589934592)
    assert us(big) == pytest.approx(31679.6, abs=1e-9) and big.busbw_GBps == 474.51
    assert sorted({m.size_bytes for m in rows}) == [1 << k for k in range(3, 34)]


def test_old_format_without_redop_or_root_and_an_error_column():
    """~2021 all_gather_perf: 'size count type time algbw busbw error ...', '#   Rank  0 Pid' lines, no test-start
    line, so the operation comes from the file name."""
    rows = nccl_tests.load(FIX / "all_gather_perf_dgx-a100_2021.log")
    assert len(rows) == 22 and {m.op for m in rows} == {"all_gather"} and {m.world_size for m in rows} == {4}
    assert {m.transport for m in rows} == {nccl_tests.UNKNOWN_TRANSPORT}
    m = by_size(rows, 16777216)
    assert us(m) == pytest.approx(113.65, abs=1e-9)
    assert (m.algbw_GBps, m.busbw_GBps, m.count) == (147.62, 110.71, 4194304)
    assert us(by_size(rows, 1073741824, in_place=True)) == pytest.approx(6126.71, abs=1e-9)


def test_redop_without_root_on_sixteen_ranks():
    """reduce_scatter with a redop column but no root (and 'error'); 16 ranks on two nodes."""
    rows = nccl_tests.load(FIX / "reduce_scatter_perf_2nodes_ib.txt", transport="ib")
    assert {m.world_size for m in rows} == {16} and len(rows) == 2 * 13
    m = by_size(rows, 4194304)
    assert us(m) == pytest.approx(284.68, abs=1e-9) and (m.algbw_GBps, m.busbw_GBps) == (14.73, 13.81)


def test_check_disabled_na_column_and_mpi_rank_prefixes():
    """alltoall_perf -c 0 under Intel MPI '-l': '[0] ' on every line, 'N/A' in #wrong, INFO lines of other ranks
    ('[12] ...') in the middle of the table."""
    rows = nccl_tests.load(FIX / "alltoall_perf_c0_mpi.txt", transport="ib")
    assert {m.op for m in rows} == {"all_to_all"} and {m.world_size for m in rows} == {16}
    assert sorted({m.size_bytes for m in rows}) == [1024 * 4 ** k for k in range(11)]
    m = by_size(rows, 262144)
    assert us(m) == pytest.approx(80.39, abs=1e-9) and (m.algbw_GBps, m.busbw_GBps) == (3.26, 3.06)
    assert us(by_size(rows, 1073741824)) == pytest.approx(26286.8, abs=1e-9)


def test_per_iteration_columns_and_forced_algorithm_from_nccl_info():
    """-I 1 adds i_min/i_max/i_p99/i_cv% after each half; NCCL_DEBUG=INFO lines say NCCL_ALGO/NCCL_PROTO were set."""
    rows = nccl_tests.load(FIX / "all_reduce_perf_I1_ring_simple.txt", transport="nvlink")
    assert {(m.algo, m.proto, m.world_size) for m in rows} == {("Ring", "Simple", 2)}
    m = by_size(rows, 33554432)
    assert us(m) == pytest.approx(119.33, abs=1e-9) and m.busbw_GBps == 281.20   # not i_min 110.97
    mi = by_size(rows, 33554432, in_place=True)
    assert us(mi) == pytest.approx(118.97, abs=1e-9) and mi.algbw_GBps == 282.05
    forced = nccl_tests.load(FIX / "all_reduce_perf_I1_ring_simple.txt", algo="Tree", proto="LL")
    assert {(m.algo, m.proto) for m in forced} == {("Tree", "LL")}


def test_two_runs_in_one_log_and_exponent_floats():
    """A broadcast run (root 0) and a sendrecv run in one file, each with its own op; a 16 GiB broadcast's time is
    printed as '1.6e+07' because it no longer fits seven characters."""
    rows = nccl_tests.load(FIX / "socket_25gbe_runs.log", transport="socket")
    ops = [m.op for m in rows]
    assert ops.count("broadcast") == 2 * 8 and ops.count("sendrecv") == 2 * 3
    b = by_size([m for m in rows if m.op == "broadcast"], 17179869184)
    assert b.time_s == pytest.approx(16.0, abs=1e-12) and b.busbw_GBps == 1.07
    s = by_size([m for m in rows if m.op == "sendrecv"], 33554432)
    assert us(s) == pytest.approx(17840.2, abs=1e-9) and s.busbw_GBps == 1.88
    assert {m.world_size for m in rows} == {2}


def test_json_output_of_dash_J():
    """-J file: op from args[0], world size from config.devices, NCCL_PROTO from env, %lf doubles."""
    rows = nccl_tests.load(FIX / "all_gather_perf_h100.json", transport="nvlink")
    assert len(rows) == 12
    assert {(m.op, m.world_size, m.algo, m.proto, m.dtype) for m in rows} == {
        ("all_gather", 4, "default", "LL128", "bfloat16")}
    m = by_size(rows, 2097152)
    assert us(m) == pytest.approx(29.831835, abs=1e-9)
    assert (m.algbw_GBps, m.busbw_GBps, m.count) == (70.299129, 52.724347, 1048576)
    assert by_size(rows, 2097152, in_place=True).in_place


def test_json_and_text_told_apart_by_content():
    text = (FIX / "all_gather_perf_h100.json").read_text()
    assert nccl_tests.parse(text, source="a.json") == nccl_tests.parse_json(text, source="a.json", op="all_gather")


def test_explicit_op_and_world_size_win():
    """A log with neither a test-start line nor Rank lines needs both given; given ones override the file."""
    text = (FIX / "all_gather_perf_dgx-a100_2021.log").read_text()
    bare = "\n".join(ln for ln in text.splitlines() if "Rank" not in ln)
    with pytest.raises(GpusimError, match="operation"):
        nccl_tests.parse_text(bare)
    with pytest.raises(GpusimError, match="world size"):
        nccl_tests.parse_text(bare, op="allgather")
    rows = nccl_tests.parse_text(bare, op="allgather", world_size=4)
    assert {(m.op, m.world_size) for m in rows} == {("all_gather", 4)}


def test_wrong_op_or_world_size_is_caught_by_the_busbw_ratio():
    """busbw = algbw x 2(n-1)/n for all_reduce: read as all_gather, or on the wrong world size, the numbers disagree."""
    path = FIX / "all_reduce_perf_h200x8.txt"
    with pytest.raises(GpusimError, match=r"busbw .* factor of all_gather on 8 ranks") as e:
        nccl_tests.load(path, op="all_gather")
    assert e.value.path.endswith(":36")     # the first row with algbw >= 1 GB/s (32768 B)
    with pytest.raises(GpusimError, match="on 4 ranks"):
        nccl_tests.load(path, world_size=4)


def test_killed_run_names_the_truncated_line():
    with pytest.raises(GpusimError, match="7 values, but the header at line 12 has 13 columns") as e:
        nccl_tests.load(FIX / "all_reduce_perf_killed.txt")
    assert e.value.path.endswith("all_reduce_perf_killed.txt:17")


@pytest.mark.parametrize("size", ["-64", "64.5"])
def test_a_result_row_whose_size_is_no_byte_count_is_an_error_not_left_out(size):
    """A row of the table whose size is negative or fractional was read as a program message and dropped, so
    calibrate reported 0 skipped rows; it is an error at its line, as a negative size is in -J output."""
    lines = (FIX / "all_reduce_perf_h200x8.txt").read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:2] == ["64", "16"])
    lines[row] = lines[row].replace("  64 ", f"{size} ", 1)
    with pytest.raises(GpusimError, match=f"size: expected an integer >= 0, got '{size}'") as e:
        nccl_tests.parse_text("\n".join(lines), source="x.log")
    assert e.value.path == f"x.log:{row + 1}"


@pytest.mark.parametrize("text, message", [
    ("", "no nccl-tests result rows"),
    ("Segmentation fault (core dumped)\n", "no nccl-tests result rows"),
    ("# nThread 1 nGpus 8 minBytes 8 maxBytes 128 step: 2(factor)\n#  Rank  0 Group  0 Pid 1 on h device 0 [0] X\n"
     "host:1:1 [0] NCCL WARN Cuda failure 'out of memory'\n", "no nccl-tests result rows"),
    ("#  Rank  0 Group 0\n       8     2   float   sum   -1   10.0   0.00   0.00   0   10.0   0.00   0.00   0\n",
     "before any column header"),
    ("#  Rank  0 Group 0\n#  size count type redop root time algbw busbw #wrong time algbw busbw #wrong\n"
     "       8     2   float   sum   -1   fast   0.00   0.00   0   10.0   0.00   0.00   0\n",
     "time: expected a number"),
    ("#  Rank  0 Group 0\n#  size count type redop root time algbw busbw #wrong time algbw busbw #wrong\n"
     "       8     2   float   sum   -1   0.00   0.00   0.00   0   10.0   0.00   0.00   0\n", "positive time"),
    ("#  size count type redop root time algbw oops\n", "unrecognised nccl-tests column header"),
    ("# Collective test starting: hypercube_perf\n", "not one gpusim models"),
])
def test_garbage_gives_a_clear_error(text, message):
    with pytest.raises(GpusimError, match=message):
        nccl_tests.parse_text(text, source="x.log", op=None if "hypercube" in text else "all_reduce")


@pytest.mark.parametrize("text, message", [
    ('{"results": [', "not valid JSON"),
    ("[1, 2, 3]", "not nccl-tests -J output"),
    ('{"results": []}', "no timed result"),
    ('{"results": [{"size": 8, "out_of_place": {"time": "nan", "alg_bw": 0, "bus_bw": 0}}]}',
     r"results\[0\]\.out_of_place\.time"),
    ('{"results": [{"size": -8}]}', r"results\[0\]\.size"),
])
def test_bad_json_gives_a_clear_error(text, message):
    with pytest.raises(GpusimError, match=message):
        nccl_tests.parse_json(text, source="x.json", op="all_reduce", world_size=2)


def test_out_of_range_numbers_in_real_output_name_their_row():
    """Edits of real nccl-tests output (the H100 -J file, the 8-GPU H200 text log): a size past 1 PiB (10^400 once
    raised OverflowError), a time of 10^400 or one that underflows to 0 s (1e-320 us), an 'env' that is no list, and
    an integer too long for Python to read are errors at the row or field, not a traceback."""
    import json
    doc = json.loads((FIX / "all_gather_perf_h100.json").read_text())
    for edit, where, words in [
            (lambda d: d.update(env=5), "x.json:env", "list of 'NAME=value' strings"),
            (lambda d: d["results"][1].update(size=10**400), "x.json:results[1].size", r"integer 0\.\.\d+ \(1 PiB\)"),
            (lambda d: d["results"][1]["out_of_place"].update(time=10**400), "x.json:results[1].out_of_place.time",
             "finite number"),
            (lambda d: d["results"][1]["in_place"].update(time=1e-320), "x.json:results[1].in_place.time",
             "positive time in microseconds, finite and at least 1e-06")]:
        bad = json.loads(json.dumps(doc))
        edit(bad)
        with pytest.raises(GpusimError, match=words) as e:
            nccl_tests.parse_json(json.dumps(bad), source="x.json")
        assert e.value.path == where
    with pytest.raises(GpusimError, match="not readable JSON"):
        nccl_tests.parse_json('{"results": [{"size": ' + "9" * 5000 + "}]}", source="x.json")
    lines = (FIX / "all_reduce_perf_h200x8.txt").read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:2] == ["64", "16"])
    for old, new, words in [("  64 ", " " + "1" * 401 + " ", "size: expected an integer 0..1125899906842624"),
                            ("  16 ", " 2" + "0" * 16 + " ", "count: expected an integer 0..1125899906842624"),
                            (lines[row].split()[5], "1e-320", "time: expected a positive time")]:
        edited = lines[:row] + [lines[row].replace(old, new, 1)] + lines[row + 1:]
        with pytest.raises(GpusimError, match=words) as e:
            nccl_tests.parse_text("\n".join(edited), source="x.log")
        assert e.value.path.startswith(f"x.log:{row + 1}")


def test_unreadable_files(tmp_path):
    with pytest.raises(GpusimError, match="cannot read"):
        nccl_tests.load(tmp_path / "missing.txt")
    binary = tmp_path / "core"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00")
    with pytest.raises(GpusimError, match="not a text file"):
        nccl_tests.load(binary)


def test_a_log_from_a_host_named_in_latin_1_parses(tmp_path):
    """nccl-tests prints the host name in its rank lines as the system gives it; a name that is not UTF-8 (here
    Latin-1 bytes) leaves the rows' numbers, which are ASCII, as they are. A file with NUL bytes stays refused."""
    text = (FIX / "all_reduce_perf_h200x8.txt").read_text()
    rows = nccl_tests.parse_text(text, source="x.log")
    host = re.search(r" on +(\S+) device", text).group(1)
    path = tmp_path / "latin1.log"
    path.write_bytes(text.encode("utf-8").replace(host.encode(), b"n\xe9ud-\xe0"))
    again = nccl_tests.load(path)
    assert len(again) == len(rows) > 0
    assert [(m.size_bytes, m.time_s) for m in again] == [(m.size_bytes, m.time_s) for m in rows]


def test_bad_arguments():
    text = (FIX / "all_reduce_perf_h200x8.txt").read_text()
    with pytest.raises(GpusimError, match="world_size"):
        nccl_tests.parse_text(text, world_size=0)
    with pytest.raises(GpusimError, match="did you mean 'all_reduce'|unknown operation"):
        nccl_tests.parse_text(text, op="all_reduse")


def test_cuda_graph_runs_are_marked_so_the_host_floor_does_not_hold_them():
    """nccl-tests -G N replays N iterations from a CUDA graph ('graph: N' in the header, config.graph in -J output):
    those records are not host-launched, so calibration does not hold them to the launch floor; 'graph: 0' and
    headers without the field are host launches."""
    import json
    from gpusim.calibration import fit
    text = (FIX / "all_reduce_perf_h200x8.txt").read_text()
    assert "graph: 0" in text
    host = nccl_tests.parse_text(text, transport="nvlink")
    graph = nccl_tests.parse_text(text.replace("graph: 0", "graph: 1"), transport="nvlink")
    assert {m.launch for m in host} == {"nccl_tests"} and all(m.host_launched for m in host)
    assert {m.launch for m in graph} == {"nccl_tests_graph"} and not any(m.host_launched for m in graph)
    assert not any(r.host for r in fit.rows_from(graph, "nvlink")[0])
    old_text = (FIX / "all_gather_perf_dgx-a100_2021.log").read_text()
    assert "nThread" in old_text and "graph:" not in old_text
    assert all(m.host_launched for m in nccl_tests.parse_text(old_text, transport="nvlink", op="all_gather"))
    doc = json.loads((FIX / "all_gather_perf_h100.json").read_text())
    assert doc["config"]["graph"] == 0
    assert all(m.host_launched for m in nccl_tests.parse_json(doc, transport="nvlink"))
    doc["config"]["graph"] = 4
    assert {m.launch for m in nccl_tests.parse_json(doc, transport="nvlink")} == {"nccl_tests_graph"}


@pytest.mark.parametrize("name, machine", [
    ("all_gather_perf_dgx-a100_2021.log", "A100-SXM4-40GB on dgx-a100-07"),               # old rank lines, no Group
    ("all_reduce_perf_h200x8.txt", "NVIDIA H200 on gpu49"),
    ("alltoall_perf_c0_mpi.txt", "NVIDIA H100 80GB HBM3 on h100-017,h100-018"),         # '[0] ' prefixes, two hosts
    ("socket_25gbe_runs.log", "NVIDIA L40S on lab-a,lab-b"),                           # several runs in one log
    ("all_gather_perf_h100.json", "NVIDIA H100 80GB HBM3 on h100-003"),                 # -J: config.devices
])
def test_each_record_names_the_machine_its_rank_lines_describe(name, machine):
    assert {m.machine for m in nccl_tests.load(FIX / name)} == {machine}


def test_a_run_over_many_hosts_is_named_by_their_count_and_range():
    places = [(f"node{i:02d}", "NVIDIA H200") for i in range(1, 17) for _ in range(8)]
    assert nccl_tests.machine_name(places) == "NVIDIA H200 on 16 hosts (node01..node16)"
    assert nccl_tests.machine_name([]) == ""


def test_a_run_that_died_before_its_rows_leaves_nothing_to_the_next_one():
    """A multi-run log whose first run (8 ranks on hostA) printed its rank lines and then died: the rows of the
    next run (2 ranks on hostB) are 2-rank rows of hostB, not 8-rank rows of both hosts (broadcast's busbw equals
    its algbw, so no factor check would catch a wrong world size)."""
    head = ("# nccl-tests version 2.13.13 nccl-headers=22703 nccl-library=22703\n"
            "# Collective test starting: broadcast_perf\n"
            "# nThread 1 nGpus {n} minBytes 8 maxBytes 1024 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 "
            "validation: 1 graph: 0 unalign: 0\n#\n# Using devices\n")
    rank = "#  Rank {r} Group  0 Pid  65234 on      {host} device  {r} [0000:18:00] NVIDIA H200\n"
    died = head.format(n=8) + "".join(rank.format(r=r, host="hostA") for r in range(8)) + "#\n"
    ran = (head.format(n=2) + "".join(rank.format(r=r, host="hostB") for r in range(2)) +
           "#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw"
           "   busbw  #wrong\n"
           "     1048576        262144     float     none      0    60.49  17.34  17.34      0    60.49  17.34  17.34"
           "      0\n")
    rows = nccl_tests.parse(died + ran, transport="nvlink")
    assert {(m.op, m.world_size, m.machine) for m in rows} == {("broadcast", 2, "NVIDIA H200 on hostB")}


@pytest.mark.parametrize("hostname, device_info", [(1.5, True), ({"m": 1}, "NVIDIA H100"), (["a"], "NVIDIA H100"),
                                                   ("h100-003", None)])
def test_json_devices_of_other_types_name_no_machine(hostname, device_info):
    """-J devices whose hostname or device_info is not text say nothing of the machine (not '1.5 on True')."""
    import json
    doc = json.loads((FIX / "all_gather_perf_h100.json").read_text())
    for d in doc["config"]["devices"]:
        d["hostname"], d["device_info"] = hostname, device_info
    assert {m.machine for m in nccl_tests.parse_json(json.dumps(doc))} == {""}


def test_a_machine_name_is_one_line():
    assert nccl_tests.machine_name([("gpu 49", "NVIDIA H100\nFAKE LINE")]) == "NVIDIA H100 FAKE LINE on gpu 49"


def test_host_count_reads_a_machine_name():
    assert nccl_tests.host_count("NVIDIA H200 on gpu49") == 1
    assert nccl_tests.host_count("NVIDIA A100-SXM4-80GB on node03,node04") == 2
    assert nccl_tests.host_count("NVIDIA H200 on 16 hosts (node01..node16)") == 16
    assert nccl_tests.host_count("") == 0
