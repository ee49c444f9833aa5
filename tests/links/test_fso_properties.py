"""Properties of the FSO budget: worse weather or a longer link never helps."""
import math

from hypothesis import assume, given, settings, strategies as st

from gpusim.links import fso, goodput
from gpusim.links.weather import effective_capacity_Bps

OPTICS = {t: fso.Optics(frame_size_bytes=goodput.wire_frame_bytes(t, goodput.DEFAULT_MTU_BYTES[t]))
          for t in goodput.TRANSPORTS}
RTT = 20e-6

visibility = st.floats(30.0, 60_000.0)
distance = st.floats(50.0, 8_000.0)
rain = st.floats(0.0, 150.0)
snow = st.floats(0.0, 20.0)
cn2 = st.sampled_from([0.0, 1e-16, 1e-15, 1e-14, 1e-13])
wavelength = st.sampled_from([850e-9, 1310e-9, 1550e-9])
transport = st.sampled_from(goodput.TRANSPORTS)
fog_model = st.sampled_from(fso.FOG_MODELS)


def capacity(t, distance_m, weather, lam=1550e-9, fog="kim"):
    optics = fso.Optics(**{**OPTICS[t].__dict__, "wavelength_m": lam})
    return effective_capacity_Bps(fso.link_budget(optics, distance_m, weather, fog_model=fog), t, RTT)


def at_most(a, b):
    return a <= b * (1 + 1e-9) + 1e-9


@settings(max_examples=150, deadline=None)
@given(t=transport, d=distance, v1=visibility, v2=visibility, c=cn2, lam=wavelength, fog=fog_model)
def test_lower_visibility_never_gives_more_goodput(t, d, v1, v2, c, lam, fog):
    lo, hi = sorted((v1, v2))
    assert at_most(capacity(t, d, fso.Weather(visibility_m=lo, cn2_m_minus_2_3=c), lam, fog),
                   capacity(t, d, fso.Weather(visibility_m=hi, cn2_m_minus_2_3=c), lam, fog))


@settings(max_examples=150, deadline=None)
@given(t=transport, d=distance, v=visibility, r1=rain, r2=rain, s1=snow, s2=snow, kind=st.sampled_from(["wet", "dry"]),
       c=cn2)
def test_heavier_rain_or_snow_never_gives_more_goodput(t, d, v, r1, r2, s1, s2, kind, c):
    (rl, rh), (sl, sh) = sorted((r1, r2)), sorted((s1, s2))
    light = fso.Weather(visibility_m=v, rain_mm_per_h=rl, snow_mm_per_h=sl, snow_kind=kind, cn2_m_minus_2_3=c)
    heavy = fso.Weather(visibility_m=v, rain_mm_per_h=rh, snow_mm_per_h=sh, snow_kind=kind, cn2_m_minus_2_3=c)
    assert at_most(capacity(t, d, heavy), capacity(t, d, light))


@settings(max_examples=150, deadline=None)
@given(t=transport, d1=distance, d2=distance, v=visibility, r=rain, c=cn2, lam=wavelength)
def test_longer_links_never_lose_less(t, d1, d2, v, r, c, lam):
    short, long_ = sorted((d1, d2))
    assume(long_ > short)
    w = fso.Weather(visibility_m=v, rain_mm_per_h=r, cn2_m_minus_2_3=c)
    optics = fso.Optics(wavelength_m=lam)
    a, b = fso.link_budget(optics, short, w), fso.link_budget(optics, long_, w)
    loss = lambda x: x.geometric_loss_db + x.atmospheric_loss_db + x.pointing_loss_db  # noqa: E731
    assert loss(b) >= loss(a) - 1e-9
    # not the scintillation margin on its own: sigma_I^2 peaks near sigma_R^2 ~ 10 and falls towards 1 beyond
    assert b.margin_db <= a.margin_db + 1e-9
    assert at_most(capacity(t, long_, w, lam), capacity(t, short, w, lam))


@settings(max_examples=100, deadline=None)
@given(d=distance, v=visibility, r=rain, s=snow, c=cn2)
def test_budget_is_finite_and_consistent(d, v, r, s, c):
    b = fso.link_budget(fso.Optics(), d, fso.Weather(visibility_m=v, rain_mm_per_h=r, snow_mm_per_h=s,
                                                     cn2_m_minus_2_3=c))
    for x in (b.received_power_dbm, b.margin_db, b.ber, b.packet_error_rate):
        assert math.isfinite(x)
    assert 0.0 <= b.ber <= 0.5 and 0.0 <= b.packet_error_rate <= 1.0
    assert b.outage == (b.margin_db < 0)
