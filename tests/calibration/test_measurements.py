"""Measurement records and their CSV: validation, errors that name file/line/column, round trips, and the invariants
the committed H200 measurements must hold (validation/data/h200)."""
import csv
import math
from collections import defaultdict
from pathlib import Path

import pytest

from gpusim.calibration import measurements as M
from gpusim.calibration.measurements import Measurement
from gpusim.errors import GpusimError

DATA = Path(__file__).resolve().parents[2] / "validation" / "data" / "h200"
OPS6 = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "sendrecv")
TRANSPORTS = ("nvlink", "pcie_shm", "socket")
MiB, GiB = 1 << 20, 1 << 30


def rec(**kw):
    base = dict(op="all_reduce", world_size=4, size_bytes=1 << 20, time_s=30e-6, transport="nvlink")
    return Measurement(**{**base, **kw})


# -- the record -----------------------------------------------------------------------------------------------------

def test_record_normalises_op_names_and_derives_bandwidth():
    m = rec(op="AllReduce", size_bytes=1_000_000, time_s=10e-6)
    assert m.op == "all_reduce"
    assert m.algbw_Bps == pytest.approx(1e11)
    assert m.busbw_factor == pytest.approx(1.5)
    assert rec(op="send_recv").op == "sendrecv" and rec(op="alltoall").busbw_factor == pytest.approx(0.75)


@pytest.mark.parametrize("kw, field", [
    ({"op": "all_reduse"}, "Measurement.op"),
    ({"world_size": 0}, "Measurement.world_size"),
    ({"world_size": True}, "Measurement.world_size"),
    ({"world_size": 2.0}, "Measurement.world_size"),
    ({"size_bytes": -1}, "Measurement.size_bytes"),
    ({"time_s": 0.0}, "Measurement.time_s"),
    ({"time_s": math.nan}, "Measurement.time_s"),
    ({"time_s": -1e-6}, "Measurement.time_s"),
    ({"transport": ""}, "Measurement.transport"),
    ({"channels": 0}, "Measurement.channels"),
    ({"channels": 65}, "Measurement.channels"),
])
def test_record_refuses_impossible_values(kw, field):
    with pytest.raises(GpusimError) as e:
        rec(**kw)
    assert e.value.path == field


# -- CSV ------------------------------------------------------------------------------------------------------------

def test_write_then_load_gives_the_same_records(tmp_path):
    rows = [rec(), rec(op="sendrecv", world_size=2, size_bytes=8, time_s=22.539e-6, busbw_GBps=0.0004,
                       algbw_GBps=0.0004, in_place=True, algo="Ring", proto="LL", host_s=21.9e-6, time_min_s=21e-6,
                       time_max_s=23e-6, trials=3, iters=751, launch="eager", gpus="0;1", count=2, dtype="float32",
                       machine="h200x4", nccl_version="2.28.9", torch_version="2.11.0", source="run.csv:7",
                       channels=4)]
    path = M.write_csv(tmp_path / "sub" / "m.csv", rows)
    back = M.load_csv(path)
    for a, b in zip(back, rows):     # microseconds in the file: equal to float rounding
        for f in M.MEASUREMENT_FIELDS:
            va, vb = getattr(a, f), getattr(b, f)
            assert va == (pytest.approx(vb, rel=1e-12) if isinstance(vb, float) else vb) or f == "source", f
    assert back[0].source == "m.csv:2" and back[1].source == "run.csv:7"    # no source given: file:line
    assert M.load_csv(M.write_csv(tmp_path / "again.csv", back)) == back    # and from then on exactly
    with open(path) as fh:
        assert next(csv.reader(fh)) == list(M.CSV_COLUMNS)


def test_minimal_csv_with_only_required_columns(tmp_path):
    p = tmp_path / "min.csv"
    p.write_text("transport,world_size,op,bytes,time_us\nsocket,2,AllGather,4096,71.5\n")
    (m,) = M.load_csv(p)
    assert (m.op, m.world_size, m.size_bytes, m.algo, m.proto, m.in_place) == ("all_gather", 2, 4096, "default",
                                                                                 "default", False)
    assert m.time_s == pytest.approx(71.5e-6) and m.busbw_GBps is None and m.source == "min.csv:2"


HEADER = "transport,world_size,op,bytes,time_us,in_place\n"


