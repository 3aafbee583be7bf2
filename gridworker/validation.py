"""Checks and readers shared by the configuration models (settings, forwarding, catalogue, replay)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import TypeVar

import yaml

__all__ = ["first_repeat", "read_yaml"]

K = TypeVar("K", bound=Hashable)


def first_repeat(keys: Iterable[K]) -> K | None:
    """The first key that was already seen (None when every key is unique): what a validator of
    ids that must be unique names in its error.

    Example:
        >>> first_repeat(["gate", "kerb", "gate"]), first_repeat(["gate"])
        ('gate', None)
    """
    seen: set[K] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def read_yaml(path: Path, what: str, error: Callable[[str], Exception]) -> object:
    """The YAML document in the file ``path`` (``what`` it holds, for the message); a file that
    cannot be read or is not YAML raises ``error(message)`` naming the file and the reason.

    Example:
        >>> read_yaml(Path("/nonexistent.yaml"), "config file", ValueError)
        Traceback (most recent call last):
        ...
        ValueError: /nonexistent.yaml: cannot read config file: No such file or directory
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None
