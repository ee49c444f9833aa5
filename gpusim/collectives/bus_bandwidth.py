"""nccl-tests' bandwidth metrics: what "size" means for each operation, algbw and busbw.

Source: NVIDIA/nccl-tests (master a0b82b22) ``doc/PERFORMANCE.md`` and ``src/*.cu`` (``GetBw`` of each test), as
summarised in physics.md §1.7. With S the size nccl-tests prints (bytes) and t the time of one operation:

    algbw = S / t                     (GB/s, GB = 1e9 bytes, as nccl-tests: ``count*typesize/1.0E9/sec``)
    busbw = algbw * factor(op, n)

| op             | S (bytes)                          | factor     |
|----------------|------------------------------------|------------|
| all_reduce     | count x size                       | 2(n-1)/n   |
| reduce_scatter | recvcount x size x n (total)       | (n-1)/n    |
| all_gather     | sendcount x size x n (total)       | (n-1)/n    |
| all_to_all     | count x n x size (whole buffer)    | (n-1)/n    |
| broadcast      | count x size                       | 1          |
| reduce         | count x size                       | 1          |
| send_recv      | count x size                       | 1          |

busbw is the rate each link would need in a bandwidth-optimal ring, so it is comparable to link speed across n:
an all-reduce moves 2(n-1)/n of S over each of n links (PERFORMANCE.md: ``t = 2S(n-1)/(nB)``).

Operation names are accepted in any of the spellings in use (``allreduce``, ``AllReduce``, ``all_reduce_perf``,
``ncclAllReduce``) and reduced to one canonical snake_case name by :func:`canonical_op`.
"""
from __future__ import annotations

import math
import numbers
import re

from gpusim.errors import GpusimError, unknown

#: Canonical operation names, in nccl-tests' order of binaries.
OPS: tuple[str, ...] = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "reduce", "send_recv")

_ALIASES: dict[str, str] = {
    "allreduce": "all_reduce",
    "allgather": "all_gather",
    "reducescatter": "reduce_scatter",
    "alltoall": "all_to_all",
    "broadcast": "broadcast",
    "bcast": "broadcast",
    "reduce": "reduce",
    "sendrecv": "send_recv",
}

#: What S means for each operation (nccl-tests' size column), for reports and docs.
SIZE_CONVENTION: dict[str, str] = {
    "all_reduce": "count x type size (the reduced buffer)",
    "reduce_scatter": "recvcount x type size x n (the whole input buffer)",
    "all_gather": "sendcount x type size x n (the whole output buffer)",
    "all_to_all": "count x n x type size (the whole send buffer, count per peer)",
    "broadcast": "count x type size",
    "reduce": "count x type size",
    "send_recv": "count x type size",
}


def canonical_op(name: str, path: str = "op") -> str:
    """The canonical name (``all_reduce``, ``all_to_all``, ...) for any common spelling of a collective.

    Case, ``_``/``-``/spaces, a leading ``nccl`` and a trailing ``_perf`` are ignored; anything else raises
    :class:`GpusimError` at ``path`` with a did-you-mean hint.
    """
    if not isinstance(name, str):
        raise GpusimError(path, f"expected an operation name such as 'all_reduce', got {type(name).__name__} {name!r}")
    key = re.sub(r"[\s_\-]", "", name.lower())
    if key.startswith("nccl"):
        key = key[4:]
    if key.endswith("perf"):
        key = key[:-4]
    if key in _ALIASES:
        return _ALIASES[key]
    raise unknown(path, name, OPS, what="operation")


def busbw_factor(op: str, n_ranks: int) -> float:
    """nccl-tests' busbw/algbw factor for ``op`` on ``n_ranks`` ranks (table in the module docstring)."""
    op = canonical_op(op)
    n = _ranks(n_ranks)
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("reduce_scatter", "all_gather", "all_to_all"):
        return (n - 1) / n
    return 1.0


def op_size_bytes(op: str, count: int, type_size_bytes: int, n_ranks: int) -> int:
    """nccl-tests' S for an NCCL call with ``count`` elements of ``type_size_bytes`` bytes.

    ``count`` is the NCCL API's count argument: recvcount for reduce_scatter, sendcount for all_gather, the
    per-peer count for all_to_all, the buffer count otherwise.
    """
    op = canonical_op(op)
    count = _integer(count, "count", 0, "a non-negative integer element count")
    type_size_bytes = _integer(type_size_bytes, "type_size_bytes", 1, "a positive integer such as 1, 2, 4 or 8")
    n = _ranks(n_ranks)
    scale = n if op in ("reduce_scatter", "all_gather", "all_to_all") else 1
    return count * type_size_bytes * scale


def algbw_GBps(size_bytes: float, time_s: float) -> float:
    """Algorithm bandwidth S/t in GB/s (1e9 bytes/s), as nccl-tests prints it."""
    return _size(size_bytes) / _time(time_s) / 1e9


def busbw_GBps(op: str, n_ranks: int, size_bytes: float, time_s: float) -> float:
    """Bus bandwidth algbw x factor(op, n) in GB/s, as nccl-tests prints it."""
    return algbw_GBps(size_bytes, time_s) * busbw_factor(op, n_ranks)


def time_from_busbw_s(op: str, n_ranks: int, size_bytes: float, busbw_GBps: float) -> float:
    """The time t that nccl-tests would report for S bytes at the given busbw (inverse of :func:`busbw_GBps`)."""
    if not _is_real(busbw_GBps) or not busbw_GBps > 0 or not math.isfinite(busbw_GBps):
        raise GpusimError("busbw_GBps", f"expected a positive finite bandwidth in GB/s, got {busbw_GBps!r}")
    factor = busbw_factor(op, n_ranks)
    if factor == 0.0:
        raise GpusimError("n_ranks", f"busbw of {canonical_op(op)} on 1 rank is 0; time is not defined by it")
    return _size(size_bytes) * factor / (busbw_GBps * 1e9)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _integer(x, path: str, minimum: int, what: str) -> int:
    if not isinstance(x, numbers.Integral) or isinstance(x, bool) or x < minimum:
        raise GpusimError(path, f"expected {what}, got {x!r}")
    return int(x)


def _ranks(n_ranks) -> int:
    return _integer(n_ranks, "n_ranks", 1, "a positive integer number of ranks")


def _size(size_bytes) -> float:
    if not _is_real(size_bytes) or not math.isfinite(size_bytes) or size_bytes < 0:
        raise GpusimError("size_bytes", f"expected a non-negative finite number of bytes, got {size_bytes!r}")
    return float(size_bytes)


def _time(time_s) -> float:
    if not _is_real(time_s) or not math.isfinite(time_s) or not time_s > 0:
        raise GpusimError("time_s", f"expected a positive finite time in seconds, got {time_s!r}")
    return float(time_s)
