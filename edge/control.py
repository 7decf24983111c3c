"""Control messages from integrators (``<prefix>/v2/<pseudonym>/control``): pause, resume, consent, erase.

A message is JSON like ``{"command": "consent", "granted": true, "request_id": "r-17"}`` and is validated against
``edge/schemas/control.schema.json``. Anything else is rejected with a :class:`ControlMessageError` that the
reporter publishes on the status topic; a bad message never stops the daemon.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from edge.errors import ExpressoError
from edge.schemas import schema_errors

MAX_CONTROL_BYTES = 4096
Command = Literal["pause", "resume", "consent", "erase"]
Action = Literal["pause", "resume", "grant", "revoke", "erase"]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
GRANTED_ONLY_WITH_CONSENT = "'granted' is allowed only with the consent command"


class ControlMessageError(ExpressoError):
    """A control message was malformed, unknown or not allowed; ``request_id`` and ``command`` are echoed when
    they were readable; ``reason`` is a short code counted in health (``malformed``, ``retained``, ``policy``, ...)."""

    def __init__(
        self,
        message: str,
        *,
        fix: str,
        request_id: str | None = None,
        command: str | None = None,
        reason: str = "malformed",
    ) -> None:
        super().__init__(message, fix=fix)
        self.request_id = request_id
        self.command = command
        self.reason = reason


@dataclass(frozen=True)
class ControlCommand:
    """A validated control command."""

    command: Command
    granted: bool | None = None
    request_id: str | None = None
    message: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The whole validated message (its ``auth`` block, if any, is checked against it)."""

    @property
    def action(self) -> Action:
        """What the command does, as the control policy names it (consent splits into grant and revoke)."""
        if self.command == "consent":
            return "grant" if self.granted else "revoke"
        return self.command


def parse_control(payload: bytes, *, retained: bool = False) -> ControlCommand:
    """Validate one control message; raises :class:`ControlMessageError` naming what is wrong."""
    fix = 'publish JSON like {"command": "pause"} or {"command": "consent", "granted": false} (not retained)'
    if len(payload) > MAX_CONTROL_BYTES:
        raise ControlMessageError(f"control message of {len(payload)} bytes exceeds {MAX_CONTROL_BYTES}", fix=fix)
    try:
        document: Any = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # RecursionError: [[[[...]]]]
        raise ControlMessageError(f"control message is not UTF-8 JSON ({error})", fix=fix) from error
    request_id, command = _request_id_of(document), _command_of(document)
    if retained:
        raise ControlMessageError(
            "retained control message ignored (it would be replayed on every reconnect)",
            fix="publish control messages with retain=false and clear the retained one with an empty payload",
            request_id=request_id,
            command=command,
            reason="retained",
        )
    errors = _control_errors(document)
    if errors:
        raise ControlMessageError(
            "invalid control message: " + "; ".join(errors), fix=fix, request_id=request_id, command=command
        )
    return ControlCommand(
        command=cast(Command, document["command"]),
        granted=document.get("granted"),
        request_id=request_id,
        message=document,
    )


def _control_errors(document: Any) -> list[str]:
    """Schema errors, with ``granted`` outside a consent command named plainly (the schema says ``not required``)."""
    if isinstance(document, dict) and "granted" in document and document.get("command") != "consent":
        rest = {key: value for key, value in document.items() if key != "granted"}
        return [*schema_errors(rest, "control"), GRANTED_ONLY_WITH_CONSENT]
    return schema_errors(document, "control")


def _command_of(document: Any) -> str | None:
    """The command a message names, when it is one this device knows (so a rejection can name it)."""
    value = document.get("command") if isinstance(document, dict) else None
    return value if value in ("pause", "resume", "consent", "erase") else None


def _request_id_of(document: Any) -> str | None:
    if isinstance(document, dict):
        value = document.get("request_id")
        if isinstance(value, str) and _REQUEST_ID.match(value):
            return value
    return None


class RejectionThrottle:
    """Bounds what junk control traffic costs: at most ``burst`` rejections are answered and logged per
    ``window_s`` (a token bucket); the others are only counted in ``suppressed`` (published in health)."""

    def __init__(self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._rate = burst / window_s
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0
        """Rejections neither answered nor logged since start."""
        self._unreported = 0

    def allow(self) -> bool:
        """Whether this rejection may be answered and logged (else it is counted as suppressed)."""
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.suppressed += 1
        self._unreported += 1
        return False

    def take_unreported(self) -> int:
        """Suppressed rejections not yet mentioned in the log (and reset that count)."""
        count, self._unreported = self._unreported, 0
        return count
