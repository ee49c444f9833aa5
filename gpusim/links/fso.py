"""Free-space optical (FSO) link budget: weather -> loss -> margin -> BER -> packet error rate -> outage.

The budget, in dB and dBm (ITU-R P.1814 link margin)::

    P_rx   = P_tx - A_geo - A_atmo - A_point - A_system            mean received power (dBm)
    A_atmo = (gamma_fog(V) + gamma_rain(R) + gamma_snow(S)) * L     Beer-Lambert, gamma in dB/km, L in km
    M      = P_rx - A_scint - S_r                                  margin above the receiver sensitivity
    outage = M < 0

BER is OOK with on-off threshold detection, ``BER = Q(Q_f)``, where the Q-factor scales with received power so
that the sensitivity ``S_r`` gives the reference BER (thermal-noise-limited: ``Q_f ∝ P``; shot-noise-limited:
``Q_f ∝ sqrt(P)``). BER and packet error rate are averaged over the gamma-gamma irradiance distribution that the
Rytov variance sets (Andrews & Phillips), so scintillation fades show up as packet loss before the mean power
reaches the sensitivity. Formulas and their sources: ``docs/fso.md``; reference numbers: physics.md §4.

Everything is SI (metres, seconds, bytes/s) except powers (dBm), losses (dB), specific attenuation (dB/km) and
precipitation (mm/h), which every model quotes in those units. Cn² is in m^(-2/3).
"""
from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import special, stats

from gpusim import units
from gpusim.errors import GpusimError, unknown

DB_PER_NEPER_POWER = 10.0 / math.log(10.0)  # 4.343: A[dB] = 4.343 * beta * L (Beer-Lambert, physics.md §4.1)
KOSCHMIEDER_CONSTANT = 3.91  # beta(550 nm) = 3.91 / V at 2 % contrast (Kim et al., SPIE 4214, 2001)
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0  # exact (SI definition); the index of air (~1.0003) is neglected

FOG_MODELS = ("kim", "kruse", "al_naboulsi_advection", "al_naboulsi_convection")
RAIN_MODELS = ("carbonneau", "itu_p1814")
SNOW_KINDS = ("wet", "dry")
NOISE_MODELS = ("thermal", "shot")
SCINTILLATION_MODELS = ("andrews_phillips", "rytov_weak")
GEOMETRIC_FORMS = ("divergent", "itu_p1814")

# Validity: ITU-R P.1814 suspended-particle attenuation (Kim's q) 0.4-1.55 um (ITU-Rpy itu1814.py);
# Al Naboulsi 690-1550 nm, 50 m < V < 1 km (Opt. Eng. 43(2), 2004).
WAVELENGTH_RANGE_M = (400e-9, 1550e-9)
AL_NABOULSI_WAVELENGTH_RANGE_M = (690e-9, 1550e-9)
AL_NABOULSI_VISIBILITY_RANGE_M = (50.0, 1000.0)
_REL_TOL = 1e-9  # "1550 nm" parses to 1.5500000000000002e-06

# Bounds on every other input: each wider than terrestrial FSO links see, and together they keep every line of the
# budget a finite float (1e308 dBm, 1e300 m or Cn² = 1e300 made inf or NaN of it): field -> (low, high, unit, what).
DISTANCE_RANGE_M = (1.0, 200e3)  # the longest terrestrial FSO link, 144 km (La Palma-Tenerife, Ursin et al., Nature
#   Physics 3, 2007); beyond ~420 km ITU-R P.1814's rain path reduction F turns negative
MAX_PRECIPITATION_MM_PER_H = 2000.0  # above the largest one-minute rainfall on record, 31.2 mm (~1,870 mm/h;
#   Unionville, Maryland, 4 July 1956)
BOUNDS = {
    "tx_power_dbm": (-30.0, 50.0, "dBm", "a transmit power from -30 to 50 dBm (1 uW to 100 W)"),
    "sensitivity_dbm": (-100.0, 20.0, "dBm", "a receiver sensitivity from -100 to 20 dBm"),
    "system_loss_db": (0.0, 100.0, "dB", "a system loss from 0 to 100 dB"),
    # 1 urad: under the diffraction limit of a 1 m telescope at 1550 nm, 2.44 lambda/D = 3.8 urad
    "divergence_rad": (1e-6, 1.0, "rad", "a full-angle divergence from 1 urad to 1 rad"),
    "pointing_jitter_rad": (0.0, 1.0, "rad", "an rms pointing jitter from 0 to 1 rad"),
    # 10 m: the largest single telescope mirrors (Keck, 10 m)
    "tx_aperture_m": (0.0, 10.0, "m", "a transmit aperture from 0 to 10 m"),
    "rx_aperture_m": (1e-3, 10.0, "m", "a receive aperture from 1 mm to 10 m"),
    "line_rate_Bps": (*units.LINK_RATE_RANGE_Bps, "B/s", "a line rate from 1 MB/s to 10 PB/s (any link's)"),
    "frame_size_bytes": (1, 1 << 20, "B", "a frame size from 1 B to 1 MiB"),
    # 350 km: a particle-free (Rayleigh) atmosphere's 3.912/beta = 340 km at 550 nm (beta = 0.0116/km); 10 m: inside
    # the densest fog class (0-50 m, Kim et al. 2001)
    "visibility_m": (10.0, 350e3, "m", "a visibility from 10 m to 350 km"),
    "rain_mm_per_h": (0.0, MAX_PRECIPITATION_MM_PER_H, "mm/h", "a rain rate from 0 to 2000 mm/h"),
    "snow_mm_per_h": (0.0, MAX_PRECIPITATION_MM_PER_H, "mm/h", "a snow rate from 0 to 2000 mm/h"),
    # 1000 times strong near-ground turbulence (1e-13, physics.md §4.6)
    "cn2_m_minus_2_3": (0.0, 1e-10, "m^-2/3", "a Cn² from 0 to 1e-10 m^-2/3"),
}