@pytest.mark.parametrize("body, where, message", [
    ("nvlink,4,all_reduce,1024,abc,0\n", ":2:time_us", "positive finite number"),
    ("nvlink,4,all_reduce,1024,0,0\n", ":2:time_us", "positive finite number"),
    ("nvlink,4,all_reduce,1024,nan,0\n", ":2:time_us", "positive finite number"),
    ("nvlink,4,all_reduce,1024,1.0,0\nnvlink,four,all_reduce,1024,1.0,0\n", ":3:world_size", "integer >= 1"),
    ("nvlink,4,all_reduce,10.5,1.0,0\n", ":2:bytes", r"integer 0\.\.1125899906842624"),
    ("nvlink,4,all_reduce,1024,1.0,maybe\n", ":2:in_place", "0 or 1"),
    (f"nvlink,4,all_reduce,{10**400},1.0,0\n", ":2:bytes", r"integer 0\.\.1125899906842624"),   # was OverflowError
    ("nvlink,4,all_reduce,1e300,1.0,0\n", ":2:bytes", r"integer 0\.\.1125899906842624"),
    ("nvlink,4,all_reduce,1024,1e-320,0\n", ":2:time_us", r"at least 1e-06 us"),  # 0 s, with no line named
    ("nvlink,4,all_reduce,1024,1e-300,0\n", ":2:time_us", r"at least 1e-06 us"),
    ("nvlink,4,allreduse,1024,1.0,0\n", ":2:op", "unknown operation 'allreduse'"),
    (",4,all_reduce,1024,1.0,0\n", ":2:transport", "transport name"),
    ("nvlink,4,all_reduce,1024,1.0,0,extra\n", ":2", "7 fields, the header has 6"),
    ("nvlink,4,all_reduce,1024\n", ":2", "4 fields, the header has 6; truncated line"),
    ("nvlink,4,all_reduce,1024,1.0,0\nnvlink,4,all_reduce,10\n", ":3", "4 fields, the header has 6"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, body, where, message):
    p = tmp_path / "bad.csv"
    p.write_text(HEADER + body)
    with pytest.raises(GpusimError, match=message) as e:
        M.load_csv(p)
    assert e.value.path == f"{p}{where}"


@pytest.mark.parametrize("cell, want", [("", None), ("1", 1), ("16", 16), ("0", "integer >= 1"),
                                        ("65", "1..64"), ("four", "integer >= 1")])
def test_channels_column_holds_the_forced_channel_count(tmp_path, cell, want):
    """``channels``: NCCL_MIN_NCHANNELS = NCCL_MAX_NCHANNELS of the call, empty where NCCL chose its own count."""
    p = tmp_path / "ch.csv"
    p.write_text(f"transport,world_size,op,bytes,time_us,channels\nnvlink,2,all_reduce,1024,9.5,{cell}\n")
    if want is None or isinstance(want, int):
        assert M.load_csv(p)[0].channels == want
    else:
        with pytest.raises(GpusimError, match=want) as e:
            M.load_csv(p)
        assert e.value.path == f"{p}:2:channels"


def test_a_short_row_is_named_not_its_first_missing_cell(tmp_path):
    """csv fills a short row's missing cells with None: the error names the row and both counts, not 'got None'."""
    p = tmp_path / "short.csv"
    full = ",".join(M.to_row(M.Measurement("all_reduce", 4, 1024, 1e-5, "nvlink")).values())
    p.write_text(",".join(M.CSV_COLUMNS) + "\n" + full + "\n" + full[:full.index(",all_reduce") + 11] + "\n")
    with pytest.raises(GpusimError, match=f"5 fields, the header has {len(M.CSV_COLUMNS)}; truncated") as e:
        M.load_csv(p)
    assert e.value.path == f"{p}:3"


def test_transports_outside_the_accepted_ones_are_errors_at_their_line(tmp_path):
    """A misspelt transport (nvlinkx) is an error naming file, line and column when the caller says which transports
    it accepts; without that list any name loads, as before."""
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "nvlink,4,all_reduce,1024,1.0,0\nnvlinkx,4,all_reduce,2048,1.0,0\n")
    with pytest.raises(GpusimError, match="one of nvlink, socket, got 'nvlinkx'") as e:
        M.load_csv(p, transports=("nvlink", "socket"))
    assert e.value.path == f"{p}:3:transport"
    assert [m.transport for m in M.load_csv(p)] == ["nvlink", "nvlinkx"]


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("transport,world_size,op\nnvlink,2,all_reduce\n", "missing column"),
    (HEADER, "no measurement rows"),
    (HEADER + "\n\n", "no measurement rows"),
])
def test_bad_files(tmp_path, text, message):
    p = tmp_path / "f.csv"
    p.write_text(text)
    with pytest.raises(GpusimError, match=message):
        M.load_csv(p)


def test_unreadable_or_binary_file(tmp_path):
    with pytest.raises(GpusimError, match="cannot read"):
        M.load_csv(tmp_path / "nope.csv")
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(GpusimError, match="not"):
        M.load_csv(p)
    p.write_bytes(HEADER.encode() + "nvlinké,4,all_reduce,1024,1.0,0\n".encode("latin-1"))
    with pytest.raises(GpusimError, match="not UTF-8") as e:
        M.load_csv(p)
    assert e.value.path == str(p)


def test_write_refuses_other_objects(tmp_path):
    with pytest.raises(GpusimError, match=r"rows\[1\]"):
        M.write_csv(tmp_path / "x.csv", [rec(), {"op": "all_reduce"}])


