"""FSO link budget: every model against numbers worked out here from the published formulas (physics.md §4)."""
import math

import numpy as np
import pytest
from scipy import integrate, special

from gpusim.errors import GpusimError
from gpusim.links import fso

DB = 10 / math.log(10)  # dB per neper of power


def kim_reference(v_km, lam_nm):
    """Kim et al. 2001 written out: beta = 3.91/V (lambda/550)^-q, q piecewise in V."""
    if v_km > 50:
        q = 1.6
    elif v_km > 6:
        q = 1.3
    elif v_km > 1:
        q = 0.16 * v_km + 0.34
    elif v_km > 0.5:
        q = v_km - 0.5
    else:
        q = 0.0
    return DB * 3.91 / v_km * (lam_nm / 550) ** -q


# ----------------------------------------------------------------------------------------------- fog
def test_kim_at_1km_1550nm_is_10_1_db_per_km():
    # q = V - 0.5 = 0.5; 4.343 * 3.91 * (1550/550)^-0.5 = 10.12
    expected = 4.3429448 * 3.91 * (1550 / 550) ** -0.5
    assert fso.kim_db_per_km(1000, 1550e-9) == pytest.approx(expected, rel=1e-6)
    assert fso.kim_db_per_km(1000, 1550e-9) == pytest.approx(10.1, abs=0.05)


def test_kruse_at_1km_1550nm():
    # Kruse q = 0.585 V^(1/3) = 0.585 at V = 1 km -> 9.26 dB/km
    expected = 4.3429448 * 3.91 * (1550 / 550) ** -0.585
    assert fso.kruse_db_per_km(1000, 1550e-9) == pytest.approx(expected, rel=1e-6)
    assert fso.kruse_db_per_km(1000, 1550e-9) == pytest.approx(9.3, abs=0.05)


@pytest.mark.parametrize("v_km,kim,kruse,adv,conv", [
    (0.05, 340, 272, 349, 382), (0.2, 85, 60, 87, 96), (0.5, 34, 21, 35, 38)])
def test_fog_models_match_physics_md_table(v_km, kim, kruse, adv, conv):
    """physics.md §4.3 [DERIVED] table at 1550 nm, given to 2-3 figures."""
    v, lam = v_km * 1e3, 1550e-9
    assert fso.kim_db_per_km(v, lam) == pytest.approx(kim, rel=0.02)
    assert fso.kruse_db_per_km(v, lam) == pytest.approx(kruse, rel=0.02)
    assert fso.al_naboulsi_advection_db_per_km(v, lam) == pytest.approx(adv, rel=0.02)
    assert fso.al_naboulsi_convection_db_per_km(v, lam) == pytest.approx(conv, rel=0.02)


@pytest.mark.parametrize("v_km,lam_nm,expected", [
    (2, 1550, 4.3), (4, 1550, 1.5), (10, 1550, 0.44), (23, 1550, 0.19), (1, 850, 13.7), (10, 850, 0.96)])
def test_kim_over_visibility_and_wavelength(v_km, lam_nm, expected):
    got = fso.kim_db_per_km(v_km * 1e3, lam_nm * 1e-9)
    assert got == pytest.approx(kim_reference(v_km, lam_nm), rel=1e-9)
    assert got == pytest.approx(expected, rel=0.03)


def test_al_naboulsi_written_out():
    lam_um, v_km = 1.55, 0.3
    adv = DB * (0.11478 * lam_um + 3.8367) / v_km
    conv = DB * (0.18126 * lam_um**2 + 0.13709 * lam_um + 3.7502) / v_km
    assert fso.fog_attenuation_db_per_km(300, 1550e-9, "al_naboulsi_advection") == pytest.approx(adv)
    assert fso.fog_attenuation_db_per_km(300, 1550e-9, "al_naboulsi_convection") == pytest.approx(conv)
    # at 0.55 um advection fog falls back to Koschmieder's 3.91/V within 0.3 %
    assert (0.11478 * 0.55 + 3.8367) == pytest.approx(3.91, rel=3e-3)


def test_unknown_fog_model_names_the_choices():
    with pytest.raises(GpusimError, match="kim"):
        fso.fog_attenuation_db_per_km(1000, 1550e-9, "kimm")


# ----------------------------------------------------------------------------------------------- rain, snow
@pytest.mark.parametrize("r,expected", [(2.5, 2.0), (12.5, 5.8), (25, 9.3), (100, 23.5)])
def test_carbonneau(r, expected):
    assert fso.carbonneau_rain_db_per_km(r) == pytest.approx(1.076 * r**0.67, rel=1e-12)
    assert fso.carbonneau_rain_db_per_km(r) == pytest.approx(expected, abs=0.06)


