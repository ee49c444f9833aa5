"""The one exception type for errors a user can cause.

Every message names the offending field by its path (``cluster.servers``) and what would be accepted, so the CLI
can print it on one line and exit 2, and a notebook user sees at once what to fix.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class GpusimError(ValueError):
    """Bad input: a scenario field, a preset name, an impossible topology, a result that would be NaN.

    ``path`` is the dotted field path ("jobs[2].size"), or "" when the error is not about one field.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(path, message)     # args rebuild it: simpy re-raises a failed process as type(e)(*e.args)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" suffix for the closest choice, or "" when none is close."""
    others = [str(c) for c in choices if str(c) != str(word)]   # never "'nccl' (did you mean 'nccl'?)"
    close = difflib.get_close_matches(str(word), others, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(path: str, word: str, choices: Iterable[str], what: str = "value") -> GpusimError:
    """The error for a name that is not one of ``choices``, with a did-you-mean hint and the accepted names."""
    choices = sorted(str(c) for c in choices)
    if str(word) in choices:   # a caller's choices name a word it refused: say so, not "unknown"
        return GpusimError(path, f"{what} '{word}' is not accepted here; accepted: {', '.join(choices)}")
    return GpusimError(path, f"unknown {what} '{word}'{did_you_mean(word, choices)}; accepted: {', '.join(choices)}")
