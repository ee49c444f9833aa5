"""``gpusim collective``: a simulated nccl-tests run (size sweep of one collective on one cluster)."""
from __future__ import annotations

import json

from gpusim import presets, units
from gpusim.calibration.preset_file import measured_error, measured_variant
from gpusim.collectives.run import normalise_op
from gpusim.collectives.sweep import SweepCutShort, sizes, sweep
from gpusim.engine.fabric import Fabric
from gpusim.errors import GpusimError

CSV_HEADER = "op,ranks,bytes,time_us,algbw_GBps,busbw_GBps,algo,proto"
# the collectives layer names its arguments ("algo: unknown algorithm"); the user typed these flags
_FLAGS = {"op": "--op", "algo": "--algo", "proto": "--proto", "channels": "--channels", "ranks": "--ranks",
          "min_bytes": "--min-bytes", "max_bytes": "--max-bytes"}


def add_parser(sub):
    p = sub.add_parser("collective", help="simulate an nccl-tests style size sweep of one collective",
                       description="Simulate one collective over a range of sizes (nccl-tests semantics: sizes of "
                                   "all_gather/reduce_scatter are the total buffer, all_to_all the per-rank buffer; "
                                   "GB/s = 1e9 B/s).")
    p.add_argument("--cluster", required=True, help="preset name or name:key=value,... (see `gpusim presets`), "
                                                    "or a calibrated preset file (my-node.yaml:gpus=8)")
    p.add_argument("--ranks", type=int, default=None, help="number of ranks (default: every GPU of the cluster)")
    p.add_argument("--op", required=True, help="all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all, sendrecv")
    p.add_argument("--min-bytes", default="8", help="smallest size, bytes or with unit (default 8)")
    p.add_argument("--max-bytes", default="128MiB", help="largest size (default 128MiB)")
    p.add_argument("--step-factor", type=float, default=2.0, help="multiply size by this each step (default 2)")
    p.add_argument("--algo", default="auto", help="ring, tree, hierarchical, nvls, direct or auto")
    p.add_argument("--proto", default="auto", help="LL, LL128, Simple or auto")
    p.add_argument("--channels", type=int, default=None, help="channels (default: the cluster's)")
    p.add_argument("--launch", choices=["host", "graph"], default="host",
                   help="host (default): each call issued by the host, as nccl-tests times them, so a call lasts at "
                        "least the host's issue interval (the cluster's launch floor, plus its time per send and "
                        "receive of an all_to_all or sendrecv); graph: replayed from a CUDA graph, the GPU's time "
                        "alone")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    return p


