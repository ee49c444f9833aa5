"""Closed-form alpha-beta-gamma costs of collective algorithms, and the lower bounds they cannot beat.

The model (Hockney; Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication Operations in MPICH",
IJHPCA 19(1), 2005, formulas as carried in MPICH's ``src/mpi/coll/*`` comments; physics.md §2): sending a message
of m bytes between two processes costs ``alpha + m*beta``; reducing m bytes costs ``m*gamma``. Every process can
send and receive one message at a time (full duplex), and the network has no contention.

    p      processes (ranks)
    n      bytes: the buffer being reduced or broadcast; for all_gather / reduce_scatter the *total* buffer
           (p blocks of n/p, the nccl-tests size convention); for all_to_all a process's whole send buffer
           (p blocks of n/p, its own block included)
    alpha  seconds per message (``alpha_s``), beta seconds per byte (``beta_s_per_byte``), gamma seconds per byte
           reduced (``gamma_s_per_byte``)
    lg     log2; ``ceil(lg p)`` where p need not be a power of two

Every function takes ``(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0)`` and returns seconds. One
process (p = 1) costs nothing. Algorithms defined only for powers of two raise :class:`GpusimError` otherwise.

:class:`RingPipeline` is the fluid (flow-level) form of NCCL's ring, which the event-driven simulator reproduces
exactly when nothing contends: per-step latency ``alpha`` and per-link bandwidth ``B``, bytes streamed.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from gpusim.collectives.bus_bandwidth import canonical_op
from gpusim.errors import GpusimError, unknown

Cost = Callable[..., float]


# --------------------------------------------------------------------------------------------------------------
# argument checking

def _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte) -> tuple[int, float, float, float, float]:
    if not isinstance(p, numbers.Integral) or isinstance(p, bool) or p < 1:
        raise GpusimError("p", f"expected a positive integer number of processes, got {p!r}")
    values = []
    for name, x in (("n_bytes", n_bytes), ("alpha_s", alpha_s), ("beta_s_per_byte", beta_s_per_byte),
                    ("gamma_s_per_byte", gamma_s_per_byte)):
        if not isinstance(x, numbers.Real) or isinstance(x, bool) or not math.isfinite(x) or x < 0:
            raise GpusimError(name, f"expected a non-negative finite number, got {x!r}")
        values.append(float(x))
    return (int(p), *values)


def _lg_ceil(p: int) -> int:
    """ceil(log2 p) for p >= 1, exactly (no floating-point rounding)."""
    return (p - 1).bit_length()


def _lg_floor(p: int) -> int:
    return p.bit_length() - 1


def _is_pow2(p: int) -> bool:
    return p & (p - 1) == 0


def _need_pow2(p: int, algorithm: str, instead: str) -> None:
    if not _is_pow2(p):
        raise GpusimError("p", f"{algorithm} needs a power-of-two number of processes, got {p}; use {instead}")


# --------------------------------------------------------------------------------------------------------------
# all_reduce

def all_reduce_ring(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Ring (reduce-scatter ring + all-gather ring): ``2(p-1)a + 2(p-1)/p n b + (p-1)/p n g``.

    Source: Thakur et al. 2005; Patarasuk & Yuan, JPDC 69(2), 2009 (bandwidth-optimal).
    """
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    f = (p - 1) / p
    return 2 * (p - 1) * a + 2 * f * n * b + f * n * g


