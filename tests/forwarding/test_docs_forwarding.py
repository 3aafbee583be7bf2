"""The configuration example in docs/forwarding.md is a valid ``forwarding:`` section, and
the config module's example too (docs that drift fail here)."""

import re
import textwrap
from pathlib import Path

import yaml

from gridworker.delivery import ForwardingConfig, Gb28181Destination, MqttDestination, WebhookDestination
from gridworker.delivery import config as config_module

DOC = Path(__file__).resolve().parents[2] / "docs" / "forwarding.md"


def _forwarding_blocks(text):
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("forwarding:")]


def test_doc_example_validates():
    (block,) = _forwarding_blocks(DOC.read_text(encoding="utf-8"))
    cfg = ForwardingConfig.model_validate(yaml.safe_load(block)["forwarding"])
    kinds = [type(d) for d in cfg.destinations]
    assert kinds == [WebhookDestination, MqttDestination, Gb28181Destination]
    assert cfg.destinations[2].events == ["workorder.detect"]
    assert "a long random string" in cfg.secrets()


def test_module_example_validates():
    doc = config_module.__doc__
    block = textwrap.dedent(doc.split("Example (YAML)::", 1)[1])
    cfg = ForwardingConfig.model_validate(yaml.safe_load(block)["forwarding"])
    assert [d.name for d in cfg.destinations] == ["city-dispatch", "bus", "platform"]
