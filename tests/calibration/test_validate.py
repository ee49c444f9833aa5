"""Validation against the committed H200 NCCL measurements: the calibrated presets' errors, cross-validation
between world sizes, the simulated all_reduce curve's shape, and the calibrate/validate commands end to end.

Error bounds are what this model reaches on this data (docs/validation.md gives the numbers and why): NCCL's
latencies below 1 MiB vary by a few microseconds from size to size, NVLink's rate keeps rising up to 4 GiB where
the model has one rate per link, and loopback sockets vary run to run. The bounds are set a little above what the
fit reaches so that a regression in the model, the fit or the data fails them.
"""
import csv
import io
import json
from dataclasses import replace
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from gpusim import presets
from gpusim.calibration import fit, measurements, preset_file, transports
from gpusim.cli import main
from gpusim.errors import GpusimError

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "validation" / "data" / "h200"
#: the C-API runs the shipped presets were fitted to (validation/data/h200/README.md): runs 1-3, and sockets' 4-5
RUNS = sorted(DATA_DIR.glob("collectives*.csv"))
DATA = DATA_DIR / "collectives.csv"
PRESETS = {"nvlink": "h200-nvlink", "pcie_shm": "h200-pcie-shm", "socket": "h200-socket"}
MiB = 1 << 20


@pytest.fixture(scope="module")
def data():
    return [m for path in RUNS for m in measurements.load_csv(path)]


def _errors(rows, name):
    preset = preset_file.read(presets.calibrated()[name])
    sim = fit.simulate(rows, lambda n: preset.cluster(n), engine=False)
    return fit.summarise(rows, sim), preset


# (median <1MiB, median >=1MiB) bounds of the shipped presets (fitted on 2 and 4 ranks), per world size; 3 ranks
# were never fitted on
BOUNDS = {("nvlink", 2): (0.09, 0.10), ("nvlink", 3): (0.10, 0.075), ("nvlink", 4): (0.08, 0.07),
          ("pcie_shm", 2): (0.10, 0.04), ("pcie_shm", 3): (0.10, 0.13), ("pcie_shm", 4): (0.085, 0.105),
          ("socket", 2): (0.15, 0.095), ("socket", 3): (0.155, 0.07), ("socket", 4): (0.19, 0.065)}


@pytest.mark.parametrize("transport", sorted(PRESETS))
def test_committed_preset_errors_on_each_world_size(data, transport):
    """Each shipped preset, fitted on 2 and 4 ranks, predicts each world size's measurements within its bounds,
    3 ranks included, and the errors recorded in its provenance are the ones it has (the file came from this
    data)."""
    rows, skipped = fit.rows_from(data, transport)
    assert skipped == {} and len(rows) > 900
    for n in (2, 3, 4):
        sel = [r for r in rows if r.n == n]
        err, preset = _errors(sel, PRESETS[transport])
        small, large = BOUNDS[(transport, n)]
        assert err["<1MiB"]["median_rel_error"] <= small, (n, err["<1MiB"])
        assert err[">=1MiB"]["median_rel_error"] <= large, (n, err[">=1MiB"])
    err, preset = _errors([r for r in rows if r.n in (2, 4)], PRESETS[transport])
    recorded = preset.provenance["train"]
    assert recorded["world_sizes"] == [2, 4]
    assert recorded["median_rel_error"] == pytest.approx(err["all"]["median_rel_error"], abs=1e-4)


# cross-validation: fit on one world size, check the other; (median <1MiB, median >=1MiB) bounds on held-back rows.
# The target is 25 % / 10 %: met below 1 MiB everywhere, and at >= 1 MiB by NVLink and sockets both ways and
# SHM 4->2, and on NCCL's own choices also by SHM 2->4; docs/validation.md says what keeps SHM 2->4 above it.
CROSS = {("nvlink", 4): (0.08, 0.10), ("nvlink", 2): (0.145, 0.09),
         ("pcie_shm", 4): (0.145, 0.06), ("pcie_shm", 2): (0.14, 0.15),
         ("socket", 4): (0.225, 0.09), ("socket", 2): (0.18, 0.065)}


@pytest.mark.parametrize("transport, train", sorted(CROSS))
def test_cross_validation_between_world_sizes(data, transport, train):
    """Fit on 4 ranks and check 2, and the reverse; the bounds hold on ranks the fit never saw, and the shipped
    preset's provenance records the same cross-validation."""
    held = 6 - train
    result = fit.fit(data, transport, train_world_sizes=(train,), heldout_world_sizes=(held,), engine_check=False)
    assert result.heldout_world_sizes == (held,)
    small, large = CROSS[(transport, train)]
    assert result.heldout["<1MiB"]["median_rel_error"] <= small
    assert result.heldout[">=1MiB"]["median_rel_error"] <= large
    if transport != "socket":     # on NCCL's own choices (no forced variant) NVLink and SHM carry within 10 %
        default = [r for r in result.heldout_rows if r.variant == "default"]
        sim = fit.simulate(default, lambda n: result.preset.cluster(n), engine=False)
        assert fit.summarise(default, sim)[">=1MiB"]["median_rel_error"] <= 0.10
    # the fitted bandwidth is physical: a fraction of the datasheet, not a free-floating number
    link = next(p for p in result.transport.params if p.link)
    assert link.low * 2 < result.values[link.name] < link.high
    shipped = preset_file.read(presets.calibrated()[PRESETS[transport]]).provenance["cross_validation"]
    block = next(b for b in shipped if b["train"] == [train])
    assert block["world_sizes"] == [held]
    assert block["bands"][">=1MiB"]["median_rel_error"] == pytest.approx(
        result.heldout[">=1MiB"]["median_rel_error"], abs=1e-4)


def test_grouped_calls_wait_on_the_hosts_sends_and_receives(data):
    """Small all_to_all posts a send and a receive to every rank: through NCCL's C API it took 19, 28 and 29 us on
    2, 3 and 4 H200s over NVLink, where collectives took 11-13. The presets' issue interval (launch floor plus a
    fitted host time per send and receive) times small all_to_all within 20 % and sendrecv within 21 % (median
    over sizes below 1 MiB, all world sizes, 3 ranks never fitted; SHM's 2-rank sendrecv took 10 us, less than the
    collectives' floor, which no interval here gives); a floor alone (p2p_launch 0) leaves all_to_all 30 % or more
    fast."""
    for transport in ("nvlink", "pcie_shm"):
        rows, _ = fit.rows_from(data, transport)
        small = [r for r in rows if r.op in ("all_to_all", "sendrecv") and r.size_bytes < MiB]
        preset = preset_file.read(presets.calibrated()[PRESETS[transport]])
        assert 1.5e-6 < preset.model["p2p_launch_s"] < 2.5e-6
        for op in ("all_to_all", "sendrecv"):
            sel = [r for r in small if r.op == op]
            err = fit.summarise(sel, fit.simulate(sel, lambda n: preset.cluster(n), engine=False))["<1MiB"]
            assert err["median_rel_error"] < (0.20 if op == "all_to_all" else 0.21), (transport, op, err)
        a2a = [r for r in small if r.op == "all_to_all"]
        bare = lambda n: replace(preset.cluster(n), model=preset.cluster(n).model.with_overrides(p2p_launch_s=0.0))
        err = fit.summarise(a2a, fit.simulate(a2a, bare, engine=False))["<1MiB"]
        assert err["median_rel_error"] > 0.30 and err["bias"] < -0.30, (transport, err)


