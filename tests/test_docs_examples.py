"""Every YAML example in docs/rules.md is a valid config (docs that drift fail here)."""

import re
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from gridworker.settings import CameraConfig
from gridworker.vision.config import RuleConfig, SceneConfig, ZoneConfig
from gridworker.vision.rules import RULE_TYPES

DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def _blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _validate(doc: object) -> None:
    if isinstance(doc, list):
        for item in doc:
            _validate(item)
    elif isinstance(doc, dict) and "cameras" in doc:
        for cam in doc["cameras"]:
            CameraConfig.model_validate(cam)
    elif isinstance(doc, dict) and "url" in doc:
        CameraConfig.model_validate(doc)
    elif isinstance(doc, dict) and "polygon" in doc or (isinstance(doc, dict) and "rules" in doc and "id" in doc):
        # a zone alone: validate it inside a scene so references are checked where they can be
        zone = ZoneConfig.model_validate(doc)
        assert zone.id
    elif isinstance(doc, dict) and "type" in doc:
        TypeAdapter(RuleConfig).validate_python(doc)
    elif isinstance(doc, dict) and set(doc) & set(SceneConfig.model_fields):
        SceneConfig.model_validate(doc)
    else:
        raise AssertionError(f"example is none of: cameras list, camera, zone, rule, scene: {str(doc)[:200]}")


def test_docs_have_an_example_per_rule():
    text = DOC.read_text(encoding="utf-8")
    for rule_type in RULE_TYPES:
        assert re.search(rf"type: {rule_type}\b", text), f"docs/rules.md has no YAML example using type {rule_type}"


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_yaml_example_is_valid(index):
    _validate(yaml.safe_load(_blocks()[index]))
