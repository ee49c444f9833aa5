"""Goodput per transport: zero-loss efficiency, the published formulas, RoCE's collapse near 1 % loss, monotonicity."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from gpusim.errors import GpusimError
from gpusim.links import goodput as gp

LINE = 10e9 / 8  # 10 Gb/s


@pytest.mark.parametrize("transport,mtu,wire", [("roce", 4096, 4096 + 8 + 14 + 4 + 12 + 20 + 8 + 12 + 4),
                                                ("ib", 4096, 4096 + 8 + 12 + 4 + 2),
                                                ("tcp", 1448, 1500 + 38)])
def test_zero_loss_is_line_rate_times_header_efficiency(transport, mtu, wire):
    assert gp.wire_frame_bytes(transport, mtu) == wire
    assert gp.goodput_Bps(transport, LINE, 0.0, 20e-6, mtu) == pytest.approx(LINE * mtu / wire)


def test_ib_differs_from_roce_only_by_its_shorter_header():
    for p in (0.0, 1e-5, 1e-3):
        roce = gp.goodput_Bps("roce", LINE, p, 20e-6, 4096)
        ib = gp.goodput_Bps("ib", LINE, p, 20e-6, 4096)
        assert ib > roce
    assert gp.goodput_Bps("ib", LINE, 0, 0, 4096) / gp.goodput_Bps("roce", LINE, 0, 0, 4096) == \
        pytest.approx(4178 / 4122)


def test_go_back_n_reduces_to_the_textbook_formula_when_timeouts_cost_a_round_trip():
    """With tau = 2a every loss costs one round trip: U = (1-p)/(1+2ap) (Stallings)."""
    rtt = 50e-6
    t_pkt = gp.wire_frame_bytes("roce", 4096) / LINE
    a2 = rtt / t_pkt
    for p in (1e-4, 1e-2, 0.2):
        got = gp.goodput_Bps("roce", LINE, p, rtt, 4096, rto_s=rtt) / (LINE * gp.protocol_efficiency("roce", 4096))
        assert got == pytest.approx((1 - p) / (1 + a2 * p), rel=1e-12)


def test_roce_collapses_near_one_percent_loss():
    """Wang et al. (ICCCN 2019): plain go-back-N RoCEv2 falls to nearly zero above 1 % loss."""
    full = gp.goodput_Bps("roce", LINE, 0.0, 10e-6)
    rel = {p: gp.goodput_Bps("roce", LINE, p, 10e-6) / full for p in (1e-5, 1e-4, 1e-3, 1e-2, 3e-2)}
    assert rel[1e-5] > 0.99 and rel[1e-4] > 0.95
    assert rel[1e-2] < 0.02 and rel[3e-2] < 0.005
    # by hand: tau = 4.096 us * 2^20 / t_pkt, S = 1 + p (2a + 1/(1-p) + tau p/(1-p))
    t_pkt = 4178 / LINE
    tau, a2, p = 4.096e-6 * 2**20 / t_pkt, 10e-6 / t_pkt, 1e-3
    assert rel[p] == pytest.approx(1 / (1 + p * (a2 + 1 / (1 - p) + tau * p / (1 - p))), rel=1e-12)


def test_tcp_padhye_written_out():
    mss, rtt, t0, p = 1448, 10e-3, 0.2, 0.01
    b = 2
    pps = 1 / (rtt * math.sqrt(2 * b * p / 3) + t0 * min(1, 3 * math.sqrt(3 * b * p / 8)) * p * (1 + 32 * p**2))
    line = 100e9 / 8  # fast enough that the model, not the line, limits
    assert gp.goodput_Bps("tcp", line, p, rtt, mss, rto_s=t0) == pytest.approx(mss * pps * (1 - p), rel=1e-12)
    assert mss * pps < line


def test_tcp_mathis_written_out():
    mss, rtt, p = 1448, 10e-3, 1e-4
    expected = mss / rtt * math.sqrt(1.5) / math.sqrt(p) * (1 - p)
    assert gp.goodput_Bps("tcp", 100e9 / 8, p, rtt, mss, tcp_model="mathis") == pytest.approx(expected)


def test_tcp_is_capped_at_the_line_rate():
    got = gp.goodput_Bps("tcp", LINE, 1e-9, 1e-5, 1448)
    assert got == pytest.approx(LINE * 1448 / 1538 * (1 - 1e-9))


def test_total_loss_gives_nothing():
    for t in gp.TRANSPORTS:
        assert gp.goodput_Bps(t, LINE, 1.0, 1e-5) == 0.0


@pytest.mark.parametrize("kwargs,path", [
    ({"transport": "udp"}, "transport"), ({"packet_error_rate": 1.5}, "packet_error_rate"),
    ({"packet_error_rate": -0.1}, "packet_error_rate"), ({"rtt_s": -1.0}, "rtt_s"),
    ({"line_rate_Bps": 0.0}, "line_rate_Bps"), ({"mtu_bytes": 0}, "mtu_bytes"), ({"rto_s": math.nan}, "rto_s")])
def test_bad_arguments_name_the_field(kwargs, path):
    args = {"transport": "roce", "line_rate_Bps": LINE, "packet_error_rate": 0.01, "rtt_s": 1e-5, **kwargs}
    with pytest.raises(GpusimError) as exc:
        gp.goodput_Bps(**args)
    assert exc.value.path == path


@settings(max_examples=300, deadline=None)
@given(transport=st.sampled_from(gp.TRANSPORTS), tcp_model=st.sampled_from(gp.TCP_MODELS),
       line=st.floats(1e8, 1e12), rtt=st.floats(0, 1.0), mtu=st.integers(64, 9000),
       p1=st.floats(0, 1), p2=st.floats(0, 1))
def test_goodput_never_rises_with_loss(transport, tcp_model, line, rtt, mtu, p1, p2):
    lo, hi = sorted((p1, p2))
    g_lo = gp.goodput_Bps(transport, line, lo, rtt, mtu, tcp_model=tcp_model)
    g_hi = gp.goodput_Bps(transport, line, hi, rtt, mtu, tcp_model=tcp_model)
    assert 0.0 <= g_hi <= g_lo * (1 + 1e-12)
    assert g_lo <= line * gp.protocol_efficiency(transport, mtu) * (1 + 1e-12)
