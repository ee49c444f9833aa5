"""Measured NCCL calls: one record type and the CSV file that holds them.

A :class:`Measurement` is one timed collective: operation, world size, size in nccl-tests' convention (the total
buffer for all_gather/reduce_scatter/all_to_all, see :mod:`gpusim.collectives.bus_bandwidth`), the time of one call,
and how it ran (transport, forced NCCL_ALGO/NCCL_PROTO or ``default``). validation/collect.py writes the CSV on a
GPU machine; :mod:`gpusim.calibration.nccl_tests` turns nccl-tests logs into the same records. The CSV schema is
documented column by column in validation/README.md; inside, times are seconds (the file holds microseconds, as
nccl-tests prints them).
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

from gpusim.collectives.bus_bandwidth import busbw_factor as _busbw_factor
from gpusim.collectives.bus_bandwidth import canonical_op as _canonical_op
from gpusim.errors import GpusimError

#: Operation names of the records (the collectives layer's names; aliases such as ``allreduce`` are accepted).
OPS: tuple[str, ...] = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all", "sendrecv")

#: CSV columns, in file order. validation/collect.py writes the same columns except ``source``.
CSV_COLUMNS: tuple[str, ...] = (
    "machine", "transport", "world_size", "gpus", "op", "bytes", "count", "dtype", "algo", "proto", "in_place",
    "time_us", "time_us_min", "time_us_max", "algbw_GBps", "busbw_GBps", "host_us", "trials", "iters", "launch",
    "nccl_version", "torch_version", "channels", "source",
)
#: Columns a file must have; the others may be missing or empty.
REQUIRED_COLUMNS: tuple[str, ...] = ("transport", "world_size", "op", "bytes", "time_us")

#: Most channels NCCL runs (MAXCHANNELS, src/include/device.h)
MAX_CHANNELS = 64
#: Largest call size a record may hold (1 PiB): far beyond any GPU's memory, and every time derived from it finite.
MAX_BYTES = 1 << 50
#: Shortest time a record may hold (1 ps): far below any NCCL call; shorter ones are typos or underflow to 0.
MIN_TIME_S = 1e-12

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def canonical_op(name: str, path: str = "op") -> str:
    """The record name of an operation (``AllReduce``, ``allreduce``, ``all_reduce_perf`` -> ``all_reduce``)."""
    op = _canonical_op(name, path)
    return "sendrecv" if op == "send_recv" else op


def busbw_factor(op: str, world_size: int) -> float:
    """nccl-tests' busbw/algbw factor: 2(n-1)/n all_reduce; (n-1)/n all_gather, reduce_scatter, all_to_all; else 1."""
    return _busbw_factor(canonical_op(op), world_size)