# --------------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Optics:
    """One direction of an FSO terminal pair.

    Defaults are representative of a tracked 1550 nm, 10 Gb/s terminal of the class in physics.md §4.8 (Taara Beam:
    1550 nm, 10/25 GbE over SFP+, 100 m-10 km); the power, divergence, aperture and sensitivity figures are assumed,
    not one product's datasheet. With them the margin stays non-negative to about 4.7 km in clear air at Cn² = 1e-14
    and is 7.8 dB at 1 km in V = 1 km fog. Replace them with your terminal's datasheet.
    """

    tx_power_dbm: float = 17.0
    wavelength_m: float = 1550e-9
    divergence_rad: float = 0.5e-3  # full angle
    tx_aperture_m: float = 0.025
    rx_aperture_m: float = 0.08
    sensitivity_dbm: float = -24.0  # at sensitivity_ber and line_rate_Bps (APD-class 10G receiver, assumed)
    sensitivity_ber: float = 1e-12  # the IEEE 802.3 10GbE BER objective
    noise_model: str = "thermal"
    system_loss_db: float = 3.0  # optics, coupling, window losses (assumed)
    pointing_jitter_rad: float = 20e-6  # rms angular jitter per axis left after tracking (assumed)
    line_rate_Bps: float = 10e9 / 8
    frame_size_bytes: int = 1518  # largest untagged Ethernet frame
    adaptive_rates_Bps: tuple[float, ...] = ()  # empty: fixed line rate; else step down to the fastest that closes

    def __post_init__(self):
        p = "optics"
        _positive(self.wavelength_m, f"{p}.wavelength_m")
        for name in ("tx_power_dbm", "sensitivity_dbm", "divergence_rad", "tx_aperture_m", "rx_aperture_m",
                     "system_loss_db", "pointing_jitter_rad", "line_rate_Bps"):
            _within(getattr(self, name), f"{p}.{name}")
        if not (0.0 < self.sensitivity_ber < 0.5):
            raise GpusimError(f"{p}.sensitivity_ber", f"expected a BER between 0 and 0.5, got {self.sensitivity_ber!r}")
        if self.noise_model not in NOISE_MODELS:
            raise unknown(f"{p}.noise_model", self.noise_model, NOISE_MODELS, "noise model")
        if isinstance(self.frame_size_bytes, bool) or not isinstance(self.frame_size_bytes, numbers.Integral) \
                or self.frame_size_bytes <= 0:
            raise GpusimError(f"{p}.frame_size_bytes", f"expected a positive whole number of bytes, "
                                                       f"got {self.frame_size_bytes!r}")
        _within(self.frame_size_bytes, f"{p}.frame_size_bytes")
        rates = tuple(float(r) for r in self.adaptive_rates_Bps)
        for i, r in enumerate(rates):
            _within(r, f"{p}.adaptive_rates_Bps[{i}]", "line_rate_Bps")
        object.__setattr__(self, "adaptive_rates_Bps", rates)


@dataclass(frozen=True)
class Weather:
    """Weather along the path, constant over the link: visibility (2 % contrast at 550 nm), rain and snow rates,
    and the refractive-index structure parameter Cn² (1e-15 weak ... 1e-13 strong near the ground)."""

    visibility_m: float = 23_000.0  # "clear air" (Kim et al. 2001 weather table)
    rain_mm_per_h: float = 0.0
    snow_mm_per_h: float = 0.0
    snow_kind: str = "wet"
    cn2_m_minus_2_3: float = 1e-14

    def __post_init__(self):
        p = "weather"
        _positive(self.visibility_m, f"{p}.visibility_m", "a visibility of 0 would mean infinite attenuation")
        for name in ("visibility_m", "rain_mm_per_h", "snow_mm_per_h", "cn2_m_minus_2_3"):
            _within(getattr(self, name), f"{p}.{name}")
        if self.snow_kind not in SNOW_KINDS:
            raise unknown(f"{p}.snow_kind", self.snow_kind, SNOW_KINDS, "snow kind")


# --------------------------------------------------------------------------------------------------- fog
def kim_q(visibility_km: float) -> float:
    """Kim's size-distribution exponent q(V) (Kim, McArthur & Korevaar, Proc. SPIE 4214, 2001)."""
    v = visibility_km
    if v > 50:
        return 1.6
    if v > 6:
        return 1.3
    if v > 1:
        return 0.16 * v + 0.34
    if v > 0.5:
        return v - 0.5
    return 0.0


def kruse_q(visibility_km: float) -> float:
    """Kruse's exponent q(V) (Kruse, McGlauchlin & McQuistan, Elements of Infrared Technology, 1962)."""
    v = visibility_km
    if v > 50:
        return 1.6
    if v > 6:
        return 1.3
    return 0.585 * v ** (1.0 / 3.0)


def _visibility_model_db_per_km(visibility_m: float, wavelength_m: float, q: float) -> float:
    """``gamma = 4.343 * (3.91/V) * (lambda/550 nm)^-q`` dB/km (Kim 2001; ITU-R P.1814 writes 17/V)."""
    v_km = visibility_m / 1e3
    return DB_PER_NEPER_POWER * KOSCHMIEDER_CONSTANT / v_km * (wavelength_m / 550e-9) ** (-q)


def kim_db_per_km(visibility_m: float, wavelength_m: float) -> float:
    """Fog/haze specific attenuation, Kim model (Proc. SPIE 4214, 2001)."""
    _positive(visibility_m, "visibility_m")
    return _visibility_model_db_per_km(visibility_m, wavelength_m, kim_q(visibility_m / 1e3))


def kruse_db_per_km(visibility_m: float, wavelength_m: float) -> float:
    """Fog/haze specific attenuation, Kruse model (1962)."""
    _positive(visibility_m, "visibility_m")
    return _visibility_model_db_per_km(visibility_m, wavelength_m, kruse_q(visibility_m / 1e3))


def al_naboulsi_advection_db_per_km(visibility_m: float, wavelength_m: float) -> float:
    """Advection fog: ``beta = (0.11478*lambda_um + 3.8367)/V_km`` km^-1, x4.343 to dB/km
    (Al Naboulsi, de Fornel et al., Opt. Eng. 43(2), 2004; valid 690-1550 nm, 50 m < V < 1 km)."""
    _positive(visibility_m, "visibility_m")
    lam_um = wavelength_m * 1e6
    return DB_PER_NEPER_POWER * (0.11478 * lam_um + 3.8367) / (visibility_m / 1e3)


