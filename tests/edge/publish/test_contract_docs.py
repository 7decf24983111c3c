"""The integrator documents agree with the code: AsyncAPI channels, referenced schemas, examples, versions,
reject reasons and quality figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.aggregate import INVALID_SCORE, reason_key
from edge.bundle import load_bundle
from edge.control import parse_control
from edge.face.config import FaceConfig
from edge.face.quality import FRAME_REASONS, FrameQuality
from edge.face.windows import window_quality
from edge.publish.mqtt import Topics
from edge.publish.payloads import VERSION
from edge.schemas import asyncapi_path, load_schema, schema_errors
from edge.scoring import window_quality_figures

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = ROOT / "docs" / "mqtt-contract.md"
OUTGOING = ("summary", "health", "status")


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(asyncapi_path().read_text())
    return document


def test_asyncapi_channels_match_the_topics_the_code_uses() -> None:
    document = _asyncapi()
    assert document["asyncapi"].startswith("3.")
    topics = Topics.for_device("{prefix}", "{device}")
    channels = document["channels"]
    reply = topics.control.rsplit("/", 1)[0] + "/reply/{request}"
    assert topics.is_reply_topic(reply.replace("{request}", "r-1"))  # where the device publishes replies
    assert {channel["address"] for channel in channels.values()} == {
        topics.status, topics.summary, topics.health, topics.control, reply
    }  # fmt: skip
    operations = document["operations"]
    assert {(op["action"], op["channel"]["$ref"].rsplit("/", 1)[1]) for op in operations.values()} == {
        ("send", "status"), ("send", "summary"), ("send", "health"), ("receive", "control")
    }  # fmt: skip
    assert operations["sendStatus"]["bindings"]["mqtt"]["qos"] == 1
    assert operations["sendStatus"]["bindings"]["mqtt"]["retain"] is True
    assert operations["receiveControl"]["reply"]["channel"]["$ref"] == "#/channels/controlReply"


def test_asyncapi_payloads_reference_the_shipped_schemas_and_examples_parse() -> None:
    messages = _asyncapi()["components"]["messages"]
    for name, message in messages.items():
        ref = message["payload"]["$ref"]
        assert (asyncapi_path().parent / ref).resolve() == (ROOT / "edge" / "schemas" / f"{name}.schema.json").resolve()
        assert message["name"] == name  # AsyncAPI 3's message id is the key; the name repeats it
        assert load_schema(name)["properties"]["schema"]["const"] == f"expresso-edge/{name}"
    assert set(messages) == {"status", "summary", "health", "control", "control-reply"}
    examples = messages["control"]["examples"]
    parsed = [parse_control(json.dumps(example["payload"]).encode()) for example in examples]
    assert parsed and [c.command for c in parsed] == [e["payload"]["command"] for e in examples]


def test_contract_doc_names_every_topic_and_the_dedup_rule() -> None:
    text = (ROOT / "docs" / "mqtt-contract.md").read_text()
    for suffix in ("status", "summary", "health", "control"):
        assert re.search(rf"<prefix>/v2/<device>/{suffix}", text)
    assert "De-duplicate by `message_id`" in text and "not a diagnostic device" in text


def _backticked_between(text: str, start: str, end: str) -> set[str]:
    """The `code` spans of ``text`` from ``start`` up to the following ``end``."""
    head = text.index(start) + len(start)
    return set(re.findall(r"`([a-z_]+)`", text[head : text.index(end, head)]))


def test_every_example_in_the_contract_and_asyncapi_validates_against_its_schema() -> None:
    blocks = re.findall(r"```json\n(.*?)```", CONTRACT.read_text(), re.S)
    examples = [json.loads(block) for block in blocks]
    assert {example["schema"] for example in examples} >= {"expresso-edge/summary", "expresso-edge/status"}
    demo = load_bundle(ROOT / "edge" / "assets" / "demo_bundle").identity
    for example in examples:
        name = example["schema"].removeprefix("expresso-edge/")
        assert schema_errors(example, name) == [], name
        assert example["disclaimer"] == NOT_A_DIAGNOSTIC_DEVICE
        assert example["model"] == demo  # the examples show the bundled demo model: rebuilt, they follow
    for name, message in _asyncapi()["components"]["messages"].items():
        for example in message.get("examples", []):
            assert schema_errors(example["payload"], name) == [], (name, example["name"])


def test_versions_agree_between_asyncapi_schema_ids_and_payloads() -> None:
    major = int(str(_asyncapi()["info"]["version"]).split(".")[0])
    assert major == VERSION
    for name in (*OUTGOING, "control"):
        schema = load_schema(name)
        assert schema["$id"] == f"urn:expresso-edge:schema:{name}:v{VERSION}"
        assert schema["properties"]["version"]["const"] == VERSION
        assert schema.get("additionalProperties", True) is (name != "control")  # only control rejects new fields


def test_documented_reject_reasons_are_the_ones_the_code_emits() -> None:
    face_sources = "".join(path.read_text() for path in (ROOT / "edge" / "face").glob("*.py"))
    cuts = set(re.findall(r'reject="([a-z_]+)"', face_sources))  # windows cut short, e.g. on a landmark jump
    emitted = {*FRAME_REASONS, *cuts, INVALID_SCORE, reason_key("")}
    assert "landmark_jump" in cuts and reason_key("") == "unspecified"
    documented = _backticked_between(CONTRACT.read_text(), "`windows.rejected` counts", "`quality` holds")
    assert documented == emitted
    listed = load_schema("summary")["properties"]["windows"]["properties"]["rejected"]["description"]
    assert set(re.findall(r"[a-z_]+", listed.split("):")[1].split(";")[0])) == emitted


def test_documented_quality_figures_are_the_ones_the_code_emits() -> None:
    frame = FrameQuality(face_present=True, faces=1, yaw=4.0, pitch=-3.0, brightness=120.0, contrast=40.0, blur=200.0)
    emitted = set(window_quality_figures(window_quality([frame] * 8, FaceConfig())))
    documented = _backticked_between(CONTRACT.read_text(), "`quality` holds", "`regions` holds")
    assert documented == emitted
    listed = load_schema("summary")["properties"]["quality"]["description"]
    assert set(re.findall(r"[a-z_]+", listed.split("(")[1].split(";")[0])) == emitted
