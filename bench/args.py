"""Pieces of the command line shared by the ``gridworker`` sub-commands that run things and
report on them (``bench``, ``iot``, ``replay``): one way to refuse or give up, and the
numbers an option takes checked while the line is parsed.

Example:
    >>> fail("bench soak", "--streams must be between 1 and 64")  # doctest: +SKIP
    2
    >>> positive("2.5")
    2.5
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["fail", "positive"]


def fail(command: str, message: str, status: int = 2) -> int:
    """Print ``gridworker COMMAND: MESSAGE`` on standard error and return ``status``, the exit
    status the sub-command's ``func`` returns (2: bad arguments, 1: it could not run), so that
    every refusal reads the same and a caller writes ``return fail(...)``; an empty ``command``
    prints ``gridworker: MESSAGE``."""
    print(f"gridworker {command}: {message}" if command else f"gridworker: {message}", file=sys.stderr)
    return status


def positive(text: str) -> float:
    """An option's value that must be a number above 0 (an argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value