def test_the_hosts_time_per_send_and_receive_measured_alone_is_linear_and_near_the_fitted_one():
    """extra/probe_p2p_issue: groups of k self-sends and self-receives on a one-rank communicator (8 bytes, so the
    GPU's work is tiny), k = 1..8, took 10.2 to 28.3 us: a straight line in the 2k calls (within 0.6 us), 1.28 us a
    call. The presets' p2p_launch, fitted on multi-rank all_to_all and sendrecv, is 1.86 us (NVLink) and 1.77 (SHM):
    the same cost, some 40 % higher where each call has a real peer."""
    rows = [r for r in csv.reader(open(DATA_DIR / "extra" / "probe_p2p_issue" / "p2p_issue.csv"))
            if r and not r[0].startswith("#")][1:]
    calls = np.array([int(r[1]) for r in rows if int(r[0]) > 0], dtype=float)
    us = np.array([float(r[2]) for r in rows if int(r[0]) > 0])
    slope, intercept = np.polyfit(calls, us, 1)
    assert len(calls) == 8 and np.max(np.abs(us - (intercept + slope * calls))) < 0.6
    assert 1.2 < slope < 1.4
    for name in ("h200-nvlink", "h200-pcie-shm"):
        fitted = preset_file.read(presets.calibrated()[name]).model["p2p_launch_s"] * 1e6
        assert 1.0 < fitted / slope < 1.5, (name, fitted, slope)


def test_fitted_parameters_say_what_the_hardware_did(data):
    """NVLink runs at ~3/4 of its 450 GB/s raw per direction, and a point-to-point send moves ~19.5 GB/s per NCCL
    channel (8 channels on 4
    ranks from 1 to 128 MiB: half the 2-rank rate); over SHM each GPU moves ~50 GB/s in and out together (H2D copies
    measured 55 GB/s alone) and a p2p channel ~12 GB/s (a 4-rank sendrecv on one channel, 1-4 MiB: 11.3-12.6);
    loopback sockets carry a few GB/s per GPU, sent and received together (one-way
    broadcast ~5-6 GB/s, two-way rings ~3-4 each way), with no tighter limit on the wire."""
    nv = preset_file.read(presets.calibrated()["h200-nvlink"])
    shm = preset_file.read(presets.calibrated()["h200-pcie-shm"])
    sock = preset_file.read(presets.calibrated()["h200-socket"])
    assert 0.65 < nv.links["nvlink4"]["efficiency"] < 0.85
    assert 17e9 < nv.model["p2p_channel_Bps"] < 22e9
    assert 45e9 < shm.links["gpu_io"]["bandwidth_Bps"] < 60e9
    assert 10.5e9 < shm.model["p2p_channel_Bps"] < 13.5e9
    assert 63e9 * shm.links["pcie5"]["efficiency"] > shm.links["gpu_io"]["bandwidth_Bps"] / 2
    assert 5e9 < sock.links["gpu_io"]["bandwidth_Bps"] < 8e9
    assert sock.links["ethernet"]["bandwidth_Bps"] > sock.links["gpu_io"]["bandwidth_Bps"]
    assert sock.model["allowed_protocols"] == ("LL", "Simple")


def test_own_chunk_rates_come_from_the_measured_copies():
    """The NVLink preset's own-chunk rates are not fitted: they follow cost_model.own_chunk_rates from the H200's
    local copy rate (extra/copy_bandwidth.csv, 1 GiB) and the out-of-place all_gather's extra pass (median over
    1-4 GiB on 2 and 4 ranks of S/n over the time in place saved, extra/probe_in_place)."""
    import statistics
    from gpusim.collectives.cost_model import own_chunk_rates
    with open(DATA_DIR / "extra" / "copy_bandwidth.csv") as fh:
        local = [float(r["GBps"]) * 1e9 for r in csv.DictReader(fh) if r["kind"] == "d2d_local" and
                 int(r["bytes"]) == 1 << 30]
    assert local and transports.H200_LOCAL_COPY_Bps == pytest.approx(statistics.median(local), rel=0.005)
    probe = DATA_DIR / "extra" / "probe_in_place"
    t = {name: {(m.world_size, m.size_bytes): m.time_s for m in measurements.load_csv(probe / f"{name}.csv")
                if m.op == "all_gather"} for name in ("in_place", "out_of_place")}
    own = [s / n / (t["out_of_place"][(n, s)] - t["in_place"][(n, s)])
           for n in (2, 4) for s in (1 << 30, 2 << 30, 4 << 30)]
    assert transports.H200_OWN_COPY_Bps == pytest.approx(statistics.median(own), rel=0.02)
    nv = preset_file.read(presets.calibrated()["h200-nvlink"])
    want = own_chunk_rates(transports.H200_LOCAL_COPY_Bps, transports.H200_OWN_COPY_Bps)
    assert nv.model["own_chunk_Bps"] == pytest.approx(want, rel=1e-5)


def test_ring_channel_rates_are_the_measured_one_channel_busbw():
    """The presets' per-channel ring rates are not fitted: they are the busbw of one-channel calls
    (NCCL_MIN_NCHANNELS=NCCL_MAX_NCHANNELS=1, 2 ranks): Simple at 1 GiB (extra/probe_channels), reduce_scatter
    taking all_reduce's; forced LL all_reduce at 16 MiB and LL128 at 256 MiB (extra/probe_channel_protocols)."""
    extra = DATA_DIR / "extra"
    ch1 = measurements.load_csv(extra / "probe_channels" / "ch1_collectives.csv")
    proto1 = measurements.load_csv(extra / "probe_channel_protocols" / "c1_collectives.csv")
    assert {m.channels for m in ch1 + proto1} == {1}
    for transport, rates in (("nvlink", transports.H200_NVLINK_RING_CHANNEL_Bps),
                             ("pcie_shm", transports.H200_SHM_RING_CHANNEL_Bps)):
        busbw = {m.op: m.busbw_GBps * 1e9 for m in ch1 if m.transport == transport and m.size_bytes == 1 << 30}
        for op in ("all_reduce", "all_gather", "broadcast"):
            assert rates["Simple"][op] == pytest.approx(busbw[op], rel=0.005), (transport, op)
        assert rates["Simple"]["reduce_scatter"] == rates["Simple"]["all_reduce"]
        for proto, size in (("LL", 16 * MiB), ("LL128", 256 * MiB)):
            (m,) = [m for m in proto1 if m.transport == transport and m.op == "all_reduce" and m.proto == proto
                    and m.size_bytes == size]
            assert rates[proto] == {"all_reduce": pytest.approx(m.busbw_GBps * 1e9, rel=0.005)}, (transport, proto)
        model = preset_file.read(presets.calibrated()[PRESETS[transport]]).model
        assert model["ring_channel_Bps"] == {p: pytest.approx(ops, rel=1e-5) for p, ops in rates.items()}


