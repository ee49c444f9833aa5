"""Parse quantities with units, once, at the edge; everything inside is an SI float.

Accepted (case matters where SI says it does: ``b`` is a bit, ``B`` a byte):

* sizes       -> bytes:    ``B``, ``kB``/``KB``, ``MB``, ``GB``, ``TB`` (powers of 1000), ``KiB`` … ``TiB`` (powers of 1024)
  -- a whole number of bytes (``0.5 B`` is refused); a buffer's size is at most :data:`MAX_SIZE_BYTES`
* bandwidths  -> bytes/s:  ``B/s``, ``KB/s`` … ``TB/s``, ``KiB/s`` … ``TiB/s``, ``b/s``/``bps``, ``Kb/s`` … ``Tb/s``,
  ``Gbps`` and the like (bits are divided by 8)
* times       -> seconds:  ``ns``, ``us``, ``µs``, ``ms``, ``s``, ``min``, ``h``
* lengths     -> metres:   ``nm``, ``um``, ``µm``, ``mm``, ``cm``, ``m``, ``km``
* rates       -> mm/h (precipitation is quoted in mm/h by every model that uses it, so it stays in mm/h)

A bare number is accepted only where the caller says what unit it is in (``default_unit``); otherwise a missing
unit is an error, because "400" could be bytes, bits or gigabytes. GB/s is 1e9 bytes/s, as nccl-tests prints it.
"""
from __future__ import annotations

import math
import re

from gpusim.errors import GpusimError

# 1 PiB: thousands of times any GPU's memory (H200: 141 GB), so no buffer a collective moves comes near it, and far
# below 2**53, where float64 stops holding every whole number of bytes.
MAX_SIZE_BYTES = 2.0**50

# Simulated times stop here: 115 days, where float64 seconds still resolve ~2 ns. Beyond it event times round
# (a job started at 1e15 s lasted 0 ns) and a far-off end hangs the weather generator.
MAX_TIME_S = 1e7

_SIZE = {"B": 1.0}
for _i, _p in enumerate(["K", "M", "G", "T", "P"], start=1):
    _SIZE[f"{_p}B"] = 1000.0**_i
    _SIZE[f"{_p}iB"] = 1024.0**_i
_SIZE["kB"] = 1000.0

_BANDWIDTH = {f"{k}/s": v for k, v in _SIZE.items()}
_BANDWIDTH.update({"b/s": 1 / 8, "bps": 1 / 8})
for _i, _p in enumerate(["K", "M", "G", "T"], start=1):
    _BANDWIDTH[f"{_p}b/s"] = 1000.0**_i / 8
    _BANDWIDTH[f"{_p}bps"] = 1000.0**_i / 8
    _BANDWIDTH[f"{_p}bit/s"] = 1000.0**_i / 8
_BANDWIDTH["kb/s"] = _BANDWIDTH["kbps"] = 1000.0 / 8