def al_naboulsi_convection_db_per_km(visibility_m: float, wavelength_m: float) -> float:
    """Convection fog: ``beta = (0.18126*lambda_um^2 + 0.13709*lambda_um + 3.7502)/V_km`` km^-1, x4.343 to dB/km
    (Al Naboulsi et al., Opt. Eng. 43(2), 2004; valid 690-1550 nm, 50 m < V < 1 km)."""
    _positive(visibility_m, "visibility_m")
    lam_um = wavelength_m * 1e6
    return DB_PER_NEPER_POWER * (0.18126 * lam_um**2 + 0.13709 * lam_um + 3.7502) / (visibility_m / 1e3)


_FOG = {"kim": kim_db_per_km, "kruse": kruse_db_per_km,
        "al_naboulsi_advection": al_naboulsi_advection_db_per_km,
        "al_naboulsi_convection": al_naboulsi_convection_db_per_km}


def fog_attenuation_db_per_km(visibility_m: float, wavelength_m: float, model: str = "kim") -> float:
    """Fog/haze specific attenuation by one of :data:`FOG_MODELS`."""
    if model not in _FOG:
        raise unknown("fog_model", model, FOG_MODELS, "fog model")
    return _FOG[model](visibility_m, wavelength_m)


# --------------------------------------------------------------------------------------------------- rain, snow
# ITU-R P.1814-1 (09/2025), as implemented in ITU-Rpy (akotilis/ITU-Rpy itur/models/itu1814.py): gamma = k R^alpha
# by drop-size-distribution shape mu, and the multiple-scattering gain G_ms = a L^b with a, b quadratic in ln R.
ITU_P1814_RAIN_K_ALPHA = {-2: (2.2838, 0.4050), -1: (1.5921, 0.5506), 0: (1.2924, 0.6436),
                          1: (1.1394, 0.7057), 2: (1.0505, 0.7497)}
ITU_P1814_RAIN_GMS = {  # mu: (p0, p1, p2, k0, k1, k2): a = p0 + p1 lnR + p2 ln²R, b = k0 + k1 lnR + k2 ln²R
    -2: (0.010012, 0.025381, -0.001606, 0.250329, -0.035278, 0.008349),
    -1: (0.014551, 0.010932, 0.001532, 0.279336, 0.023974, 0.004421),
    0: (0.015940, -0.001476, 0.008297, 0.117663, 0.029602, 0.002142),
    1: (0.023468, 0.002897, 0.008912, 0.090689, 0.034955, 0.004583),
    2: (-0.000316, 0.062233, -0.007835, 0.192092, -0.081869, 0.033669),
}


def carbonneau_rain_db_per_km(rain_mm_per_h: float) -> float:
    """``gamma = 1.076 R^0.67`` dB/km, wavelength-independent (Carbonneau & Wisely, Proc. SPIE 3232, 1998)."""
    _non_negative(rain_mm_per_h, "rain_mm_per_h")
    return 1.076 * rain_mm_per_h**0.67


def itu_p1814_rain_db_per_km(rain_mm_per_h: float, dsd_mu: int = 0) -> float:
    """``gamma = k R^alpha`` dB/km with (k, alpha) by DSD shape mu in -2..2 (ITU-R P.1814-1, via ITU-Rpy)."""
    _non_negative(rain_mm_per_h, "rain_mm_per_h")
    if dsd_mu not in ITU_P1814_RAIN_K_ALPHA:
        raise unknown("dsd_mu", dsd_mu, ITU_P1814_RAIN_K_ALPHA, "drop-size-distribution shape")
    k, alpha = ITU_P1814_RAIN_K_ALPHA[dsd_mu]
    return k * rain_mm_per_h**alpha


def itu_p1814_rain_path_reduction(rain_mm_per_h: float, distance_m: float) -> float:
    """Path reduction ``F = 1/(1 + L_km (R - 6.2)/2623)`` (ITU-R P.1814-1, via ITU-Rpy)."""
    return 1.0 / (1.0 + (distance_m / 1e3) * (rain_mm_per_h - 6.2) / 2623.0)


def itu_p1814_multiple_scattering_gain_db(rain_mm_per_h: float, distance_m: float, dsd_mu: int = 0) -> float:
    """Forward multiple-scattering gain ``G_ms = a L_km^b`` dB (ITU-R P.1814-1 coefficients, via ITU-Rpy)."""
    if rain_mm_per_h <= 0 or distance_m <= 0:
        return 0.0
    p0, p1, p2, k0, k1, k2 = ITU_P1814_RAIN_GMS[dsd_mu]
    ln_r = math.log(rain_mm_per_h)
    a = p0 + p1 * ln_r + p2 * ln_r**2
    b = k0 + k1 * ln_r + k2 * ln_r**2
    if b * math.log(distance_m / 1e3) > 700:  # b grows as ln²R: a drizzle of 1e-200 mm/h over 200 km overflowed
        raise GpusimError("rain_mm_per_h", f"{rain_mm_per_h:g} mm/h over {distance_m:g} m is outside ITU-R P.1814's "
                                           f"multiple-scattering fit (L^{b:.3g}); use the carbonneau rain model")
    return a * (distance_m / 1e3) ** b


def rain_attenuation_db_per_km(rain_mm_per_h: float, model: str = "carbonneau", dsd_mu: int = 0) -> float:
    """Rain specific attenuation by one of :data:`RAIN_MODELS`."""
    if model == "carbonneau":
        return carbonneau_rain_db_per_km(rain_mm_per_h)
    if model == "itu_p1814":
        return itu_p1814_rain_db_per_km(rain_mm_per_h, dsd_mu)
    raise unknown("rain_model", model, RAIN_MODELS, "rain model")


