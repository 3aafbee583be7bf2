"""Rules' class names checked against the classes their models detect, for ``gridworker check``.

A rule (or counting line) that lists a class its camera's models never output can never fire on
it: ``classes: [Car]`` where the model says ``car``, ``lorry`` where it says ``truck``. The
config is still valid (a model may change), so ``check`` warns, naming the camera, zone, rule
and names, with the nearest class the model has.

A model's classes are read without running it: a model directory's ``manifest.json`` (the
embedded SSD's lists the 80 COCO classes) or, for a bare Ultralytics ``.onnx`` file, the
``names`` in its metadata (the file is opened as ONNX Runtime would open it at start). A
detector's own ``classes`` filter narrows them. A rule whose models' classes cannot be read is
not checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from gridworker.models.config import DetectorConfig
from gridworker.settings import Settings

__all__ = ["model_class_names", "rule_class_warnings", "unknown_class_note"]

#: The classes a model detects, or None when they cannot be known without running it.
ClassesOf = Callable[[DetectorConfig], Sequence[str] | None]


def model_class_names(detector: DetectorConfig) -> list[str] | None:
    """The class names ``detector`` can output: its model's labels (a manifest's, or an
    Ultralytics file's ``names``), narrowed by its ``classes`` filter. None when they cannot be
    read (no such model, a file without ``names``): ``check`` says a missing model elsewhere."""
    from gridworker.models.errors import ModelError
    from gridworker.models.loader import resolve_model
    from gridworker.models.manifest import MANIFEST_NAME, load_manifest

    labels: list[str] | None = None
    try:
        path = resolve_model(detector.model)
        if path.is_dir() and (path / MANIFEST_NAME).is_file():
            manifest = load_manifest(path, verify=False)
            labels = manifest.class_names or _onnx_names(path / manifest.model.file)
        elif path.is_file() and path.suffix.lower() == ".onnx":
            labels = _onnx_names(path)
    except (ModelError, OSError):
        labels = None
    known = [name for name in labels or [] if name]
    if detector.classes is not None:
        return [name for name in known if name in detector.classes] if known else list(detector.classes)
    return known or None


def _onnx_names(path: Path) -> list[str] | None:
    """The ``names`` metadata of an Ultralytics ONNX export, read as the YOLO detector reads it, or None."""
    from gridworker.models.errors import ModelError
    from gridworker.models.onnx_session import create_session, literal_metadata
    from gridworker.models.yolo import names_from_metadata

    try:
        return names_from_metadata(literal_metadata(create_session(path, threads=1)).get("names")) or None
    except ModelError:
        return None


def unknown_class_note(names: Iterable[str], known: Sequence[str]) -> str | None:
    """The names that are not in ``known``, each with the closest known class when one is near
    (another case, a plural, a typo), or None when every name is known.

    Example:
        >>> unknown_class_note(["Car", "lorry", "persons", "bus"], ["person", "car", "bus", "truck"])
        "'Car' (did you mean 'car'?), 'lorry', 'persons' (did you mean 'person'?)"
    """
    known_set = set(known)
    by_case = {name.casefold(): name for name in known}
    parts = []
    for name in names:
        if name in known_set:
            continue
        guess = by_case.get(name.casefold()) or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.75)), None)
        parts.append(f"{name!r} (did you mean {guess!r}?)" if guess else repr(name))
    return ", ".join(parts) or None


def rule_class_warnings(settings: Settings, classes_of: ClassesOf = model_class_names) -> list[str]:
    """One line for each rule and counting line that lists classes its camera's models (the
    rule's ``detector``, else all of the camera's) never output; each model is read once.

    Example:
        >>> settings = Settings(cameras=[{"id": "gate", "url": "rtsp://10.0.0.1/s", "zones": [{"id": "kerb",
        ...     "rules": [{"type": "illegal_parking", "classes": ["Car", "lorry"]}]}]}])
        >>> rule_class_warnings(settings, lambda det: ["person", "car", "truck"])
        ["camera 'gate' zone 'kerb' rule 'illegal_parking': classes 'Car' (did you mean 'car'?), 'lorry' are not among the classes of model(s) default: the rule never fires on them"]
    """
    models = settings.model_configs()
    cache: dict[str, Sequence[str] | None] = {}

    def known(ids: Sequence[str]) -> list[str] | None:
        out: list[str] = []
        for model_id in ids:
            if model_id not in cache:
                det = models.get(model_id)
                cache[model_id] = classes_of(det) if det is not None else None
            names = cache[model_id]
            if names is None:
                return None  # one model's classes unknown: the rule may well be right
            out.extend(names)
        return out

    lines: list[str] = []
    for cam in settings.cameras:
        for zone in cam.zones:
            for rule in zone.rules:
                ids = [rule.detector] if rule.detector is not None else cam.detectors
                have = known(ids)
                if have is None:
                    continue
                lists = [("classes", rule.classes)]
                goods = getattr(rule, "goods_classes", None)
                if isinstance(goods, list):
                    lists.append(("goods_classes", goods))
                for key, names in lists:
                    note = unknown_class_note(names, have)
                    if note:
                        lines.append(
                            f"camera {cam.id!r} zone {zone.id!r} rule {rule.rule_id!r}: {key} {note} are not among the classes"
                            f" of model(s) {', '.join(ids)}: the rule never fires on them"
                        )
        have = known(cam.detectors)
        for line in cam.lines if have is not None else []:
            note = unknown_class_note(line.classes, have or [])
            if note:
                lines.append(
                    f"camera {cam.id!r} line {line.id!r}: classes {note} are not among the classes of model(s)"
                    f" {', '.join(cam.detectors)}: the line never counts them"
                )
    return lines