@dataclass(frozen=True)
class Measurement:
    """One measured collective call: ``time_s`` for ``size_bytes`` (nccl-tests' size) on ``world_size`` ranks.

    ``algo``/``proto`` are the forced NCCL_ALGO/NCCL_PROTO, or ``default`` when NCCL chose. ``busbw_GBps`` and
    ``algbw_GBps`` are as reported (None when the source gave none); :attr:`algbw_Bps` recomputes from size and time.
    The remaining fields are provenance, optional.
    """

    op: str
    world_size: int
    size_bytes: int
    time_s: float
    transport: str
    algo: str = "default"
    proto: str = "default"
    busbw_GBps: float | None = None
    algbw_GBps: float | None = None
    in_place: bool = False
    source: str = ""
    machine: str = ""
    gpus: str = ""
    count: int | None = None
    dtype: str = ""
    time_min_s: float | None = None
    time_max_s: float | None = None
    host_s: float | None = None
    trials: int | None = None
    iters: int | None = None
    launch: str = ""
    nccl_version: str = ""
    torch_version: str = ""
    channels: int | None = None     # NCCL_MIN_NCHANNELS = NCCL_MAX_NCHANNELS when forced; None: NCCL's own count

    def __post_init__(self):
        object.__setattr__(self, "op", canonical_op(self.op, "Measurement.op"))
        if isinstance(self.world_size, bool) or not isinstance(self.world_size, int) or self.world_size < 1:
            raise GpusimError("Measurement.world_size", f"expected an integer >= 1, got {self.world_size!r}")
        if isinstance(self.size_bytes, bool) or not isinstance(self.size_bytes, int) or \
                not 0 <= self.size_bytes <= MAX_BYTES:
            raise GpusimError("Measurement.size_bytes", f"expected an integer 0..{MAX_BYTES} (1 PiB), got "
                                                        f"{self.size_bytes!r}")
        if not (_positive(self.time_s) and self.time_s >= MIN_TIME_S):
            raise GpusimError("Measurement.time_s", f"expected a finite time in seconds of at least {MIN_TIME_S:g}, "
                                                    f"got {self.time_s!r}")
        if not isinstance(self.transport, str) or not self.transport:
            raise GpusimError("Measurement.transport", f"expected a transport name, got {self.transport!r}")
        if self.channels is not None and (isinstance(self.channels, bool) or not isinstance(self.channels, int)
                                          or not 1 <= self.channels <= MAX_CHANNELS):
            raise GpusimError("Measurement.channels", f"expected an integer 1..{MAX_CHANNELS} or None, got "
                                                      f"{self.channels!r}")

    @property
    def algbw_Bps(self) -> float:
        """size / time, bytes per second (nccl-tests' algbw x 1e9)."""
        return self.size_bytes / self.time_s

    @property
    def busbw_factor(self) -> float:
        return busbw_factor(self.op, self.world_size)

    @property
    def host_launched(self) -> bool:
        """Whether the host issued each timed call (held to its issue interval when calls are short), not the GPU
        replaying them from a CUDA graph."""
        return host_launched(self.launch)

    @property
    def run(self) -> str:
        """The run this record came from: its source without a trailing ``:line`` (a measurement file)."""
        return re.sub(r":\d+$", "", self.source)


#: ``launch`` values of calls the GPU replays from a CUDA graph (validation/collect.py --graph-max-bytes, nccl-tests
#: -G): back to back they last their GPU time, not the host's issue interval
#: (validation/data/h200/extra/probe_graph_vs_api).
GRAPH_LAUNCHES = ("nccl_api_graph", "cuda_graph", "nccl_tests_graph")


def host_launched(launch: str) -> bool:
    """Whether calls of ``launch`` mode were issued by the host one by one (every mode but a CUDA graph's)."""
    return str(launch or "").strip().lower() not in GRAPH_LAUNCHES


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


# -- reading --------------------------------------------------------------------------------------------------------

class CsvRow:
    """Typed access to one CSV row, raising GpusimError that names file, line and column."""

    def __init__(self, where: str, line: int, row: dict):
        self.where, self.line, self.row = where, line, row

    def err(self, col: str, what: str) -> GpusimError:
        got = self.row.get(col)
        return GpusimError(f"{self.where}:{self.line}:{col}", f"expected {what}, got {got!r}")

    def text(self, col: str, default: str = "") -> str:
        v = self.row.get(col)
        return default if v is None else v.strip()

    def int_(self, col: str, lo: int, required: bool = False, hi: int | None = None) -> int | None:
        what = f"an integer >= {lo}" if hi is None else f"an integer {lo}..{hi}"
        v = self.text(col)
        if v == "":
            if required:
                raise self.err(col, what)
            return None
        try:
            x = int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                raise self.err(col, what) from None
            if not f.is_integer():
                raise self.err(col, what)
            x = int(f)
        if x < lo or (hi is not None and x > hi):
            raise self.err(col, what)
        return x

    def float_(self, col: str, positive: bool = False, required: bool = False) -> float | None:
        what = "a positive finite number" if positive else "a finite number >= 0"
        v = self.text(col)
        if v == "":
            if required:
                raise self.err(col, what)
            return None
        try:
            x = float(v)
        except ValueError:
            raise self.err(col, what) from None
        if not math.isfinite(x) or x < 0 or (positive and x == 0):
            raise self.err(col, what)
        return x

    def bool_(self, col: str) -> bool:
        v = self.text(col).lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise self.err(col, "0 or 1")


