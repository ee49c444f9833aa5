"""Output folders of the commands that write files: made and checked before a long run, not after it."""
from __future__ import annotations

import os
from pathlib import Path

from gpusim.errors import GpusimError


def output_folder(out: str | Path, where: str) -> Path:
    """``out``, created if need be, or an error naming ``where`` (the option, or the field that named the folder) when
    it cannot be a folder to write into: a file is there, a parent is missing or read-only, the name is too long."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GpusimError(where, f"cannot use {out} as the output folder: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise GpusimError(where, f"cannot write into the output folder {out}: permission denied")
    return out