def _forced_channel_rows(transport):
    extra = DATA_DIR / "extra"
    files = [*sorted((extra / "probe_channels").glob("ch*_collectives.csv")),
             *sorted((extra / "probe_channel_protocols").glob("c*_collectives.csv")),
             *sorted((extra / "probe_shm_channels").glob("*.csv")),
             *sorted((extra / "probe_host_and_channels").glob("nvlink_*_channels.csv")),
             extra / "probe_in_place" / "in_place_16_channels.csv"]
    ms = [m for f in files for m in measurements.load_csv(f)]
    assert all(m.channels for m in ms) and {m.channels for m in ms} == {1, 2, 4, 8, 16}
    rows, _ = fit.rows_from(ms, transport)
    return [r for r in rows if r.n == 2 and r.size_bytes >= MiB]


def test_presets_follow_calls_held_to_fewer_channels():
    """Every committed call run under NCCL_MIN_NCHANNELS=NCCL_MAX_NCHANNELS (1-16 channels, never fitted on; 269
    NVLink and 277 SHM 2-rank calls at >= 1 MiB): the presets time them to a median 3.9 % over NVLink and 5.0 % over
    SHM, forced LL and LL128 over NVLink to 2.9 %. Without the per-channel rates one channel kept NVLink's whole rate
    (315 GB/s all_reduce busbw) and the medians were 55 % and 9.9 %."""
    for transport, bound in (("nvlink", 0.045), ("pcie_shm", 0.06)):
        rows = _forced_channel_rows(transport)
        assert all(r.variant.endswith(f"@{r.channels}ch") for r in rows)
        err, preset = _errors(rows, PRESETS[transport])
        assert err[">=1MiB"]["median_rel_error"] <= bound, (transport, err[">=1MiB"])
        if transport == "nvlink":       # the same rows without the measured rates: one channel runs at the links' rate
            bare = preset.cluster(2)
            bare.model = bare.model.with_overrides(ring_channel_Bps={})
            sim = fit.simulate(rows, lambda n: bare, engine=False)
            assert fit.summarise(rows, sim)[">=1MiB"]["median_rel_error"] > 0.5
    forced = [r for r in _forced_channel_rows("nvlink") if r.proto in ("LL", "LL128")]
    err, _ = _errors(forced, "h200-nvlink")         # forced LL and LL128 all_reduce on 1-8 channels, 1-256 MiB
    assert len(forced) == 40 and err[">=1MiB"]["median_rel_error"] <= 0.04



def test_sends_to_more_peers_than_channels_share_them():
    """A 4-rank SHM all_to_all held to 2 channels (extra/probe_shm_channels, 64 MiB - 1 GiB) moved 21.6 GB/s busbw:
    three peers share the GPU's 2 p2p channels (2 x 11.8 GB/s), where one channel each would give 35 and the links
    27.6. The preset times it within 10 % (22 % fast with a channel per peer); on 8 and 16 channels the budget does
    not bind and nothing changes."""
    rows, _ = fit.rows_from(measurements.load_csv(DATA_DIR / "extra" / "probe_shm_channels" / "shm_2_channels.csv"),
                            "pcie_shm")
    rows = [r for r in rows if r.op == "all_to_all" and r.n == 4]
    preset = preset_file.read(presets.calibrated()["h200-pcie-shm"])
    sim = fit.simulate(rows, lambda n: preset.cluster(n), engine=False)
    errs = [(s - r.time_s) / r.time_s for r, s in zip(rows, sim)]
    assert len(rows) == 3 and all(-0.10 < e < 0 for e in errs), errs
    model = preset.cluster(4).model
    assert model.p2p_budget_Bps(2) == pytest.approx(2 * model.p2p_channel_Bps)
    assert model.p2p_budget_Bps() == pytest.approx(4 * model.p2p_channel_Bps)       # NCCL's own 4: 3 peers fit


@pytest.mark.parametrize("name", ["hgx-h200", "dgx-h100"])
def test_stock_hopper_presets_time_calls_held_to_fewer_channels(name):
    """The stock Hopper NVSwitch presets run NCCL's 24 channels (as logged on the H200s) and carry the one-channel
    rates measured on them: the 2-rank NVLink calls held to 1-16 channels (Simple or NCCL's choice) come out to a
    median 3.4 %, where without the rates one channel ran at the links' rate (72 % fast)."""
    assert presets.build(name).model.channels == transports.TRANSPORTS["nvlink"].logged["channels"] == 24
    rows = [r for r in _forced_channel_rows("nvlink") if r.proto in ("auto", "Simple")]
    sim = fit.simulate(rows, lambda n: presets.build(f"{name}:gpus={n}"), engine=False)
    assert fit.summarise(rows, sim)[">=1MiB"]["median_rel_error"] <= 0.045

    def bare(n):
        cluster = presets.build(f"{name}:gpus={n}")
        cluster.model = cluster.model.with_overrides(ring_channel_Bps={}, p2p_channel_Bps=float("inf"))
        return cluster
    assert fit.summarise(rows, fit.simulate(rows, bare, engine=False))[">=1MiB"]["median_rel_error"] > 0.5

def test_held_to_fewer_channels_nccl_picks_as_on_its_own():
    """extra/probe_channel_protocols: under NCCL_MIN_NCHANNELS=NCCL_MAX_NCHANNELS 1, 2, 4 and 8 NCCL's topology
    search still reported 12 channels of 30 GB/s over NVLink, and its tuner picked what it picks on its own 24
    (all_reduce: LL up to 1 MiB, then Simple; SHM: up to 256 KiB). The simulator's tuner, deciding with the graph, picks the same on
    every logged call (2 ranks, four operations, 8 B - 256 MiB)."""
    from gpusim.calibration import choices
    folder = DATA_DIR / "extra" / "probe_channel_protocols"
    total = 0
    for c in (1, 2, 4, 8):
        logged = choices.load_csv(folder / f"c{c}_nccl_choices.csv")

        def cluster_for(t, n):
            cluster = presets.build(f"{PRESETS[t]}:gpus={n}")
            cluster.model = cluster.model.with_overrides(channels=c)
            return cluster
        got = choices.compare(logged, cluster_for)
        assert {t: e["agree"] for t, e in got.items()} == {t: e["calls"] for t, e in got.items()}, (c, got)
        total += sum(e["calls"] for e in got.values())
    assert total == 4 * 204


def test_shm_host_memory_caps_8_gpus_and_binds_on_no_measured_call(data):
    """h200-pcie-shm's host memory carries at most the SHM payload the busiest 4-rank call moved through it
    (all_to_all at 1 GiB: 4 ranks x busbw, mean of runs 1 and 2). No measured 2-4-rank call changes when the cap is
    lifted, while an 8-GPU all_reduce, whose staging traffic outgrows it, slows from the per-GPU budget's ~25 GB/s
    busbw to under 16."""
    from dataclasses import replace
    shm = preset_file.read(presets.calibrated()["h200-pcie-shm"])
    cap = shm.links["memory"]["bandwidth_Bps"]
    a2a = [4 * m.busbw_GBps * 1e9 for m in data if (m.transport, m.op, m.world_size, m.size_bytes) ==
           ("pcie_shm", "all_to_all", 4, 1 << 30)]
    assert len(a2a) == 2 and cap == pytest.approx(sum(a2a) / 2, rel=0.01)
    lifted = replace(shm, links={**shm.links, "memory": {"bandwidth_Bps": 1e13}})
    rows, _ = fit.rows_from(data, "pcie_shm")
    np.testing.assert_allclose(fit.simulate(rows, lambda n: shm.cluster(n), engine=False),
                               fit.simulate(rows, lambda n: lifted.cluster(n), engine=False), rtol=1e-12)

    def busbw8(preset):
        from gpusim.collectives.run import measure
        from gpusim.engine.fabric import Fabric
        c = preset.cluster(8)
        return 1.75 * (1 << 30) / measure(Fabric(c.graph), c.model, "all_reduce", range(8), 1 << 30).time_s
    assert busbw8(shm) < 16e9 < 23e9 < busbw8(lifted)