_TIME = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_LENGTH = {"nm": 1e-9, "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "km": 1e3}
_RAIN = {"mm/h": 1.0, "mm/hr": 1.0, "cm/h": 10.0}

KINDS = {"size": _SIZE, "bandwidth": _BANDWIDTH, "time": _TIME, "length": _LENGTH, "rate": _RAIN}

_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")


def parse(value, kind: str, path: str = "", default_unit: str | None = None, allow_zero: bool = True) -> float:
    """Parse ``value`` (``"400 GB/s"``, ``"1.5 us"``, a number with ``default_unit``) into an SI float.

    Raises :class:`GpusimError` naming ``path`` for unknown units, a missing unit, negatives, NaN or infinity.
    """
    table = KINDS[kind]
    if isinstance(value, bool):
        raise GpusimError(path, f"expected a {kind} such as {_example(kind)}, got {value!r}")
    if isinstance(value, (int, float)):
        if default_unit is None:
            raise GpusimError(path, f"missing unit in {value!r}; write it as e.g. {_example(kind)}")
        number, unit = float(value), default_unit
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if not match:
            raise GpusimError(path, f"cannot read {value!r} as a {kind}; write it as e.g. {_example(kind)}")
        number, unit = float(match.group(1)), match.group(2)
        if unit is None:
            if default_unit is None:
                raise GpusimError(path, f"missing unit in {value!r}; write it as e.g. {_example(kind)}")
            unit = default_unit
    else:
        raise GpusimError(path, f"expected a {kind} such as {_example(kind)}, got {type(value).__name__} {value!r}")
    if unit not in table:
        raise GpusimError(path, f"unknown {kind} unit {unit!r} in {value!r}; accepted: {', '.join(table)}")
    result = number * table[unit]
    if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
        need = "positive" if not allow_zero else "non-negative"
        raise GpusimError(path, f"expected a {need} finite {kind}, got {value!r}")
    return result


def size(value, path: str = "", max_bytes: float | None = None, **kw) -> float:
    """A whole number of bytes from ``"4 GiB"`` (``"1.1 KB"`` is 1100, though 1.1 * 1000 is not exactly 1100 in
    floats), at most ``max_bytes`` when given (:data:`MAX_SIZE_BYTES` for a buffer); a bare number needs
    ``default_unit="B"``."""
    x = parse(value, "size", path, **kw)
    whole = float(round(x))
    if abs(x - whole) > 1e-9 * x:
        raise GpusimError(path, f"expected a whole number of bytes, got {value!r} ({x:.3g} B)")
    if max_bytes is not None and whole > max_bytes:
        raise GpusimError(path, f"expected a size of at most {format_bytes(max_bytes)}, got {value!r}")
    return whole


#: A link's or a channel's rate, 1 MB/s to 10 PB/s: far beyond any GPU cluster's on both sides, so that every flow's
#: time stays a finite, normal float (1e-300 B/s ran a scenario's clock to 1e300 s).
LINK_RATE_RANGE_Bps = (1e6, 1e16)


def link_rate(value, path: str = "", **kw) -> float:
    """A bandwidth (:func:`bandwidth`) within :data:`LINK_RATE_RANGE_Bps`."""
    x = bandwidth(value, path, allow_zero=False, **kw)
    if not LINK_RATE_RANGE_Bps[0] <= x <= LINK_RATE_RANGE_Bps[1]:
        raise GpusimError(path, f"expected a rate from 1 MB/s to 10 PB/s, got {value!r}")
    return x


def bandwidth(value, path: str = "", **kw) -> float:
    """Bytes per second from ``"400 GB/s"`` or ``"100 Gb/s"``."""
    return parse(value, "bandwidth", path, **kw)


def time(value, path: str = "", **kw) -> float:
    """Seconds from ``"1.5 us"``."""
    return parse(value, "time", path, **kw)


#: A link's latency, or a per-call cost, at most 1 s: far beyond any real one (a latency of 1e308 s made a call's time
#: inf).
MAX_LATENCY_S = 1.0


def latency(value, path: str = "", **kw) -> float:
    """A time (:func:`time`) from 0 to :data:`MAX_LATENCY_S`."""
    x = time(value, path, **kw)
    if x > MAX_LATENCY_S:
        raise GpusimError(path, f"expected a latency from 0 to {MAX_LATENCY_S:g} s, got {value!r}")
    return x


def length(value, path: str = "", **kw) -> float:
    """Metres from ``"1550 nm"`` or ``"2 km"``."""
    return parse(value, "length", path, **kw)


def rate_mm_per_h(value, path: str = "", **kw) -> float:
    """Precipitation rate in mm/h from ``"10 mm/h"``."""
    return parse(value, "rate", path, **kw)


def _example(kind: str) -> str:
    return {"size": "'4 GiB'", "bandwidth": "'400 GB/s' or '100 Gb/s'", "time": "'1.5 us'",
            "length": "'1550 nm' or '2 km'", "rate": "'10 mm/h'"}[kind]


def format_bytes(n: float) -> str:
    """Human size with binary prefixes: 1048576 -> '1 MiB'."""
    for unit, scale in (("PiB", 1024.0**5), ("TiB", 1024.0**4), ("GiB", 1024.0**3), ("MiB", 1024.0**2),
                        ("KiB", 1024.0)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.4g} B"


def format_time(t: float) -> str:
    """Human time: 1.5e-6 -> '1.5 us'."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(t) >= scale:
            return f"{t / scale:.4g} {unit}"
    return f"{t / 1e-9:.4g} ns"
