"""What NCCL logs about a communicator (``NCCL_DEBUG=INFO``, subsystems INIT and GRAPH): the cost-model constants
gpusim takes from NCCL instead of fitting them.

* ``24 coll channels, 24 collnet channels, 0 nvls channels, 32 p2p channels, 32 p2p channels per peer``:
  ``channels``, ``p2p_channels``, ``p2p_channels_per_peer``;
* ``P2P Chunksize set to 524288``: ``p2p_chunk_bytes``;
* ``Pattern 4, crossNic 0, nChannels 12, bw 30.000000/30.000000, ...``: the ring graph NCCL's tuner decides with,
  ``graph_channels`` and ``graph_bw_Bps`` (its intra-node bandwidth per channel, GB/s in the log).

validation/collect.py keeps these lines in ``<tag>_nccl_info.txt``, one section per transport (``===== nvlink
(env ...) ...``); nccl-tests run with ``NCCL_DEBUG=INFO`` prints them too.
"""
from __future__ import annotations

import re
from pathlib import Path

from gpusim.errors import GpusimError

_LINES = (
    (re.compile(r"NCCL INFO (\d+) coll channels, \d+ collnet channels, \d+ nvls channels, (\d+) p2p channels, "
                r"(\d+) p2p channels per peer"),
     lambda m: {"channels": int(m[1]), "p2p_channels": int(m[2]), "p2p_channels_per_peer": int(m[3])}),
    (re.compile(r"NCCL INFO P2P Chunksize set to (\d+)"), lambda m: {"p2p_chunk_bytes": int(m[1])}),
    (re.compile(r"NCCL INFO Pattern 4, crossNic \d+, nChannels (\d+), bw ([\d.]+)/([\d.]+)"),
     lambda m: {"graph_channels": int(m[1]), "graph_bw_Bps": float(m[2]) * 1e9}),
)


def _section(lines: list[str], transport: str) -> list[str]:
    """The lines of collect.py's sections for ``transport`` (its NCCL_DEBUG=INFO runs); all lines when the file
    has no such sections."""
    if not any(line.startswith("===== ") for line in lines):
        return lines
    out, keep = [], False
    for line in lines:
        if line.startswith("===== "):
            words = line.split()
            keep = len(words) > 2 and words[1] == transport and words[2].startswith("(env")
        elif keep:
            out.append(line)
    return out


def constants(path, transport: str | None = None) -> dict:
    """The cost-model fields an NCCL log states (those above), each as every matching line gives it; in a
    collect.py ``nccl_info.txt``, from ``transport``'s section. A field whose line is missing is left out; none at
    all, or lines that disagree (communicators of different transports in one log), is an error naming the file."""
    where = str(path)
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        raise GpusimError(where, f"cannot read the NCCL log: {e.strerror or e}") from None
    if transport is not None:
        lines = _section(lines, transport)
    found: dict = {}
    for line in lines:
        for pattern, fields in _LINES:
            m = pattern.search(line)
            if not m:
                continue
            for key, value in fields(m).items():
                if found.setdefault(key, value) != value:
                    raise GpusimError(where, f"{key} is {found[key]:g} in one line and {value:g} in another: "
                                             "give the log of one transport")
    if not found:
        raise GpusimError(where, "no NCCL line about channels or graphs: expected the output of a run with "
                                 "NCCL_DEBUG=INFO (NCCL_DEBUG_SUBSYS including INIT and GRAPH)")
    return found