def rain_path_loss_db(rain_mm_per_h: float, distance_m: float, model: str = "carbonneau", dsd_mu: int = 0) -> float:
    """Rain loss over the path: Carbonneau ``gamma L``; ITU-R P.1814-1 ``max(0, gamma L F - G_ms)``."""
    gamma = rain_attenuation_db_per_km(rain_mm_per_h, model, dsd_mu)
    if model == "carbonneau":
        return gamma * distance_m / 1e3
    a = gamma * (distance_m / 1e3) * itu_p1814_rain_path_reduction(rain_mm_per_h, distance_m)
    return max(0.0, a - itu_p1814_multiple_scattering_gain_db(rain_mm_per_h, distance_m, dsd_mu))


def snow_attenuation_db_per_km(snow_mm_per_h: float, wavelength_m: float, kind: str = "wet") -> float:
    """``gamma = a S^b`` dB/km, lambda in nm: wet ``a = 1.023e-4 lambda + 3.7855466, b = 0.72``; dry
    ``a = 5.42e-5 lambda + 5.4958776, b = 1.38`` (ITU-R P.1817-1 Table 2, per physics.md §4.4; whether S is the
    liquid-equivalent rate is unverified)."""
    _non_negative(snow_mm_per_h, "snow_mm_per_h")
    lam_nm = wavelength_m * 1e9
    if kind == "wet":
        a, b = 1.023e-4 * lam_nm + 3.7855466, 0.72
    elif kind == "dry":
        a, b = 5.42e-5 * lam_nm + 5.4958776, 1.38
    else:
        raise unknown("snow_kind", kind, SNOW_KINDS, "snow kind")
    return a * snow_mm_per_h**b


def attenuation_by_model_db_per_km(weather: Weather, wavelength_m: float, dsd_mu: int = 0) -> dict[str, float]:
    """Specific attenuation (dB/km) by every fog model valid at ``wavelength_m`` (Al Naboulsi's: 690-1550 nm), plus
    rain (both models) and snow when present."""
    lo, hi = AL_NABOULSI_WAVELENGTH_RANGE_M
    out = {name: fn(weather.visibility_m, wavelength_m) for name, fn in _FOG.items()
           if not name.startswith("al_naboulsi") or lo * (1 - 1e-9) <= wavelength_m <= hi * (1 + 1e-9)}
    if weather.rain_mm_per_h > 0:
        out["rain_carbonneau"] = carbonneau_rain_db_per_km(weather.rain_mm_per_h)
        out["rain_itu_p1814"] = itu_p1814_rain_db_per_km(weather.rain_mm_per_h, dsd_mu)
    if weather.snow_mm_per_h > 0:
        out["snow"] = snow_attenuation_db_per_km(weather.snow_mm_per_h, wavelength_m, weather.snow_kind)
    return out


# --------------------------------------------------------------------------------------------------- geometry
def geometric_loss_db(distance_m: float, divergence_rad: float, rx_aperture_m: float,
                      tx_aperture_m: float = 0.0, form: str = "divergent") -> float:
    """Beam-spreading loss, 0 when the receiver catches the whole spot.

    ``divergent``: ``20 log10((D_T + theta L)/D_R)`` (Ghassemlooy, Popoola & Rajbhandari, Optical Wireless
    Communications, 2012, geometric loss of a diverging beam). ``itu_p1814``: ``10 log10(S_d/S_capture)`` with
    ``S_d = (pi/4)(theta L)^2`` and ``S_capture = (pi/4) D_R^2`` (ITU-R P.1814, via ITU-Rpy); it ignores D_T.
    """
    _non_negative(distance_m, "distance_m")
    if form == "divergent":
        spot_m = tx_aperture_m + divergence_rad * distance_m
        return max(0.0, 20.0 * math.log10(spot_m / rx_aperture_m)) if spot_m > 0 else 0.0
    if form == "itu_p1814":
        s_d = math.pi / 4 * (divergence_rad * distance_m) ** 2
        s_capture = math.pi / 4 * rx_aperture_m**2
        return 10.0 * math.log10(s_d / s_capture) if s_d > s_capture else 0.0
    raise unknown("form", form, GEOMETRIC_FORMS, "geometric-loss form")


def propagation_delay_s(distance_m: float) -> float:
    """One-way delay through air at c (the index of air, ~1.0003, changes it by 0.03 %)."""
    return distance_m / SPEED_OF_LIGHT_M_PER_S


# --------------------------------------------------------------------------------------------------- turbulence
def rytov_variance(wavelength_m: float, distance_m: float, cn2_m_minus_2_3: float, wave: str = "plane") -> float:
    """``sigma_R^2 = 1.23 Cn² k^(7/6) L^(11/6)`` (plane wave; 0.5 for a spherical wave), ``k = 2 pi/lambda``
    (Andrews & Phillips, Laser Beam Propagation through Random Media, 2nd ed., 2005)."""
    coeff = {"plane": 1.23, "spherical": 0.5}.get(wave)
    if coeff is None:
        raise unknown("wave", wave, ("plane", "spherical"), "wave model")
    k = 2.0 * math.pi / wavelength_m
    return coeff * cn2_m_minus_2_3 * k ** (7.0 / 6.0) * distance_m ** (11.0 / 6.0)


def gamma_gamma_parameters(rytov_var: float) -> tuple[float, float]:
    """Large- and small-scale parameters (alpha, beta) of gamma-gamma irradiance, plane wave, zero inner scale:
    ``alpha = 1/(exp(0.49 s2/(1+1.11 s^(12/5))^(7/6)) - 1)``, ``beta = 1/(exp(0.51 s2/(1+0.69 s^(12/5))^(5/6)) - 1)``
    (Al-Habash, Andrews & Phillips, Opt. Eng. 40(8), 2001). Infinite when ``rytov_var`` is 0."""
    if rytov_var <= 0:
        return math.inf, math.inf
    s12_5 = rytov_var ** (6.0 / 5.0)
    ea = 0.49 * rytov_var / (1.0 + 1.11 * s12_5) ** (7.0 / 6.0)
    eb = 0.51 * rytov_var / (1.0 + 0.69 * s12_5) ** (5.0 / 6.0)
    return 1.0 / math.expm1(ea), 1.0 / math.expm1(eb)