def test_itu_p1814_rain_with_path_reduction_and_multiple_scattering():
    # mu = 0: k = 1.2924, alpha = 0.6436; R = 25 mm/h, L = 2 km
    r, l_km = 25.0, 2.0
    gamma = 1.2924 * r**0.6436
    f = 1 / (1 + l_km * (r - 6.2) / 2623)
    ln_r = math.log(r)
    a = 0.015940 - 0.001476 * ln_r + 0.008297 * ln_r**2
    b = 0.117663 + 0.029602 * ln_r + 0.002142 * ln_r**2
    expected = gamma * l_km * f - a * l_km**b
    assert fso.itu_p1814_rain_db_per_km(r, 0) == pytest.approx(gamma)
    assert fso.rain_path_loss_db(r, 2000, "itu_p1814", 0) == pytest.approx(expected, rel=1e-12)
    assert gamma == pytest.approx(10.25, abs=0.01)
    # mu = -2 is the flattest power law
    assert fso.itu_p1814_rain_db_per_km(r, -2) == pytest.approx(2.2838 * r**0.4050)


def test_no_rain_no_rain_loss():
    for model in fso.RAIN_MODELS:
        assert fso.rain_path_loss_db(0.0, 5000, model) == 0.0


@pytest.mark.parametrize("s,wet,dry", [(1, 3.9, 5.6), (5, 12.6, 51), (10, 20.7, 134)])
def test_snow_itu_p1817_at_1550(s, wet, dry):
    a_wet, a_dry = 1.023e-4 * 1550 + 3.7855466, 5.42e-5 * 1550 + 5.4958776
    assert fso.snow_attenuation_db_per_km(s, 1550e-9, "wet") == pytest.approx(a_wet * s**0.72)
    assert fso.snow_attenuation_db_per_km(s, 1550e-9, "dry") == pytest.approx(a_dry * s**1.38)
    assert fso.snow_attenuation_db_per_km(s, 1550e-9, "wet") == pytest.approx(wet, rel=0.02)
    assert fso.snow_attenuation_db_per_km(s, 1550e-9, "dry") == pytest.approx(dry, rel=0.02)


# ----------------------------------------------------------------------------------------------- geometry
def test_geometric_loss_divergent_beam():
    # 2.5 cm + 2 mrad x 1 km = 2.025 m spot on an 8 cm aperture
    assert fso.geometric_loss_db(1000, 2e-3, 0.08, 0.025) == pytest.approx(20 * math.log10(2.025 / 0.08))
    assert fso.geometric_loss_db(1000, 2e-3, 0.08, 0.025) == pytest.approx(28.07, abs=0.01)
    # the ITU-R P.1814 area ratio drops D_T: 10 log10((2 m)^2/(0.08 m)^2)
    assert fso.geometric_loss_db(1000, 2e-3, 0.08, form="itu_p1814") == pytest.approx(27.96, abs=0.01)


def test_no_geometric_loss_when_the_aperture_catches_the_spot():
    assert fso.geometric_loss_db(10, 1e-3, 0.2, 0.02) == 0.0
    assert fso.geometric_loss_db(10, 1e-3, 0.2, form="itu_p1814") == 0.0


# ----------------------------------------------------------------------------------------------- turbulence
def test_rytov_variance_and_weak_margin():
    k = 2 * math.pi / 1550e-9
    s2 = 1.23 * 1e-14 * k ** (7 / 6) * 1000 ** (11 / 6)
    assert fso.rytov_variance(1550e-9, 1000, 1e-14) == pytest.approx(s2)
    assert s2 == pytest.approx(0.20, abs=0.005)  # physics.md §4.6
    assert fso.rytov_variance(1550e-9, 1000, 1e-13) == pytest.approx(2.0, abs=0.01)
    # ITU-R P.1814 as quoted: sigma_dB^2 = 23.17 k^(7/6) Cn2 L^(11/6), A = 2 sigma_dB
    sigma_db = math.sqrt(23.17 * k ** (7 / 6) * 1e-14 * 1000 ** (11 / 6))
    assert fso.scintillation_margin_db(1550e-9, 1000, 1e-14, model="rytov_weak") == pytest.approx(2 * sigma_db,
                                                                                                   rel=2e-3)
    assert 2 * sigma_db == pytest.approx(3.9, abs=0.05)
    assert fso.scintillation_margin_db(1550e-9, 1000, 1e-13, model="rytov_weak") == pytest.approx(12.3, abs=0.1)
    assert fso.rytov_variance(1550e-9, 1000, 1e-14, wave="spherical") == pytest.approx(s2 * 0.5 / 1.23)


