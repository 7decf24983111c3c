"""Ed25519 key pairs in minisign's file formats, so that ``minisign`` (and anything that reads it) can use them.

- Public key (``NAME.pub``): a line ``untrusted comment: ...`` and a line base64(``Ed`` + key id (8 bytes) +
  public key (32 bytes)): the ``RW...`` string minisign prints, which is also what the device configuration lists.
- Secret key (``NAME.key``): minisign's unencrypted secret key (``minisign -W``): base64(``Ed`` + kdf ``\\0\\0`` +
  ``B2`` + salt (32) + opslimit (8) + memlimit (8) + key id (8) + secret key (64: seed + public key) + BLAKE2b-256
  checksum (32) of ``Ed`` + key id + secret key). Written 0600; a group- or world-readable one is refused.

The key id is minisign's: 8 random bytes, printed as the little-endian 64-bit number in 16 upper-case hex digits.
Private keys live on the engineer's or operator's machine, never on a device.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge.errors import ConfigError

ALGORITHM = b"Ed"
_KDF_NONE = b"\0\0"
_CHECKSUM = b"B2"
_SECRET_LEN = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32
_PUBLIC_LEN = 2 + 8 + 32
UNTRUSTED = "untrusted comment: "


class KeyFileError(ConfigError):
    """A key file or key string cannot be used (exit 3, like any configuration problem)."""


def key_id_text(key_id: bytes) -> str:
    """minisign's printed form of an 8-byte key id."""
    return f"{int.from_bytes(key_id, 'little'):016X}"


@dataclass(frozen=True)
class PublicKey:
    """A trusted Ed25519 public key with its minisign key id."""

    key_id: bytes
    key: Ed25519PublicKey

    @property
    def id_text(self) -> str:
        """The key id as minisign prints it."""
        return key_id_text(self.key_id)

    def raw(self) -> bytes:
        """The 32 public key bytes."""
        return self.key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def encoded(self) -> str:
        """The ``RW...`` line of a minisign public key."""
        return base64.b64encode(ALGORITHM + self.key_id + self.raw()).decode("ascii")

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``data``."""
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SecretKey:
    """An Ed25519 private key with its minisign key id (held on an engineer's or operator's machine only)."""

    key_id: bytes
    key: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self.key_id, self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.key.sign(data)


def generate() -> SecretKey:
    """A fresh key pair with a random key id."""
    return SecretKey(secrets.token_bytes(8), Ed25519PrivateKey.generate())


def parse_public(text: str, *, origin: str = "public key") -> PublicKey:
    """A public key from its ``RW...`` line (or a whole ``.pub`` file's text)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == _SECRET_LEN and raw[:2] == ALGORITHM:  # named without a byte of it
        raise KeyFileError(
            f"{origin} is a SECRET key, which must never be on a device",
            fix="remove it from this machine if it is a device, and give the RW... line of the matching .pub file",
        )
    if len(raw) != _PUBLIC_LEN or raw[:2] != ALGORITHM:
        raise KeyFileError(
            f"{origin} is not a minisign Ed25519 public key (its last line, {len(line)} characters, is not shown: it"
            " could be a damaged secret key)",
            fix="give the RW... line of a .pub file written by `python -m export keygen` (or minisign -G)",
        )
    return PublicKey(raw[2:10], Ed25519PublicKey.from_public_bytes(raw[10:]))


def read_public(path: Path) -> PublicKey:
    """A public key from a ``.pub`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"cannot read public key {path} ({error})", fix="give a readable .pub file") from error
    return parse_public(text, origin=f"public key file {path}:")


def public_key_from_setting(value: str) -> PublicKey:
    """A configured trusted key: an ``RW...`` line, or the path of a ``.pub`` file."""
    return read_public(Path(value)) if Path(value).is_file() else parse_public(value)


def _checksum(key_id: bytes, secret: bytes) -> bytes:
    return hashlib.blake2b(ALGORITHM + key_id + secret, digest_size=32).digest()


def encode_secret(key: SecretKey, comment: str) -> str:
    """The text of an unencrypted minisign secret key file."""
    seed = key.key.private_bytes_raw()
    secret = seed + key.public.raw()
    body = ALGORITHM + _KDF_NONE + _CHECKSUM + bytes(32) + bytes(8) + bytes(8)
    body += key.key_id + secret + _checksum(key.key_id, secret)
    return f"{UNTRUSTED}{comment}\n{base64.b64encode(body).decode('ascii')}\n"


def read_secret(path: Path) -> SecretKey:
    """A secret key file; refused when group or others may read it, or when it is encrypted or damaged."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"cannot read secret key {path} ({error})", fix="pass the .key file keygen wrote") from error
    if mode & 0o077:
        raise KeyFileError(
            f"secret key {path} has mode {mode:o}: others on this machine may read it",
            fix=f"chmod 600 {path} (and consider the key exposed if others could read it)",
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        raw = base64.b64decode(lines[-1] if lines else "", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _SECRET_LEN or raw[:2] != ALGORITHM or raw[4:6] != _CHECKSUM:
        raise KeyFileError(f"{path} is not a minisign Ed25519 secret key", fix="pass the .key file keygen wrote")
    if raw[2:4] != _KDF_NONE:
        raise KeyFileError(
            f"secret key {path} is password-protected (minisign's default)",
            fix="create keys with `python -m export keygen`, or with `minisign -G -W` (no password)",
        )
    key_id, secret, checksum = raw[54:62], raw[62:126], raw[126:158]
    if _checksum(key_id, secret) != checksum:
        raise KeyFileError(f"secret key {path} fails its checksum (damaged)", fix="restore it from your backup")
    private = Ed25519PrivateKey.from_private_bytes(secret[:32])
    key = SecretKey(key_id, private)
    if key.public.raw() != secret[32:]:
        raise KeyFileError(f"secret key {path} is inconsistent (damaged)", fix="restore it from your backup")
    return key


def write_key_pair(key: SecretKey, stem: Path, *, role: str, force: bool = False) -> tuple[Path, Path]:
    """Write ``STEM.key`` (0600, created exclusively) and ``STEM.pub``; returns both paths."""
    secret_path, public_path = stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub")
    for path in (secret_path, public_path):
        if path.exists() and not force:
            raise KeyFileError(f"{path} exists", fix="choose another name, or pass --force to replace the key pair")
    comment = f"expresso-edge {role} key {key.public.id_text}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    secret_path.unlink(missing_ok=True)
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(encode_secret(key, f"{comment} (secret: keep it off devices)"))
    public_path.write_text(f"{UNTRUSTED}{comment}\n{key.public.encoded()}\n", encoding="utf-8")
    return secret_path, public_path