def scintillation_index(rytov_var: float) -> float:
    """``sigma_I^2 = 1/alpha + 1/beta + 1/(alpha beta)``; ~ sigma_R^2 when weak, saturating towards 1 when strong
    (Andrews & Phillips 2005)."""
    a, b = gamma_gamma_parameters(rytov_var)
    if math.isinf(a):
        return 0.0
    return 1.0 / a + 1.0 / b + 1.0 / (a * b)


def scintillation_margin_db(wavelength_m: float, distance_m: float, cn2_m_minus_2_3: float, n_sigma: float = 2.0,
                            model: str = "andrews_phillips") -> float:
    """Fade margin ``n_sigma * 4.343 * sigma_lnI``.

    ``rytov_weak``: ``sigma_lnI^2 = sigma_R^2`` (weak-fluctuation theory), i.e. ``sigma_dB^2 = 23.17 k^(7/6) Cn²
    L^(11/6)`` with ``A_scint = 2 sigma_dB``, the ITU-R P.1814 form as quoted in physics.md §4.6 (unverified against
    the Recommendation's text); it grows without bound in strong turbulence. ``andrews_phillips`` (default):
    ``sigma_lnI^2 = ln(1 + sigma_I^2)`` with the all-regime scintillation index of :func:`scintillation_index`.
    """
    s2 = rytov_variance(wavelength_m, distance_m, cn2_m_minus_2_3)
    if model == "rytov_weak":
        sigma_ln = math.sqrt(s2)
    elif model == "andrews_phillips":
        sigma_ln = math.sqrt(math.log1p(scintillation_index(s2)))
    else:
        raise unknown("scintillation_model", model, SCINTILLATION_MODELS, "scintillation model")
    return n_sigma * DB_PER_NEPER_POWER * sigma_ln


def pointing_loss_db(distance_m: float, divergence_rad: float, rx_aperture_m: float, jitter_rad: float,
                     tx_aperture_m: float = 0.0, outage_probability: float | None = None) -> float:
    """Pointing-jitter loss relative to a perfectly aimed beam (Farid & Hranilovic, J. Lightwave Technol. 25(7), 2007).

    Gaussian beam of radius ``w_z = (D_T + theta L)/2`` on a circular aperture of radius ``a = D_R/2``; radial
    displacement Rayleigh with ``sigma_s = jitter_rad * L``. With ``v = sqrt(pi) a/(sqrt(2) w_z)``,
    ``w_zeq^2 = w_z^2 sqrt(pi) erf(v)/(2 v exp(-v^2))`` and ``xi = w_zeq/(2 sigma_s)``, the collected fraction
    ``h_p/A0`` has CDF ``(h/A0)^(xi^2)``. Returned: the mean loss ``-10 log10(xi^2/(1+xi^2))``, or, with
    ``outage_probability`` p, the margin ``-10 log10(p^(1/xi^2))`` exceeded with probability p.
    """
    if jitter_rad <= 0 or distance_m <= 0:
        return 0.0
    w_z = (tx_aperture_m + divergence_rad * distance_m) / 2.0
    a = rx_aperture_m / 2.0
    v = math.sqrt(math.pi) * a / (math.sqrt(2.0) * w_z)
    # ln(xi^2), kept in logs because exp(v^2) overflows for a beam much narrower than the aperture
    ln_xi2 = (2 * math.log(w_z) + 0.5 * math.log(math.pi) + math.log(math.erf(v)) + v**2 - math.log(2 * v)
              - 2 * math.log(2.0 * jitter_rad * distance_m))
    if outage_probability is None:
        return DB_PER_NEPER_POWER * math.log1p(math.exp(-ln_xi2)) if ln_xi2 > -700 else math.inf
    if not 0.0 < outage_probability < 1.0:
        raise GpusimError("outage_probability", f"expected a probability in (0, 1), got {outage_probability!r}")
    return -10.0 * math.log10(outage_probability) * math.exp(-ln_xi2) if ln_xi2 > -700 else math.inf


# --------------------------------------------------------------------------------------------------- errors
def q_from_ber(ber: float) -> float:
    """Q-factor for an OOK BER: ``BER = Q(x) = 0.5 erfc(x/sqrt(2))`` inverted (physics.md §4.7)."""
    return math.sqrt(2.0) * float(special.erfcinv(2.0 * ber))


def ber_from_q(q_factor):
    """``BER = 0.5 erfc(Q/sqrt(2))``: OOK, Gaussian noise, threshold midway (Ghassemlooy et al. 2012; physics.md
    §4.7)."""
    return 0.5 * special.erfc(np.asarray(q_factor) / math.sqrt(2.0))


def _q_factor(power_ratio, reference_q: float, noise_model: str):
    """Q scales as P (thermal noise, sigma independent of signal) or sqrt(P) (shot noise, sigma^2 ∝ P)."""
    return reference_q * (power_ratio if noise_model == "thermal" else np.sqrt(power_ratio))


def ber_ook(received_power_dbm: float, sensitivity_dbm: float, sensitivity_ber: float = 1e-12,
            noise_model: str = "thermal") -> float:
    """BER at a fixed received power, the sensitivity giving ``sensitivity_ber`` (no fading)."""
    ratio = 10.0 ** ((received_power_dbm - sensitivity_dbm) / 10.0)
    return float(ber_from_q(_q_factor(ratio, q_from_ber(sensitivity_ber), noise_model)))


def packet_error_rate(ber, frame_size_bytes: int):
    """``PER = 1 - (1 - BER)^(8 n)`` for independent bit errors (physics.md §4.7)."""
    ber = np.asarray(ber, dtype=float)
    per = -np.expm1(8.0 * frame_size_bytes * np.log1p(-np.minimum(ber, 0.5)))
    return float(per) if per.ndim == 0 else per


def sensitivity_at_rate_dbm(sensitivity_dbm: float, reference_rate_Bps: float, rate_Bps: float,
                            noise_model: str = "thermal") -> float:
    """Sensitivity scaled to another line rate with receiver bandwidth ∝ rate: thermal noise ``sigma ∝ sqrt(B)``
    -> ``+5 log10`` per rate ratio; shot noise ``sigma^2 ∝ P B`` -> ``+10 log10`` (physics.md §4.7 noise terms)."""
    k = 5.0 if noise_model == "thermal" else 10.0
    return sensitivity_dbm + k * math.log10(rate_Bps / reference_rate_Bps)


