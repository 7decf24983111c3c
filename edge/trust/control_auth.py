"""Signed control messages: Ed25519 by an operator key over the canonical message, for one device, with an issue
time, an expiry and a nonce.

A signed message is the usual control JSON plus::

    "auth": {"key_id": "<16 hex, minisign's key id>", "device": "<pseudonym>", "issued_at": "<RFC 3339 UTC>",
             "expires_at": "<RFC 3339 UTC>", "nonce": "<32 hex>", "signature": "<base64 Ed25519 signature>"}

The signed bytes are the canonical JSON of the whole message without ``auth.signature``:
``json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()``. The device refuses an
unknown key, a bad signature, another device's message, one not yet valid (beyond ``max_clock_skew_s``), an
expired one, one valid for longer than ``max_validity_s``, and a nonce it has seen before its expiry (replay);
nonces persist in the state directory (0600) across restarts and erases.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import ConfigError
from edge.privacy.statefile import read_json, write_json_atomic
from edge.trust.keys import PublicKey, SecretKey

log = logging.getLogger(__name__)

NONCES_NAME = "control-nonces.json"
MAX_NONCES = 10_000
"""Nonces remembered at most (only validly signed messages are stored, so only operators can fill it)."""


class ControlAuthError(Exception):
    """A signed (or unsigned) control message is refused; ``reason`` is a short code counted in health."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def rfc3339(timestamp: float) -> str:
    """``timestamp`` as RFC 3339 UTC with a ``Z`` (whole seconds)."""
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with an explicit offset; ValueError otherwise."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return parsed.timestamp()


def canonical(message: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the message without ``auth.signature``, as canonical JSON."""
    document = copy.deepcopy(dict(message))
    auth = document.get("auth")
    if isinstance(auth, dict):
        auth.pop("signature", None)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_control(
    message: dict[str, Any],
    *,
    private_key: Ed25519PrivateKey | SecretKey,
    key_id: str,
    device: str,
    ttl_s: float,
    now: float | None = None,
) -> dict[str, Any]:
    """A copy of ``message`` with an ``auth`` block signed by ``private_key`` for ``device``, valid ``ttl_s``."""
    issued = time.time() if now is None else now
    signed = {key: value for key, value in message.items() if key != "auth"}
    signed["auth"] = {
        "key_id": key_id,
        "device": device,
        "issued_at": rfc3339(issued),
        "expires_at": rfc3339(issued + ttl_s),
        "nonce": secrets.token_hex(16),
    }
    key = private_key.key if isinstance(private_key, SecretKey) else private_key
    signed["auth"]["signature"] = base64.b64encode(key.sign(canonical(signed))).decode("ascii")
    return signed


class NonceStore:
    """Nonces of accepted signed messages until they expire, in ``control-nonces.json`` (0600)."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / NONCES_NAME
        self._lock = threading.Lock()
        stored = read_json(self._path, fix=f"delete {self._path}: signed messages seen before could be replayed once")
        self._seen: dict[str, float] = {
            str(k): float(v) for k, v in (stored or {}).items() if isinstance(v, (int, float))
        }

    def seen(self, nonce: str) -> bool:
        """Whether ``nonce`` was accepted before (and has not expired since)."""
        with self._lock:
            return nonce in self._seen

    def add(self, nonce: str, expires: float, now: float) -> None:
        """Remember ``nonce`` until ``expires``; forgets expired ones and, past MAX_NONCES, the soonest to expire."""
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v >= now}
            self._seen[nonce] = expires
            if len(self._seen) > MAX_NONCES:
                keep = sorted(self._seen.items(), key=lambda item: item[1])[-MAX_NONCES:]
                self._seen = dict(keep)
            self._write()

    def persist(self) -> None:
        """Write what is remembered again (after an erase wiped the state directory)."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        try:
            write_json_atomic(self._path, dict(self._seen))
        except ConfigError as error:  # kept in memory: replays stay refused until a restart
            log.error(
                "cannot store control nonces in %s (%s); they are kept in memory until a restart", self._path, error
            )


class ControlAuthenticator:
    """Verifies the ``auth`` block of control messages for one device."""

    def __init__(
        self,
        keys: Sequence[PublicKey],
        *,
        device: str,
        state_dir: Path,
        max_clock_skew_s: float,
        max_validity_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = {key.id_text: key for key in keys}
        self._device = device
        self._skew = max_clock_skew_s
        self._max_validity = max_validity_s
        self._clock = clock
        self.nonces = NonceStore(state_dir)

    @property
    def keys_configured(self) -> bool:
        """Whether any operator key is trusted (then unsigned messages are refused)."""
        return bool(self._keys)

    def verify(self, message: Mapping[str, Any]) -> str:
        """The key id that validly signed ``message``; :class:`ControlAuthError` naming why not otherwise."""
        auth = message.get("auth")
        if not isinstance(auth, dict):
            raise ControlAuthError("unsigned", "the message is not signed")
        key = self._keys.get(str(auth.get("key_id")))
        if key is None:
            trusted = ", ".join(sorted(self._keys)) or "none configured"
            raise ControlAuthError("unknown_key", f"key {auth.get('key_id')!r} is not trusted (trusted: {trusted})")
        try:
            signature = base64.b64decode(str(auth.get("signature", "")), validate=True)
            issued, expires = parse_rfc3339(str(auth["issued_at"])), parse_rfc3339(str(auth["expires_at"]))
        except (KeyError, ValueError, binascii.Error) as error:
            raise ControlAuthError("malformed_auth", f"auth block cannot be read ({error})") from error
        if not key.verifies(signature, canonical(message)):
            raise ControlAuthError("bad_signature", f"signature does not verify with key {key.id_text}")
        if auth.get("device") != self._device:
            raise ControlAuthError("foreign_device", f"signed for device {auth.get('device')!r}, not this one")
        now = self._clock()
        if issued > now + self._skew:
            raise ControlAuthError("not_yet_valid", f"issued_at {auth['issued_at']} is in the future of this device")
        if now > expires:
            raise ControlAuthError("expired", f"expired at {auth['expires_at']}")
        if expires - issued > self._max_validity:
            raise ControlAuthError(
                "validity_too_long", f"valid {expires - issued:.0f} s, longer than trust.max_validity_s"
            )
        nonce = str(auth.get("nonce"))
        if self.nonces.seen(nonce):
            raise ControlAuthError("replay", f"nonce {nonce[:8]}... was used before (replayed message)")
        self.nonces.add(nonce, expires, now)
        return key.id_text
