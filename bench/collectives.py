"""Collective benchmark: wall seconds and peak memory to simulate a 1 GiB ring all_reduce on `switch` with
64 / 256 / 1,024 GPUs, the same on 4,096 GPUs with the algorithm left to the tuner (ring and tree each routed), and
two-level (8 GPUs per server, rail-optimized) with 1,024 / 4,096 GPUs; and a scenario job of 3,000 back-to-back
64 MiB all_reduces on dgx-h100 (a training loop: each call's plan and choice are those of the first).

Targets on a 2-core machine: 1,024 GPUs <= 1.5 s; 4,096 two-level <= 5 s (ASTRA-sim's analytical backend:
8.7-14.5 s and 50.8 s on the same cases). Each case includes building the topology and routing. Wall time is
taken on a plain run; peak memory on a second run under tracemalloc (which slows Python, so it is not timed).
"""
import time
import tracemalloc

from gpusim import presets
from gpusim.collectives.run import measure
from gpusim.engine.fabric import Fabric
from gpusim.scenario import schema
from gpusim.simulate import simulate

GiB = 1 << 30


def simulate_once(spec: str, n: int, algo: str):
    t0 = time.perf_counter()
    cluster = presets.build(spec)
    fabric = Fabric(cluster.graph)
    t_build = time.perf_counter() - t0
    r = measure(fabric, cluster.model, "all_reduce", range(n), GiB, algo=algo, proto="Simple")
    return r, t_build, time.perf_counter() - t0


def case(label: str, spec: str, n: int, algo: str) -> None:
    r, t_build, wall = simulate_once(spec, n, algo)
    tracemalloc.start()
    simulate_once(spec, n, algo)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label:<34} wall {wall:6.2f} s (build {t_build:5.2f} s)  peak {peak / 2**20:7.1f} MiB  "
          f"simulated {r.time_s * 1e3:8.2f} ms  busbw {r.busbw_GBps:6.1f} GB/s  [{r.algo}/{r.proto}]")


def repeated(calls: int = 3000) -> None:
    s = schema.parse({"cluster": "dgx-h100", "jobs": [{"op": "all_reduce", "size": "64 MiB", "repeat": calls}]})
    t0 = time.perf_counter()
    job = simulate(s).clusters[0].jobs[0]
    wall = time.perf_counter() - t0
    label = f"dgx-h100, 64 MiB all_reduce x {calls}"
    print(f"{label:<34} wall {wall:6.2f} s ({wall / calls * 1e6:6.0f} us a call)  simulated {job.end_s * 1e3:8.2f} ms")


if __name__ == "__main__":
    for n in (64, 256, 1024):
        case(f"switch, {n} GPUs, ring", f"switch:gpus={n},bandwidth=50GB/s,latency=500ns", n, "ring")
    case("switch, 4096 GPUs, tuner's choice", "switch:gpus=4096,bandwidth=50GB/s,latency=500ns", 4096, "auto")
    for n in (1024, 4096):
        case(f"two-level 8x{n // 8}, hierarchical", f"dgx-h100-cluster:servers={n // 8},spines=8", n, "hierarchical")
    repeated()