@functools.lru_cache(maxsize=256)
def _ln_irradiance_pdf(rytov_var: float) -> tuple[float, float, np.ndarray]:
    """Density of ln I for gamma-gamma I = X Y (X ~ Gamma(alpha, 1/alpha), Y ~ Gamma(beta, 1/beta)), on a uniform
    grid: (first point, step, density). The product law is the gamma-gamma model (Al-Habash et al. 2001)."""
    factors = []
    for shape in gamma_gamma_parameters(rytov_var):
        sd = math.sqrt(float(special.polygamma(1, shape)))  # sd of ln X for X ~ Gamma(shape)
        factors.append((shape, sd))
    wide = [(s, sd) for s, sd in factors if sd >= 2e-3]  # narrower factors act as a constant 1
    if not wide:
        return 0.0, 1.0, np.ones(1)
    h = min(0.01, min(sd for _, sd in wide) / 20.0)
    start, density = 0.0, np.ones(1) / h
    for shape, _ in wide:
        dist = stats.gamma(shape, scale=1.0 / shape)
        lo, hi = math.log(dist.ppf(1e-16)), math.log(dist.isf(1e-16))
        u = lo + h * np.arange(int(math.ceil((hi - lo) / h)) + 1)
        p = np.exp(dist.logpdf(np.exp(u)) + u)
        density = np.convolve(density, p) * h
        start += lo
    density = density / (density.sum() * h)
    density.setflags(write=False)
    return start, h, density


def faded_error_rates(received_power_dbm: float, sensitivity_dbm: float, rytov_var: float, frame_size_bytes: int,
                      sensitivity_ber: float = 1e-12, noise_model: str = "thermal") -> tuple[float, float]:
    """(BER, PER) averaged over gamma-gamma scintillation of mean 1: ``E[Q(Q_f(I P))]`` and
    ``E[1 - (1 - BER(I P))^(8 n)]`` (physics.md §4.7, faded channel). Frames are assumed shorter than a fade."""
    start, h, density = _ln_irradiance_pdf(float(rytov_var))
    ln_i = start + h * np.arange(density.size)
    ratio = 10.0 ** ((received_power_dbm - sensitivity_dbm) / 10.0) * np.exp(ln_i)
    ber = ber_from_q(_q_factor(ratio, q_from_ber(sensitivity_ber), noise_model))
    per = packet_error_rate(ber, frame_size_bytes)
    w = density * h
    return float(min(0.5, np.dot(w, ber))), float(min(1.0, np.dot(w, per)))


# --------------------------------------------------------------------------------------------------- the budget
@dataclass(frozen=True)
class LinkBudget:
    """Every line of one FSO link budget (dB, dBm, dB/km; SI otherwise)."""

    distance_m: float
    wavelength_m: float
    line_rate_Bps: float
    tx_power_dbm: float
    geometric_loss_db: float
    fog_model: str
    fog_db_per_km: float
    fog_loss_db: float
    rain_model: str
    rain_db_per_km: float
    rain_loss_db: float
    snow_db_per_km: float
    snow_loss_db: float
    atmospheric_loss_db: float
    pointing_loss_db: float
    system_loss_db: float
    received_power_dbm: float  # mean, before the scintillation margin
    rytov_variance: float
    scintillation_index: float
    scintillation_margin_db: float
    sensitivity_dbm: float  # at line_rate_Bps
    margin_db: float
    ber_at_mean_power: float
    ber: float  # averaged over scintillation
    frame_size_bytes: int
    packet_error_rate: float  # averaged over scintillation
    outage: bool
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def link_budget(optics: Optics, distance_m: float, weather: Weather, fog_model: str = "kim",
                rain_model: str = "carbonneau", dsd_mu: int = 0,
                scintillation_model: str = "andrews_phillips") -> LinkBudget:
    """The link budget of ``optics`` over ``distance_m`` in ``weather`` (see the module docstring).

    With ``optics.adaptive_rates_Bps`` the fastest rate whose margin is non-negative is chosen (sensitivity scaled by
    :func:`sensitivity_at_rate_dbm` from ``line_rate_Bps``); if none closes, the slowest, in outage.
    """
    check_distance(distance_m, "distance")
    lam = optics.wavelength_m
    _check_wavelength(lam, WAVELENGTH_RANGE_M, "optics.wavelength_m", "the fog models (ITU-R P.1814)")
    if fog_model not in _FOG:
        raise unknown("fog_model", fog_model, FOG_MODELS, "fog model")
    if rain_model not in RAIN_MODELS:
        raise unknown("rain_model", rain_model, RAIN_MODELS, "rain model")
    if scintillation_model not in SCINTILLATION_MODELS:
        raise unknown("scintillation_model", scintillation_model, SCINTILLATION_MODELS, "scintillation model")
    notes = []
    if fog_model.startswith("al_naboulsi"):
        _check_wavelength(lam, AL_NABOULSI_WAVELENGTH_RANGE_M, "optics.wavelength_m", "the Al Naboulsi fog models")
        lo, hi = AL_NABOULSI_VISIBILITY_RANGE_M
        if not lo <= weather.visibility_m <= hi:
            notes.append(f"{fog_model}: visibility {weather.visibility_m:g} m is outside its 50-1000 m fit; "
                         f"extrapolated")

    L_km = distance_m / 1e3
    geo = geometric_loss_db(distance_m, optics.divergence_rad, optics.rx_aperture_m, optics.tx_aperture_m)
    fog_g = _FOG[fog_model](weather.visibility_m, lam)
    rain_g = rain_attenuation_db_per_km(weather.rain_mm_per_h, rain_model, dsd_mu)
    rain_db = rain_path_loss_db(weather.rain_mm_per_h, distance_m, rain_model, dsd_mu)
    snow_g = snow_attenuation_db_per_km(weather.snow_mm_per_h, lam, weather.snow_kind)
    atmo = fog_g * L_km + rain_db + snow_g * L_km
    point = pointing_loss_db(distance_m, optics.divergence_rad, optics.rx_aperture_m, optics.pointing_jitter_rad,
                             optics.tx_aperture_m)
    p_rx = optics.tx_power_dbm - geo - atmo - point - optics.system_loss_db
    s2 = rytov_variance(lam, distance_m, weather.cn2_m_minus_2_3)
    scint = scintillation_margin_db(lam, distance_m, weather.cn2_m_minus_2_3, model=scintillation_model)

    rate = optics.line_rate_Bps
    sens = optics.sensitivity_dbm
    if optics.adaptive_rates_Bps:
        for r in sorted(optics.adaptive_rates_Bps, reverse=True):
            rate = r
            sens = sensitivity_at_rate_dbm(optics.sensitivity_dbm, optics.line_rate_Bps, r, optics.noise_model)
            if p_rx - scint - sens >= 0:
                break
    margin = p_rx - scint - sens
    ber0 = ber_ook(p_rx, sens, optics.sensitivity_ber, optics.noise_model)
    ber, per = faded_error_rates(p_rx, sens, s2, optics.frame_size_bytes, optics.sensitivity_ber, optics.noise_model)
    lines = {"geometric_loss_db": geo, "atmospheric_loss_db": atmo, "pointing_loss_db": point,
             "rytov_variance": s2, "scintillation_margin_db": scint, "margin_db": margin, "ber": ber,
             "packet_error_rate": per}
    for name, x in lines.items():  # the bounds above keep these finite; a NaN margin must never read as "no outage"
        if not math.isfinite(x):
            raise GpusimError("", f"the FSO link budget's {name} is {x} over {distance_m:g} m in {weather}; an input "
                                  f"is outside what its models hold")
    return LinkBudget(
        distance_m=float(distance_m), wavelength_m=lam, line_rate_Bps=rate, tx_power_dbm=optics.tx_power_dbm,
        geometric_loss_db=geo, fog_model=fog_model, fog_db_per_km=fog_g, fog_loss_db=fog_g * L_km,
        rain_model=rain_model, rain_db_per_km=rain_g, rain_loss_db=rain_db, snow_db_per_km=snow_g,
        snow_loss_db=snow_g * L_km, atmospheric_loss_db=atmo, pointing_loss_db=point,
        system_loss_db=optics.system_loss_db, received_power_dbm=p_rx, rytov_variance=s2,
        scintillation_index=scintillation_index(s2), scintillation_margin_db=scint, sensitivity_dbm=sens,
        margin_db=margin, ber_at_mean_power=ber0, ber=ber, frame_size_bytes=optics.frame_size_bytes,
        packet_error_rate=per, outage=bool(margin < 0), notes=tuple(notes))