def csv_rows(path, required: tuple[str, ...], columns: tuple[str, ...]) -> list[CsvRow]:
    """The non-empty rows of CSV file ``path``, which must have the ``required`` columns (``columns`` are the
    schema's, named when the header is empty). Errors name the file (and line) and what would be accepted."""
    where = str(path)
    try:
        fh = open(Path(path), newline="", encoding="utf-8-sig")
    except OSError as e:
        raise GpusimError(where, f"cannot read the measurement file: {e.strerror or e}") from None
    with fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise GpusimError(where, f"empty file: expected a CSV header with the columns {', '.join(columns)}")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise GpusimError(f"{where}:1", f"missing column(s) {', '.join(missing)}; the header has "
                                                f"{', '.join(header)}; required: {', '.join(required)}")
            out = []
            for cells in reader:
                if not any(v.strip() for v in cells):
                    continue
                line = reader.line_num
                if len(cells) != len(header):      # a short row too: its missing cells are no empty values
                    raise GpusimError(f"{where}:{line}", f"{len(cells)} fields, the header has {len(header)}"
                                                         f"{'; truncated line?' if len(cells) < len(header) else ''}")
                out.append(CsvRow(where, line, dict(zip(header, cells))))
        except csv.Error as e:
            raise GpusimError(where, f"not a readable CSV file: {e}") from None
        except UnicodeDecodeError:
            raise GpusimError(where, "not a text CSV file (not UTF-8)") from None
    return out


def load_csv(path, transports=None) -> list[Measurement]:
    """The measurements in a CSV file of the schema in validation/README.md (what validation/collect.py writes).

    Required columns: transport, world_size, op, bytes, time_us; the others may be absent or empty. Errors name the
    file, line and column (``collectives.csv:12:time_us``) and what would be accepted. ``transports``: the transport
    names accepted (default any), so that a misspelt one is an error at its line rather than a row nobody uses.
    """
    out = [_measurement(r, Path(path).name, transports)
           for r in csv_rows(path, REQUIRED_COLUMNS, CSV_COLUMNS)]
    if not out:
        raise GpusimError(str(path), "no measurement rows after the header")
    return out


#: Columns of the copy-bandwidth CSV of ``validation/collect.py --copy-bw`` (validation/README.md).
COPY_COLUMNS: tuple[str, ...] = ("machine", "kind", "src", "dst", "bytes", "time_us", "time_us_min", "time_us_max",
                                 "GBps", "trials", "iters", "pinned", "peer_access")


def local_copy_Bps(path) -> float:
    """A GPU's device-local copy rate (bytes copied per second) from a copy-bandwidth CSV of
    ``validation/collect.py --copy-bw``: the median of its ``d2d_local`` rows at their largest size, where a copy
    is long enough for its launch not to count. NCCL's own-chunk pass over NVLink runs at this rate
    (cost_model.own_chunk_rates)."""
    rows = [r for r in csv_rows(path, ("kind", "bytes", "GBps"), COPY_COLUMNS) if r.text("kind") == "d2d_local"]
    if not rows:
        raise GpusimError(str(path), "no d2d_local row: expected the copy-bandwidth CSV of "
                                     "validation/collect.py --copy-bw (kind d2d_local: a copy within one GPU)")
    largest = max(r.int_("bytes", 1, required=True) for r in rows)
    rates = sorted(r.float_("GBps", positive=True, required=True) for r in rows if r.int_("bytes", 1) == largest)
    mid = len(rates) // 2
    return 1e9 * (rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2)