def run(args) -> int:
    cluster = presets.build(args.cluster, "--cluster")
    fabric = Fabric(cluster.graph)
    gpus = len(fabric.gpus)
    n = args.ranks if args.ranks is not None else gpus
    if gpus < 2:        # every op, sendrecv and all_to_all too: one rank has no peer to send to
        raise GpusimError("--ranks", f"a collective needs at least 2 ranks; '{args.cluster}' has {gpus} "
                                     f"GPU{'' if gpus == 1 else 's'}")
    if n < 2 or n > gpus:
        raise GpusimError("--ranks", f"expected 2..{gpus} (a collective needs at least 2 ranks; GPUs in "
                                     f"'{args.cluster}': {gpus}), got {n}")
    most = units.MAX_SIZE_BYTES
    ladder = sizes(units.size(args.min_bytes, "--min-bytes", most, default_unit="B"),
                   units.size(args.max_bytes, "--max-bytes", most, default_unit="B"), args.step_factor,
                   names=("--min-bytes", "--max-bytes", "--step-factor"))
    model = cluster.model if args.launch == "host" else cluster.model.graph_replayed()
    cut = None
    try:
        rows = sweep(fabric, model, args.op, range(n), ladder, args.algo, args.proto, args.channels)
    except SweepCutShort as exc:        # print the sizes done, then say why the sweep stopped
        rows, cut = exc.rows, GpusimError(_FLAGS[exc.path], exc.message)
    except GpusimError as exc:
        if exc.path in _FLAGS:
            raise GpusimError(_FLAGS[exc.path], exc.message) from None
        raise
    if args.format == "csv":
        print(CSV_HEADER)
        for row in rows:
            r = row.result
            print(f"{r.op},{r.n_ranks},{int(r.size_bytes)},{r.time_s * 1e6:.3f},{r.algbw_GBps:.3f},{r.busbw_GBps:.3f},{r.algo},{r.proto}")
    elif args.format == "json":
        print(json.dumps([{"op": r.result.op, "ranks": r.result.n_ranks, "bytes": int(r.result.size_bytes),
                           "count": r.count, "time_us": r.result.time_s * 1e6, "algbw_GBps": r.result.algbw_GBps,
                           "busbw_GBps": r.result.busbw_GBps, "algo": r.result.algo, "proto": r.result.proto,
                           "channels": r.result.channels} for r in rows], indent=1))
    else:
        print(f"# gpusim collective: {rows[0].result.op if rows else args.op} on {cluster.spec}, {n} ranks "
              f"(simulated; nccl-tests columns, GB/s = 1e9 B/s)")
        variant = measured_variant(args.algo, args.proto, args.channels, cluster.model.channels)
        for line in _measured_error_lines(cluster.provenance, normalise_op(args.op), variant, args, n):
            print(line)
        if args.channels is not None and not model.ring_channel_Bps:
            print(f"# --channels {args.channels}: this cluster has no measured rate of one channel (ring_channel): "
                  "the count scales NCCL's per-channel LL, LL128 and Tree ceilings, not Simple's rate")
        print(f"#{'size':>11}  {'count':>12}  {'type':>8}  {'redop':>6}  {'root':>6}  {'time':>9}  {'algbw':>7}  "
              f"{'busbw':>7}  {'algo':>12}  {'proto':>6}")
        print(f"#{'(B)':>11}  {'(elements)':>12}  {'':>8}  {'':>6}  {'':>6}  {'(us)':>9}  {'(GB/s)':>7}  {'(GB/s)':>7}")
        for row in rows:
            r = row.result
            redop = "sum" if r.op in ("all_reduce", "reduce_scatter", "reduce") else "none"
            root = "0" if r.op in ("broadcast", "reduce") else "-1"
            print(f"{int(r.size_bytes):>12}  {row.count:>12}  {'float':>8}  {redop:>6}  {root:>6}  "
                  f"{r.time_s * 1e6:>9.2f}  {r.algbw_GBps:>7.2f}  {r.busbw_GBps:>7.2f}  {r.algo:>12}  {r.proto:>6}")
        if rows:
            avg = sum(r.result.busbw_GBps for r in rows) / len(rows)
            print(f"# Avg bus bandwidth    : {avg:.2f}")
    if cut:
        raise cut
    return 0


def _measured_error_lines(provenance: dict, op: str, variant: str | None, args, n: int) -> list[str]:
    """How far a calibrated preset was from measured NCCL on this call (op, forced variant, ranks), from the error
    table ``gpusim calibrate`` wrote into its provenance; what was not measured, said as such. Nothing for a preset
    that was not calibrated."""
    if not provenance.get("errors"):
        return []
    measured = sorted({e["ranks"] for e in provenance["errors"] if e.get("op") == op})
    err = measured_error(provenance, op, variant, n) if variant else {}
    if err:
        def pct(band, key):
            return f"{err[band][key] * 100:.1f} %" if band in err else "-"
        label = "NCCL's choice" if variant == "default" else variant
        lines = [f"# measured error of this preset on {n}-rank {op} ({label}): median {pct('<1MiB', 'median')} "
                 f"below 1 MiB, {pct('>=1MiB', 'median')} from 1 MiB (p90 {pct('<1MiB', 'p90')}, "
                 f"{pct('>=1MiB', 'p90')})"]
        if args.launch == "graph":      # the errors are of calls the host issued, as nccl-tests times them
            lines.append("# (of calls issued by the host; --launch graph gives the GPU's time alone, which those "
                         "calls hid below the host's issue interval: docs/validation.md has its error)")
        return lines
    if n not in measured:
        where = f"{op} was measured on {', '.join(map(str, measured))} ranks" if measured else f"{op} was not measured"
        return [f"# not measured: {where}; {n} ranks are extrapolated from the fitted rates"]
    return [f"# not measured: {op} with {variant or f'algo {args.algo}, proto {args.proto}'} on "
            f"{n} ranks; the preset's error is known for NCCL's choice and the variants its data forced"]