# -- the committed H200 measurements --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def h200():
    return M.load_csv(DATA / "collectives.csv")


def test_committed_csv_round_trips(h200, tmp_path):
    assert M.load_csv(M.write_csv(tmp_path / "copy.csv", h200)) == h200


def test_every_op_transport_and_world_size_is_there(h200):
    have = {(m.transport, m.world_size, m.op) for m in h200 if m.algo == "default"}
    assert have == {(t, n, op) for t in TRANSPORTS for n in (2, 4) for op in OPS6}
    variants = {(m.transport, m.world_size, m.algo, m.proto) for m in h200 if m.algo != "default"}
    assert variants == {(t, n, a, p) for t in ("nvlink", "pcie_shm") for n in (2, 4) for a in ("Ring", "Tree")
                        for p in ("LL", "LL128", "Simple")}
    assert {m.launch for m in h200} == {"nccl_api"}
    assert {m.gpus for m in h200 if m.world_size == 2} == {"0;1"}
    assert {m.gpus for m in h200 if m.world_size == 4} == {"0;1;2;3"}
    sizes = {m.size_bytes for m in h200 if m.transport == "nvlink" and m.op == "all_reduce"}
    assert sizes == {1 << k for k in range(3, 33)}          # 8 B .. 4 GiB


def test_bandwidth_columns_agree_with_size_time_and_factor(h200):
    for m in h200:
        f = m.busbw_factor
        assert abs(m.busbw_GBps - m.algbw_GBps * f) <= 1e-4 * (1 + f), m.source
        exact = m.size_bytes / m.time_s / 1e9
        assert abs(m.algbw_GBps - exact) <= 5e-5 + exact * 5e-4 / (m.time_s * 1e6), m.source
        assert m.time_min_s <= m.time_s <= m.time_max_s and m.trials >= 3 and m.iters >= 2, m.source


def series(rows):
    out = defaultdict(dict)
    for m in rows:
        out[(m.transport, m.world_size, m.op, m.algo, m.proto)][m.size_bytes] = m
    return out


def test_time_grows_with_size_at_large_sizes(h200):
    for key, pts in series(h200).items():
        big = sorted(s for s in pts if s >= 64 * MiB)
        assert len(big) >= 4, key
        times = [pts[s].time_s for s in big]
        assert all(b > a for a, b in zip(times, times[1:])), key


def test_nvlink_beats_socket_from_1_MiB_and_pcie_from_2_MiB(h200):
    """Below ~1 MiB every transport's call costs about the host's issue interval (8-30 us), so the comparison
    starts at 1 MiB for sockets and 2 MiB for PCIe; sockets stop at 1 GiB (validation/data/h200/README.md)."""
    s = series(h200)
    for (t, n, op, algo, proto), pts in s.items():
        if t != "nvlink" or algo != "default":
            continue
        for other, lo in (("socket", MiB), ("pcie_shm", 2 * MiB)):
            theirs = s[(other, n, op, algo, proto)]
            compared = [size for size in pts if size >= lo and size in theirs]
            assert len(compared) >= 10, (op, n, other)
            for size in compared:
                assert pts[size].time_s < theirs[size].time_s, (op, n, size, other)


def test_nccl_api_launches_are_faster_than_eager_when_small_and_equal_when_large(h200):
    """The same calls through torch.distributed (extra/collectives_eager.csv) pay PyTorch's per-call cost below
    64 KiB (median ratio eager / C API: 2.7 on NVLink, 2.0 on SHM, 1.3 on sockets, whose own latency is larger);
    from 256 MiB the GPU is the bottleneck either way and
    NVLink agrees within 3 % and SHM within 8 % at NCCL's own choice of algorithm. Sockets vary run to run by more
    (loopback TCP on a shared host), and so do forced LL/LL128 on SHM (up to 70 %), so sockets are held to 35 %
    and forced variants are left out."""
    import statistics
    eager_rows = M.load_csv(DATA / "extra" / "collectives_eager.csv")
    assert {m.launch for m in eager_rows} == {"eager"}
    eager = {(m.transport, m.world_size, m.op, m.algo, m.proto, m.size_bytes): m.time_s for m in eager_rows}
    for t in TRANSPORTS:
        small = [(m.time_s, eager[k]) for m in h200 if m.size_bytes < 64 * 1024
                 and (k := (m.transport, m.world_size, m.op, m.algo, m.proto, m.size_bytes)) in eager
                 and m.transport == t]
        assert statistics.median(e / a for a, e in small) > {"nvlink": 2.5, "pcie_shm": 1.8, "socket": 1.2}[t], t
        large = [(m.time_s, eager[k]) for m in h200 if m.size_bytes >= 256 * MiB and m.algo == "default"
                 and (k := (m.transport, m.world_size, m.op, m.algo, m.proto, m.size_bytes)) in eager
                 and m.transport == t]
        assert len(large) >= 20
        worst = max(abs(e / a - 1) for a, e in large)
        assert worst < {"nvlink": 0.03, "pcie_shm": 0.08, "socket": 0.35}[t], (t, worst)