def test_scintillation_index_limits():
    """Weak: sigma_I^2 -> sigma_R^2. Strong: plane-wave asymptote 1 + 0.86 sigma_R^(-4/5) (Andrews & Phillips)."""
    assert fso.scintillation_index(0.01) == pytest.approx(0.01, rel=0.01)
    for s2 in (100.0, 1000.0):
        assert fso.scintillation_index(s2) == pytest.approx(1 + 0.86 * s2 ** -0.4, rel=0.01)
    assert fso.scintillation_index(0.0) == 0.0
    # the all-regime margin never exceeds the weak-theory one
    for cn2 in (1e-15, 1e-14, 1e-13):
        assert fso.scintillation_margin_db(1550e-9, 3000, cn2) <= fso.scintillation_margin_db(
            1550e-9, 3000, cn2, model="rytov_weak")


def test_pointing_loss_matches_monte_carlo_of_a_jittered_gaussian_beam(rng):
    """Collected power of a Gaussian beam (radius w) on a small aperture offset r is ∝ exp(-2 r^2/w^2); with r
    Rayleigh(sigma) its mean is 1/(1 + 4 sigma^2/w^2). The model's mean loss must agree."""
    distance, div, jitter, d_rx, d_tx = 1000.0, 0.5e-3, 200e-6, 0.02, 0.0
    w = (d_tx + div * distance) / 2
    sigma = jitter * distance
    r = rng.rayleigh(sigma, 200_000)
    mc_db = -10 * math.log10(np.mean(np.exp(-2 * r**2 / w**2)))
    got = fso.pointing_loss_db(distance, div, d_rx, jitter, d_tx)
    assert got == pytest.approx(mc_db, abs=0.05)
    assert got == pytest.approx(10 * math.log10(1 + 4 * sigma**2 / w**2), abs=0.02)
    assert got > 3  # a real loss, not a rounding
    # the margin at 1 % is deeper than the mean loss; no jitter, no loss
    assert fso.pointing_loss_db(distance, div, d_rx, jitter, d_tx, outage_probability=0.01) > got
    assert fso.pointing_loss_db(distance, div, d_rx, 0.0) == 0.0


# ----------------------------------------------------------------------------------------------- BER, PER
def test_q_factor_and_ber():
    assert fso.q_from_ber(1e-12) == pytest.approx(7.03, abs=0.01)
    assert fso.q_from_ber(1e-9) == pytest.approx(6.0, abs=0.01)
    assert float(fso.ber_from_q(6.0)) == pytest.approx(0.5 * math.erfc(6 / math.sqrt(2)))


def test_ber_at_and_above_sensitivity():
    assert fso.ber_ook(-24, -24, 1e-12) == pytest.approx(1e-12, rel=1e-6)
    q = fso.q_from_ber(1e-12)
    # thermal noise: Q grows with power; shot noise: with its square root
    assert fso.ber_ook(-23, -24, 1e-12, "thermal") == pytest.approx(0.5 * math.erfc(q * 10**0.1 / math.sqrt(2)))
    assert fso.ber_ook(-23, -24, 1e-12, "shot") == pytest.approx(0.5 * math.erfc(q * 10**0.05 / math.sqrt(2)))
    assert fso.ber_ook(-27, -24) > 1e-6


def test_packet_error_rate():
    assert fso.packet_error_rate(1e-6, 1500) == pytest.approx(1 - (1 - 1e-6) ** 12000, rel=1e-9)
    assert fso.packet_error_rate(0.0, 1500) == 0.0
    assert fso.packet_error_rate(0.5, 1500) == pytest.approx(1.0)


def gamma_gamma_pdf(i, a, b):
    """The textbook gamma-gamma pdf with the Bessel K (physics.md §4.6), in logs for range."""
    z = 2 * math.sqrt(a * b * i)
    log_f = (math.log(2) + (a + b) / 2 * math.log(a * b) - special.gammaln(a) - special.gammaln(b)
             + ((a + b) / 2 - 1) * math.log(i) + math.log(special.kve(a - b, z)) - z)
    return math.exp(log_f)


