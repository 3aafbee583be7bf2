"""Pieces of the command line shared by the ``gridworker`` sub-commands that run things and
report on them (``bench``, ``iot``, ``replay``): one way to refuse or give up, the
numbers an option takes checked while the line is parsed, and the options of a bench's settings
dataclass (:func:`settings_options`: each field's ``--name``, its default taken from the field,
its bounds checked by :func:`out_of_range`).

Example:
    >>> fail("bench soak", "--streams must be between 1 and 64")
    2
    >>> positive("2.5")
    2.5
    >>> Option("visits in flight", 1, 512).bounds(), Option("share of dead cameras", least=0, below=1).bounds()
    ('1 to 512', '>= 0 and < 1')
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Option", "fail", "out_of_range", "positive", "settings_options"]


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


def _shown(value: object) -> str:
    """A default or a bound as the help and the refusals write it: 100000, 2.5, 1000 (not 1000.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class Option:
    """How one field of a bench's settings dataclass reads on the command line as ``--name``
    (:func:`settings_options`): what it is (``help``; the field's default and these bounds are
    added to it), and the values it takes, checked once the line is parsed
    (:func:`out_of_range`): ``least`` to ``most``, ``above`` and ``below`` (strictly; None: no
    bound). ``flag`` names an option that is not the field's name (``--open-timeout`` for
    ``open_timeout_s``), ``type`` parses a field whose default (None) does not say, and
    ``choices`` are the only values taken."""

    help: str
    least: float | None = None
    most: float | None = None
    above: float | None = None
    below: float | None = None
    flag: str | None = None
    type: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None

    def bounds(self) -> str:
        """The values taken, in words: ``1 to 512``, ``> 0``, ``>= 0 and < 1``; "" for any."""
        if self.least is not None and self.most is not None and self.above is None and self.below is None:
            return f"{_shown(self.least)} to {_shown(self.most)}"
        limits = ((">=", self.least), (">", self.above), ("<=", self.most), ("<", self.below))
        return " and ".join(f"{sign} {_shown(limit)}" for sign, limit in limits if limit is not None)

    def allows(self, value: float) -> bool:
        """``value`` lies within the bounds."""
        return (
            (self.least is None or value >= self.least) and (self.most is None or value <= self.most)
            and (self.above is None or value > self.above) and (self.below is None or value < self.below)
        )  # fmt: skip

    def flag_of(self, field: str) -> str:
        """The option of ``field``: ``flag``, else ``--`` and the field's name with dashes."""
        return self.flag or "--" + field.replace("_", "-")


def settings_options(p: argparse.ArgumentParser, settings: type[DataclassInstance], options: Mapping[str, Option]) -> None:
    """Add to ``p`` an option for each field of ``settings`` that ``options`` names, stored under
    the field's name (so that the settings are built from the parsed options by name), with the
    field's default, shown in the help with the option's bounds."""
    defaults = {f.name: f.default for f in dataclasses.fields(settings)}
    for field, option in options.items():
        default = defaults[field]
        if default is dataclasses.MISSING:
            raise TypeError(f"{settings.__name__}.{field} has no plain default")
        if default is None and option.type is None:
            raise TypeError(f"{settings.__name__}.{field}: a default of None needs the option's type")
        notes = [] if default is None else [f"default {_shown(default)}"]
        if option.bounds():
            notes.append(option.bounds())
        flag = option.flag_of(field)
        p.add_argument(
            flag, dest=field, type=option.type or type(default), default=default, choices=option.choices,
            metavar=None if option.choices else flag.lstrip("-").upper().replace("-", "_"),
            help=f"{option.help} ({'; '.join(notes)})" if notes else option.help,
        )  # fmt: skip


def out_of_range(args: argparse.Namespace, options: Mapping[str, Option]) -> str | None:
    """Why the first of the parsed ``options`` (by field name) that lies outside its bounds is
    refused (``--cameras must be 1 to 512, got 0``), or None when all are within theirs."""
    for field, option in options.items():
        value = getattr(args, field)
        if value is not None and not option.allows(value):
            return f"{option.flag_of(field)} must be {option.bounds()}, got {_shown(value)}"
    return None
