"""JSON Schemas shipped with the package, and validation against them with readable errors."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the schema ``<name>.schema.json`` shipped in :mod:`edge.schemas`."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def schema_errors(document: Any, name: str) -> list[str]:
    """Every way ``document`` breaks schema ``name``, as ``path: message`` lines (empty when valid)."""
    validator = Draft202012Validator(load_schema(name), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        lines.append(f"{where}: {error.message}")
    return lines