def test_cuda_graph_replay_orders_transports_at_small_sizes():
    """Replayed as a CUDA graph (no per-call PyTorch dispatch), small calls are slowest on sockets and fastest on
    NVLink for every op but broadcast (one sender); eager launches do not separate the transports there."""
    import statistics
    rows = M.load_csv(DATA / "extra" / "collectives_cuda_graph.csv")

    def floor(t, n, op):
        return statistics.median(m.time_s for m in rows if (m.transport, m.world_size, m.op, m.algo) ==
                                 (t, n, op, "default") and m.size_bytes <= 4096)
    for op in OPS6:
        if op == "broadcast":
            continue
        for n in (2, 4):
            assert floor("nvlink", n, op) < floor("pcie_shm", n, op) < floor("socket", n, op), (op, n)


def test_bus_bandwidth_stays_under_the_link_rates(h200):
    """NVLink 4 on H200: 18 links x 25 GB/s = 450 GB/s per direction; PCIe Gen5 x16: ~63 GB/s per direction."""
    peak = {t: max(m.busbw_GBps for m in h200 if m.transport == t) for t in TRANSPORTS}
    assert 300 < peak["nvlink"] < 450
    assert 15 < peak["pcie_shm"] < 63
    assert 1 < peak["socket"] < peak["pcie_shm"]
    ar = {(m.transport, m.world_size): m.busbw_GBps for m in h200
          if m.op == "all_reduce" and m.algo == "default" and m.size_bytes == GiB}
    assert ar[("nvlink", 4)] > 10 * ar[("pcie_shm", 4)] > 10 * ar[("socket", 4)] / 2


def test_cuda_graph_rows_load_and_cover_the_small_sizes():
    rows = M.load_csv(DATA / "extra" / "collectives_cuda_graph.csv")
    assert {m.launch for m in rows} == {"cuda_graph"}
    assert max(m.size_bytes for m in rows) == 16 * MiB
    assert {(m.transport, m.world_size, m.op) for m in rows if m.algo == "default"} == {
        (t, n, op) for t in TRANSPORTS for n in (2, 4) for op in OPS6}


def test_copy_bandwidth_file():
    with open(DATA / "extra" / "copy_bandwidth.csv") as fh:
        rows = list(csv.DictReader(fh))
    gbps = {(r["kind"], r["src"], r["dst"], int(r["bytes"])): float(r["GBps"]) for r in rows}
    h2d, d2h = gbps[("h2d", "host", "cuda:0", GiB)], gbps[("d2h", "cuda:0", "host", GiB)]
    assert 40 < h2d < 64 and abs(h2d - d2h) < 0.1 * h2d          # PCIe Gen5 x16, both directions alike
    peers = [v for (k, s, d, b), v in gbps.items() if k == "d2d_peer" and b == GiB]
    assert len(peers) == 12 and min(peers) > 5 * h2d              # every ordered pair over NVLink
    assert gbps[("d2d_bidir", "cuda:0", "cuda:1", GiB)] > gbps[("d2d_peer", "cuda:0", "cuda:1", GiB)]


def test_local_copy_rate_is_the_median_d2d_local_at_the_largest_size(tmp_path):
    """What `gpusim calibrate --local-copy COPY.csv` reads: a long copy's rate, where the launch does not count."""
    assert M.local_copy_Bps(DATA / "extra" / "copy_bandwidth.csv") == pytest.approx(2114.101e9)
    f = tmp_path / "copy.csv"
    f.write_text(",".join(M.COPY_COLUMNS) + "\n" + "".join(
        f"m,{kind},cuda:{g},cuda:{g},{size},1,1,1,{gbps},3,10,0,\n"
        for kind, g, size, gbps in (("d2d_local", 0, MiB, 100), ("d2d_local", 0, GiB, 1500), ("d2d_local", 1, GiB, 1700),
                                    ("d2d_peer", 0, GiB, 400), ("d2d_local", 2, GiB, 1600))))
    assert M.local_copy_Bps(f) == pytest.approx(1600e9)
    f.write_text(",".join(M.COPY_COLUMNS) + "\nm,h2d,host,cuda:0,1024,1,1,1,50,3,10,1,\n")
    with pytest.raises(GpusimError, match="no d2d_local row"):
        M.local_copy_Bps(f)
    with pytest.raises(GpusimError, match="missing column.*kind"):
        M.local_copy_Bps(DATA / "collectives.csv")


