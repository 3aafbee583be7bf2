"""Checks and readers shared by the configuration models (settings, forwarding, catalogue, replay)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gridworker.streams.redact import redact_text

__all__ = ["DuplicateKeyError", "UniqueKeyLoader", "first_repeat", "load_yaml", "read_yaml"]

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
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {yaml_problem(exc)}") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong with a YAML text, and where (line, column), without the snippet of the
    line that PyYAML quotes: a config line holds camera URLs, passwords and all.

    Example:
        >>> try:
        ...     load_yaml("cameras:\\n  - url: rtsp://admin:Sup3r@10.0.0.7/s: x\\n")
        ... except yaml.YAMLError as exc:
        ...     yaml_problem(exc)
        'line 2, column 39: mapping values are not allowed here'
    """
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "
        context = f" ({exc.context})" if exc.context else ""
        return redact_text(f"{where}{exc.problem}{context}")
    return redact_text(str(exc))


class DuplicateKeyError(yaml.YAMLError):
    """A key repeated in one mapping of a YAML document (see :func:`load_yaml`)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that notes the keys repeated in one mapping (``repeated``): plain YAML
    keeps the last and drops the first without a word (two ``cameras:`` sections, two ``rules:``
    of a zone). A key given beside a merge (``<<: *defaults``) still overrides the merged one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated: list[str] = []  # the first 10 repeats, said
        self.repeated_count = 0

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Hashable, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = first_line.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if first is None:
                    first_line[key] = line
                else:
                    self.repeated_count += 1
                    if len(self.repeated) < 10:
                        self.repeated.append(f"key {repr(key)[:100]} on line {line} repeats line {first}")
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The YAML document in ``text``, as ``yaml.safe_load`` reads it, except that keys repeated
    in one mapping raise :class:`DuplicateKeyError` naming each key and its lines.

    Example:
        >>> load_yaml("cameras: []\\nserver: {port: 80}\\ncameras: [{id: a}]")
        Traceback (most recent call last):
        ...
        gridworker.validation.DuplicateKeyError: key 'cameras' on line 3 repeats line 1 (YAML would keep only the last: merge them into one)
    """
    loader = UniqueKeyLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if loader.repeated:
        more = f"; and {loader.repeated_count - len(loader.repeated)} more" if loader.repeated_count > len(loader.repeated) else ""
        raise DuplicateKeyError("; ".join(loader.repeated) + more + " (YAML would keep only the last: merge them into one)")
    return data
