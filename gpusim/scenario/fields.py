"""Typed readers for scenario fields: each names the field's path and what is accepted when it fails."""
from __future__ import annotations

import math
import re

from gpusim import units
from gpusim.errors import GpusimError, did_you_mean


MAX_TIME_S = units.MAX_TIME_S      # scenario times stop where simulated time does
_RANGE = re.compile(r"\s*([0-9]{1,18})\s*-\s*([0-9]{1,18})\s*")     # ASCII digits only: '²'.isdigit() is True


def mapping(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise GpusimError(path, f"expected a mapping (key: value lines), got {type(value).__name__} {value!r}")
    return value


def optional_mapping(d: dict, key: str, path: str) -> dict:
    """``d[key]`` as a mapping; left out or null is an empty one, any other non-mapping (0, [], '') an error."""
    value = d.get(key)
    return {} if value is None else mapping(value, path)


def check_keys(d: dict, allowed, path: str, required=()) -> None:
    """Unknown keys are errors (with did-you-mean); required keys must be present."""
    for key in d:
        if key not in allowed:
            raise GpusimError(f"{path}.{key}" if path else str(key),
                              f"unknown field{did_you_mean(key, allowed)}; accepted: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in d:
            raise GpusimError(f"{path}.{key}" if path else key, "required field is missing")


def integer(value, path: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GpusimError(path, f"expected an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        what = "a positive integer" if low == 1 and high is None else f"an integer in {low}..{high if high is not None else ''}"
        raise GpusimError(path, f"expected {what}, got {value!r}")
    return value


def number(value, path: str, low: float | None = None) -> float:
    """A finite int or float (NaN and infinity, which YAML spells .nan and .inf, are refused); text such as '1e6',
    which YAML reads as a string for want of a decimal point, is read as the number it spells."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise GpusimError(path, f"expected a finite number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GpusimError(path, f"expected a finite number, got {value!r}")
    if low is not None and value < low:
        raise GpusimError(path, f"expected a number >= {low}, got {value!r}")
    return float(value)


def string(value, path: str, choices=None) -> str:
    if not isinstance(value, str):
        raise GpusimError(path, f"expected a string, got {value!r}")
    if choices is not None and value not in choices:
        raise GpusimError(path, f"unknown value '{value}'{did_you_mean(value, choices)}; accepted: {', '.join(choices)}")
    return value


def size(value, path: str) -> float:
    """A job's bytes: whole, at most :data:`gpusim.units.MAX_SIZE_BYTES` (1 PiB)."""
    return units.size(value, path, max_bytes=units.MAX_SIZE_BYTES, default_unit="B")


def time(value, path: str, allow_zero: bool = True) -> float:
    """Seconds, at most :data:`MAX_TIME_S`."""
    t = units.time(value, path, allow_zero=allow_zero)
    if t > MAX_TIME_S:
        raise GpusimError(path, f"expected a time up to {MAX_TIME_S:g} s (115 days; beyond it float seconds lose the "
                                f"simulator's nanosecond resolution), got {value!r}")
    return t


def rank_spans(value, path: str) -> list[tuple[int, int]] | None:
    """The syntax of a ranks field, checked without a cluster: None for 'all', else inclusive (first, last) spans
    in the order given. A rank given twice is an error here; whether ranks exist is checked per cluster (:func:`ranks`).
    Spans are kept unexpanded so that a range such as '0-99999999999' costs nothing before it is refused."""
    if value == "all" or value is None:
        return None
    items = value if isinstance(value, list) else [value]
    spans: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(value, list) else path
        if isinstance(item, str) and "-" in item:
            m = _RANGE.fullmatch(item)
            if not m or int(m.group(1)) > int(m.group(2)):
                raise GpusimError(where, f"expected a range such as '0-7', got {item!r}")
            spans.append((int(m.group(1)), int(m.group(2))))
        elif isinstance(item, int) and not isinstance(item, bool):
            spans.append((item, item))
        else:
            raise GpusimError(where, f"expected 'all', a rank number or a range such as '0-7', got {item!r}")
    reach = None   # the largest rank of the spans before, in sorted order
    for lo, hi in sorted(spans):
        if reach is not None and lo <= reach:
            raise GpusimError(path, f"rank {lo} appears twice")
        reach = hi
    return spans


def rank_count(spans: list[tuple[int, int]]) -> int:
    """How many ranks non-overlapping spans from :func:`rank_spans` name."""
    return sum(hi - lo + 1 for lo, hi in spans)


def ranks(value, path: str, n_gpus: int, cluster: str | None = None) -> list[int]:
    """'all', a list of integers, or ranges as strings '0-7' (inclusive) inside the list or alone; ``cluster`` is
    the label named when a rank is out of range (a scenario with several clusters checks ranks on each)."""
    spans = rank_spans(value, path)
    if spans is None:
        return list(range(n_gpus))
    for lo, hi in spans:   # before expanding: the first rank outside 0..n_gpus-1 in the order given
        if lo < 0 or hi >= n_gpus:
            r = lo if lo < 0 else max(lo, n_gpus)
            which = f"cluster '{cluster}'" if cluster is not None else "the cluster"
            raise GpusimError(path, f"rank {r} is outside 0..{n_gpus - 1} ({which} has {n_gpus} GPUs)")
    return [r for lo, hi in spans for r in range(lo, hi + 1)]
