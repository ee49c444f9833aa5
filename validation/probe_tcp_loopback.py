#!/usr/bin/env python3
"""Loopback TCP throughput of the host's own stack, without NCCL or GPUs: one stream one way, and rings of 2 and
4 processes where each sends to the next and receives from the previous at once (the traffic of NCCL's socket
transport on 2 and 4 ranks of one host).

It tells apart what the TCP stack does from what NCCL's socket transport adds: NCCL sent 4.25 GB/s one way
(2-rank broadcast) but 2.8 GB/s each way in 2-rank rings (validation/data/h200), and this says whether plain
loopback TCP shares its rate between directions the same way. Standard library only:
``python3 validation/probe_tcp_loopback.py [--gib 4] > OUT/tcp_loopback.txt``.
"""
import argparse
import multiprocessing as mp
import socket
import threading
import time

CHUNK = 4 << 20


def _sender(port: int, total: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = memoryview(bytearray(CHUNK))
    for _ in range(total // CHUNK):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def _receiver(srv: socket.socket, total: int, out: dict) -> None:
    """Receive ``total`` bytes on the first connection; out['GBps'] from the first byte to the last."""
    c, _ = srv.accept()
    buf = memoryview(bytearray(CHUNK))
    got, t0 = 0, None
    while got < total:
        n = c.recv_into(buf)
        t0 = t0 or time.perf_counter()
        got += n
    out["GBps"] = got / (time.perf_counter() - t0) / 1e9
    c.send(b"x")
    c.close()


def _listener(port: int = 0) -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    return srv


def _ring_rank(r: int, ports: list, total: int, out) -> None:
    srv = _listener(ports[r])
    time.sleep(0.5)                       # every rank listens before any connects
    res: dict = {}
    t = threading.Thread(target=_receiver, args=(srv, total, res))
    t.start()
    _sender(ports[(r + 1) % len(ports)], total)
    t.join()
    out[r] = res["GBps"]


def one_way(total: int) -> float:
    srv = _listener()
    res: dict = {}
    t = threading.Thread(target=_receiver, args=(srv, total, res))
    t.start()
    p = mp.Process(target=_sender, args=(srv.getsockname()[1], total))
    p.start()
    t.join()
    p.join()
    return res["GBps"]


def ring(n: int, total: int, base_port: int) -> list:
    with mp.Manager() as m:
        out = m.dict()
        ps = [mp.Process(target=_ring_rank, args=(r, [base_port + i for i in range(n)], total, out)) for r in range(n)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        return [out[r] for r in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=int, default=4, help="GiB each stream moves (default 4)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    total = args.gib << 30
    print(f"# loopback TCP, {args.gib} GiB a stream, {CHUNK >> 20} MiB send/recv buffers, TCP_NODELAY; GB/s = 1e9 B/s")
    for k in range(args.repeats):
        print(f"run {k + 1}: one way {one_way(total):.2f} GB/s")
        for n in (2, 4):
            rates = ring(n, total, 29400 + 100 * k + 10 * n)
            print(f"run {k + 1}: ring of {n}, each way " + " ".join(f"{x:.2f}" for x in rates) + " GB/s")


if __name__ == "__main__":
    main()