def test_harness_writes_the_schema_the_loader_reads():
    """validation/collect.py (stdlib-only at import) writes the loader's columns, less 'source', and the same busbw
    factors."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("collect", DATA.parents[1] / "collect.py")
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)
    assert collect.CSV_COLUMNS + ("source",) == M.CSV_COLUMNS
    for op in OPS6:
        for n in (2, 4, 8):
            assert collect.busbw_factor(op, n) == pytest.approx(M.busbw_factor(op, n))
    assert collect.size_list(8, 4 * GiB) == [1 << k for k in range(3, 33)]
    assert collect.parse_size("4GiB") == 4 * GiB and collect.parse_size("64KiB") == 65536
    both = {"NCCL_MIN_NCHANNELS": "8", "NCCL_MAX_NCHANNELS": "8"}
    assert collect.forced_channels(both) == "8" and collect.forced_channels({}) == ""
    assert collect.forced_channels({**both, "NCCL_MIN_NCHANNELS": "4"}) == ""    # a range fixes no count
    assert collect.forced_channels({"NCCL_MAX_NCHANNELS": "8"}) == ""
    assert collect.variant_ops("Ring", "all_reduce,all_gather,broadcast") == ["all_reduce", "all_gather", "broadcast"]
    assert collect.variant_ops("Tree", "all_reduce,all_gather") == ["all_reduce"]
    assert collect.OPS[:4] == ("all_reduce", "all_gather", "reduce_scatter", "broadcast")


@pytest.mark.parametrize("argv, words", [
    (["--transports", "socket,nvlink", "--nproc", "2"], "use --transports socket"),
    (["--transports", "socket", "--nproc", "1"], "--nproc N"),
])
def test_harness_share_gpu_refuses_what_cannot_run(tmp_path, capsys, argv, words):
    """collect.py --share-gpu puts every rank on GPU 0: only NCCL's network transport joins such ranks (P2P and SHM
    refuse two ranks on one GPU), and one rank has no peer. Refused before any process starts."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("collect", DATA.parents[1] / "collect.py")
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)
    with pytest.raises(SystemExit):
        collect.main(["--dry-cpu", "--share-gpu", "--out", str(tmp_path), *argv])
    assert words in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))


# -- runs 2 and 3: repeatability, a third world size, alignment --------------------------------------------------

@pytest.fixture(scope="module")
def run2():
    return M.load_csv(DATA / "collectives_run2.csv")


def _keyed(rows):
    return {(m.transport, m.world_size, m.op, m.algo, m.proto, m.size_bytes): m.time_s for m in rows}


def test_run_2_has_three_world_sizes_and_aligned_3_rank_splits(run2):
    """Run 2 repeats run 1 on a fresh machine and adds 3 ranks; its 3-rank all_gather, reduce_scatter and
    all_to_all use sizes 3 x 2^k (each rank's chunk a whole power of two), the power-of-two ones being in extra/."""
    have = {(m.transport, m.world_size, m.op) for m in run2 if m.algo == "default"}
    assert have == {(t, n, op) for t in TRANSPORTS for n in (2, 3, 4) for op in OPS6}
    for m in run2:
        if m.world_size == 3 and m.op in ("all_gather", "reduce_scatter", "all_to_all"):
            chunk = m.size_bytes // 3
            assert m.size_bytes == 3 * chunk and chunk & (chunk - 1) == 0, m.source
    assert {(m.transport, m.world_size) for m in M.load_csv(DATA / "collectives_run3.csv")} == \
        {("socket", 2), ("socket", 4)}


def test_nvlink_and_shm_repeat_between_machine_starts_and_sockets_do_not(h200, run2):
    """At >= 1 MiB the same call on a fresh machine took the same time within a median 1 % on NVLink and 3 % over
    SHM, while loopback sockets moved by a median 8-20 %: the floor under any socket model's error."""
    import statistics
    a, b = _keyed(h200), _keyed(run2)
    for t, lo, hi in (("nvlink", 0.0, 0.01), ("pcie_shm", 0.0, 0.035), ("socket", 0.05, 0.25)):
        for n in (2, 4):
            d = [abs(b[k] / v - 1) for k, v in a.items() if k in b and k[0] == t and k[1] == n and k[5] >= MiB
                 and k[3] == "default"]
            assert len(d) >= 60 and lo <= statistics.median(d) <= hi, (t, n, statistics.median(d))


def test_socket_runs_4_and_5_cover_2_3_4_ranks_with_unaligned_splits_apart():
    """Runs 4 and 5 repeat the socket transport on two more machine starts: all six ops on 2 and 4 ranks, and on
    3 ranks the ops whose chunk is the whole buffer; their 3-rank all_gather, reduce_scatter and all_to_all (power-of-
    two buffers, chunks off a 16-byte boundary) are kept apart in extra/ as run 2's are."""
    for run in (4, 5):
        rows = M.load_csv(DATA / f"collectives_run{run}.csv")
        have = {(m.transport, m.world_size, m.op) for m in rows}
        split = {"all_gather", "reduce_scatter", "all_to_all"}
        assert have == {("socket", n, op) for n in (2, 3, 4) for op in OPS6 if n != 3 or op not in split}
        assert max(m.size_bytes for m in rows) == GiB and {m.launch for m in rows} == {"nccl_api"}
        odd = M.load_csv(DATA / "extra" / f"collectives_3rank_unaligned_run{run}.csv")
        assert {(m.transport, m.world_size) for m in odd} == {("socket", 3)} and {m.op for m in odd} == split