@pytest.mark.parametrize("s2,excess_db", [(0.7, 5.0), (0.2, 3.0), (2.0, 10.0)])
def test_faded_error_rates_against_quadrature(s2, excess_db):
    a, b = fso.gamma_gamma_parameters(s2)
    q_ref = fso.q_from_ber(1e-12)
    m = 10 ** (excess_db / 10)
    nbits = 8 * 1518

    def per(i):
        ber = 0.5 * math.erfc(q_ref * m * i / math.sqrt(2))
        return -math.expm1(nbits * math.log1p(-ber))

    i_th = 4.0 / (q_ref * m)  # around where PER falls from 1 to 0
    mass = integrate.quad(lambda i: gamma_gamma_pdf(i, a, b), 0, np.inf, limit=200)[0]
    expected = sum(integrate.quad(lambda i: per(i) * gamma_gamma_pdf(i, a, b), lo, hi, limit=200)[0]
                   for lo, hi in ((0, i_th / 2), (i_th / 2, 2 * i_th), (2 * i_th, np.inf)))
    assert mass == pytest.approx(1.0, abs=1e-6)
    _, got = fso.faded_error_rates(-24 + excess_db, -24, s2, 1518, 1e-12)
    assert got == pytest.approx(expected, rel=0.02)
    assert 1e-8 < got < 1  # a case where fading matters


def test_no_turbulence_means_no_fading():
    ber, per = fso.faded_error_rates(-24.5, -24, 0.0, 1518)
    assert ber == pytest.approx(fso.ber_ook(-24.5, -24))
    assert per == pytest.approx(fso.packet_error_rate(fso.ber_ook(-24.5, -24), 1518))


# ----------------------------------------------------------------------------------------------- the budget
def test_budget_lines_add_up_at_1km_in_1km_fog():
    optics, weather = fso.Optics(), fso.Weather(visibility_m=1000)
    b = fso.link_budget(optics, 1000, weather)
    geo = 20 * math.log10((0.025 + 0.5e-3 * 1000) / 0.08)
    fog = kim_reference(1.0, 1550)
    assert b.geometric_loss_db == pytest.approx(geo)
    assert b.fog_loss_db == pytest.approx(fog)
    assert b.atmospheric_loss_db == pytest.approx(fog)
    expected_rx = 17 - geo - fog - b.pointing_loss_db - 3
    assert b.received_power_dbm == pytest.approx(expected_rx)
    assert b.margin_db == pytest.approx(expected_rx - b.scintillation_margin_db + 24)
    assert b.margin_db == pytest.approx(7.8, abs=0.1)
    assert not b.outage
    assert b.packet_error_rate < 1e-6


def test_budget_components_and_outage_in_dense_fog_rain_and_snow():
    w = fso.Weather(visibility_m=400, rain_mm_per_h=10, snow_mm_per_h=2, snow_kind="dry")
    b = fso.link_budget(fso.Optics(), 1000, w)
    assert b.rain_loss_db == pytest.approx(1.076 * 10**0.67)
    assert b.snow_loss_db == pytest.approx((5.42e-5 * 1550 + 5.4958776) * 2**1.38)
    assert b.atmospheric_loss_db == pytest.approx(b.fog_loss_db + b.rain_loss_db + b.snow_loss_db)
    assert b.outage and b.margin_db < 0
    assert b.packet_error_rate == pytest.approx(1.0)


def test_adaptive_rate_steps_down_until_the_link_closes():
    rates = (10e9 / 8, 5e9 / 8, 2.5e9 / 8, 1e9 / 8)
    optics = fso.Optics(adaptive_rates_Bps=rates)
    w = fso.Weather(visibility_m=650)
    fixed = fso.link_budget(fso.Optics(), 1000, w)
    adaptive = fso.link_budget(optics, 1000, w)
    assert fixed.outage
    assert not adaptive.outage and adaptive.line_rate_Bps < rates[0]
    # thermal noise: sensitivity improves 5 dB per decade of rate
    r = adaptive.line_rate_Bps
    assert adaptive.sensitivity_dbm == pytest.approx(-24 + 5 * math.log10(r / rates[0]))
    slower = [x for x in rates if x > r]
    for x in slower:  # every faster rate would not have closed
        assert adaptive.received_power_dbm - adaptive.scintillation_margin_db - (-24 + 5 * math.log10(x / rates[0])) < 0


def test_al_naboulsi_outside_its_visibility_fit_is_flagged():
    b = fso.link_budget(fso.Optics(), 500, fso.Weather(visibility_m=3000), fog_model="al_naboulsi_advection")
    assert any("extrapolated" in n for n in b.notes)
    assert fso.link_budget(fso.Optics(), 500, fso.Weather(visibility_m=300),
                           fog_model="al_naboulsi_advection").notes == ()


