"""``gpusim fso``: one free-space optical link budget, line by line, with the goodput each transport would get.

Example: ``gpusim fso --distance 1km --visibility 500m --rain 10mm/h --format json``. Model and sources: docs/fso.md.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from gpusim import units
from gpusim.errors import GpusimError
from gpusim.links import fso, goodput, weather as weather_mod

MAX_RTT_S = 1.0           # a geostationary satellite's round trip is ~0.5 s
MAX_MTU_BYTES = 65_535    # the largest IPv4 packet (RFC 791 total length field)


def add_parser(subparsers) -> argparse.ArgumentParser:
    d = fso.Optics()
    p = subparsers.add_parser(
        "fso", help="free-space optical link budget under weather",
        description="FSO link budget: geometric, atmospheric (fog/rain/snow), scintillation and pointing losses, "
                    "margin, BER, packet error rate and goodput per transport. Units are required: 1km, 500m, "
                    "10mm/h, 17dBm, 0.5mrad, 10Gb/s.")
    p.add_argument("--distance", required=True, help="link length, e.g. 1km")
    p.add_argument("--visibility", required=True, help="visibility (2%% contrast at 550 nm), e.g. 500m")
    p.add_argument("--wavelength", default=None, help=f"default {d.wavelength_m * 1e9:g}nm")
    p.add_argument("--rain", default=None, help="rain rate, e.g. 10mm/h (default none)")
    p.add_argument("--snow", default=None, help="snow rate, e.g. 5mm/h (default none)")
    p.add_argument("--snow-kind", choices=fso.SNOW_KINDS, default=None, help="default wet")
    p.add_argument("--cn2", default=None, help="turbulence Cn² in m^-2/3, default 1e-14")
    p.add_argument("--tx-power", default=None, help=f"default {d.tx_power_dbm:g}dBm")
    p.add_argument("--divergence", default=None,
                   help=f"full-angle beam divergence, default {d.divergence_rad * 1e3:g}mrad")
    p.add_argument("--tx-aperture", default=None, help=f"default {d.tx_aperture_m * 100:g}cm")
    p.add_argument("--rx-aperture", default=None, help=f"default {d.rx_aperture_m * 100:g}cm")
    p.add_argument("--sensitivity", default=None, help=f"receiver sensitivity at the line rate, default "
                                                       f"{d.sensitivity_dbm:g}dBm")
    p.add_argument("--sensitivity-ber", default=None, help=f"BER at the sensitivity, default {d.sensitivity_ber:g}")
    p.add_argument("--noise-model", choices=fso.NOISE_MODELS, default=None, help="default thermal")
    p.add_argument("--system-loss", default=None, help=f"default {d.system_loss_db:g}dB")
    p.add_argument("--pointing-jitter", default=None, help=f"rms jitter, default {d.pointing_jitter_rad * 1e6:g}urad")
    p.add_argument("--line-rate", default=None, help=f"default {d.line_rate_Bps * 8 / 1e9:g}Gb/s")
    p.add_argument("--frame-size", default=None, help=f"frame for the packet error rate, default {d.frame_size_bytes}B")
    p.add_argument("--fog-model", choices=fso.FOG_MODELS, default="kim", help="fog model in the budget (default kim)")
    p.add_argument("--rain-model", choices=fso.RAIN_MODELS, default="carbonneau", help="default carbonneau")
    p.add_argument("--dsd-mu", type=int, choices=sorted(fso.ITU_P1814_RAIN_K_ALPHA), default=0,
                   help="ITU-R P.1814 drop-size shape, default 0")
    p.add_argument("--scintillation-model", choices=fso.SCINTILLATION_MODELS, default="andrews_phillips")
    p.add_argument("--rtt", default=None, help="flow round-trip time for goodput, default the link's 2L/c")
    p.add_argument("--mtu", default=None, help="payload per packet for all transports (default RoCE/IB 4096B, "
                                               "TCP 1448B)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    return p


def run(args) -> int:
    distance_m = units.length(args.distance, "--distance", allow_zero=False)
    fso.check_distance(distance_m, "--distance")
    optics_fields = {k: v for k, v in {
        "wavelength": args.wavelength, "tx_power": args.tx_power, "divergence": args.divergence,
        "tx_aperture": args.tx_aperture, "rx_aperture": args.rx_aperture, "sensitivity": args.sensitivity,
        "sensitivity_ber": args.sensitivity_ber, "noise_model": args.noise_model, "system_loss": args.system_loss,
        "pointing_jitter": args.pointing_jitter, "line_rate": args.line_rate, "frame_size": args.frame_size,
    }.items() if v is not None}
    weather_fields = {k: v for k, v in {
        "visibility": args.visibility, "rain": args.rain, "snow": args.snow, "snow_kind": args.snow_kind,
        "cn2": args.cn2}.items() if v is not None}
    optics = _with_flags(fso.optics_from_dict, optics_fields)
    weather = _with_flags(fso.weather_from_dict, weather_fields)
    rtt_s = 2 * fso.propagation_delay_s(distance_m) if args.rtt is None else units.time(args.rtt, "--rtt")
    if rtt_s > MAX_RTT_S:
        raise GpusimError("--rtt", f"expected a round trip from 0 to {MAX_RTT_S:g} s, got {args.rtt!r}")
    mtu = None
    if args.mtu is not None:
        mtu = int(units.size(args.mtu, "--mtu", default_unit="B", allow_zero=False))
        if mtu > MAX_MTU_BYTES:
            raise GpusimError("--mtu", f"expected a payload of at most {MAX_MTU_BYTES:,} B (the largest IP packet), "
                                       f"got {args.mtu!r}")
    try:
        result = fso_report(optics, distance_m, weather, rtt_s, mtu, fog_model=args.fog_model,
                            rain_model=args.rain_model, dsd_mu=args.dsd_mu,
                            scintillation_model=args.scintillation_model)
    except GpusimError as exc:  # "optics.wavelength_m" -> "--wavelength"
        raise GpusimError(_flag_for(exc.path), exc.message) from None
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(_table(result))
    return 0


def fso_report(optics: fso.Optics, distance_m: float, weather: fso.Weather, rtt_s: float, mtu_bytes: int | None,
               **budget_kw) -> dict:
    """Everything ``gpusim fso`` prints, as JSON-ready data."""
    b = fso.link_budget(optics, distance_m, weather, **budget_kw)
    attenuation = fso.attenuation_by_model_db_per_km(weather, optics.wavelength_m, budget_kw.get("dsd_mu", 0))
    if weather.rain_mm_per_h > 0:
        attenuation["rain"] = b.rain_db_per_km
    goodputs, pers = {}, {}
    for t in goodput.TRANSPORTS:
        mtu = goodput.DEFAULT_MTU_BYTES[t] if mtu_bytes is None else mtu_bytes
        bt = fso.link_budget(replace(optics, frame_size_bytes=goodput.wire_frame_bytes(t, mtu)), distance_m, weather,
                             **budget_kw)
        pers[t] = bt.packet_error_rate
        goodputs[t] = weather_mod.effective_capacity_Bps(bt, t, rtt_s, mtu)
    budget = b.as_dict()
    return {
        "inputs": {"distance_m": distance_m, "optics": {k: (list(v) if isinstance(v, tuple) else v)
                                                        for k, v in optics.__dict__.items()},
                   "weather": dict(weather.__dict__), "rtt_s": rtt_s, "mtu_bytes": mtu_bytes,
                   "fog_model": b.fog_model, "rain_model": b.rain_model,
                   "scintillation_model": budget_kw.get("scintillation_model", "andrews_phillips")},
        "attenuation_db_per_km": attenuation,
        "geometric_loss_db": b.geometric_loss_db,
        "atmospheric_loss_db": b.atmospheric_loss_db,
        "received_power_dbm": b.received_power_dbm,
        "scintillation_margin_db": b.scintillation_margin_db,
        "margin_db": b.margin_db,
        "ber": b.ber,
        "packet_error_rate": b.packet_error_rate,
        "outage": b.outage,
        "goodput_Bps": goodputs,
        "packet_error_rate_by_transport": pers,
        "budget": budget,
    }


def _with_flags(fn, fields: dict):
    """Parse user fields; re-label errors from field names to the flags the user typed."""
    try:
        return fn(fields, "")
    except GpusimError as exc:
        key = exc.path.lstrip(".").split(".")[0].split("[")[0]
        raise GpusimError("--" + key.replace("_", "-") if key else "", exc.message) from None


def _flag_for(path: str) -> str:
    field_name = path.split(".", 1)[-1]
    keys = [k for k in fso.OPTICS_FIELDS + fso.WEATHER_FIELDS if field_name.startswith(k)]
    return "--" + max(keys, key=len).replace("_", "-") if keys else path


def _table(r: dict) -> str:
    b = r["budget"]
    inp = r["inputs"]
    w = inp["weather"]
    lines = [f"FSO link: {_km(inp['distance_m'])} at {b['wavelength_m'] * 1e9:g} nm, "
             f"{b['line_rate_Bps'] * 8 / 1e9:g} Gb/s; visibility {_km(w['visibility_m'])}, "
             f"rain {w['rain_mm_per_h']:g} mm/h, snow {w['snow_mm_per_h']:g} mm/h ({w['snow_kind']}), "
             f"Cn² {w['cn2_m_minus_2_3']:g} m^-2/3", "", "Budget"]
    rows = [("transmit power", b["tx_power_dbm"], "dBm"),
            ("geometric loss", -b["geometric_loss_db"], "dB"),
            (f"fog ({b['fog_model']}, {b['fog_db_per_km']:.3g} dB/km)", -b["fog_loss_db"], "dB")]
    if w["rain_mm_per_h"] > 0:
        rows.append((f"rain ({b['rain_model']}, {b['rain_db_per_km']:.3g} dB/km)", -b["rain_loss_db"], "dB"))
    if w["snow_mm_per_h"] > 0:
        rows.append((f"snow ({w['snow_kind']}, {b['snow_db_per_km']:.3g} dB/km)", -b["snow_loss_db"], "dB"))
    rows += [("pointing loss (mean)", -b["pointing_loss_db"], "dB"),
             ("system loss", -b["system_loss_db"], "dB"),
             ("received power (mean)", b["received_power_dbm"], "dBm"),
             (f"scintillation margin (Rytov var {b['rytov_variance']:.3g})", -b["scintillation_margin_db"], "dB"),
             ("receiver sensitivity", b["sensitivity_dbm"], "dBm"),
             ("link margin", b["margin_db"], "dB")]
    lines += [f"  {name:<46}{value:>+10.2f} {unit}" for name, value, unit in rows]
    lines += ["", "Fog/rain/snow attenuation by model (dB/km)"]
    lines += [f"  {name:<46}{value:>10.3g}" for name, value in r["attenuation_db_per_km"].items()]
    lines += ["", "Errors",
              f"  {'BER (scintillation-averaged)':<46}{r['ber']:>10.3g}",
              f"  {'BER at mean power':<46}{b['ber_at_mean_power']:>10.3g}",
              f"  {'packet error rate (%d B frames)' % b['frame_size_bytes']:<46}{r['packet_error_rate']:>10.3g}",
              f"  {'outage (margin < 0)':<46}{'yes' if r['outage'] else 'no':>10}",
              "", f"Goodput (RTT {units.format_time(inp['rtt_s'])})"]
    for t, g in r["goodput_Bps"].items():
        lines.append(f"  {t:<10}{g / 1e9:>10.4g} GB/s  (PER {r['packet_error_rate_by_transport'][t]:.3g})")
    lines += [f"note: {n}" for n in b["notes"]]
    return "\n".join(lines)


def _km(metres: float) -> str:
    return f"{metres / 1e3:g} km" if metres >= 1000 else f"{metres:g} m"