def all_reduce_recursive_doubling(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Recursive doubling, the whole vector exchanged each round: ``lg p (a + n b + n g)`` (power-of-two p).

    Source: Thakur et al. 2005 (MPICH ``allreduce.c`` comment).
    """
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    _need_pow2(p, "recursive-doubling all_reduce", "all_reduce_ring or all_reduce_rabenseifner")
    return _lg_floor(p) * (a + n * b + n * g)


def all_reduce_rabenseifner(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Rabenseifner (reduce-scatter by recursive halving + all-gather by recursive doubling).

    Power-of-two p: ``2 lg p a + 2(p-1)/p n b + (p-1)/p n g``. Otherwise (the extra processes first fold their data
    into partners and get the result back at the end):
    ``(2 floor(lg p) + 2) a + (2(p-1)/p + 2) n b + (1 + (p-1)/p) n g``.
    Source: Thakur et al. 2005 (MPICH ``allreduce.c`` comment), physics.md §2.
    """
    return _rabenseifner(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte, extra_steps=2)


def _rabenseifner(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte, extra_steps: int) -> float:
    """Shared form of Rabenseifner all_reduce (``extra_steps`` 2) and reduce (1): for non-power-of-two p the folded
    processes cost ``extra_steps`` more latencies and ``extra_steps * n b`` more bytes (Thakur et al. 2005)."""
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    if p == 1:
        return 0.0
    f = (p - 1) / p
    if _is_pow2(p):
        return 2 * _lg_floor(p) * a + 2 * f * n * b + f * n * g
    return (2 * _lg_floor(p) + extra_steps) * a + (2 * f + extra_steps) * n * b + (1 + f) * n * g


# --------------------------------------------------------------------------------------------------------------
# all_gather (n = total gathered bytes)

def all_gather_ring(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Ring: ``(p-1) a + (p-1)/p n b`` (n = total gathered bytes). Source: Thakur et al. 2005."""
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return (p - 1) * a + (p - 1) / p * n * b


def all_gather_recursive_doubling(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Recursive doubling: ``lg p a + (p-1)/p n b`` (power-of-two p). Source: Thakur et al. 2005."""
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    _need_pow2(p, "recursive-doubling all_gather", "all_gather_bruck or all_gather_ring")
    return _lg_floor(p) * a + (p - 1) / p * n * b


def all_gather_bruck(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Bruck (any p): ``ceil(lg p) a + (p-1)/p n b``.

    Source: Bruck et al., IEEE TPDS 8(11), 1997; Thakur et al. 2005.
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return _lg_ceil(p) * a + (p - 1) / p * n * b


# --------------------------------------------------------------------------------------------------------------
# reduce_scatter (n = total input bytes)

def reduce_scatter_ring(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Ring / pairwise exchange: ``(p-1) a + (p-1)/p n (b + g)`` (n = total input bytes).

    Source: Thakur et al. 2005 (MPICH ``reduce_scatter.c`` comment).
    """
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return (p - 1) * a + (p - 1) / p * n * (b + g)


def reduce_scatter_recursive_halving(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Recursive halving: ``lg p a + (p-1)/p n (b + g)`` (power-of-two p).

    Source: Thakur et al. 2005. MPICH's comment for other p is not dimensionally consistent (physics.md §2,
    "as printed"), so only powers of two are accepted here.
    """
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    _need_pow2(p, "recursive-halving reduce_scatter", "reduce_scatter_ring")
    return _lg_floor(p) * a + (p - 1) / p * n * (b + g)


# --------------------------------------------------------------------------------------------------------------
# broadcast, reduce, gather/scatter (n = root's buffer)

def broadcast_binomial(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Binomial tree: ``ceil(lg p) (a + n b)``. Source: Thakur et al. 2005 (MPICH ``bcast.c``)."""
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return _lg_ceil(p) * (a + n * b)


def broadcast_scatter_ring_allgather(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Van de Geijn: binomial scatter + ring all-gather: ``(ceil(lg p) + p - 1) a + 2(p-1)/p n b``.

    Source: Thakur et al. 2005; Barnett et al. (van de Geijn), SHPCC 1994.
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return (_lg_ceil(p) + p - 1) * a + 2 * (p - 1) / p * n * b


def broadcast_scatter_recursive_doubling_allgather(p, n_bytes, alpha_s, beta_s_per_byte,
                                                   gamma_s_per_byte=0.0) -> float:
    """Binomial scatter + recursive-doubling all-gather: ``2 lg p a + 2(p-1)/p n b`` (power-of-two p).

    Source: Thakur et al. 2005.
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    _need_pow2(p, "scatter + recursive-doubling broadcast", "broadcast_scatter_ring_allgather")
    return 2 * _lg_floor(p) * a + 2 * (p - 1) / p * n * b


def reduce_binomial(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Binomial tree: ``ceil(lg p) (a + n b + n g)``. Source: Thakur et al. 2005."""
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return _lg_ceil(p) * (a + n * b + n * g)


def reduce_rabenseifner(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Rabenseifner (reduce-scatter by recursive halving + binomial gather).

    Power-of-two p: ``2 lg p a + 2(p-1)/p n b + (p-1)/p n g``; otherwise
    ``(2 floor(lg p) + 1) a + (2(p-1)/p + 1) n b + (1 + (p-1)/p) n g``.
    Source: Thakur et al. 2005, physics.md §2.
    """
    return _rabenseifner(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte, extra_steps=1)


def gather_binomial(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Binomial gather (n = root's gathered bytes): ``ceil(lg p) a + (p-1)/p n b``.

    Source: Thakur et al. 2005 (MPICH ``gather.c``).
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return _lg_ceil(p) * a + (p - 1) / p * n * b


def scatter_binomial(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Binomial scatter (n = root's buffer): ``ceil(lg p) a + (p-1)/p n b``.

    Source: Thakur et al. 2005 (MPICH ``scatter.c``).
    """
    return gather_binomial(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)


# --------------------------------------------------------------------------------------------------------------
# all_to_all (n = a process's whole send buffer, p blocks of n/p)

def all_to_all_pairwise(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Pairwise exchange: ``(p-1) a + (p-1)/p n b`` with n the whole send buffer (own block included).

    MPICH writes ``(p-1) a + n' b`` with n' the bytes sent to others; n' = (p-1)/p n. Source: Thakur et al. 2005.
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return (p - 1) * a + (p - 1) / p * n * b


def all_to_all_bruck(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """Bruck (store and forward): ``ceil(lg p) a + (n/2) ceil(lg p) b`` (n the whole send buffer).

    Each of the ceil(lg p) rounds forwards about half of the p blocks. Source: Bruck et al. 1997; Thakur et al. 2005.
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    k = _lg_ceil(p)
    return k * a + n / 2 * k * b


def send_recv(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """One point-to-point message: ``a + n b`` (p is ignored beyond p >= 2 meaning there is a peer)."""
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    return 0.0 if p == 1 else a + n * b


# --------------------------------------------------------------------------------------------------------------
# pipelining

def pipelined_chain(p, n_bytes, alpha_s, beta_s_per_byte, chunks: int) -> float:
    """Broadcast along a chain/ring of p ranks with the message cut into ``chunks`` (k) pieces.

    The first piece needs p-1 hops to reach the end and each later piece arrives one step after the previous:
    ``(p - 2 + k) (a + n b / k)``; k = 1 is store-and-forward, ``(p-1)(a + n b)``. Every piece pays alpha at every
    hop, so the optimum is ``k* = sqrt((p-2) n b / a)``; with a = 0 the time tends to n b. The fluid ring
    (:meth:`RingPipeline.broadcast_s`) charges alpha once per hop instead: ``(p-1) a + n b``.
    Source: the standard pipelining argument, as in the segmented chain broadcast of Pjesivac-Grbovic et al.,
    Cluster Computing 10(2), 2007.
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, 0.0)
    k = _chunks(chunks)
    if p == 1:
        return 0.0
    return (p - 2 + k) * (a + n * b / k)


def pipelined_ring_phase(p, n_bytes, alpha_s, beta_s_per_byte, chunks: int) -> float:
    """One reduce-scatter or all-gather phase of a ring whose blocks (n/p) are cut into ``chunks`` (k) pieces.

    Every link must carry (p-1)k pieces of n/(kp) bytes one after another, and each piece pays a step latency:
    ``(p-1) k (a + n b / (k p))`` = ``(p-1) k a + (p-1)/p n b``. Chunking a ring phase adds latency and never saves
    bandwidth time; k = 1 is :func:`all_gather_ring`. (physics.md §2's ``(p-1+k)(a + n b/(kp))`` would beat the
    ``(p-1)/p n b`` lower bound for large k, so it is not used.)
    """
    p, n, a, b, _ = _check(p, n_bytes, alpha_s, beta_s_per_byte, 0.0)
    k = _chunks(chunks)
    return (p - 1) * k * (a + n * b / (k * p))


def _chunks(chunks) -> int:
    if not isinstance(chunks, numbers.Integral) or isinstance(chunks, bool) or chunks < 1:
        raise GpusimError("chunks", f"expected a positive integer number of pieces, got {chunks!r}")
    return int(chunks)


# --------------------------------------------------------------------------------------------------------------
# lower bounds

def lower_bound(op: str, p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """No algorithm for ``op`` in this model is faster (latency + bandwidth + computation bounds, summed).

    Latency: ``ceil(lg p) a`` (the number of informed processes at most doubles per round; folklore).
    Bandwidth and computation (Chan et al., "Collective communication: theory, practice, and experience",
    CCPE 19(13), 2007; Patarasuk & Yuan 2009 for all_reduce):

    | op                          | bandwidth        | computation    |
    |-----------------------------|------------------|----------------|
    | all_reduce                  | 2(p-1)/p n b     | (p-1)/p n g    |
    | reduce_scatter              | (p-1)/p n b      | (p-1)/p n g    |
    | all_gather, all_to_all      | (p-1)/p n b      | 0              |
    | broadcast                   | n b              | 0              |
    | reduce                      | n b              | (p-1)/p n g    |
    | send_recv                   | n b (and one a)  | 0              |
    """
    op = canonical_op(op)
    p, n, a, b, g = _check(p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)
    if p == 1:
        return 0.0
    f = (p - 1) / p
    lat = _lg_ceil(p) * a
    if op == "all_reduce":
        return lat + 2 * f * n * b + f * n * g
    if op == "reduce_scatter":
        return lat + f * n * (b + g)
    if op in ("all_gather", "all_to_all"):
        return lat + f * n * b
    if op == "broadcast":
        return lat + n * b
    if op == "reduce":
        return lat + n * b + f * n * g
    return a + n * b  # send_recv


#: Every closed form above, by canonical operation and algorithm name.
ALGORITHMS: dict[str, dict[str, Cost]] = {
    "all_reduce": {"ring": all_reduce_ring, "recursive_doubling": all_reduce_recursive_doubling,
                   "rabenseifner": all_reduce_rabenseifner},
    "all_gather": {"ring": all_gather_ring, "recursive_doubling": all_gather_recursive_doubling,
                   "bruck": all_gather_bruck},
    "reduce_scatter": {"ring": reduce_scatter_ring, "recursive_halving": reduce_scatter_recursive_halving},
    "broadcast": {"binomial": broadcast_binomial, "scatter_ring_allgather": broadcast_scatter_ring_allgather,
                  "scatter_recursive_doubling_allgather": broadcast_scatter_recursive_doubling_allgather},
    "reduce": {"binomial": reduce_binomial, "rabenseifner": reduce_rabenseifner},
    "all_to_all": {"pairwise": all_to_all_pairwise, "bruck": all_to_all_bruck},
    "send_recv": {"direct": send_recv},
}

#: Algorithms that need a power-of-two number of processes.
POW2_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("all_reduce", "recursive_doubling"), ("all_gather", "recursive_doubling"),
    ("reduce_scatter", "recursive_halving"), ("broadcast", "scatter_recursive_doubling_allgather"),
})


def cost(op: str, algorithm: str, p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte=0.0) -> float:
    """The closed form of ``algorithm`` for ``op`` (names as in :data:`ALGORITHMS`), in seconds."""
    op = canonical_op(op)
    table = ALGORITHMS[op]
    if algorithm not in table:
        raise unknown("algorithm", algorithm, table, what=f"{op} algorithm")
    return table[algorithm](p, n_bytes, alpha_s, beta_s_per_byte, gamma_s_per_byte)


# --------------------------------------------------------------------------------------------------------------
# fluid ring

@dataclass(frozen=True)
class RingPipeline:
    """NCCL-style ring with bytes streamed: what the flow-level engine gives when nothing contends.

    Every rank sends to its successor over a link of ``link_bandwidth_Bps``; each of the ring's steps (a block
    handed one hop on) pays ``step_latency_s`` once, and data flows at full link rate in between. Hence, with B the
    link bandwidth and alpha the step latency (n as in the module docstring):

        all_reduce                      2(p-1) alpha + 2(p-1)/p n / B
        all_gather, reduce_scatter      (p-1) alpha + (p-1)/p n / B
        broadcast, reduce (pipelined)   (p-1) alpha + n / B

    These are :func:`all_reduce_ring` etc. with ``beta = 1/B`` and no gamma (reduction is hidden behind transfer),
    and the large-chunk-count limit of :func:`pipelined_chain` for broadcast.
    """

    p: int
    link_bandwidth_Bps: float
    step_latency_s: float = 0.0

    def __post_init__(self):
        if not isinstance(self.p, numbers.Integral) or isinstance(self.p, bool) or self.p < 1:
            raise GpusimError("p", f"expected a positive integer number of ranks, got {self.p!r}")
        bw = self.link_bandwidth_Bps
        if not isinstance(bw, numbers.Real) or isinstance(bw, bool) or not math.isfinite(bw) or not bw > 0:
            raise GpusimError("link_bandwidth_Bps", f"expected a positive finite bandwidth in bytes/s, got {bw!r}")
        lat = self.step_latency_s
        if not isinstance(lat, numbers.Real) or isinstance(lat, bool) or not math.isfinite(lat) or lat < 0:
            raise GpusimError("step_latency_s", f"expected a non-negative finite time in seconds, got {lat!r}")

    def all_reduce_s(self, n_bytes: float) -> float:
        """``2(p-1) alpha + 2(p-1)/p n / B``."""
        return 2 * self._phase(n_bytes)

    def all_gather_s(self, n_bytes: float) -> float:
        """``(p-1) alpha + (p-1)/p n / B`` with n the total gathered bytes."""
        return self._phase(n_bytes)

    def reduce_scatter_s(self, n_bytes: float) -> float:
        """``(p-1) alpha + (p-1)/p n / B`` with n the total input bytes."""
        return self._phase(n_bytes)

    def broadcast_s(self, n_bytes: float) -> float:
        """``(p-1) alpha + n / B``: the first byte crosses p-1 hops, the rest streams behind it."""
        n = _bytes(n_bytes)
        if self.p == 1:
            return 0.0
        return (self.p - 1) * self.step_latency_s + n / self.link_bandwidth_Bps

    def reduce_s(self, n_bytes: float) -> float:
        """Same as :meth:`broadcast_s`, data flowing towards the root."""
        return self.broadcast_s(n_bytes)

    def time_s(self, op: str, n_bytes: float) -> float:
        """Dispatch on any spelling of all_reduce, all_gather, reduce_scatter, broadcast or reduce."""
        name = canonical_op(op)
        method = {"all_reduce": self.all_reduce_s, "all_gather": self.all_gather_s,
                  "reduce_scatter": self.reduce_scatter_s, "broadcast": self.broadcast_s,
                  "reduce": self.reduce_s}.get(name)
        if method is None:
            raise unknown("op", op, ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce"),
                          what="ring operation")
        return method(n_bytes)

    def _phase(self, n_bytes: float) -> float:
        n = _bytes(n_bytes)
        p = self.p
        return (p - 1) * self.step_latency_s + (p - 1) / p * n / self.link_bandwidth_Bps


def _bytes(n_bytes) -> float:
    if not isinstance(n_bytes, numbers.Real) or isinstance(n_bytes, bool) or not math.isfinite(n_bytes) \
            or n_bytes < 0:
        raise GpusimError("n_bytes", f"expected a non-negative finite number of bytes, got {n_bytes!r}")
    return float(n_bytes)