@pytest.mark.parametrize("make,path", [
    (lambda: fso.link_budget(fso.Optics(), -5.0, fso.Weather()), "distance"),
    (lambda: fso.link_budget(fso.Optics(), 0.0, fso.Weather()), "distance"),
    (lambda: fso.Weather(visibility_m=0.0), "weather.visibility_m"),
    (lambda: fso.Weather(rain_mm_per_h=-1.0), "weather.rain_mm_per_h"),
    (lambda: fso.Weather(snow_kind="slush"), "weather.snow_kind"),
    (lambda: fso.Optics(divergence_rad=0.0), "optics.divergence_rad"),
    (lambda: fso.Optics(sensitivity_ber=0.7), "optics.sensitivity_ber"),
    (lambda: fso.link_budget(fso.Optics(wavelength_m=2e-6), 1000, fso.Weather()), "optics.wavelength_m"),
    (lambda: fso.link_budget(fso.Optics(wavelength_m=300e-9), 1000, fso.Weather()), "optics.wavelength_m"),
    (lambda: fso.link_budget(fso.Optics(wavelength_m=532e-9), 1000, fso.Weather(visibility_m=500),
                             fog_model="al_naboulsi_convection"), "optics.wavelength_m"),
    (lambda: fso.link_budget(fso.Optics(), 1000, fso.Weather(), rain_model="marshall"), "rain_model"),
])
def test_bad_inputs_name_the_field(make, path):
    with pytest.raises(GpusimError) as exc:
        make()
    assert exc.value.path == path


def test_1550_nm_parsed_from_a_string_is_inside_the_range():
    from gpusim import units
    lam = units.length("1550 nm")
    fso.link_budget(fso.Optics(wavelength_m=lam), 1000, fso.Weather())


def test_optics_and_weather_from_user_fields():
    o = fso.optics_from_dict({"tx_power": "20 dBm", "divergence": "1 mrad", "rx_aperture": "10 cm",
                              "sensitivity": "-30 dBm", "line_rate": "25 Gb/s", "pointing_jitter": "50 urad",
                              "adaptive_rates": ["25 Gb/s", "10 Gb/s"]})
    assert (o.tx_power_dbm, o.divergence_rad, o.rx_aperture_m, o.sensitivity_dbm) == (20, 1e-3, 0.1, -30)
    assert o.line_rate_Bps == 25e9 / 8 and o.pointing_jitter_rad == pytest.approx(50e-6)
    assert o.adaptive_rates_Bps == (25e9 / 8, 10e9 / 8)
    w = fso.weather_from_dict({"visibility": "500 m", "rain": "10 mm/h", "snow": "1 mm/h", "snow_kind": "dry",
                               "cn2": "1e-13"})
    assert (w.visibility_m, w.rain_mm_per_h, w.snow_mm_per_h, w.snow_kind, w.cn2_m_minus_2_3) == \
        (500, 10, 1, "dry", 1e-13)


@pytest.mark.parametrize("fields,path", [
    ({"tx_power": "17"}, "optics.tx_power"), ({"tx_power": "17 mW"}, "optics.tx_power"),
    ({"divergence": "2 degrees"}, "optics.divergence"), ({"wavelength": "0 nm"}, "optics.wavelength"),
    ({"sensitivity_ber": 0.9}, "optics.sensitivity_ber"), ({"noise_model": "pink"}, "optics.noise_model"),
    ({"frame_size": "1.5 B"}, "optics.frame_size"), ({"diverjence": "1 mrad"}, "optics.diverjence"),
    ({"wavelength": "1 m"}, "optics.wavelength"),      # outside the fog models' range: the user's field, not wavelength_m
])
def test_optics_field_errors(fields, path):
    with pytest.raises(GpusimError) as exc:
        fso.optics_from_dict(fields)
    assert exc.value.path == path


def test_weather_field_errors():
    with pytest.raises(GpusimError, match="visibility"):
        fso.weather_from_dict({"visibility": "0 m"})
    with pytest.raises(GpusimError) as exc:
        fso.weather_from_dict({"cn2": -1e-14})
    assert exc.value.path == "weather.cn2"
    with pytest.raises(GpusimError, match="did you mean 'rain'"):
        fso.weather_from_dict({"rian": "5 mm/h"})


def test_numpy_scalars_are_accepted():
    b = fso.link_budget(fso.Optics(frame_size_bytes=np.int64(1518)), np.int64(1000),
                        fso.Weather(visibility_m=np.float64(1000)))
    assert b.margin_db == pytest.approx(fso.link_budget(fso.Optics(), 1000, fso.Weather(visibility_m=1000)).margin_db)
