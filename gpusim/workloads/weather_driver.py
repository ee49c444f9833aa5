"""Weather on FSO links during a run: capacity follows the link budget; outages stall flows, then reroute.

The scenario's ``weather`` block:

```yaml
weather:
  links: [fso0]              # FSO link ids (default: every FSO link)
  transport: roce            # goodput model over the lossy link: roce | ib | tcp
  fog_model: kim             # kim | kruse | al_naboulsi_advection | al_naboulsi_convection
  detection_delay: 50 ms     # how long an outage lasts before routing gives up on the link
  optics: {tx_power: 17 dBm} # terminal overrides (gpusim.links.fso.Optics fields)
  schedule:                  # or constant: {visibility: 500 m}, or markov: {duration: 2 h}, or csv: file.csv
    - {time: 0 s, visibility: 10 km}
    - {time: 2 ms, visibility: 100 m}
    - {time: 30 ms, visibility: 10 km}
```
At each weather change the link's capacity becomes the transport's goodput (:mod:`gpusim.links.weather`); in an
outage it is 0, so flows crossing it stall. If the outage outlasts ``detection_delay``, the link is taken out of
routing and its flows move to the next-best path (a backup fibre, another FSO link) if there is one; when the link
closes again new flows use it. Reported: per link availability and downtime, per job stalled time.
"""
from __future__ import annotations


import numpy as np

from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError, unknown
from gpusim.links import fso, goodput
from gpusim.links import weather as wx
from gpusim.scenario import fields as F

_KEYS = ("links", "transport", "fog_model", "detection_delay", "optics", "schedule", "constant", "markov", "csv", "rtt")


def timeline_from(cfg: dict, rng: np.random.Generator, path: str, csv_text: str | None = None) -> wx.WeatherTimeline:
    """The weather timeline the block asks for; ``csv_text`` is the file named by ``csv`` (read by the caller)."""
    given = [k for k in ("schedule", "constant", "markov", "csv") if k in cfg]
    if len(given) != 1:
        raise GpusimError(path, "give exactly one of schedule, constant, markov or csv")
    kind = given[0]
    if kind == "schedule":
        return wx.weather_schedule(cfg["schedule"], f"{path}.schedule", max_time_s=F.MAX_TIME_S)
    if kind == "csv":
        if csv_text is None:
            raise GpusimError(f"{path}.csv", "a weather CSV is read from a scenario file; in a notebook use schedule")
        return wx.weather_schedule_from_csv(csv_text, f"{path}.csv", max_time_s=F.MAX_TIME_S)
    if kind == "constant":
        const = F.mapping(cfg["constant"], f"{path}.constant")
        return wx.constant_weather(fso.weather_from_dict(const, f"{path}.constant"))
    mk = F.mapping(cfg["markov"], f"{path}.markov")
    F.check_keys(mk, ("duration", "start"), f"{path}.markov", required=("duration",))
    return wx.markov_weather(rng, F.time(mk["duration"], f"{path}.markov.duration", allow_zero=False),
                             start_state=F.string(mk.get("start", "clear"), f"{path}.markov.start"),
                             path=f"{path}.markov")


def fso_link_ids(g) -> dict:
    """The topology's FSO links the weather may act on: link id -> (u, v), one direction each."""
    return {d["link_id"]: (u, v) for u, v, d in g.edges(data=True)
            if d["technology"] == "fso" and "link_id" in d and u < v}


def attach_weather(fabric: Fabric, cfg: dict, rng: np.random.Generator, path: str = "weather",
                   csv_text: str | None = None):
    """Start weather processes on the fabric's FSO links; returns a function of the run's span giving the report:
    per link availability = 1 - downtime / span, outages clipped to [0, span] (the clock may run on past the
    jobs), and per job stalled time."""
    F.check_keys(cfg, _KEYS, path)
    fso_links = fso_link_ids(fabric.g)
    if not fso_links:
        raise GpusimError(path, "the cluster has no FSO link to put weather on")
    names = cfg.get("links", sorted(fso_links))
    if not isinstance(names, list) or not names:      # [] would put weather on no link, silently
        raise GpusimError(f"{path}.links", f"expected a non-empty list of FSO link ids, got {names!r}")
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in fso_links:     # [1] is no id (and unhashable)
            raise unknown(f"{path}.links[{i}]", name, fso_links, "FSO link")
        if name in names[:i]:                     # two weather drivers on one link would fight over its capacity
            raise GpusimError(f"{path}.links[{i}]", f"'{name}' is listed twice; give each link once")
    transport = F.string(cfg.get("transport", "roce"), f"{path}.transport", goodput.TRANSPORTS)
    fog_model = F.string(cfg.get("fog_model", "kim"), f"{path}.fog_model", fso.FOG_MODELS)
    delay = F.time(cfg.get("detection_delay", "50 ms"), f"{path}.detection_delay")
    timeline = timeline_from(cfg, rng, path, csv_text)
    report = {"links": {}, "transport": transport, "fog_model": fog_model, "detection_delay_s": delay}
    for name in names:
        u, v = fso_links[name]
        edge = fabric.g.edges[u, v]
        optics = fso.optics_from_dict(F.optional_mapping(cfg, "optics", f"{path}.optics"), f"{path}.optics",
                                      base=fso.Optics(line_rate_Bps=edge["bandwidth_Bps"]))
        distance = edge.get("distance_m", 1000.0)
        rtt = F.time(cfg["rtt"], f"{path}.rtt") if "rtt" in cfg else 2 * fso.propagation_delay_s(distance) + 10e-6
        steps = wx.link_capacity_timeline(timeline, optics, distance, transport, rtt, fog_model=fog_model)
        state = {"down_since": None, "intervals": [], "rerouted": 0, "steps": len(steps)}
        report["links"][name] = state
        fabric.env.process(_drive(fabric, u, v, steps, delay, state))

    def finish(span_s: float) -> dict:
        out = {**report, "links": {}}
        for name, st in report["links"].items():
            intervals = list(st["intervals"]) + ([(st["down_since"], span_s)] if st["down_since"] is not None else [])
            outages = [[a, min(b, span_s)] for a, b in intervals if a < span_s]
            down = sum(b - a for a, b in outages)
            out["links"][name] = {"availability": 1 - down / span_s if span_s > 0 else 1.0, "downtime_s": down,
                                  "outages": outages, "flows_rerouted": st["rerouted"], "weather_changes": st["steps"]}
        out["stalled_s_by_job"] = fabric.net.stalled_s_by_label()
        return out

    return finish


def _drive(fabric: Fabric, u: str, v: str, steps, delay_s: float, state: dict):
    env = fabric.env
    for step in steps:
        if step.time_s > env.now:
            yield env.timeout(step.time_s - env.now)
        fabric.set_link_capacity(u, v, step.capacity_Bps)
        if not step.up and state["down_since"] is None:
            state["down_since"] = env.now
            env.process(_detect(fabric, u, v, delay_s, state, env.now))
        elif step.up and state["down_since"] is not None:
            state["intervals"].append((state["down_since"], env.now))
            state["down_since"] = None
            if not fabric.g.edges[u, v]["up"]:
                fabric.set_link_up(u, v, True)


def _detect(fabric: Fabric, u: str, v: str, delay_s: float, state: dict, since: float):
    yield fabric.env.timeout(delay_s)
    if state["down_since"] == since:  # still the same outage
        fabric.set_link_up(u, v, False)
        try:
            state["rerouted"] += fabric.reroute_flows_on(u, v)
        except GpusimError:
            pass  # no other path: flows wait for the link to return
