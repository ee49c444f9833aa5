"""``simulate(scenario) -> Result``: build each cluster, run the jobs, collect metrics. No I/O here.

Phases (as desmod's simulate): build (preset + overrides -> graph, cost model, fabric) -> schedule (one simpy
process per job, plus weather processes) -> run (until done or the duration limit) -> collect (per job and per
link, with the scenario echoed, the seed and the wall-clock runtime).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gpusim import __version__, presets
from gpusim.collectives import nccl_model as nm
from gpusim.collectives.bus_bandwidth import busbw_GBps
from gpusim.collectives.run import Collectives
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError
from gpusim.links.technology import family
from gpusim.scenario import fields as F
from gpusim.scenario.schema import ClusterSpec, Scenario
from gpusim.topology.graph import summary
from gpusim.workloads.jobs import JobRecord, check_traffic, check_transfer, job_process


@dataclass
class JobResult:
    name: str
    type: str
    status: str                 # "done", "stalled" (a link outage never cleared), "timeout" (duration limit)
    size_bytes: float
    n_ranks: int
    start_s: float | None
    end_s: float | None
    iteration_times_s: list[float]
    detail: dict = field(default_factory=dict)

    @property
    def mean_time_s(self) -> float | None:
        return float(np.mean(self.iteration_times_s)) if self.iteration_times_s else None

    def metrics(self) -> dict:
        out = {"name": self.name, "type": self.type, "status": self.status, "size_bytes": self.size_bytes,
               "n_ranks": self.n_ranks, "start_s": self.start_s, "end_s": self.end_s,
               "iterations": len(self.iteration_times_s), "mean_time_s": self.mean_time_s,
               "iteration_times_s": self.iteration_times_s, **self.detail}
        t = self.mean_time_s
        if t and self.type == "collective":
            out["algbw_GBps"] = self.size_bytes / t / 1e9
            out["busbw_GBps"] = busbw_GBps(self.detail["op"], self.n_ranks, self.size_bytes, t)
        return out


@dataclass
class ClusterResult:
    label: str
    spec: str
    topology: dict
    jobs: list[JobResult]
    makespan_s: float          # the run's span: until the last job ended, or the duration limit if it cut one off
    links: list[dict]          # busiest links over the span: name, technology, bytes, utilisation, limiting_share
    extra: dict = field(default_factory=dict)


@dataclass
class Result:
    scenario: str
    seed: int
    version: str
    clusters: list[ClusterResult]
    runtime_s: float
    source: dict

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "seed": self.seed, "gpusim_version": self.version,
                "runtime_s": self.runtime_s, "input": self.source,
                "clusters": [{"label": c.label, "spec": c.spec, "topology": c.topology, "makespan_s": c.makespan_s,
                              "jobs": [j.metrics() for j in c.jobs], "busiest_links": c.links, **c.extra}
                             for c in self.clusters]}


def build_cluster(spec: ClusterSpec):
    """Preset + parameter and link overrides -> (Cluster, CostModel)."""
    cluster = presets.build(spec.preset, spec.path, spec.params)
    for i, link in enumerate(spec.links):
        hits = 0
        for u, v, d in cluster.graph.edges(data=True):
            tech = link.get("technology")
            if tech is not None and tech not in (d["technology"], family(d["technology"])):
                continue
            kind = link.get("kind")
            if kind is not None and kind not in (cluster.graph.nodes[u]["kind"], cluster.graph.nodes[v]["kind"]):
                continue
            for key in ("bandwidth_Bps", "latency_s", "efficiency"):
                if key in link:
                    d[key] = link[key]
            hits += 1
        if not hits:
            techs = sorted({d["technology"] for _, _, d in cluster.graph.edges(data=True)})
            raise GpusimError(f"{spec.path}.links[{i}]", f"matches no link of this cluster; its technologies: {', '.join(techs)}")
    overrides = dict(spec.cost_model)
    if "ring_channel_Bps" in overrides:     # per protocol and operation: the preset's others keep their rates
        given, preset = overrides["ring_channel_Bps"], cluster.model.ring_channel_Bps
        overrides["ring_channel_Bps"] = {p: {**preset.get(p, {}), **given.get(p, {})} for p in {*preset, *given}}
    model = cluster.model.with_overrides(**overrides).validate(f"{spec.path}.cost_model")
    if model.nvls and nm.ARCHS[model.arch][1] < 90:    # else every collective failed, named only 'nvls'
        raise GpusimError(f"{spec.path}.cost_model.nvls", f"NVLink SHARP needs Hopper NVSwitches or later; this "
                                                          f"cluster's GPUs are {model.arch}")
    return cluster, model


def simulate(scenario: Scenario) -> Result:
    """Run every cluster of the scenario on the same jobs; deterministic for a given scenario and seed."""
    t0 = time.perf_counter()
    built = [build_cluster(spec) for spec in scenario.clusters]     # every cluster's errors before any run
    if scenario.weather and len(scenario.clusters) > 1:     # weather acts on the clusters with FSO links, one at least
        from gpusim.workloads.weather_driver import fso_link_ids
        if not any(fso_link_ids(cluster.graph) for cluster, _ in built):
            raise GpusimError("weather", "no cluster of the scenario has an FSO link to put weather on")
    results = [_run_cluster(scenario, spec, *b) for spec, b in zip(scenario.clusters, built)]
    return Result(scenario.name, scenario.seed, __version__, results, time.perf_counter() - t0, scenario.source)


def _run_cluster(scenario: Scenario, spec: ClusterSpec, cluster, model) -> ClusterResult:
    fabric = Fabric(cluster.graph)
    coll = Collectives(fabric, model)
    env = fabric.env
    rng = np.random.default_rng(scenario.seed)
    events = {job.name: env.event() for job in scenario.jobs}
    records = []
    for job in scenario.jobs:
        ranks = None
        n = 2
        if job.type in ("collective", "traffic"):
            ranks = F.ranks(job.raw["ranks"], f"{job.path}.ranks", len(fabric.gpus),
                            cluster=spec.label if len(scenario.clusters) > 1 else None)
            n = len(ranks)
            if job.type == "traffic":
                check_traffic(job, n)
        else:
            check_transfer(fabric, job, spec.label if len(scenario.clusters) > 1 else None)
        record = JobRecord(job.name, job.type, job.raw["size_bytes"], n)
        records.append(record)
        env.process(job_process(fabric, coll, job, ranks, record, events, rng, spec.path))
    weather_report = None
    if scenario.weather:
        from gpusim.workloads.weather_driver import attach_weather, fso_link_ids  # FSO what-ifs
        if fso_link_ids(fabric.g) or len(scenario.clusters) == 1:   # compared with clusters without FSO: clear sky
            weather_report = attach_weather(fabric, scenario.weather, rng, "weather", scenario.weather_csv_text)
    span = _run_jobs(env, env.all_of(list(events.values())), scenario.duration_limit_s)
    fabric.net.advance()        # flows cut off by the limit count what they moved
    # a run the limit did not stop ended with its jobs stalled for good (or waiting on stalled ones); one it stopped
    # reports a job stalled if all its flows in flight sat at rate 0 then, and cut off by the limit otherwise
    limited = scenario.duration_limit_s is not None and span >= scenario.duration_limit_s
    stalled = fabric.net.stalled_labels() if limited else {r.name for r in records}
    jobs = []
    for job, r in zip(scenario.jobs, records):
        if job.type == "collective" and cluster.provenance.get("errors") and r.detail:
            r.detail["measured_error"] = _measured_error(cluster, spec, job, r)
        status = "done" if r.finished else ("stalled" if r.name in stalled else "timeout")
        its = [b - a for a, b in r.iterations]
        jobs.append(JobResult(r.name, r.type, status, r.size_bytes, r.n_ranks,
                              r.iterations[0][0] if r.iterations else None,
                              r.iterations[-1][1] if r.iterations else None, its, r.detail))
    links = _busiest(fabric, span)
    extra = weather_report(span) if weather_report else {}
    return ClusterResult(spec.label, spec.preset, summary(cluster.graph), jobs, span, links, extra)


def _measured_error(cluster, spec: ClusterSpec, job, record) -> dict | str:
    """A calibrated preset's error on the measured calls like this job's (op, forced variant and channels, ranks,
    size band), from its provenance; 'not measured' where its data had none."""
    from gpusim.calibration.preset_file import measured_error, measured_variant
    channels = job.raw.get("channels") or spec.cost_model.get("channels")
    variant = measured_variant(job.raw["algo"], job.raw["proto"], channels, cluster.model.channels)
    band = "<1MiB" if record.size_bytes < 1 << 20 else ">=1MiB"
    err = measured_error(cluster.provenance, record.detail["op"], variant, record.n_ranks).get(band) if variant else None
    return {k: err[k] for k in ("median", "p90", "bias", "rows")} if err else "not measured"


def _run_jobs(env, done, limit_s: float | None) -> float:
    """Run until every job is done, the duration limit, or nothing is left to happen (the jobs stalled for good);
    timers still pending when the jobs are done (weather steps, outage detection) do not run the clock on.
    Returns the run's span, the clock at the stop: the last job's end, the limit if it cut a job off, or the
    last event when the jobs stalled with no limit. A clock past F.MAX_TIME_S (no limit stops it sooner) is an
    error: there float seconds no longer resolve the model's nanoseconds and results would be silently off."""
    while not done.triggered:
        t = env.peek()
        if t == np.inf or (limit_s is not None and t >= limit_s):
            break
        if t > F.MAX_TIME_S:
            raise GpusimError("run.duration_limit", f"the jobs run past {F.MAX_TIME_S:g} s of simulated time, where "
                                                    "float seconds lose nanosecond resolution; make them shorter "
                                                    "or stop the run sooner with run.duration_limit")
        env.step()
    if limit_s is not None and not done.triggered and env.now < limit_s:
        env.run(until=limit_s)  # events at the limit itself do not run, as before
    return env.now


def _busiest(fabric: Fabric, span_s: float, top: int = 12) -> list[dict]:
    """The links that held flows back longest, the bottleneck first: ranked by the share of the span during which a
    link bounded some flow's rate (it was full, or down under flows), then by average utilisation (bytes carried /
    integral of capacity over the span), then by bytes. Utilisation alone would rank a link that was up for a
    nanosecond and carried a byte at full rate above one that was full for the whole run."""
    net = fabric.net
    carried, capacity_s, limiting_s = net.link_bytes, net.capacity_seconds, net.limiting_seconds
    util = np.where(capacity_s > 0, carried / np.maximum(capacity_s, 1e-300), 0.0)
    share = limiting_s / span_s if span_s > 0 else np.zeros_like(limiting_s)
    order = np.lexsort((-carried, -util, -share))[:top]
    out = []
    for i in order:
        if carried[i] <= 0 and limiting_s[i] <= 0:
            break
        u, v = fabric.edges[i]
        out.append({"link": f"{u}->{v}", "technology": fabric.g.edges[u, v]["technology"], "bytes": float(carried[i]),
                    "utilisation": float(min(util[i], 1.0)) if capacity_s[i] > 0 else None,    # rounding
                    "limiting_share": float(min(share[i], 1.0))})
    return out
