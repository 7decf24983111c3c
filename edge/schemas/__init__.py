"""JSON Schemas shipped with the package, and validation against them with readable errors.

Each schema's ``$id`` is ``urn:expresso-edge:schema:<name>:v<major>``; :func:`registry` resolves those ids (and
any ``$ref`` to them) from the package's own files, with no network. The AsyncAPI 3 document ``asyncapi.yaml``
lies beside the schemas and references them by relative path (:func:`asyncapi_path`).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

NAMES = ("summary", "health", "status", "control", "control-reply", "manifest")
CONTRACT_VERSION = 2
"""Major version of the MQTT contract: every payload's ``version`` and the ``v2`` topic level (docs/mqtt-contract.md,
"Migrating from v1": version 2 names each summary's scale, v1 assumed BDI-II)."""
TOPIC_LEVEL = f"v{CONTRACT_VERSION}"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the schema ``<name>.schema.json`` shipped in :mod:`edge.schemas`."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def registry() -> Registry[Any]:
    """Every shipped schema under its ``$id``, for resolving references without the network."""
    resources_ = [Resource.from_contents(load_schema(name), default_specification=DRAFT202012) for name in NAMES]
    return Registry().with_resources((resource.id() or "", resource) for resource in resources_)


def asyncapi_path() -> Path:
    """The AsyncAPI 3 document installed with the package (its ``$ref``s name the schema files beside it)."""
    return Path(str(resources.files(__package__).joinpath("asyncapi.yaml")))


def schema_errors(document: Any, name: str) -> list[str]:
    """Every way ``document`` breaks schema ``name``, as ``path: message`` lines (empty when valid)."""
    validator = Draft202012Validator(load_schema(name), registry=registry(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        lines.append(f"{where}: {error.message}")
    return lines
