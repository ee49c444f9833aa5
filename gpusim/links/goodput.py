"""Packet loss -> goodput per transport, at flow level (no per-packet events).

All three models give ``line_rate * efficiency`` at zero loss, where ``efficiency = mtu/(mtu + header)`` is the
payload share of a packet on the wire, and never rise as the packet error rate ``p`` rises.

**RoCE (RoCEv2 reliable connection, go-back-N).** A renewal model per delivered packet, in packet slots of
``t_pkt = wire_frame/line_rate``, with ``2a = rtt/t_pkt`` slots until a NAK returns and ``tau = rto/t_pkt`` slots of
retransmission timeout::

    S = 1 + p (2a + 1/(1-p) + tau p/(1-p)),      goodput = line_rate * efficiency / S

A first loss is repaired by the receiver's NAK after one round trip (the classical go-back-N cost; with ``tau = 2a``
``1/S`` is the textbook ``(1-p)/(1+2ap)``, Stallings, Data and Computer Communications). The responder of an
InfiniBand-transport reliable connection sends one NAK per sequence error and then drops out-of-sequence packets
silently until the expected one arrives, so a lost *retransmission* waits for the QP's retransmission timeout.
That second-order ``p^2 tau`` term is what makes plain go-back-N collapse: with NCCL's default timeout (4.096 us x
2^20 = 4.3 s, physics.md §4.7) at 10 Gb/s and 4 KiB packets, relative goodput is ~0.99 at p = 1e-4, ~0.4 at 1e-3 and
under 0.01 at 1e-2, matching Wang et al. (ICCCN 2019: plain go-back-N RoCEv2 "drops to nearly zero" above 1 % loss,
blaming the NAK triggering). Tail losses (no later packet to trigger the NAK) are not modelled.

**InfiniBand.** The same reliable-connection transport, NAK rule and timeout, so the same model; the one difference
modelled is the header: 26 B per packet (LRH 8 + BTH 12 + ICRC 4 + VCRC 2, no GRH inside a subnet) against RoCEv2's
82 B (Ethernet preamble/SFD 8 + header 14 + FCS 4 + inter-frame gap 12, IPv4 20, UDP 8, BTH 12, ICRC 4). Credit-based
flow control makes IB lossless against congestion, not against bit errors, which is the loss here.

**TCP.** Padhye, Firoiu, Towsley & Kurose (SIGCOMM 1998), packets per second sent::

    B(p) = min(W_max/RTT, 1/(RTT sqrt(2bp/3) + T0 min(1, 3 sqrt(3bp/8)) p (1 + 32 p^2)))

with ``b = 2`` packets per ACK (delayed ACKs) and ``T0`` the retransmission timeout (Linux minimum 200 ms);
goodput is ``min(line_rate * efficiency, MSS B(p)) (1 - p)``. ``tcp_model="mathis"`` uses Mathis, Semke, Mahdavi &
Ott (CCR 1997) instead: ``MSS/RTT * sqrt(3/2)/sqrt(p)``. Header: 90 B (Ethernet 38 on the wire, IPv4 20, TCP 20,
timestamps option 12), so a 1500 B IP MTU carries a 1448 B MSS.
"""
from __future__ import annotations

import math
import numbers

from gpusim.errors import GpusimError, unknown

TRANSPORTS = ("roce", "ib", "tcp")
HEADER_BYTES = {"roce": 82, "ib": 26, "tcp": 90}
DEFAULT_MTU_BYTES = {"roce": 4096, "ib": 4096, "tcp": 1448}  # RoCE/IB path MTU; TCP MSS for a 1500 B IP MTU
IB_LOCAL_ACK_TIMEOUT_S = 4.096e-6  # the QP timeout is 4.096 us * 2^timeout (InfiniBand Architecture Spec. Vol. 1)
NCCL_IB_TIMEOUT_DEFAULT = 20  # NCCL's default QP timeout exponent (physics.md §4.7)
DEFAULT_RTO_S = {"roce": IB_LOCAL_ACK_TIMEOUT_S * 2**NCCL_IB_TIMEOUT_DEFAULT,
                 "ib": IB_LOCAL_ACK_TIMEOUT_S * 2**NCCL_IB_TIMEOUT_DEFAULT,
                 "tcp": 0.2}  # Linux TCP_RTO_MIN
MATHIS_C = math.sqrt(1.5)
TCP_MODELS = ("padhye", "mathis")


def wire_frame_bytes(transport: str, mtu_bytes: int) -> int:
    """Bytes one packet of ``mtu_bytes`` payload occupies on the wire (see the module docstring)."""
    _transport(transport)
    return int(mtu_bytes) + HEADER_BYTES[transport]


