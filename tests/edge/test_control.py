"""Parsing of control messages against control.schema.json."""

from __future__ import annotations

import pytest

from edge.control import MAX_CONTROL_BYTES, ControlCommand, ControlMessageError, parse_control


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"command": "pause"}', ControlCommand("pause")),
        (b'{"command": "resume", "request_id": "a.b:c-1"}', ControlCommand("resume", None, "a.b:c-1")),
        (b'{"command": "consent", "granted": false}', ControlCommand("consent", False)),
        (b'{"schema": "expresso-edge/control", "version": 2, "command": "erase"}', ControlCommand("erase")),
    ],
)
def test_valid_commands_parse(payload: bytes, expected: ControlCommand) -> None:
    assert parse_control(payload) == expected


@pytest.mark.parametrize(
    ("payload", "message", "request_id"),
    [
        (b"\xff\xfe", "not UTF-8 JSON", None),
        (b'{"command": "erase", "version": 1, "request_id": "r9"}', "version: 2 was expected", "r9"),
        (b'{"command": "consent", "granted": "yes"}', "is not of type 'boolean'", None),
        (b'{"command": "pause", "request_id": "has space"}', "does not match", None),
        (b" " * (MAX_CONTROL_BYTES + 1), "exceeds", None),
        (b"[" * 2048 + b"]" * 2048, "not UTF-8 JSON", None),  # nesting deep enough to overflow the decoder
    ],
)
def test_invalid_commands_name_the_problem(payload: bytes, message: str, request_id: str | None) -> None:
    with pytest.raises(ControlMessageError, match=message) as caught:
        parse_control(payload)
    assert caught.value.request_id == request_id and caught.value.fix


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        (b'{"command": "pause", "granted": true}', "'granted' is allowed only with the consent command"),
        (
            b'{"granted": false}',
            "(top level): 'command' is a required property; 'granted' is allowed only with the consent command",
        ),
    ],
)
def test_granted_outside_consent_is_named_plainly(payload: bytes, errors: str) -> None:
    with pytest.raises(ControlMessageError) as caught:
        parse_control(payload)
    assert caught.value.message == f"invalid control message: {errors}"