def test_nvlink_preset_carries_to_8_gpus_within_its_own_error_of_published_busbw():
    """No 8-GPU machine was measured; the published 8 x H100 ring all_reduce (the same 18 NVLink4 links a GPU, NVLS off)
    reaches 368.76 GB/s busbw (physics.md 3.2, nccl-tests #309). h200-nvlink extrapolated to 8 ranks lands within
    its measured 4-rank error at 4 GiB (8.4 % slow), and, as measured from 2 to 4 ranks, busbw grows with ranks."""
    from gpusim.collectives.run import measure
    from gpusim.engine.fabric import Fabric
    nvl = preset_file.read(presets.calibrated()["h200-nvlink"])

    def busbw(n):
        c = nvl.cluster(n)
        return 2 * (n - 1) / n * (4 << 30) / measure(Fabric(c.graph), c.model, "all_reduce", range(n), 4 << 30).time_s
    assert busbw(2) < busbw(4) < busbw(8)
    assert busbw(8) == pytest.approx(368.76e9, rel=0.10)


def test_engine_gives_the_estimate_on_measured_calls(data):
    """Validation simulates with the event engine; uncontended it equals the closed form the fit used."""
    rows, _ = fit.rows_from(data, "pcie_shm")
    rows = rows[::9]
    preset = preset_file.read(presets.calibrated()["h200-pcie-shm"])
    engine = fit.simulate(rows, lambda n: preset.cluster(n), engine=True)
    closed = fit.simulate(rows, lambda n: preset.cluster(n), engine=False)
    np.testing.assert_allclose(engine, closed, rtol=1e-9)


def test_presets_predict_the_gpus_own_time_when_no_host_holds_the_calls(data):
    """The presets' launch floor is the host's issue interval: between the GPU's own time for the smallest calls
    (replayed from a CUDA graph, extra/probe_graph_vs_api, never fitted on) and the slowest host's, and the rest of
    the model is the GPU's time. Those graph-replayed calls, simulated without the floor (engine and closed form
    alike), are predicted within 20 % below 1 MiB (NVLink; 22 % over SHM) and 8 % above; before the floor was
    separated the latencies carried the host's interval and were 56-90 % slow below 1 MiB. Small NVLink sends and
    all_to_alls, which NCCL runs with LL up to 16 KiB a channel, come within 15 % (they were 127-159 % slow when the
    model ran every send with Simple)."""
    import statistics
    graph = measurements.load_csv(DATA_DIR / "extra" / "probe_graph_vs_api" / "graph.csv")
    assert not any(m.host_launched for m in graph) and all(m.host_launched for m in data)
    bounds = {"nvlink": (0.20, 0.08), "pcie_shm": (0.22, 0.06)}
    for transport, (small, large) in bounds.items():
        preset = preset_file.read(presets.calibrated()[PRESETS[transport]])
        floor = preset.model["launch_floor_s"]
        host_small = {}
        for m in data:
            if m.transport == transport and m.size_bytes <= fit.SMALL_BYTES and m.algo == "default":
                host_small.setdefault((m.run, m.world_size), []).append(m.time_s)
        per_start = [statistics.median(v) for v in host_small.values()]
        gpu_small = statistics.median(m.time_s for m in graph if m.transport == transport
                                      and m.size_bytes <= fit.SMALL_BYTES)
        assert gpu_small < min(per_start) <= floor <= max(per_start), (transport, floor)
        rows, _ = fit.rows_from(graph, transport)
        assert rows and not any(r.host for r in rows)
        for n in (2, 4):
            sel = [r for r in rows if r.n == n]
            sim = fit.simulate(sel, lambda k: preset.cluster(k), engine=False)
            err = fit.summarise(sel, sim)
            assert err["<1MiB"]["median_rel_error"] <= small and err[">=1MiB"]["median_rel_error"] <= large, \
                (transport, n, err)
            assert sum(sim < floor) >= 20           # the floor really is off for these calls
            np.testing.assert_allclose(fit.simulate(sel[::7], lambda k: preset.cluster(k), engine=True), sim[::7],
                                       rtol=1e-9)
            if transport == "nvlink":
                for g in fit.error_groups(sel, sim, by=("op",)):
                    if g["op"] in ("all_to_all", "sendrecv") and g["band"] == "<1MiB":
                        assert g["median_rel_error"] <= 0.15, (n, g)


def _run(argv):
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(argv)
    return rc, out.getvalue()


def _shape(rows):
    """(latency floor: median time of sizes <= 4 KiB, plateau: median busbw of sizes >= 1 GiB, knee: smallest size
    reaching half the plateau)."""
    floor = float(np.median([t for s, t, _ in rows if s <= 4096]))
    plateau = float(np.median([b for s, _, b in rows if s >= 1 << 30]))
    knee = min(s for s, _, b in rows if b >= plateau / 2)
    return floor, plateau, knee


def test_presets_carry_to_a_second_machine(data):
    """extra/x2: the 2-GPU machine (another host, 2 H200 with NV18), 2 ranks of every op, measured with the same
    harness, never fitted. Above 1 MiB NVLink and SHM ran as GPUs 0-1 of the 4-GPU machine did (median within 1 %
    at >= 16 MiB) and the presets predict them within 10 % and 5 %; its sockets ran 22 % faster (median at >= 16 MiB:
    the TCP stack's speed is the host's), so the socket preset, fitted on the other host, is slow there."""
    import statistics
    x2 = measurements.load_csv(DATA_DIR / "extra" / "x2" / "x2_collectives.csv")
    assert {m.world_size for m in x2} == {2} and len(x2) == 528
    ref = {}
    for m in data:
        if m.world_size == 2 and m.algo == "default":
            ref.setdefault((m.transport, m.op, m.size_bytes), []).append(m.time_s)
    for transport, same in (("nvlink", True), ("pcie_shm", True), ("socket", False)):
        ratio = statistics.median(statistics.median(ref[(m.transport, m.op, m.size_bytes)]) / m.time_s
                                  for m in x2 if m.transport == transport and m.size_bytes >= 16 * MiB)
        assert (abs(ratio - 1) < 0.01) if same else ratio > 1.15, (transport, ratio)
    bounds = {"nvlink": 0.10, "pcie_shm": 0.05}
    for transport, bound in bounds.items():
        rows, _ = fit.rows_from(x2, transport)
        err, _ = _errors(rows, PRESETS[transport])
        assert err[">=1MiB"]["median_rel_error"] <= bound, (transport, err[">=1MiB"])