def protocol_efficiency(transport: str, mtu_bytes: int) -> float:
    """Payload share of the wire: ``mtu/(mtu + header)``."""
    return mtu_bytes / wire_frame_bytes(transport, mtu_bytes)


def go_back_n_utilisation(packet_error_rate: float, nak_slots: float, timeout_slots: float) -> float:
    """``1/S`` with ``S = 1 + p (2a + 1/(1-p) + tau p/(1-p))``; ``nak_slots`` is 2a, ``timeout_slots`` tau."""
    p = packet_error_rate
    if p >= 1.0:
        return 0.0
    if p <= 0.0:
        return 1.0  # not 1 + 0 * inf = NaN when a huge round trip makes nak_slots inf
    s = 1.0 + p * (nak_slots + 1.0 / (1.0 - p) + timeout_slots * p / (1.0 - p))
    return 1.0 / s


def padhye_packets_per_s(packet_error_rate: float, rtt_s: float, rto_s: float, b: int = 2,
                         w_max_packets: float | None = None) -> float:
    """Padhye et al. (SIGCOMM 1998) full model, packets per second sent; ``inf`` when nothing limits it."""
    p = packet_error_rate
    cap = math.inf if w_max_packets is None or rtt_s == 0 else w_max_packets / rtt_s
    if p <= 0:
        return cap
    denom = rtt_s * math.sqrt(2 * b * p / 3) + rto_s * min(1.0, 3 * math.sqrt(3 * b * p / 8)) * p * (1 + 32 * p**2)
    return min(cap, 1.0 / denom) if denom > 0 else cap


def mathis_packets_per_s(packet_error_rate: float, rtt_s: float, c: float = MATHIS_C) -> float:
    """Mathis et al. (CCR 1997): ``C/(RTT sqrt(p))`` packets per second; ``inf`` at p = 0 or RTT = 0."""
    denom = rtt_s * math.sqrt(packet_error_rate) if packet_error_rate > 0 else 0.0
    return c / denom if denom > 0 else math.inf


def goodput_Bps(transport: str, line_rate_Bps: float, packet_error_rate: float, rtt_s: float,
                mtu_bytes: int | None = None, rto_s: float | None = None, tcp_model: str = "padhye",
                w_max_packets: float | None = None) -> float:
    """Payload bytes/s a long flow gets over a link of ``line_rate_Bps`` losing ``packet_error_rate`` of its packets.

    ``mtu_bytes`` is the payload per packet (RoCE/IB path MTU, TCP MSS; default :data:`DEFAULT_MTU_BYTES`),
    ``rtt_s`` the flow's round trip, ``rto_s`` the retransmission timeout (default :data:`DEFAULT_RTO_S`).
    """
    _transport(transport)
    _check(line_rate_Bps, "line_rate_Bps", positive=True)
    _check(rtt_s, "rtt_s")
    if isinstance(packet_error_rate, bool) or not isinstance(packet_error_rate, numbers.Real) \
            or not 0.0 <= packet_error_rate <= 1.0:
        raise GpusimError("packet_error_rate", f"expected a probability in [0, 1], got {packet_error_rate!r}")
    mtu = DEFAULT_MTU_BYTES[transport] if mtu_bytes is None else mtu_bytes
    if isinstance(mtu, bool) or not isinstance(mtu, numbers.Integral) or mtu <= 0:
        raise GpusimError("mtu_bytes", f"expected a positive whole number of bytes, got {mtu!r}")
    rto = DEFAULT_RTO_S[transport] if rto_s is None else rto_s
    _check(rto, "rto_s")
    p = float(packet_error_rate)
    payload_Bps = line_rate_Bps * protocol_efficiency(transport, mtu)
    if p >= 1.0:
        return 0.0
    if transport in ("roce", "ib"):
        t_pkt = wire_frame_bytes(transport, mtu) / line_rate_Bps
        return payload_Bps * go_back_n_utilisation(p, rtt_s / t_pkt, rto / t_pkt)
    if tcp_model == "padhye":
        pps = padhye_packets_per_s(p, rtt_s, rto, w_max_packets=w_max_packets)
    elif tcp_model == "mathis":
        pps = mathis_packets_per_s(p, rtt_s)
        if w_max_packets is not None and rtt_s > 0:
            pps = min(pps, w_max_packets / rtt_s)
    else:
        raise unknown("tcp_model", tcp_model, TCP_MODELS, "TCP model")
    return min(payload_Bps, mtu * pps) * (1.0 - p)


def _transport(transport: str) -> None:
    if transport not in TRANSPORTS:
        raise unknown("transport", transport, TRANSPORTS, "transport")


def _check(x, path: str, positive: bool = False) -> None:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x < 0 \
            or (positive and x == 0):
        need = "positive" if positive else "non-negative"
        raise GpusimError(path, f"expected a {need} finite number, got {x!r}")
