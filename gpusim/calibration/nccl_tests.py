"""Read nccl-tests results (the ``*_perf`` programs' stdout, and their ``-J`` JSON) into :class:`Measurement` rows.

Text layouts handled (physics.md §1.7; NVIDIA/nccl-tests src/util.cu and older common.cu):

* current: ``size count type redop root | time algbw busbw #wrong | time algbw busbw #wrong`` (out-of-place, then
  in-place), with ``# nccl-tests version``, ``# Collective test starting: all_reduce_perf`` and ``#  Rank  0 Group  0
  Pid ...`` lines before it and ``# Avg bus bandwidth`` after;
* old: no redop/root columns, or redop but no root, and an ``error`` column (``0e+00``) instead of ``#wrong``;
* ``-c 0``: ``N/A`` in the check column; ``-I 1``: ``i_min i_max i_p99 i_cv%`` after each half; ``-T``: a timestamp
  after the row; ``-C``: ``cputime`` instead of ``time``;
* MPI/srun line prefixes (``[0] ``, ``[1,0]<stdout>:``, ``0: ``), NCCL INFO/WARN lines anywhere, floats such as
  ``1.2e+07`` (nccl-tests prints ``%.1e`` when a number no longer fits its column).

Columns are found from the header line, so unknown extra columns do no harm. Each size gives one out-of-place
record and one in-place record (``in_place=True``). The operation comes from the argument, the ``Collective test
starting`` line, the JSON ``args`` or the file name; the world size from the argument or the ``# Rank`` lines.
Every row's busbw/algbw ratio is checked against nccl-tests' factor for that operation and world size, so a wrong
guess of either is an error, not a silent factor-of-two. Input that yields no result row is an error too.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from gpusim.calibration.measurements import MAX_BYTES, MIN_TIME_S, OPS, Measurement, busbw_factor, canonical_op
from gpusim.errors import GpusimError

UNKNOWN_TRANSPORT = "unknown"

_PREFIX = re.compile(r"^(?:\[\d+(?:,\d+)*\](?:<std(?:out|err)>)?:?[ \t]?|\d+:[ \t])")
_RANK = re.compile(r"^#\s*Rank\s+(\d+)\b")
#: the rest of a rank line: '... Pid  4242 on    gpu-b12 device  1 [0000:43:00] NVIDIA H200'
_RANK_PLACE = re.compile(r"\bon\s+(\S+)\s+device\s+\d+\s+\[[^\]]*\]\s+(.+?)\s*$")
_STARTING = re.compile(r"^#\s*Collective test starting:\s*(\S+)")
_SECTION = re.compile(r"^#\s*(?:nccl-tests version\b|nThread\s+\d+)")
_ENV_SET = re.compile(r"\bNCCL_(ALGO|PROTO) set by environment to\s+(\S+)")
_GRAPH = re.compile(r"\bgraph:\s*(\d+)")
_TIME_COLS = ("time", "cputime")
_INT = re.compile(r"^\d+$")
_FILE_OPS = (("allreduce", "all_reduce"), ("allgather", "all_gather"), ("reducescatter", "reduce_scatter"),
             ("alltoall", "all_to_all"), ("broadcast", "broadcast"), ("bcast", "broadcast"),
             ("sendrecv", "sendrecv"), ("reduce", "reduce"))
_EXAMPLE_ROW = "'     1048576        262144     float     sum      -1    42.17   24.87   43.52      0 ...'"


def load(path, transport: str | None = None, op: str | None = None, world_size: int | None = None,
         algo: str | None = None, proto: str | None = None) -> list[Measurement]:
    """The records in one nccl-tests output file, text or ``-J`` JSON (told apart by content).

    ``transport`` labels the records (nccl-tests does not record it; default ``unknown``). ``op``/``world_size``
    override what the file says; ``algo``/``proto`` override NCCL_ALGO/NCCL_PROTO found in the file (JSON ``env``
    or NCCL INFO lines), else ``default``.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise GpusimError(str(path), f"cannot read the nccl-tests file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if b"\0" in data:
            raise GpusimError(str(path), "not a text file: expected nccl-tests output (text or -J JSON)") from None
        # text in another encoding (a host or device name in Latin-1): the numbers nccl-tests prints are ASCII
        text = data.decode("utf-8", errors="replace")
    return parse(text, source=str(path), transport=transport, op=op, world_size=world_size, algo=algo, proto=proto,
                 filename=p.name)


def parse(text: str, source: str = "<text>", transport: str | None = None, op: str | None = None,
          world_size: int | None = None, algo: str | None = None, proto: str | None = None,
          filename: str = "") -> list[Measurement]:
    """:func:`parse_json` when the text is a JSON object, else :func:`parse_text`."""
    kw = dict(source=source, transport=transport, op=op, world_size=world_size, algo=algo, proto=proto,
              filename=filename)
    if text.lstrip().startswith("{"):
        return parse_json(text, **kw)
    return parse_text(text, **kw)


# -- shared checks --------------------------------------------------------------------------------------------------

def _given_op(op) -> str | None:
    return None if op is None else canonical_op(op, "op")


def _given_world_size(world_size) -> int | None:
    if world_size is None:
        return None
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise GpusimError("world_size", f"expected an integer >= 1, got {world_size!r}")
    return world_size


def _op_from_filename(filename: str) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", filename.lower())
    for token, op in _FILE_OPS:
        if token in key:
            return op
    return None


def _op_from_program(name: str, where: str) -> str:
    base = re.split(r"[\\/]", name.strip())[-1]
    try:
        return canonical_op(base, where)
    except GpusimError:
        raise GpusimError(where, f"operation of program {base!r} is not one gpusim models; accepted: "
                                 f"{', '.join(OPS)} (pass op= to override)") from None


def _check_busbw(where: str, op: str, n: int, algbw: float | None, busbw: float | None) -> None:
    """busbw must be algbw x factor(op, n) up to nccl-tests' printing precision."""
    if algbw is None or busbw is None or algbw < 1.0:
        return
    factor = busbw_factor(op, n)
    want = algbw * factor
    if abs(busbw - want) > 0.02 * want + 0.015:
        raise GpusimError(where, f"busbw {busbw:g} is not algbw {algbw:g} x {factor:.4g}, the factor of {op} on "
                                 f"{n} ranks: the operation or world size is wrong (pass op= and world_size=)")


def _time_s(value: float, where: str) -> float:
    if not (math.isfinite(value) and value / 1e6 >= MIN_TIME_S):
        raise GpusimError(where, f"expected a positive time in microseconds, finite and at least "
                                 f"{MIN_TIME_S * 1e6:g}, got {value!r}")
    return value / 1e6


def _whole(token: str, where: str, column: str) -> int:
    """A size or element count of a text row: whole and at most MAX_BYTES (1 PiB)."""
    if not _INT.match(token) or len(token) > 16 or int(token) > MAX_BYTES:
        raise GpusimError(where, f"{column}: expected an integer 0..{MAX_BYTES} (1 PiB), got {token!r}")
    return int(token)


# -- text -----------------------------------------------------------------------------------------------------------

class _Layout:
    """Where the values sit in a result row, from the column-header line."""

    def __init__(self, names: list[str], line: int):
        self.names, self.line = names, line
        self.size = names.index("size")
        self.count = names.index("count") if "count" in names else None
        self.type = names.index("type") if "type" in names else None
        times = [i for i, c in enumerate(names) if c in _TIME_COLS]
        if not times:
            raise ValueError("no time column")
        self.halves = []
        for k, t in enumerate(times):
            end = times[k + 1] if k + 1 < len(times) else len(names)
            part = names[t:end]
            if "algbw" not in part or "busbw" not in part:
                raise ValueError("a time column without algbw/busbw after it")
            self.halves.append((t, t + part.index("algbw"), t + part.index("busbw")))
        self.timestamp = names[-1] == "timestamp"

    def fits(self, n_tokens: int) -> bool:
        n = len(self.names)
        # a -T timestamp ("2025-01-01 12:00:00") is two tokens under one header word, and may be missing
        return n_tokens == n or (self.timestamp and n_tokens in (n - 1, n + 1))


def _header_names(line: str) -> list[str] | None:
    """Column names if this comment line is the result-table header (``#  size  count  type ... time ...``)."""
    names = line.lstrip("#").split()
    if len(names) >= 4 and names[0] == "size" and any(n in _TIME_COLS for n in names):
        return names
    return None


def parse_text(text: str, source: str = "<text>", transport: str | None = None, op: str | None = None,
               world_size: int | None = None, algo: str | None = None, proto: str | None = None,
               filename: str = "") -> list[Measurement]:
    """Records from the stdout of one or more nccl-tests runs (sections start at ``# nccl-tests version`` or
    ``# nThread``)."""
    if not isinstance(text, str):
        raise GpusimError(source, f"expected text, got {type(text).__name__}")
    given_op, given_n = _given_op(op), _given_world_size(world_size)
    file_op = _op_from_filename(filename) if filename else None
    env = {"ALGO": None, "PROTO": None}
    out: list[Measurement] = []
    section_op, ranks, last_ranks = None, set(), None
    places, last_places = [], []       # (host, GPU model) of each '# Rank' line of a section
    launch = "nccl_tests"
    layout: _Layout | None = None
    rows_in_section = 0
    row_tag = None

    for lineno, raw in enumerate(text.splitlines(), start=1):
        m = _PREFIX.match(raw)
        tag = m.group(0).strip() if m else ""
        line = raw[m.end():] if m else raw
        s = line.strip()
        if not s:
            continue
        where = f"{source}:{lineno}"
        e = _ENV_SET.search(s)
        if e:
            env[e.group(1)] = e.group(2).rstrip(".")
            continue
        if s.startswith("#"):
            starting = _STARTING.match(s)
            if starting or _SECTION.match(s):
                ranks, places = set(), []       # a section's rank lines follow its header, even a run with no rows
                if rows_in_section:
                    section_op, layout, rows_in_section = None, None, 0
            if starting:
                section_op = _op_from_program(starting.group(1), where)
                continue
            if _SECTION.match(s):
                graph = _GRAPH.search(s)
                launch = _launch(int(graph.group(1)) if graph else None)
            r = _RANK.match(s)
            if r:
                if len(r.group(1)) > 9:
                    raise GpusimError(where, f"rank: expected a rank number below 10^9, got {r.group(1)[:20]}...")
                ranks.add(int(r.group(1)))
                place = _RANK_PLACE.search(s)
                if place:
                    places.append((place.group(1), place.group(2)))
                continue
            names = _header_names(s)
            if names is not None:
                try:
                    layout = _Layout(names, lineno)
                except ValueError as err:
                    raise GpusimError(where, f"unrecognised nccl-tests column header ({err}): {s!r}") from None
            continue
        tokens = s.split()
        if not _INT.match(tokens[0]):
            if layout is None or _number(tokens[0]) is None or not layout.fits(len(tokens)):
                continue        # NCCL INFO/WARN lines, program messages
            # a result row whose size is no byte count (-64, 1.5): an error, as in -J output, not a row left out
            raise GpusimError(where, f"size: expected an integer >= 0, got {tokens[0]!r}")
        if layout is None:
            if len(tokens) >= 6 and all(_number(t) is not None for t in tokens[:2]):
                raise GpusimError(where, "a result row before any column header ('#  size  count  type ...')")
            continue
        if row_tag is None:
            row_tag = tag
        elif tag != row_tag:
            continue            # the same table printed by another rank: keep the first one's
        if not layout.fits(len(tokens)):
            raise GpusimError(where, f"{len(tokens)} values, but the header at line {layout.line} has "
                                     f"{len(layout.names)} columns ({' '.join(layout.names)}); truncated line?")
        this_op = given_op or section_op or file_op
        if this_op is None:
            raise GpusimError(source, "cannot tell the operation: no '# Collective test starting' line and the file "
                                      f"name does not say; pass op= (one of {', '.join(OPS)})")
        if ranks:
            last_ranks, last_places = ranks, places
        n = given_n or (max(last_ranks) + 1 if last_ranks else None)
        if n is None:
            raise GpusimError(source, "cannot tell the world size: no '#  Rank' lines; pass world_size=")
        out.extend(_records_from_row(tokens, layout, where, this_op, n, transport, algo or env["ALGO"],
                                     proto or env["PROTO"], source, lineno, launch, machine_name(last_places)))
        rows_in_section += 1

    if not out:
        raise GpusimError(source, "no nccl-tests result rows found: expected a column header "
                                  f"('#  size  count  type  redop  root  time  algbw  busbw ...') and rows such as "
                                  f"{_EXAMPLE_ROW}")
    return out


def _number(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _launch(graph_iters) -> str:
    """How the timed calls were issued: nccl-tests ``-G N`` (``graph: N`` in its header, ``config.graph`` in -J
    output) captures N iterations in a CUDA graph and replays it, so the host's issue interval does not hold them."""
    graphed = isinstance(graph_iters, int) and not isinstance(graph_iters, bool) and graph_iters > 0
    return "nccl_tests_graph" if graphed else "nccl_tests"


def machine_name(places) -> str:
    """The machine a run used, from its ranks' (host, GPU model) pairs: 'NVIDIA H200 on gpu49', 'NVIDIA A100-SXM4-80GB
    on node03,node04', '... on 16 hosts (node01..node16)'; '' when the log does not say. Calibration notes data
    that mixes machines, which one preset cannot describe."""
    places = [(" ".join(h.split()), " ".join(m.split())) for h, m in places]     # one line, whatever they held
    places = [(h, m) for h, m in places if h and m]
    if not places:
        return ""
    hosts = sorted({h for h, _ in places})
    models = " + ".join(sorted({m for _, m in places}))
    where = ",".join(hosts) if len(hosts) <= 4 else f"{len(hosts)} hosts ({hosts[0]}..{hosts[-1]})"
    return f"{models} on {where}"


def host_count(machine: str) -> int:
    """How many hosts a :func:`machine_name` names (0 for '')."""
    if " on " not in machine:
        return 0
    where = machine.rsplit(" on ", 1)[1]
    m = re.match(r"(\d+) hosts \(", where)
    return int(m.group(1)) if m else len(where.split(","))


def _records_from_row(tokens, layout: _Layout, where, op, n, transport, algo, proto, source, lineno, launch,
                      machine=""):
    size = _whole(tokens[layout.size], where, "size")
    count = None if layout.count is None else _whole(tokens[layout.count], where, "count")
    dtype = tokens[layout.type] if layout.type is not None else ""
    recs = []
    for k, (ti, ai, bi) in enumerate(layout.halves):
        vals = []
        for idx in (ti, ai, bi):
            v = _number(tokens[idx])
            if v is None:
                raise GpusimError(where, f"{layout.names[idx]}: expected a number, got {tokens[idx]!r}")
            vals.append(v)
        t_us, algbw, busbw = vals
        _check_busbw(where, op, n, algbw, busbw)
        recs.append(Measurement(
            op=op, world_size=n, size_bytes=size, time_s=_time_s(t_us, f"{where}:{layout.names[ti]}"),
            transport=transport or UNKNOWN_TRANSPORT, algo=algo or "default", proto=proto or "default",
            busbw_GBps=busbw, algbw_GBps=algbw, in_place=(k == 1), source=f"{Path(source).name}:{lineno}",
            count=count, dtype=dtype, launch=launch, machine=machine))
    return recs


# -- JSON -----------------------------------------------------------------------------------------------------------

def parse_json(text, source: str = "<json>", transport: str | None = None, op: str | None = None,
               world_size: int | None = None, algo: str | None = None, proto: str | None = None,
               filename: str = "") -> list[Measurement]:
    """Records from an nccl-tests ``-J`` file (an object with ``config``, ``results``, ``args``, ``env``)."""
    if isinstance(text, (str, bytes)):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise GpusimError(source, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); an nccl-tests "
                                      "-J file is complete only after the run ends") from None
        except (ValueError, RecursionError) as e:     # an integer of over 4300 digits, nesting too deep
            raise GpusimError(source, f"not readable JSON: {e}") from None
    else:
        doc = text
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise GpusimError(source, "not nccl-tests -J output: expected a JSON object with a 'results' list")
    given_op, given_n = _given_op(op), _given_world_size(world_size)
    this_op = given_op
    args = doc.get("args")
    if this_op is None and isinstance(args, list) and args and isinstance(args[0], str):
        base = re.split(r"[\\/]", args[0])[-1]
        if _op_from_filename(base):
            this_op = _op_from_program(base, f"{source}:args[0]")
    if this_op is None and filename:
        this_op = _op_from_filename(filename)
    if this_op is None:
        raise GpusimError(source, f"cannot tell the operation from 'args' or the file name; pass op= (one of "
                                  f"{', '.join(OPS)})")
    n = given_n
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    launch = _launch(config.get("graph"))
    if n is None:
        devices = config.get("devices", doc.get("devices"))
        if isinstance(devices, list) and devices:
            n = len(devices)
    if n is None:
        raise GpusimError(source, "cannot tell the world size: no 'config.devices' list; pass world_size=")
    env = {}
    if not isinstance(doc.get("env") or [], list):
        raise GpusimError(f"{source}:env", f"expected a list of 'NAME=value' strings, got {doc['env']!r}")
    for item in doc.get("env") or []:
        if isinstance(item, str) and item.startswith(("NCCL_ALGO=", "NCCL_PROTO=")):
            k, _, v = item.partition("=")
            env[k[5:]] = v
    a, p = algo or env.get("ALGO") or "default", proto or env.get("PROTO") or "default"
    devices = config.get("devices", doc.get("devices"))
    machine = machine_name([(d["hostname"], d["device_info"]) for d in devices
                            if isinstance(d, dict) and isinstance(d.get("hostname"), str)
                            and isinstance(d.get("device_info"), str)] if isinstance(devices, list) else [])
    out = []
    for i, res in enumerate(doc["results"]):
        where = f"{source}:results[{i}]"
        if not isinstance(res, dict):
            raise GpusimError(where, f"expected an object, got {type(res).__name__}")
        size = res.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_BYTES:
            raise GpusimError(f"{where}.size", f"expected an integer 0..{MAX_BYTES} (1 PiB), got {size!r}")
        count = res.get("count")
        count = count if isinstance(count, int) and not isinstance(count, bool) else None
        for k, key in enumerate(("out_of_place", "in_place")):
            half = res.get(key)
            if half is None:
                continue
            if not isinstance(half, dict):
                raise GpusimError(f"{where}.{key}", f"expected an object or null, got {type(half).__name__}")
            tkey = "time" if "time" in half else "cpu_time"
            vals = {}
            for f in (tkey, "alg_bw", "bus_bw"):
                v = half.get(f)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v) > 1e300:
                    raise GpusimError(f"{where}.{key}.{f}", f"expected a finite number, got {v!r}")
                vals[f] = float(v)
            _check_busbw(f"{where}.{key}", this_op, n, vals["alg_bw"], vals["bus_bw"])
            out.append(Measurement(
                op=this_op, world_size=n, size_bytes=size, time_s=_time_s(vals[tkey], f"{where}.{key}.{tkey}"),
                transport=transport or UNKNOWN_TRANSPORT, algo=a, proto=p, busbw_GBps=vals["bus_bw"],
                algbw_GBps=vals["alg_bw"], in_place=(k == 1), source=f"{Path(source).name}:results[{i}]",
                count=count, dtype=str(res.get("type", "")), launch=launch, machine=machine))
    if not out:
        raise GpusimError(source, "the 'results' list holds no timed result")
    return out
