"""The shipped contract is usable by tools: $ids resolve from the package alone, every object has a title (so
generated models get names), and the AsyncAPI document declares its security schemes and correlation ids."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from summary_factory import summary_document

from edge.schemas import NAMES, asyncapi_path, load_schema, registry


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every subschema whose type includes "object", with its path."""
    found = []
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "object" or (isinstance(kind, list) and "object" in kind):
            found.append((path, node))
        for key, value in node.items():
            found += _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _objects(value, f"{path}/{index}")
    return found


def test_every_object_of_every_schema_has_a_unique_enough_title() -> None:
    for name in NAMES:
        objects = _objects(load_schema(name))
        untitled = [path for path, node in objects if not node.get("title")]
        assert not untitled, (name, untitled)
        titles = [node["title"] for path, node in objects if not path.startswith("/$defs")]
        assert len(titles) == len(set(titles)), name  # two nested types of one schema never share a name


def test_ids_and_references_resolve_from_the_package_registry() -> None:
    shipped = registry()
    for name in NAMES:
        schema_id = load_schema(name)["$id"]
        assert shipped.resolver().lookup(schema_id).contents is load_schema(name)
        assert schema_id.startswith("urn:expresso-edge:schema:")  # no host to fetch: nothing to go stale
    wrapper = {"$ref": "urn:expresso-edge:schema:summary:v2"}  # what an integrator's own schema would say
    validator = Draft202012Validator(wrapper, registry=shipped)
    assert validator.is_valid(summary_document())
    assert not validator.is_valid({**summary_document(), "version": 1})
    model = shipped.resolver().lookup("urn:expresso-edge:schema:status:v2#/$defs/model").contents
    assert model["title"] == "ModelIdentity"


def test_asyncapi_declares_security_correlation_ids_and_message_titles() -> None:
    document = yaml.safe_load(asyncapi_path().read_text())
    schemes = document["components"]["securitySchemes"]
    assert {scheme["type"] for scheme in schemes.values()} == {"userPassword", "X509"}
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in document["servers"]["broker"]["security"]] == list(schemes)
    correlation = document["components"]["correlationIds"]
    messages = document["components"]["messages"]
    assert correlation["controlRequest"]["location"] == "$message.payload#/request_id"
    assert messages["control"]["correlationId"]["$ref"] == "#/components/correlationIds/controlRequest"
    assert messages["status"]["correlationId"]["$ref"] == "#/components/correlationIds/statusReply"
    status = load_schema("status")["properties"]["control"]["properties"]
    assert "request_id" in status  # what statusReply points at exists
    assert all(message.get("title") for message in messages.values())


def test_message_ids_are_the_component_keys_and_the_document_names_every_one() -> None:
    document = yaml.safe_load(asyncapi_path().read_text())
    messages = document["components"]["messages"]
    assert all(message["name"] == key for key, message in messages.items())
    listed = re.search(r"components\.messages \(([^)]*)\)", document["info"]["description"])
    assert listed is not None and {name.strip() for name in listed[1].split(",")} == set(messages)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    assert not duplicated, f"duplicate keys {duplicated}: JSON parsers keep one silently, YAML-based tools refuse"
    return dict(pairs)


def test_no_schema_repeats_a_key_in_one_object() -> None:
    # two branches each added "title" to one object: Python kept the last, the AsyncAPI parser refused the file
    for path in asyncapi_path().parent.glob("*.schema.json"):
        json.loads(path.read_text(), object_pairs_hook=_refuse_duplicate_keys)