# --------------------------------------------------------------------------------------------------- parsing
# gpusim.units has no angle or dB kinds yet; these two small readers follow its rules (unit required, one error type).
_NUM_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")
_ANGLE = {"rad": 1.0, "mrad": 1e-3, "urad": 1e-6, "µrad": 1e-6, "μrad": 1e-6, "deg": math.pi / 180.0}


def parse_angle_rad(value, path: str) -> float:
    """Radians from ``"0.5 mrad"``, ``"50 urad"``, ``"0.03 deg"``; the unit is required."""
    number, unit = _number_unit(value, path, "an angle such as '0.5 mrad'")
    if unit not in _ANGLE:
        raise GpusimError(path, f"unknown angle unit {unit!r} in {value!r}; accepted: {', '.join(_ANGLE)}")
    result = number * _ANGLE[unit]
    if result <= 0:
        raise GpusimError(path, f"expected a positive angle, got {value!r}")
    return result


def parse_db(value, path: str, unit: str = "dB") -> float:
    """A level in ``dB`` or ``dBm`` (``"-24 dBm"``, ``"3 dB"``); the unit is required (17 could be mW)."""
    number, got = _number_unit(value, path, f"a level such as '3 {unit}'")
    if got != unit:
        raise GpusimError(path, f"expected a level in {unit} such as '3 {unit}', got {value!r}")
    if not math.isfinite(number):
        raise GpusimError(path, f"expected a finite level, got {value!r}")
    return number


