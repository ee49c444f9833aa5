"""Engine benchmark: 1,024 concurrent flows through a 128-server fat-tree, and 100,000 sequential transfers.

Prints wall seconds and rates; run with `make bench` or `python bench/engine.py`.
"""
import time

import numpy as np
import simpy

from gpusim.engine.fabric import Fabric
from gpusim.engine.network import FlowNetwork, FlowSpec
from gpusim.topology import builders


def concurrent_fat_tree(n_flows: int = 1024, servers: int = 128) -> None:
    t0 = time.perf_counter()
    g = builders.cluster(servers=servers, gpus_per_server=8, fabric="fat_tree", nics="per_gpu", servers_per_leaf=8)
    fabric = Fabric(g, ecmp=True)
    t_build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    n = len(fabric.gpus)
    src = rng.permutation(n)[:n_flows]
    dst = (src + n // 2 + rng.integers(0, n // 2, n_flows)) % n
    sizes = rng.uniform(1e6, 1e9, n_flows)  # different sizes: ~1,000 completions, each a recomputation
    t1 = time.perf_counter()
    specs = [fabric.flow(fabric.gpu(int(a)), fabric.gpu(int(b)), float(s), key=i) for i, (a, b, s) in enumerate(zip(src, dst, sizes))]
    t_route = time.perf_counter() - t1
    t2 = time.perf_counter()
    group = fabric.net.submit(specs)
    fabric.env.run()
    t_sim = time.perf_counter() - t2
    assert group.pending == 0
    print(f"fat-tree {servers} servers ({n} GPUs, {fabric.net.capacity.size} directional links): build {t_build:.2f} s, "
          f"route {n_flows} flows {t_route:.2f} s, simulate to completion {t_sim:.3f} s "
          f"({fabric.net.recomputations} rate recomputations, {t_sim / max(fabric.net.recomputations, 1) * 1e3:.2f} ms each), "
          f"simulated makespan {fabric.env.now * 1e3:.1f} ms")


def sequential_transfers(n: int = 100_000) -> None:
    env = simpy.Environment()
    net = FlowNetwork(env, np.full(4, 50e9))
    links = np.array([0, 1, 2])

    def proc():
        for i in range(n):
            yield net.submit([FlowSpec(links, 1e6, 1e-6)]).done

    env.process(proc())
    t0 = time.perf_counter()
    env.run()
    dt = time.perf_counter() - t0
    expected = n * (1e-6 + 1e6 / 50e9)
    assert abs(env.now - expected) < 1e-9 * expected
    print(f"{n} sequential transfers: {dt:.2f} s wall, {n / dt:,.0f} transfers/s")


if __name__ == "__main__":
    concurrent_fat_tree()
    sequential_transfers()
