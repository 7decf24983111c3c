"""The integrator documents agree with the code: AsyncAPI channels, referenced schemas and examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from edge.control import parse_control
from edge.publish.mqtt import Topics
from edge.schemas import load_schema

ROOT = Path(__file__).resolve().parents[3]


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    return document


def test_asyncapi_channels_match_the_topics_the_code_uses() -> None:
    document = _asyncapi()
    assert document["asyncapi"].startswith("2.6")
    topics = Topics.for_device("{prefix}", "{device}")
    assert set(document["channels"]) == {topics.status, topics.summary, topics.health, topics.control}
    assert "publish" in document["channels"][topics.control]
    assert document["channels"][topics.status]["subscribe"]["bindings"]["mqtt"] == {"qos": 1, "retain": True}


def test_asyncapi_payloads_reference_the_shipped_schemas_and_examples_parse() -> None:
    messages = _asyncapi()["components"]["messages"]
    for name, message in messages.items():
        ref = message["payload"]["$ref"]
        assert (ROOT / "docs" / ref).resolve() == (ROOT / "edge" / "schemas" / f"{name}.schema.json").resolve()
        assert load_schema(name)["properties"]["schema"]["const"] == f"expresso-edge/{name}"
    assert set(messages) == {"status", "summary", "health", "control"}
    examples = messages["control"]["examples"]
    parsed = [parse_control(json.dumps(example["payload"]).encode()) for example in examples]
    assert parsed and [c.command for c in parsed] == [e["payload"]["command"] for e in examples]


def test_contract_doc_names_every_topic_and_the_dedup_rule() -> None:
    text = (ROOT / "docs" / "mqtt-contract.md").read_text()
    for suffix in ("status", "summary", "health", "control"):
        assert re.search(rf"<prefix>/v1/<device>/{suffix}", text)
    assert "De-duplicate by `message_id`" in text and "not a diagnostic device" in text
