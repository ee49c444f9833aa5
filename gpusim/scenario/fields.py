"""Typed readers for scenario fields: each names the field's path and what is accepted when it fails."""
from __future__ import annotations

from gpusim import units
from gpusim.errors import GpusimError, did_you_mean


def mapping(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise GpusimError(path, f"expected a mapping (key: value lines), got {type(value).__name__} {value!r}")
    return value


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise GpusimError(path, f"expected a number, got {value!r}")
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
    return units.size(value, path, default_unit="B")


def time(value, path: str) -> float:
    return units.time(value, path)


def ranks(value, path: str, n_gpus: int) -> list[int]:
    """'all', a list of integers, or ranges as strings '0-7' (inclusive) inside the list or alone."""
    if value == "all" or value is None:
        return list(range(n_gpus))
    items = value if isinstance(value, list) else [value]
    out: list[int] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(value, list) else path
        if isinstance(item, str) and "-" in item:
            lo, _, hi = item.partition("-")
            if not (lo.strip().isdigit() and hi.strip().isdigit()) or int(lo) > int(hi):
                raise GpusimError(where, f"expected a range such as '0-7', got {item!r}")
            out.extend(range(int(lo), int(hi) + 1))
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
        else:
            raise GpusimError(where, f"expected 'all', a rank number or a range such as '0-7', got {item!r}")
    for r in out:
        if not 0 <= r < n_gpus:
            raise GpusimError(path, f"rank {r} is outside 0..{n_gpus - 1} (the cluster has {n_gpus} GPUs)")
    if len(set(out)) != len(out):
        raise GpusimError(path, "a rank appears twice")
    return out