def parse_cn2(value, path: str) -> float:
    """Cn² in m^(-2/3) from ``1e-14`` or ``"1e-14 m^-2/3"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        number, unit = _number_unit(value, path, "a Cn² such as 1e-14 (m^-2/3)", unit_optional=True)
        if unit not in (None, "m^-2/3", "m^(-2/3)", "m-2/3"):
            raise GpusimError(path, f"expected Cn² in m^-2/3 such as 1e-14, got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise GpusimError(path, f"expected a non-negative Cn² in m^-2/3 such as 1e-14, got {value!r}")
    return number


def _number_unit(value, path: str, example: str, unit_optional: bool = False) -> tuple[float, str | None]:
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, (int, float)) and unit_optional:
            return float(value), None
        raise GpusimError(path, f"expected {example}, got {value!r}")
    m = _NUM_UNIT.match(value)
    if not m or (m.group(2) is None and not unit_optional):
        raise GpusimError(path, f"cannot read {value!r}; write it as {example}")
    return float(m.group(1)), m.group(2)


OPTICS_FIELDS = ("tx_power", "wavelength", "divergence", "tx_aperture", "rx_aperture", "sensitivity",
                "sensitivity_ber", "noise_model", "system_loss", "pointing_jitter", "line_rate", "frame_size",
                "adaptive_rates")
WEATHER_FIELDS = ("visibility", "rain", "snow", "snow_kind", "cn2")


def optics_from_dict(d: dict, path: str = "optics", base: Optics | None = None) -> Optics:
    """Optics from user fields with units (``{"tx_power": "17 dBm", "divergence": "0.5 mrad", ...}``); fields not
    given keep ``base`` (default :class:`Optics`)."""
    _known_keys(d, OPTICS_FIELDS, path)
    kw = {}
    conv = {"tx_power": ("tx_power_dbm", lambda v, p: parse_db(v, p, "dBm")),
            "wavelength": ("wavelength_m", _wavelength),
            "divergence": ("divergence_rad", parse_angle_rad),
            "tx_aperture": ("tx_aperture_m", lambda v, p: units.length(v, p)),
            "rx_aperture": ("rx_aperture_m", lambda v, p: units.length(v, p, allow_zero=False)),
            "sensitivity": ("sensitivity_dbm", lambda v, p: parse_db(v, p, "dBm")),
            "sensitivity_ber": ("sensitivity_ber", _probability),
            "noise_model": ("noise_model", _string),
            "system_loss": ("system_loss_db", lambda v, p: parse_db(v, p, "dB")),
            "pointing_jitter": ("pointing_jitter_rad", _angle_or_zero),
            "line_rate": ("line_rate_Bps", lambda v, p: units.bandwidth(v, p, allow_zero=False)),
            "frame_size": ("frame_size_bytes", lambda v, p: _whole(units.size(v, p, default_unit="B"), p)),
            "adaptive_rates": ("adaptive_rates_Bps", _rates)}
    for key, value in d.items():
        name, fn = conv[key]
        kw[name] = fn(value, f"{path}.{key}")
    return _rebuild(base or Optics(), kw, path)


def weather_from_dict(d: dict, path: str = "weather", base: Weather | None = None) -> Weather:
    """Weather from user fields with units (``{"visibility": "500 m", "rain": "10 mm/h", "snow_kind": "dry",
    "cn2": 1e-14}``); fields not given keep ``base`` (default :class:`Weather`)."""
    _known_keys(d, WEATHER_FIELDS, path)
    kw = {}
    for key, value in d.items():
        p = f"{path}.{key}"
        if key == "visibility":
            kw["visibility_m"] = units.length(value, p, allow_zero=False)
        elif key == "rain":
            kw["rain_mm_per_h"] = units.rate_mm_per_h(value, p)
        elif key == "snow":
            kw["snow_mm_per_h"] = units.rate_mm_per_h(value, p)
        elif key == "snow_kind":
            if value not in SNOW_KINDS:
                raise unknown(p, value, SNOW_KINDS, "snow kind")
            kw["snow_kind"] = value
        else:
            kw["cn2_m_minus_2_3"] = parse_cn2(value, p)
    return _rebuild(base or Weather(), kw, path)


def _rebuild(base, kw: dict, path: str):
    try:
        return replace(base, **kw)
    except GpusimError as exc:  # re-anchor "optics.x_unit" onto the user's path
        field_name = exc.path.split(".", 1)[-1]
        keys = [k for k in OPTICS_FIELDS + WEATHER_FIELDS if field_name.startswith(k)]
        user_key = max(keys, key=len) if keys else field_name
        raise GpusimError(f"{path}.{user_key}", exc.message) from None


def _known_keys(d, accepted, path):
    if not isinstance(d, dict):
        raise GpusimError(path, f"expected a mapping with fields {', '.join(accepted)}, got {type(d).__name__}")
    for key in d:
        if key not in accepted:
            raise unknown(f"{path}.{key}", key, accepted, "field")


def _probability(v, p):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise GpusimError(p, f"expected a probability such as 1e-12, got {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise GpusimError(p, f"expected a probability such as 1e-12, got {v!r}") from None
    if not 0 < x < 0.5:
        raise GpusimError(p, f"expected a BER between 0 and 0.5 such as 1e-12, got {v!r}")
    return x


def _string(v, p):
    if not isinstance(v, str):
        raise GpusimError(p, f"expected a name, got {v!r}")
    return v


def _angle_or_zero(v, p):
    """An angle that may be zero (no jitter): ``0``, or ``0 urad`` as well as a positive one."""
    if v in (0, "0"):
        return 0.0
    number, unit = _number_unit(v, p, "an angle such as '2 urad'")
    return 0.0 if number == 0 and unit in _ANGLE else parse_angle_rad(v, p)


def _whole(x: float, p: str) -> int:
    if x <= 0 or x != int(x):
        raise GpusimError(p, f"expected a positive whole number of bytes, got {x!r}")
    return int(x)


def _wavelength(v, p):
    lam = units.length(v, p, allow_zero=False)
    _check_wavelength(lam, WAVELENGTH_RANGE_M, p, "the fog models (ITU-R P.1814)")
    return lam


def _rates(v, p):
    if not isinstance(v, (list, tuple)):
        raise GpusimError(p, f"expected a list of rates such as ['10 Gb/s', '1 Gb/s'], got {v!r}")
    return tuple(units.bandwidth(r, f"{p}[{i}]", allow_zero=False) for i, r in enumerate(v))


# --------------------------------------------------------------------------------------------------- checks
def _check_wavelength(lam: float, rng: tuple[float, float], path: str, what: str) -> None:
    lo, hi = rng
    if not lo * (1 - _REL_TOL) <= lam <= hi * (1 + _REL_TOL):
        raise GpusimError(path, f"{lam * 1e9:g} nm is outside {lo * 1e9:g}-{hi * 1e9:g} nm, where {what} hold")


def check_distance(distance_m, path: str) -> None:
    """A link length within :data:`DISTANCE_RANGE_M`."""
    lo, hi = DISTANCE_RANGE_M
    if isinstance(distance_m, bool) or not isinstance(distance_m, numbers.Real) or not lo <= distance_m <= hi:
        raise GpusimError(path, f"expected a link length from {lo:g} m to {hi / 1e3:g} km, got {distance_m!r} m")


def _within(x, path: str, name: str | None = None) -> None:
    """``x`` within :data:`BOUNDS` of the field ``name`` (the last part of ``path`` unless given)."""
    lo, hi, unit, what = BOUNDS[name or path.rsplit(".", 1)[-1]]
    _finite(x, path)
    if not lo <= x <= hi:
        raise GpusimError(path, f"expected {what}, got {x:g} {unit}")


def _finite(x, path: str) -> None:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise GpusimError(path, f"expected a finite number, got {x!r}")


def _positive(x, path: str, why: str = "") -> None:
    _finite(x, path)
    if x <= 0:
        raise GpusimError(path, f"expected a positive value, got {x!r}" + (f" ({why})" if why else ""))


def _non_negative(x, path: str) -> None:
    _finite(x, path)
    if x < 0:
        raise GpusimError(path, f"expected a non-negative value, got {x!r}")