def _nccl_tuning_tables():
    """{(transport, n ranks): {(op, algo, proto): (latency us, bandwidth GB/s)}} from the tuning tables rank 0 logged
    in nccl_info.txt: its first communicator had 2 ranks, its second 4."""
    import re
    names = {"AllReduce": "all_reduce", "AllGather": "all_gather", "ReduceScatter": "reduce_scatter",
             "Broadcast": "broadcast"}
    tables, transport, in_table, count = {}, None, False, 0
    for line in (DATA_DIR / "nccl_info.txt").read_text().splitlines():
        if line.startswith("===== "):
            transport, in_table, count = line.split()[1], False, 0
            continue
        if "NCCL INFO   Algorithm   |" in line:      # rank 0's Tree/Ring table; the later ones are other algorithms
            in_table = "[0] NCCL" in line and "Tree" in line
            count += in_table
        m = re.search(r"NCCL INFO\s+(\w+) \|(.*)", line)
        if in_table and m and m.group(1) in names:
            cells = [tuple(map(float, c.split("/"))) for c in m.group(2).split("|")[:6]]
            table = tables.setdefault((transport, 2 if count == 1 else 4), {})
            for i, cell in enumerate(cells):
                table[(names[m.group(1)], ("tree", "ring")[i // 3], ("LL", "LL128", "Simple")[i % 3])] = cell
    return tables


def test_tuner_reproduces_nccls_logged_tuning_tables():
    """Given the ring graph NCCL's search reported (cost_model graph_channels, graph_bw), the simulator's tuner has
    NCCL 2.28's own latency and bandwidth for every ring protocol the transport allows, and its tree latencies, on
    2 and 4 ranks of each transport: its algorithm and protocol switch points are NCCL's."""
    from gpusim.collectives import nccl_model as nm
    from gpusim.collectives.run import Collectives
    from gpusim.engine.fabric import Fabric
    tables = _nccl_tuning_tables()
    assert sorted(tables) == [(t, n) for t in ("nvlink", "pcie_shm", "socket") for n in (2, 4)]
    for (transport, n), logged in tables.items():
        cluster = presets.build(f"{PRESETS[transport]}:gpus={n}")
        coll = Collectives(Fabric(cluster.graph), cluster.model)
        ours = nm.tuning_table(coll.nccl_system(coll.ranks(range(n))))
        for (op, algo, proto), (lat, bw) in logged.items():
            if proto not in cluster.model.allowed_protocols or bw == 0:
                continue
            lat_ours, bw_ours = ours[(nm.as_coll(op), nm.as_algo(algo), nm.as_proto(proto))]
            assert lat_ours == pytest.approx(lat, abs=0.051), (transport, n, op, algo, proto)
            if algo == "ring":       # NCCL's 2-rank tree graph is its own (bw 60 where the ring's is 30)
                assert bw_ours == pytest.approx(bw, abs=0.051), (transport, n, op, algo, proto)


def test_tuner_picks_what_nccl_picked_call_by_call():
    """extra/probe_nccl_choices: NCCL logged the algorithm and protocol of each call (NCCL_DEBUG_SUBSYS=TUNING),
    four operations at 8 B - 1 GiB, on 2 ranks of the 2-GPU machine and 2, 3 and 4 of the 4-GPU one. The
    simulator's tuner picks the same on every call but sockets' 2-rank all_gather and reduce_scatter at 32 KiB, where
    NCCL used PAT, which gpusim does not model: 1,272 of 1,276."""
    from gpusim.calibration import choices
    folder = DATA_DIR / "extra" / "probe_nccl_choices"
    x2, x4 = (choices.load_csv(folder / name) for name in ("x2_2ranks.csv", "x4_234ranks.csv"))
    assert (len(x2), len(x4)) == (322, 954) and {c.world_size for c in x4} == {2, 3, 4}
    assert x2 == [c for c in x4 if c.world_size == 2]       # the two machines' NCCL chose alike on 2 ranks
    got = choices.compare(x2 + x4, lambda t, n: presets.build(f"{PRESETS[t]}:gpus={n}"))
    assert {t: (e["agree"], e["calls"]) for t, e in got.items()} == \
        {"nvlink": (436, 436), "pcie_shm": (436, 436), "socket": (400, 404)}
    assert got["socket"]["differ"] == 2 * [(2, "all_gather", 32768, "PAT/SIMPLE", "RING/SIMPLE"),
                                           (2, "reduce_scatter", 32768, "PAT/SIMPLE", "RING/SIMPLE")]


def test_logged_choices_file_errors_name_file_line_and_column(tmp_path):
    from gpusim.calibration import choices
    bad = tmp_path / "c.csv"
    bad.write_text("transport,world_size,op,bytes,algo,proto\nnvlink,2,allreduce_x,8,RING,LL\n")
    with pytest.raises(GpusimError, match="an operation") as e:
        choices.load_csv(bad)
    assert e.value.path == f"{bad}:2:op"
    bad.write_text("transport,world_size,op,bytes,algo\n")
    with pytest.raises(GpusimError, match="missing column.*proto"):
        choices.load_csv(bad)


def test_a_file_that_is_no_log_of_nccls_choices_is_refused_at_its_line(tmp_path):
    """The measurement CSV has every column a choices log needs: read as one it was compared with the tuner and
    reported '0 of 357 calls as NCCL chose'. Its other columns, and algorithm or protocol names NCCL does not log,
    are errors naming file and line; so is a logged world size the preset cannot be built for."""
    from gpusim.calibration import choices
    with pytest.raises(GpusimError, match="time_us.*not a log of NCCL's choices") as e:
        choices.load_csv(DATA)
    assert e.value.path == f"{DATA}:1"
    bad = tmp_path / "c.csv"
    head = "transport,world_size,op,bytes,algo,proto\nnvlink,2,all_reduce,8,RING,LL\n"
    for row, col, words in [("nvlink,2,all_reduce,16,default,default", "algo", "TREE, RING"),
                            ("nvlink,2,all_reduce,16,Ring,LL129", "proto", "LL, LL128, SIMPLE")]:
        bad.write_text(head + row + "\n")
        with pytest.raises(GpusimError, match=f"as NCCL logs it .*{words}") as e:
            choices.load_csv(bad)
        assert e.value.path == f"{bad}:3:{col}"
    bad.write_text(head + "nvlink,1000,all_reduce,16,RING,SIMPLE\n")
    with pytest.raises(GpusimError, match="1000 ranks") as e:
        choices.compare(choices.load_csv(bad), lambda t, n: presets.build(f"h200-nvlink:gpus={n}"))
    assert e.value.path == f"{bad}:3:world_size"


def test_output_paths_that_cannot_be_written_are_errors_naming_the_option(tmp_path, capsys):
    """-o under a regular file, or a folder where calibrate writes a file, or a file where validate makes a folder:
    one line naming --output, before the fit or the simulation runs."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "d.yaml").mkdir()
    for argv, words in [(["calibrate", str(DATA), "--transport", "nvlink", "-o", str(afile / "x.yaml")],
                         "--output: cannot write"),
                        (["calibrate", str(DATA), "--transport", "nvlink", "-o", str(tmp_path / "d.yaml")],
                         "--output: cannot write"),
                        (["validate", str(DATA), "--no-figures", "-o", str(afile)],
                         "--output: cannot use .* as the output folder: File exists"),
                        (["validate", str(DATA), "--no-figures", "-o", str(afile / "sub")],
                         "--output: cannot use .* as the output folder: Not a directory")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert re.search(words, err) and len(err.splitlines()) == 1, err


def test_collective_command_reproduces_the_measured_all_reduce_curve(data):
    rc, out = _run(["collective", "--cluster", "h200-nvlink", "--ranks", "4", "--op", "all_reduce",
                    "--min-bytes", "16", "--max-bytes", "4GiB", "--format", "csv"])
    assert rc == 0
    sim = [(int(r["bytes"]), float(r["time_us"]) * 1e-6, float(r["busbw_GBps"])) for r in csv.DictReader(io.StringIO(out))]
    assert len(sim) == 29
    meas = [(m.size_bytes, m.time_s, m.busbw_GBps) for m in data
            if m.transport == "nvlink" and m.world_size == 4 and m.op == "all_reduce" and m.algo == "default"]
    (f_sim, p_sim, k_sim), (f_meas, p_meas, k_meas) = _shape(sim), _shape(meas)
    assert f_sim == pytest.approx(f_meas, rel=0.25)
    # one NVLink rate for all sizes, where NVLink's keeps rising to 4 GiB: the plateau comes out 6 % low
    assert p_sim == pytest.approx(p_meas, rel=0.08)
    assert 1 / 2 <= k_sim / k_meas <= 2


def test_calibrate_command_rewrites_the_shipped_preset(tmp_path):
    """`gpusim calibrate` on the committed data writes the committed preset's values (the fit is deterministic)
    and prints the cross-validation between the two world sizes."""
    out = tmp_path / "h200-socket.yaml"
    rc, text = _run(["calibrate", *map(str, RUNS), "--transport", "socket", "--train-world-sizes", "2,4",
                     "-o", str(out)])
    assert rc == 0 and out.is_file()
    assert "gpu_io.bandwidth_Bps" in text and "fit 2->4" in text and "fit 4->2" in text
    # next to each error, the same rows' run-to-run spread (sockets ran 2 and 4 ranks five times, 3 ranks thrice)
    assert "run-run" in text
    table = [line.split() for line in text.splitlines() if line.strip().startswith(("train", "held-back", "fit "))]
    assert len(table) == 12 and all(cells[-1].endswith("%") for cells in table)
    new = preset_file.read(out)
    shipped = preset_file.read(presets.calibrated()["h200-socket"])
    assert new.links["gpu_io"]["bandwidth_Bps"] == pytest.approx(shipped.links["gpu_io"]["bandwidth_Bps"], rel=1e-5)
    assert new.model["step_latency_scale"] == pytest.approx(shipped.model["step_latency_scale"], rel=1e-5)
    assert new.model["op_bandwidth_scale"] == pytest.approx(shipped.model["op_bandwidth_scale"], rel=1e-5)
    assert new.provenance["train"]["world_sizes"] == [2, 4] and new.provenance["heldout"]["world_sizes"] == [3]


def test_preset_records_its_error_per_call_and_the_collective_command_quotes_it(data):
    """The preset's provenance holds its error on every measured (op, variant, ranks, size band), fitted or held
    back, as validate computes it; `gpusim collective` prints the one of the call it simulates, and says when the
    ranks or the variant were never measured (stock presets, never fitted, print neither)."""
    prov = preset_file.read(presets.calibrated()["h200-nvlink"]).provenance
    groups = {(e["op"], e["variant"], e["ranks"], e["band"]) for e in prov["errors"]}
    rows, _ = fit.rows_from(data, "nvlink")
    assert groups == {(r.op, r.variant, r.n, "<1MiB" if r.size_bytes < MiB else ">=1MiB") for r in rows}
    sel = [r for r in rows if r.op == "all_reduce" and r.variant == "Tree/Simple" and r.n == 3]
    err, _ = _errors(sel, "h200-nvlink")
    for band in ("<1MiB", ">=1MiB"):
        want = preset_file.measured_error(prov, "all_reduce", "Tree/Simple", 3)[band]
        assert (want["rows"], want["median"], want["p90"]) == (err[band]["rows"],
                                                               pytest.approx(err[band]["median_rel_error"], abs=1e-4),
                                                               pytest.approx(err[band]["p90_rel_error"], abs=1e-4))
    head = ["collective", "--op", "all_reduce", "--min-bytes", "1MiB", "--max-bytes", "1MiB"]
    quoted = preset_file.measured_error(prov, "all_reduce", "Tree/Simple", 3)[">=1MiB"]["median"]
    _, text = _run([*head, "--cluster", "h200-nvlink:gpus=3", "--algo", "tree", "--proto", "Simple"])
    assert "measured error of this preset on 3-rank all_reduce (Tree/Simple)" in text
    assert f"{quoted * 100:.1f} % from 1 MiB" in text
    _, text = _run([*head, "--cluster", "h200-nvlink:gpus=8"])
    assert "not measured: all_reduce was measured on 2, 3, 4 ranks; 8 ranks are extrapolated" in text
    _, text = _run([*head, "--cluster", "h200-nvlink", "--proto", "LL"])
    assert "not measured: all_reduce with algo auto, proto LL on 4 ranks" in text
    _, own = _run([*head, "--cluster", "h200-nvlink", "--channels", "24"])    # the preset's own channel count
    _, plain = _run([*head, "--cluster", "h200-nvlink"])
    assert "measured error of this preset on 4-rank all_reduce (NCCL's choice)" in own and own == plain
    _, text = _run([*head, "--cluster", "h200-nvlink", "--channels", "8"])
    assert "not measured: all_reduce with default@8ch on 4 ranks" in text
    _, text = _run([*head, "--cluster", "hgx-h200"])
    assert "measured" not in text
    # the errors are of host-issued calls: under --launch graph (the GPU's time alone) the quote says so
    assert "of calls issued by the host" not in plain
    _, text = _run([*head, "--cluster", "h200-nvlink", "--launch", "graph"])
    assert "measured error of this preset on 4-rank all_reduce" in text and "of calls issued by the host" in text


def test_calibrate_reads_nccl_tests_output(tmp_path):
    """nccl-tests logs do not record the transport: --transport labels them; one world size, nothing held back."""
    log = ROOT / "tests" / "fixtures" / "nccl_tests" / "all_reduce_perf_h200x8.txt"
    out = tmp_path / "x8.yaml"
    rc, text = _run(["calibrate", str(log), "--transport", "nvlink", "--train-world-sizes", "8", "-o", str(out)])
    assert rc == 0
    assert "62 training rows (world sizes 8), 0 held back" in text and "no held-back rows" in text
    p = preset_file.read(out)
    assert p.gpus_default == 8 and "heldout" not in p.provenance
    assert p.provenance["train"]["median_rel_error"] < 0.10
    assert "machines" not in text       # one machine: no note


def test_calibrate_notes_data_from_several_machines(tmp_path):
    """Logs of two machines (an 8-GPU H200 and a 2-GPU H200 box) fitted as one: the fit runs, under a note naming
    both machines; the JSON lists them."""
    fixtures = ROOT / "tests" / "fixtures" / "nccl_tests"
    logs = [str(fixtures / "all_reduce_perf_h200x8.txt"), str(fixtures / "all_reduce_perf_I1_ring_simple.txt")]
    argv = ["calibrate", *logs, "--transport", "nvlink", "--train-world-sizes", "8", "-o", str(tmp_path / "m.yaml")]
    rc, text = _run(argv)
    assert rc == 0
    assert ("# note: the nvlink rows come from 2 machines (NVIDIA H200 on gpu-b12; NVIDIA H200 on gpu49); one preset "
            "describes one machine") in text
    rc, text = _run(argv + ["--format", "json"])
    assert rc == 0 and json.loads(text)["machines"] == ["NVIDIA H200 on gpu-b12", "NVIDIA H200 on gpu49"]


def test_calibrate_notes_rows_measured_across_hosts_on_a_one_host_transport(tmp_path):
    """A 2-node InfiniBand reduce_scatter log fitted as NVLink: the fit runs, but the printout says the network
    between the hosts is folded into one host's links."""
    log = ROOT / "tests" / "fixtures" / "nccl_tests" / "reduce_scatter_perf_2nodes_ib.txt"
    rc, text = _run(["calibrate", str(log), "--transport", "nvlink", "--train-world-sizes", "16", "--gpus", "2..16",
                     "-o", str(tmp_path / "ib.yaml")])
    assert rc == 0
    assert ("# note: rows measured across hosts (NVIDIA A100-SXM4-80GB on node03,node04), but the nvlink transport "
            "models one host") in text


def test_calibrate_takes_another_gpus_local_copy_rate(tmp_path):
    """On another GPU (an 8-GPU A100's nccl-tests log), NVLink's own-chunk pass runs at that GPU's local copy rate,
    given as a rate or as collect.py's copy-bandwidth CSV; all_gather's own-input copy keeps the H200's ratio."""
    from gpusim.calibration import nccl_tests
    from gpusim.collectives.cost_model import own_chunk_rates
    log = ROOT / "tests" / "fixtures" / "nccl_tests" / "all_gather_perf_dgx-a100_2021.log"
    n = str(nccl_tests.load(log, transport="nvlink")[0].world_size)
    for given, rate in (("0.8TB/s", 0.8e12), (str(DATA_DIR / "extra" / "copy_bandwidth.csv"), 2114.101e9)):
        out = tmp_path / "a100.yaml"
        rc, text = _run(["calibrate", str(log), "--transport", "nvlink", "--train-world-sizes", n,
                         "--local-copy", given, "-o", str(out)])
        p = preset_file.read(out)
        assert rc == 0 and p.model["own_chunk_Bps"] == pytest.approx(
            own_chunk_rates(rate, rate * transports.H200_OWN_COPY_Bps / transports.H200_LOCAL_COPY_Bps), rel=1e-5)
        assert p.provenance["local_copy"].endswith(f"({given})")
    all_gather = preset_file.read(out).model["own_chunk_Bps"]["all_gather"]     # a local copy, then the own input
    assert all_gather == pytest.approx(1 / (1 / 2114.101e9 + 1 / (2114.101e9 * 3.3 / 2.11)), rel=1e-4)


def test_validate_command_writes_table_json_and_figure(tmp_path):
    """One transport's rows of run 1, so one figure: exit 0, the table on stdout, JSON with every call, a PNG."""
    sock = tmp_path / "socket.csv"
    measurements.write_csv(sock, [m for m in measurements.load_csv(DATA) if m.transport == "socket"])
    rc, text = _run(["validate", str(sock), "-o", str(tmp_path / "out")])
    assert rc == 0
    assert "h200-socket" in text and ">=1MiB" in text
    doc = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert doc["presets"] == {"socket": "h200-socket"}
    assert len(doc["points"]) == 333
    assert {g["op"] for g in doc["groups"]} == {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                                "all_to_all", "sendrecv"}
    png = tmp_path / "out" / "busbw_socket.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_notes_a_preset_calibrated_on_another_transport(tmp_path):
    """Socket measurements against h200-pcie-shm run (a what-if is allowed) under a note naming both transports;
    against their own preset, no note."""
    sock = tmp_path / "socket.csv"
    measurements.write_csv(sock, [m for m in measurements.load_csv(DATA) if m.transport == "socket"][:20])
    argv = ["validate", str(sock), "--estimate", "--no-figures", "-o", str(tmp_path / "out")]
    rc, text = _run(argv + ["--preset", "socket=h200-pcie-shm"])
    assert rc == 0 and "# note: socket measurements checked against 'h200-pcie-shm', a preset calibrated on pcie_shm" in text
    rc, text = _run(argv + ["--preset", "socket=h200-socket"])
    assert rc == 0 and "# note" not in text
    # a preset for a transport the data lack is named as unused; a preset file is reported by its path, which a
    # built-in preset of the same name cannot be mistaken for
    copy = tmp_path / "h200-socket.yaml"
    copy.write_text(presets.calibrated()["h200-socket"].read_text())
    rc, text = _run(argv + ["--preset", "nvlink=h200-nvlink", "--preset", f"socket={copy}:"])
    assert rc == 0 and "# note: --preset nvlink=h200-nvlink is not used: the data has no nvlink rows" in text
    assert json.loads((tmp_path / "out" / "validation.json").read_text())["presets"] == {"socket": str(copy)}


def test_validate_default_data_json_only(tmp_path):
    rc, text = _run(["validate", "--estimate", "--no-figures", "-o", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "validation.json").read_text())
    assert set(doc["summary"]) == {"nvlink", "pcie_shm", "socket"}
    assert doc["summary"]["nvlink"]["bands"][">=1MiB"]["median_rel_error"] < 0.15
    assert "436 of 436 calls as NCCL chose" in text                 # the committed choices are checked too
    # the data's own run-to-run spread stands next to the model's error, per world size and per group
    assert "run-run" in text
    spread = doc["summary"]["socket"]["run_to_run"]
    assert set(spread) == {"2", "3", "4"} and spread["2"][">=1MiB"]["median_rel_error"] > 0.06
    assert set(doc["summary"]["nvlink"]["run_to_run"]) == {"2", "4"}       # NVLink's 3 ranks were run once
    assert any(line.split()[:3] == ["nvlink", "h200-nvlink", "3"] and line.endswith(" -") for line in text.splitlines())
    assert all("run_to_run" in g for g in doc["groups"])
    assert doc["choices"]["socket"]["agree"] == 400
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("argv, words", [
    (["calibrate", "no/such.csv", "-o", "x.yaml"], "no such measurement file"),
    (["calibrate", str(DATA), "--transport", "sockets", "-o", "x.yaml"], "did you mean 'socket'"),
    (["calibrate", str(DATA), "-o", "x.yaml"], "pick one"),
    (["calibrate", str(DATA), "--transport", "socket", "-o", "x.txt"], "expected a .yaml file name"),
    (["calibrate", str(DATA), "--transport", "socket", "--train-world-sizes", "8", "-o", "x.yaml"],
     "the data has world sizes [2, 4]"),
    (["calibrate", str(DATA), "--transport", "socket", "--local-copy", "2TB/s", "-o", "x.yaml"],
     "--local-copy: the socket transport has no own-chunk pass"),
    (["calibrate", str(DATA), "--transport", "nvlink", "--local-copy", "2TB", "-o", "x.yaml"],
     "unknown bandwidth unit 'TB'"),
    (["calibrate", str(DATA), "--transport", "nvlink", "--local-copy", "no.csv", "-o", "x.yaml"],
     "no.csv: cannot read"),
    (["calibrate", str(DATA), "--transport", "nvlink", "--local-copy", "1e-300B/s", "-o", "x.yaml"],
     "--local-copy: expected a GPU's local copy rate in bytes/s, from 1 GB/s to 100 TB/s"),
    (["calibrate", str(DATA), "--transport", "nvlink", "--protocols", "nccl,LL", "-o", "x.yaml"],
     "--protocols: 'nccl' stands alone, not in a list of protocols"),
    (["calibrate", str(DATA), "--transport", "nvlink", "--protocols", "LL,Simpel", "-o", "x.yaml"],
     "unknown protocol 'Simpel' (did you mean 'Simple'?); expected nccl, search or a comma-separated list"),
    (["validate", "--preset", "nvlink", "-o", "out"], "expected TRANSPORT=PRESET"),
    (["validate", str(DATA), "--choices", "none.csv", "--no-figures", "-o", "out"], "none.csv: cannot read"),
    (["validate", "--preset", "nvlink=no-such-preset", "--no-figures", "-o", "out"], "no preset 'no-such-preset'"),
    (["validate", str(DATA), "--preset", "nvlink=h200-nvlnk", "--no-figures", "-o", "out"],
     "no preset 'h200-nvlnk' for transport 'nvlink' (did you mean 'h200-nvlink'?)"),
    (["validate", "--preset", "nvlink=h200-nvlink:gpus=4", "-o", "out"],
     "--preset: 'h200-nvlink:gpus=4': validate builds the preset at each measured world size itself"),
    (["validate", "--preset", "nvlink=h200-nvlink", "--preset", "nvlink=h200-socket", "-o", "out"],
     "--preset: transport 'nvlink' given twice (nvlink=h200-nvlink and nvlink=h200-socket)"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.yaml").exists()


def test_calibrate_says_why_rows_were_skipped(tmp_path):
    """nccl-tests' all_gather log has an in-place and an out-of-place record per size: calibrate fits the
    out-of-place ones and names the reason for the rows it skipped."""
    from gpusim.calibration import nccl_tests
    log = ROOT / "tests" / "fixtures" / "nccl_tests" / "all_gather_perf_dgx-a100_2021.log"
    records = nccl_tests.load(log, transport="nvlink")
    in_place = sum(1 for m in records if m.in_place)
    assert 0 < in_place < len(records)
    rows, skipped = fit.rows_from(records, "nvlink")
    assert skipped == {"in_place_all_gather": in_place} and len(rows) == len(records) - in_place
    rc, text = _run(["calibrate", str(log), "--transport", "nvlink", "--train-world-sizes",
                     str(records[0].world_size), "-o", str(tmp_path / "a100.yaml")])
    assert rc == 0 and f"{in_place} skipped" in text
    assert "in-place all_gather: the model's all_gather is out of place" in text


def test_sockets_between_ranks_that_share_one_gpu():
    """extra/probe_shared_gpu/start2: 2, 3, 4, 6 and 8 ranks on the one GPU of a 1-GPU machine (16 vCPUs of the
    same Xeon), each with its own NCCL_HOSTID so NCCL joins them over its socket transport, under MPS. NCCL built the
    graph of the 4-GPU machine's socket runs (2 channels of NET/Socket); two 2-rank jobs at once did not slow each
    other; rates per stream fall with the ranks. The shipped socket preset, fitted on the other host, predicts 2-6
    ranks at >= 1 MiB to a median of 7-17 %; at 8 ranks (8 processes' proxy threads on 16 vCPUs) the calls ran a
    median 20 % slower than it predicts."""
    folder = DATA_DIR / "extra" / "probe_shared_gpu" / "start2"
    rows = measurements.load_csv(folder / "scale_collectives.csv")
    with open(folder / "scale_collectives.csv", newline="") as fh:
        gpus = {r["gpus"] for r in csv.DictReader(fh)}
    assert {m.transport for m in rows} == {"socket"} and {m.world_size for m in rows} == {2, 3, 4, 6, 8}
    assert gpus == {";".join("0" * n) for n in (2, 3, 4, 6, 8)}
    info = (folder / "scale_nccl_info.txt").read_text()
    assert "NCCL_HOSTID set by environment" in info and "via NET/Socket" in info and "Channel 01/02" in info
    for op in ("all_gather", "broadcast"):
        alone, together = (measurements.load_csv(folder / f"{kind}_{op}_collectives.csv")[0]
                           for kind in ("alone", "together"))
        assert together.time_s < 1.05 * alone.time_s, op
    bw = {(m.op, m.world_size): m.algbw_Bps * measurements.busbw_factor(m.op, m.world_size)
          for m in rows if m.size_bytes == 256 * MiB}
    for op in ("all_gather", "all_reduce", "sendrecv", "all_to_all"):
        assert bw[(op, 8)] < 0.9 * bw[(op, 2)], (op, bw[(op, 2)], bw[(op, 8)])
    usable, _ = fit.rows_from(rows, "socket")
    for n in (2, 3, 4, 6):
        err, _ = _errors([r for r in usable if r.n == n], PRESETS["socket"])
        assert err[">=1MiB"]["median_rel_error"] <= 0.18, (n, err[">=1MiB"])
    sel = [r for r in usable if r.n == 8 and r.size_bytes >= MiB]
    err, _ = _errors(sel, PRESETS["socket"])
    assert err[">=1MiB"]["bias"] < -0.15           # the model is fast there: the host's CPUs, not the transport


def test_the_straggler_spread_is_the_sockets_and_its_guess_comes_from_another_host(data, monkeypatch):
    """A rate spread fitted on 2 and 4 ranks: ~0 over NVLink and SHM (GPU-driven streams, so those transports carry
    none), 0.146 over the 4-GPU machine's sockets (the shipped preset), and 0.185, 0.053 and 0.157 on the three
    starts of the 1-GPU machine (ranks sharing one GPU over sockets): the guess a fit on one world size keeps, 0.116,
    is the geometric mean of those three, measured on a host other than the data it is used on."""
    import dataclasses
    import math
    for t in ("nvlink", "pcie_shm"):
        tr = transports.TRANSPORTS[t]
        with_spread = dataclasses.replace(tr, params=tr.params + (transports.STRAGGLER,))
        monkeypatch.setitem(transports.TRANSPORTS, t, with_spread)
        got = fit.fit(data, t, train_world_sizes=(2, 4), engine_check=False, cross_validate=False)
        assert got.values["straggler_cv"] < 0.01, (t, got.values["straggler_cv"])
    shipped = preset_file.read(presets.calibrated()["h200-socket"])
    assert shipped.model["straggler_cv"] == pytest.approx(0.146, abs=0.01)
    folder = DATA_DIR / "extra" / "probe_shared_gpu"
    spreads = [fit.fit(measurements.load_csv(folder / f), "socket", train_world_sizes=(2, 4), heldout_world_sizes=(),
                       engine_check=False, cross_validate=False).values["straggler_cv"]
               for f in ("start1/mps_collectives.csv", "start2/scale_collectives.csv", "start3/scale_collectives.csv")]
    assert spreads == [pytest.approx(0.185, abs=0.005), pytest.approx(0.053, abs=0.005), pytest.approx(0.157, abs=0.005)]
    assert transports.STRAGGLER.initial == pytest.approx(math.prod(spreads) ** (1 / 3), rel=0.01)