def _measurement(r: CsvRow, name: str, transports=None) -> Measurement:
    op = r.text("op")
    try:
        op = canonical_op(op)
    except GpusimError:
        raise GpusimError(f"{r.where}:{r.line}:op", f"unknown operation {op!r}; accepted: {', '.join(OPS)}") from None
    transport = r.text("transport")
    if not transport:
        raise r.err("transport", "a transport name such as nvlink, pcie_shm or socket")
    if transports is not None and transport not in transports:
        raise r.err("transport", f"one of {', '.join(transports)}")
    t_us = r.float_("time_us", positive=True, required=True)
    if t_us / 1e6 < MIN_TIME_S:
        raise r.err("time_us", f"a time of at least {MIN_TIME_S * 1e6:g} us (1 ps)")
    channels = r.int_("channels", 1)
    if channels is not None and channels > MAX_CHANNELS:
        raise r.err("channels", f"an integer 1..{MAX_CHANNELS} (NCCL_MAX_NCHANNELS) or empty for NCCL's own count")
    kw = {}
    for col, key in (("time_us_min", "time_min_s"), ("time_us_max", "time_max_s"), ("host_us", "host_s")):
        v = r.float_(col)
        kw[key] = None if v is None else v / 1e6
    return Measurement(
        op=op, world_size=r.int_("world_size", 1, required=True),
        size_bytes=r.int_("bytes", 0, required=True, hi=MAX_BYTES), time_s=t_us / 1e6, transport=transport,
        algo=r.text("algo") or "default", proto=r.text("proto") or "default",
        busbw_GBps=r.float_("busbw_GBps"), algbw_GBps=r.float_("algbw_GBps"), in_place=r.bool_("in_place"),
        source=r.text("source") or f"{name}:{r.line}", machine=r.text("machine"), gpus=r.text("gpus"),
        count=r.int_("count", 0, hi=MAX_BYTES), dtype=r.text("dtype"), trials=r.int_("trials", 1),
        iters=r.int_("iters", 1), launch=r.text("launch"), nccl_version=r.text("nccl_version"),
        torch_version=r.text("torch_version"),
        channels=channels, **kw)


# -- writing --------------------------------------------------------------------------------------------------------

def _num(x) -> str:
    """A float as the shortest text that reads back to the same value after rounding to 1e-6 (µs -> ps)."""
    if x is None:
        return ""
    return repr(round(float(x), 6))


def to_row(m: Measurement) -> dict[str, str]:
    """One measurement as a CSV row (times in microseconds, as in the file)."""
    us = 1e6
    return {
        "machine": m.machine, "transport": m.transport, "world_size": str(m.world_size), "gpus": m.gpus,
        "op": m.op, "bytes": str(m.size_bytes), "count": "" if m.count is None else str(m.count), "dtype": m.dtype,
        "algo": m.algo, "proto": m.proto, "in_place": str(int(m.in_place)),
        "time_us": _num(m.time_s * us), "time_us_min": _num(None if m.time_min_s is None else m.time_min_s * us),
        "time_us_max": _num(None if m.time_max_s is None else m.time_max_s * us),
        "algbw_GBps": _num(m.algbw_GBps), "busbw_GBps": _num(m.busbw_GBps),
        "host_us": _num(None if m.host_s is None else m.host_s * us),
        "trials": "" if m.trials is None else str(m.trials), "iters": "" if m.iters is None else str(m.iters),
        "launch": m.launch, "nccl_version": m.nccl_version, "torch_version": m.torch_version,
        "channels": "" if m.channels is None else str(m.channels), "source": m.source,
    }


def write_csv(path, rows) -> Path:
    """Write measurements as CSV (the schema :func:`load_csv` reads); returns the path."""
    rows = list(rows)
    for i, m in enumerate(rows):
        if not isinstance(m, Measurement):
            raise GpusimError(f"rows[{i}]", f"expected a Measurement, got {type(m).__name__}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for m in rows:
            w.writerow(to_row(m))
    return p


MEASUREMENT_FIELDS = tuple(f.name for f in fields(Measurement))