def test_3_rank_chunks_off_a_16_byte_boundary_slow_all_gather_and_all_to_all(run2):
    """With 3 ranks a power-of-two buffer leaves each rank a chunk that is a multiple of 4 or 8 bytes only (as in
    nccl-tests, which rounds the same way); NCCL then moves all_gather at 0.46-0.85x and all_to_all at 0.28-0.66x
    the busbw of aligned neighbours (NVLink and SHM, >= 16 MiB), worse at 4-byte than at 8-byte alignment, while
    reduce_scatter stays within 15 %. The model does not see alignment: these rows are kept out of the fit."""
    import statistics
    odd = M.load_csv(DATA / "extra" / "collectives_3rank_unaligned.csv")
    assert {m.world_size for m in odd} == {3}
    for t in ("nvlink", "pcie_shm"):
        for op, worst in (("all_gather", 0.9), ("all_to_all", 0.7), ("reduce_scatter", 1.1)):
            aligned = {m.size_bytes: m.busbw_GBps for m in run2 if (m.transport, m.world_size, m.op) == (t, 3, op)}
            ratio = {}
            for m in odd:
                if (m.transport, m.op) == (t, op) and m.size_bytes >= 16 * MiB:
                    near = min(aligned, key=lambda s: abs(s - m.size_bytes))
                    ratio[m.size_bytes] = m.busbw_GBps / aligned[near]
            assert len(ratio) == 8 and max(ratio.values()) < worst, (t, op, ratio)
            if op != "reduce_scatter":
                four = [r for s, r in ratio.items() if (s // 3) % 8]       # chunk a multiple of 4 bytes only
                eight = [r for s, r in ratio.items() if not (s // 3) % 8]
                assert statistics.mean(four) < statistics.mean(eight), (t, op)


def test_nvlink_sendrecv_follows_nccls_channels_per_peer(h200, run2):
    """NCCL stripes a send over 16 channels on 2 ranks but 8 on 3 or 4 from 1 to 128 MiB, and 16 then 32 on any
    from 256 MiB (nccl_model.p2p_channels): 3- and 4-rank sendrecv runs at 0.45-0.7x the 2-rank rate at 16-128
    MiB, and within 2 % of it from 256 MiB, in both runs."""
    for rows in (h200, run2):
        bw = {(m.world_size, m.size_bytes): m.busbw_GBps for m in rows
              if (m.transport, m.op) == ("nvlink", "sendrecv")}
        for n in {m.world_size for m in rows} - {2}:
            for k in range(24, 33):
                ratio = bw[(n, 1 << k)] / bw[(2, 1 << k)]
                if k <= 27:
                    assert 0.45 < ratio < 0.7, (n, k, ratio)
                else:
                    assert abs(ratio - 1) < 0.02, (n, k, ratio)


# -- probes: in place vs out of place, host copies, GPU pairs over SHM, channel counts --------------------------------

PROBES = DATA / "extra" / "probe_host_and_channels"


def _busbw(rows, op, n, size):
    (bw,) = [m.busbw_GBps for m in rows if (m.op, m.world_size, m.size_bytes) == (op, n, size)]
    return bw


def test_in_place_all_gather_skips_the_own_chunk_copy_and_reduce_scatter_does_not():
    """Out of place, all_gather also copies each rank's own chunk (S/n) into the output; in place (nccl-tests'
    in-place columns, collect.py --in-place) it is there already. Measured on one machine start: in place is 8-10 %
    faster at 1-4 GiB on 2 ranks and 2-4 % on 4 (the copy weighs S/n), the extra time being a pass over S/n at
    3-5.5 TB/s; reduce_scatter writes its result either way and runs within 3 %."""
    inplace = M.load_csv(DATA / "extra" / "probe_in_place" / "in_place.csv")
    outplace = M.load_csv(DATA / "extra" / "probe_in_place" / "out_of_place.csv")
    assert {m.in_place for m in inplace} == {True} and {m.in_place for m in outplace} == {False}
    for n, lo, hi in ((2, 0.08, 0.10), (4, 0.02, 0.04)):
        for size in (GiB, 2 * GiB, 4 * GiB):
            gain = _busbw(inplace, "all_gather", n, size) / _busbw(outplace, "all_gather", n, size) - 1
            assert lo < gain < hi, (n, size, gain)
            t_in, t_out = (next(m.time_s for m in rows if (m.op, m.world_size, m.size_bytes) == ("all_gather", n, size))
                           for rows in (inplace, outplace))
            copy_rate = size / n / (t_out - t_in)
            assert 3e12 < copy_rate < 5.5e12, (n, size, copy_rate)
            rs = _busbw(inplace, "reduce_scatter", n, size) / _busbw(outplace, "reduce_scatter", n, size)
            assert abs(rs - 1) < 0.03, (n, size, rs)


def test_host_copies_share_a_host_ceiling_that_two_gpus_do_not_reach():
    """Copy-engine copies to and from pinned host memory: one GPU 55 GB/s a way, two GPUs (any pair) twice that one
    way, four GPUs far from four times (123 GB/s to the host, 156 from it)."""
    import statistics
    with open(PROBES / "host_copies.csv") as fh:
        rows = list(csv.DictReader(fh))
    total = defaultdict(list)
    for r in rows:
        total[r["pattern"]].append(float(r["pattern_total_GBps"]))
    t = {p: statistics.median(v) for p, v in total.items()}
    one = t["g0_d2h"]
    assert 50 < one < 60 and abs(t["g0_h2d"] / one - 1) < 0.05
    for pair in ("g01_d2h", "g01_h2d", "g0d2h_g1h2d", "g0d2h_g2h2d", "g0d2h_g3h2d"):
        assert 1.85 < t[pair] / one < 2.05, (pair, t[pair])
    pairs_both = [t[p] for p in ("g01_both", "g02_both", "g03_both", "g23_both")]
    assert max(pairs_both) / min(pairs_both) < 1.05                   # no pair shares more than another
    assert 2.0 < t["g0123_d2h"] / one < 2.5 and t["g0123_both"] < 3 * one   # four GPUs: a shared host ceiling


def test_shm_runs_alike_on_every_gpu_pair():
    """2-rank SHM on GPU pairs 0-1, 0-2, 0-3 and 2-3: broadcast, all_gather and all_reduce within 5 % across pairs at
    every size, sendrecv within 15 % (pair 0-1 slowest, by 8-11 %), so the pair 0-1 of runs 1-3 stands for the
    others."""
    rows = M.load_csv(PROBES / "shm_gpu_pairs.csv")
    by = defaultdict(dict)
    for m in rows:
        by[(m.op, m.size_bytes)][m.gpus] = m.busbw_GBps
    assert len(by) == 16 and all(len(v) == 4 for v in by.values())
    for (op, size), bws in by.items():
        spread = max(bws.values()) / min(bws.values()) - 1
        assert spread < (0.15 if op == "sendrecv" else 0.05), (op, size, bws)


def test_rates_rise_with_size_only_with_many_channels_of_two_way_traffic(h200, run2):
    """Increments of time from 32 MiB to 2 GiB on 2 ranks: with 8 channels all_gather's and all_reduce's stay within
    2 % (time affine in size), at NCCL's default 24 they rise 14-20 %, and broadcast's stay within 3 % either way."""
    def increments(rows, op):
        sizes = (32 * MiB, 128 * MiB, 512 * MiB, 2 * GiB)
        t = defaultdict(list)
        for m in rows:
            if (m.transport, m.op, m.world_size, m.algo) == ("nvlink", op, 2, "default") and m.size_bytes in sizes:
                t[m.size_bytes].append(m.time_s)
        med = [sorted(t[s])[len(t[s]) // 2] for s in sizes]
        return [(b - a) / (tb - ta) for a, b, ta, tb in zip(sizes, sizes[1:], med, med[1:])]

    eight = M.load_csv(PROBES / "nvlink_8_channels.csv")
    default = h200 + run2
    for op in ("all_gather", "all_reduce"):
        inc = increments(eight, op)
        assert max(inc) / min(inc) < 1.02, (op, inc)
        inc = increments(default, op)
        assert inc == sorted(inc) and 1.14 < inc[-1] / inc[0] < 1.2, (op, inc)
    for rows in (eight, default):
        inc = increments(rows, "broadcast")
        assert max(inc) / min(inc) < 1.03, inc


def test_shm_rings_gain_from_channels_on_2_ranks_and_lose_on_4(h200, run2):
    """SHM with 2, 4 (NCCL's default, runs 1-2), 8 and 16 channels at 1 GiB: 2-rank all_gather and all_reduce get
    faster with channels (each channel alternates a send and a receive step, so 25 + 25 GB/s is not a GPU's
    limit), 4-rank ones slower (a shared host resource as streams multiply), 2-rank broadcast stays within 12 % of
    50 GB/s, and sendrecv, on point-to-point channels of its own, within 10 % of 23 GB/s."""
    folder = DATA / "extra" / "probe_shm_channels"
    bw = {ch: {(m.op, m.world_size): m.busbw_GBps for m in M.load_csv(folder / f"shm_{ch}_channels.csv")
               if m.size_bytes == GiB} for ch in (2, 8, 16)}
    default = defaultdict(list)
    for m in h200 + run2:
        if (m.transport, m.algo, m.size_bytes) == ("pcie_shm", "default", GiB):
            default[(m.op, m.world_size)].append(m.busbw_GBps)
    bw[4] = {k: sum(v) / len(v) for k, v in default.items()}
    for op in ("all_gather", "all_reduce"):
        two = [bw[ch][(op, 2)] for ch in (2, 4, 8)]
        four = [bw[ch][(op, 4)] for ch in (2, 4, 8, 16)]
        assert two == sorted(two) and bw[16][(op, 2)] > 1.2 * bw[4][(op, 2)], (op, two)
        assert four == sorted(four, reverse=True) and bw[16][(op, 4)] < 0.85 * bw[4][(op, 4)], (op, four)
    for ch in (2, 4, 8, 16):
        assert abs(bw[ch][("broadcast", 2)] / 50 - 1) < 0.12, (ch, bw[ch][("broadcast", 2)])
        for n in (2, 4):
            assert abs(bw[ch][("sendrecv", n)] / 23 - 1) < 0.1, (ch, n, bw[ch][("sendrecv", n)])


def test_two_jobs_on_disjoint_pairs_share_host_memory_but_not_nvswitch():
    """Two 2-rank jobs at once, on GPUs 0-1 and 2-3 (1 GiB; sockets 256 MiB), against 0-1 alone: over NVLink
    neither slows (the NVSwitch fabric is non-blocking, and the simulator, running both on h200-nvlink:gpus=4,
    agrees); over SHM, whose staging crosses one host, all_gather slows 15-35 % and broadcast 3-12 %."""
    from gpusim import presets
    from gpusim.collectives.run import Collectives, measure
    from gpusim.engine.fabric import Fabric
    folder = DATA / "extra" / "probe_concurrent_pairs"
    alone, together = ({(m.transport, m.op): m for m in M.load_csv(folder / f)}
                       for f in ("alone_01.csv", "together_01.csv"))
    assert set(alone) == set(together) == {(t, op) for t in TRANSPORTS for op in ("all_gather", "broadcast")}
    slow = {k: together[k].time_s / alone[k].time_s - 1 for k in alone}
    assert abs(slow[("nvlink", "all_gather")]) < 0.01 and abs(slow[("nvlink", "broadcast")]) < 0.01
    assert 0.15 < slow[("pcie_shm", "all_gather")] < 0.35 and 0.03 < slow[("pcie_shm", "broadcast")] < 0.12
    cluster = presets.build("h200-nvlink", params={"gpus": 4})
    for op in ("all_gather", "broadcast"):
        fabric = Fabric(cluster.graph)
        size = alone[("nvlink", op)].size_bytes
        solo = measure(fabric, cluster.model, op, [0, 1], size, back_to_back=True).time_s
        fabric.reset()
        coll = Collectives(fabric, cluster.model)
        a, _ = (fabric.env.process(coll.collective(op, pair, size, back_to_back=True)) for pair in ([0, 1], [2, 3]))
        fabric.env.run()
        assert a.value.time_s == pytest.approx(solo, rel=0.01)


def test_back_to_back_calls_last_as_long_as_the_host_issue_or_the_gpu_whichever_is_longer():
    """The same calls on one machine start, launched from the host one by one (C API) and replayed from a CUDA graph
    (the GPU's own time): at >= 16 MiB they agree within a few per cent; up to 1 KiB the host's issue interval sets
    the time (NVLink collectives 5-7 us on the GPU, 7.6-10.8 us per C-API call; a 4-rank all_to_all, a group of 8
    sends and receives, 6.5 us against 27 us); and max(host floor, GPU time) reproduces the C-API times to a median
    2.5 % where the GPU time alone is off by 4.7-9.8 %."""
    import statistics
    folder = DATA / "extra" / "probe_graph_vs_api"
    graph, api = (_keyed(M.load_csv(folder / f)) for f in ("graph.csv", "api.csv"))
    assert {m.launch for m in M.load_csv(folder / "graph.csv")} == {"nccl_api_graph"}
    assert graph.keys() == api.keys() and len(graph) > 700
    for t in ("nvlink", "pcie_shm"):
        for n in (2, 4):
            keys = [k for k in graph if k[:2] == (t, n)]
            big = [abs(api[k] / graph[k] - 1) for k in keys if k[5] >= 16 * MiB]
            assert statistics.median(big) < 0.02 and max(big) < 0.08, (t, n)
            floor = {k[:5]: statistics.median(api[j] for j in keys if j[:5] == k[:5] and j[5] <= 1024) for k in keys}
            as_max = [abs(max(floor[k[:5]], graph[k]) - api[k]) / api[k] for k in keys]
            gpu_only = [abs(graph[k] - api[k]) / api[k] for k in keys]
            assert statistics.median(as_max) < 0.03 < statistics.median(gpu_only), (t, n)
            assert all(api[k] > 0.98 * graph[k] for k in keys if k[5] <= MiB)      # the host only ever adds
    a2a = [(graph[k], api[k]) for k in graph if k[:3] == ("nvlink", 4, "all_to_all") and k[5] <= 1024]
    assert a2a and all(g < 10e-6 and a > 20e-6 for g, a in a2a)
