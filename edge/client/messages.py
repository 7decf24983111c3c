"""What arrived, checked: the topic names a device and a message kind, the payload is JSON valid against the
shipped schema of that kind and names the same device. Invalid messages are kept aside, never dropped silently."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from edge.schemas import TOPIC_LEVEL, schema_errors

KINDS = ("summary", "status", "health")
"""What devices publish (``control`` is what integrators publish)."""
TOPIC = re.compile(rf"^(?P<prefix>.+)/{TOPIC_LEVEL}/(?P<device>[^/]+)/(?P<kind>[a-z]+)$")


@dataclass(frozen=True)
class Checked:
    """One received message and what is wrong with it (``errors`` empty when valid)."""

    topic: str
    payload: bytes
    kind: str | None
    device: str | None
    document: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the topic, the JSON and the schema all agree."""
        return not self.errors

    @property
    def message_id(self) -> str:
        """The payload's ``message_id`` (only on valid messages)."""
        assert self.document is not None
        return str(self.document["message_id"])


def check(topic: str, payload: bytes) -> Checked:
    """Parse ``payload`` and validate it against the schema its topic names."""
    match = TOPIC.match(topic)
    if match is None or match["kind"] not in KINDS:
        return Checked(
            topic, payload, None, None, None, [f"topic {topic!r} is not <prefix>/{TOPIC_LEVEL}/<device>/{KINDS}"]
        )
    kind, device = match["kind"], match["device"]
    if not payload:
        return Checked(topic, payload, kind, device, None, ["empty payload (a cleared retained message)"])
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        return Checked(topic, payload, kind, device, None, [f"payload is not UTF-8 JSON ({error})"])
    if not isinstance(document, dict):
        return Checked(topic, payload, kind, device, None, ["payload is not a JSON object"])
    errors = schema_errors(document, kind)
    if not errors and document["device"] != device:
        errors.append(f"device: {document['device']!r} differs from the topic's {device!r}")
    return Checked(topic, payload, kind, device, document, errors)
