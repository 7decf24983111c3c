"""Signed control messages: real Ed25519 keys, a real state directory, every refusal reason."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from edge.control import ControlMessageError, RejectionThrottle, parse_control
from edge.trust.control_auth import NONCES_NAME, ControlAuthenticator, ControlAuthError, sign_control
from edge.trust.keys import SecretKey, generate
from edge.trust.policy import ControlGuard
from edge.trust.settings import ControlPolicy, TrustSettings

DEVICE, OTHER = "0123456789abcdef0123", "fedcba9876543210fedc"
NOW = 1_800_000_000.0


@pytest.fixture
def operator() -> SecretKey:
    return generate()


def _authenticator(operator: SecretKey, state: Path, now: float = NOW) -> ControlAuthenticator:
    return ControlAuthenticator(
        [operator.public], device=DEVICE, state_dir=state, max_clock_skew_s=60, max_validity_s=3600,
        clock=lambda: now,
    )  # fmt: skip


def _signed(operator: SecretKey, message: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    options = {"device": DEVICE, "ttl_s": 300.0, "now": NOW, **kwargs}
    return sign_control(message, private_key=operator, key_id=operator.public.id_text, **options)


def test_the_signature_covers_the_documented_canonical_bytes(operator: SecretKey) -> None:
    signed = _signed(operator, {"command": "pause", "request_id": "p-1"})
    auth = dict(signed["auth"])
    signature = base64.b64decode(auth.pop("signature"))
    unsigned = {"command": "pause", "request_id": "p-1", "auth": auth}
    data = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    operator.public.key.verify(signature, data)  # raises if the device's rule differed from the documented one
    assert auth["issued_at"] == "2027-01-15T08:00:00Z" and auth["expires_at"] == "2027-01-15T08:05:00Z"
    assert len(auth["nonce"]) == 32 and auth["device"] == DEVICE
    assert parse_control(json.dumps(signed).encode()).message == signed  # the schema accepts the auth block


def test_a_valid_message_passes_once_and_its_replay_is_refused_even_after_a_restart(
    operator: SecretKey, tmp_path: Path
) -> None:
    signed = _signed(operator, {"command": "erase"})
    assert _authenticator(operator, tmp_path).verify(signed) == operator.public.id_text
    assert stat.S_IMODE((tmp_path / NONCES_NAME).stat().st_mode) == 0o600
    with pytest.raises(ControlAuthError) as replay:
        _authenticator(operator, tmp_path).verify(signed)  # a new process, the same state directory
    assert replay.value.reason == "replay"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m, k: {**m, "command": "resume"}, "bad_signature"),
        (lambda m, k: _signed(k, {"command": "pause"}, device=OTHER), "foreign_device"),
        (lambda m, k: _signed(k, {"command": "pause"}, now=NOW - 400), "expired"),
        (lambda m, k: _signed(k, {"command": "pause"}, now=NOW + 300), "not_yet_valid"),
        (lambda m, k: _signed(k, {"command": "pause"}, ttl_s=7200), "validity_too_long"),
        (lambda m, k: _signed(generate(), {"command": "pause"}), "unknown_key"),
        (lambda m, k: {"command": "pause"}, "unsigned"),
    ],
)
def test_forged_foreign_stale_and_unknown_messages_are_refused_with_their_reason(
    operator: SecretKey, tmp_path: Path, change: Any, reason: str
) -> None:
    message = change(_signed(operator, {"command": "pause"}), operator)
    with pytest.raises(ControlAuthError) as refused:
        _authenticator(operator, tmp_path).verify(message)
    assert refused.value.reason == reason


def test_a_raw_cryptography_key_signs_too(tmp_path: Path, operator: SecretKey) -> None:
    raw = Ed25519PrivateKey.from_private_bytes(operator.key.private_bytes_raw())
    signed = sign_control({"command": "pause"}, private_key=raw, key_id=operator.public.id_text, device=DEVICE,
                          ttl_s=60, now=NOW)  # fmt: skip
    assert _authenticator(operator, tmp_path).verify(signed) == operator.public.id_text


def _guard(tmp_path: Path, **trust: Any) -> ControlGuard:
    return ControlGuard(TrustSettings(**trust), device=DEVICE, state_dir=tmp_path, clock=lambda: NOW)


def test_default_policy_refuses_a_remote_grant_and_admits_the_rest_unsigned(tmp_path: Path) -> None:
    guard = _guard(tmp_path)
    with pytest.raises(ControlMessageError, match=r"trust\.control\.grant = 'refuse'") as refused:
        guard.admit(parse_control(b'{"command": "consent", "granted": true, "request_id": "g-1"}'))
    assert refused.value.command == "consent" and refused.value.request_id == "g-1"
    assert "python -m edge consent" in str(refused.value) and refused.value.reason == "policy"
    for payload in (b'{"command": "pause"}', b'{"command": "consent", "granted": false}', b'{"command": "erase"}'):
        assert guard.admit(parse_control(payload)) is None


def test_with_operator_keys_every_remote_command_must_be_signed(tmp_path: Path, operator: SecretKey) -> None:
    guard = _guard(tmp_path, operator_keys=[operator.public.encoded()])
    with pytest.raises(ControlMessageError, match="operator_keys is set") as refused:
        guard.admit(parse_control(b'{"command": "pause"}'))
    assert refused.value.reason == "unsigned"
    signed = _signed(operator, {"command": "pause"})
    assert guard.admit(parse_control(json.dumps(signed).encode())) == operator.public.id_text


def test_a_signed_rule_without_operator_keys_is_a_configuration_error(tmp_path: Path) -> None:
    # accepted before, it refused every remote erase forever with no hint in check-config
    with pytest.raises(ValidationError, match=r"control\.erase = 'signed' needs trust\.operator_keys"):
        TrustSettings(control=ControlPolicy(erase="signed"))


def test_a_signed_rule_with_operator_keys_needs_a_signature(tmp_path: Path, operator: SecretKey) -> None:
    guard = _guard(tmp_path, operator_keys=[operator.public.encoded()], control=ControlPolicy(erase="signed"))
    with pytest.raises(ControlMessageError, match=r"not signed \(rule trust\.control\.erase = 'signed'\)"):
        guard.admit(parse_control(b'{"command": "erase"}'))
    assert guard.admit(parse_control(json.dumps(_signed(operator, {"command": "erase"})).encode()))


def test_the_throttle_answers_a_burst_then_counts_the_rest() -> None:
    now = [0.0]
    throttle = RejectionThrottle(burst=3, window_s=3.0, clock=lambda: now[0])
    assert [throttle.allow() for _ in range(10)] == [True] * 3 + [False] * 7
    assert throttle.suppressed == 7 and throttle.take_unreported() == 7 and throttle.take_unreported() == 0
    now[0] = 1.0  # one token back per second
    assert throttle.allow() and not throttle.allow()


def test_a_signed_erase_cannot_be_replayed_after_it_wiped_the_state_directory(
    tmp_path: Path, operator: SecretKey
) -> None:
    from summary_factory import IDENTITY

    from edge.control import ControlCommand
    from edge.publish import MqttSettings, PrivacySettings, Reporter

    def device() -> Reporter:
        trust = TrustSettings(operator_keys=[operator.public.encoded()])
        return Reporter(MqttSettings(enabled=False), PrivacySettings(consent="granted"), tmp_path, IDENTITY,
                        trust=trust)  # fmt: skip

    reporter = device()
    signed = sign_control({"command": "erase"}, private_key=operator, key_id=operator.public.id_text,
                          device=reporter.pseudonym, ttl_s=600)  # fmt: skip
    payload = json.dumps(signed).encode()
    command = reporter.control.screen(payload, False)
    assert isinstance(command, ControlCommand)
    reporter.apply_control(command)
    assert reporter.consent.granted is False and (tmp_path / NONCES_NAME).is_file()  # kept through the erase
    replayed = device().control.screen(payload, False)  # after a restart, too
    assert isinstance(replayed, ControlMessageError) and replayed.reason == "replay"


def test_the_operator_command_prints_a_message_the_device_accepts(tmp_path: Path, operator: SecretKey) -> None:
    import subprocess
    import sys

    from edge.trust.keys import write_key_pair

    secret, _ = write_key_pair(operator, tmp_path / "operator", role="operator")
    command = [sys.executable, "-m", "edge", "sign-control", "revoke", "--key", str(secret), "--device", DEVICE]
    printed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert printed.returncode == 0, printed.stderr
    message = parse_control(printed.stdout.strip().encode())
    assert message.action == "revoke" and message.request_id is not None
    authenticator = ControlAuthenticator([operator.public], device=DEVICE, state_dir=tmp_path / "state",
                                         max_clock_skew_s=60, max_validity_s=3600)  # fmt: skip
    assert authenticator.verify(message.message) == operator.public.id_text
    wrong = subprocess.run([*command[:-1], "not-a-device"], capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 2 and "is not a pseudonym" in wrong.stderr


def test_a_device_clock_behind_by_less_than_the_allowed_skew_still_accepts(operator: SecretKey, tmp_path: Path) -> None:
    ahead = _signed(operator, {"command": "pause"}, now=NOW + 50)  # the operator's clock runs 50 s ahead (skew 60)
    assert _authenticator(operator, tmp_path).verify(ahead) == operator.public.id_text
    with pytest.raises(ControlAuthError) as refused:
        _authenticator(operator, tmp_path / "b").verify(_signed(operator, {"command": "pause"}, now=NOW + 70))
    assert refused.value.reason == "not_yet_valid" and "in the future" in refused.value.message


def test_nonces_that_cannot_be_stored_are_kept_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edge.trust.control_auth import NONCES_NAME, NonceStore

    nonces = NonceStore(tmp_path)
    (tmp_path / NONCES_NAME).mkdir()  # the file's place taken: every write fails
    nonces.add("ab" * 16, expires=NOW + 60, now=NOW)
    assert nonces.seen("ab" * 16) and "kept in memory" in caplog.text
