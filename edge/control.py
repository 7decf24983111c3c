"""Control messages from integrators (``<prefix>/v1/<pseudonym>/control``): pause, resume, consent, erase.

A message is JSON like ``{"command": "consent", "granted": true, "request_id": "r-17"}`` and is validated against
``edge/schemas/control.schema.json``. Anything else is rejected with a :class:`ControlMessageError` that the
reporter publishes on the status topic; a bad message never stops the daemon.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from edge.errors import ExpressoError
from edge.schemas import schema_errors

MAX_CONTROL_BYTES = 4096
Command = Literal["pause", "resume", "consent", "erase"]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
GRANTED_ONLY_WITH_CONSENT = "'granted' is allowed only with the consent command"


class ControlMessageError(ExpressoError):
    """A control message was malformed, unknown or not allowed; ``request_id`` is echoed when it was readable."""

    def __init__(self, message: str, *, fix: str, request_id: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.request_id = request_id


@dataclass(frozen=True)
class ControlCommand:
    """A validated control command."""

    command: Command
    granted: bool | None = None
    request_id: str | None = None


def parse_control(payload: bytes, *, retained: bool = False) -> ControlCommand:
    """Validate one control message; raises :class:`ControlMessageError` naming what is wrong."""
    fix = 'publish JSON like {"command": "pause"} or {"command": "consent", "granted": true} (not retained)'
    if len(payload) > MAX_CONTROL_BYTES:
        raise ControlMessageError(f"control message of {len(payload)} bytes exceeds {MAX_CONTROL_BYTES}", fix=fix)
    try:
        document: Any = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # RecursionError: [[[[...]]]]
        raise ControlMessageError(f"control message is not UTF-8 JSON ({error})", fix=fix) from error
    request_id = _request_id_of(document)
    if retained:
        raise ControlMessageError(
            "retained control message ignored (it would be replayed on every reconnect)",
            fix="publish control messages with retain=false and clear the retained one with an empty payload",
            request_id=request_id,
        )
    errors = _control_errors(document)
    if errors:
        raise ControlMessageError("invalid control message: " + "; ".join(errors), fix=fix, request_id=request_id)
    return ControlCommand(
        command=cast(Command, document["command"]), granted=document.get("granted"), request_id=request_id
    )


def _control_errors(document: Any) -> list[str]:
    """Schema errors, with ``granted`` outside a consent command named plainly (the schema says ``not required``)."""
    if isinstance(document, dict) and "granted" in document and document.get("command") != "consent":
        rest = {key: value for key, value in document.items() if key != "granted"}
        return [*schema_errors(rest, "control"), GRANTED_ONLY_WITH_CONSENT]
    return schema_errors(document, "control")


def _request_id_of(document: Any) -> str | None:
    if isinstance(document, dict):
        value = document.get("request_id")
        if isinstance(value, str) and _REQUEST_ID.match(value):
            return value
    return None
