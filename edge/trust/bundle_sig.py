"""Detached minisign signatures of a bundle's ``manifest.json`` (which holds every file's SHA-256).

The signature file ``manifest.json.minisig`` is minisign's format with its legacy, non-prehashed algorithm ``Ed``
(a plain Ed25519 signature of the manifest's exact bytes), so ``minisign -Vm manifest.json -P RW...`` verifies it:

    untrusted comment: signature from expresso-edge secret key 1A2B...
    base64("Ed" + key id (8 bytes) + Ed25519(manifest bytes) (64 bytes))
    trusted comment: timestamp:1765000000	file:manifest.json	signer:<name>
    base64(Ed25519(signature (64 bytes) + trusted comment bytes))

minisign's prehashed ``ED`` (Ed25519 of BLAKE2b-512 of the file) is accepted on verification too. The trusted
comment (covered by the global signature) names the signer; ``inspect`` shows it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import BundleError
from edge.trust.keys import UNTRUSTED, PublicKey, SecretKey, key_id_text

SIGNATURE_NAME = "manifest.json.minisig"
_TRUSTED = "trusted comment: "
_PREHASHED = b"ED"
_LEGACY = b"Ed"
_SIGNER = re.compile(r"(?:^|\t)signer:([^\t]*)")


@dataclass(frozen=True)
class Signature:
    """A parsed signature file (not yet verified)."""

    algorithm: bytes
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes

    @property
    def signer(self) -> str:
        """The ``signer:`` field of the trusted comment ('' when absent)."""
        found = _SIGNER.search(self.trusted_comment)
        return found.group(1) if found else ""

    def message(self, data: bytes) -> bytes:
        """What the Ed25519 signature covers for this algorithm."""
        return hashlib.blake2b(data, digest_size=64).digest() if self.algorithm == _PREHASHED else data


@dataclass(frozen=True)
class Signer:
    """Who signed a bundle: key id, the signer named in the trusted comment, and whether the key is trusted."""

    key_id: str
    name: str
    trusted_comment: str
    trusted: bool


def sign_bytes(data: bytes, key: SecretKey, *, signer: str, file_name: str) -> str:
    """The text of a minisign (``Ed``) signature file for ``data``."""
    signature = key.sign(data)
    clean = re.sub(r"[\t\r\n]", " ", signer)
    trusted = f"timestamp:{int(time.time())}\tfile:{file_name}\tsigner:{clean}"
    global_signature = key.sign(signature + trusted.encode("utf-8"))
    return (
        f"{UNTRUSTED}signature from expresso-edge secret key {key.public.id_text}\n"
        f"{base64.b64encode(_LEGACY + key.key_id + signature).decode('ascii')}\n"
        f"{_TRUSTED}{trusted}\n"
        f"{base64.b64encode(global_signature).decode('ascii')}\n"
    )


def parse_signature(text: str, where: Path) -> Signature:
    """Parse a signature file; :class:`BundleError` when it is not minisign's format."""
    fix = "sign the bundle again: python -m export sign BUNDLE --key KEY"
    lines = text.splitlines()
    try:
        if len(lines) < 4 or not lines[0].startswith(UNTRUSTED) or not lines[2].startswith(_TRUSTED):
            raise ValueError("not four minisign lines")
        head = base64.b64decode(lines[1].strip(), validate=True)
        global_signature = base64.b64decode(lines[3].strip(), validate=True)
    except (ValueError, binascii.Error) as error:
        raise BundleError(f"signature file {where} is not a minisign signature ({error})", fix=fix) from error
    if len(head) != 74 or head[:2] not in (_LEGACY, _PREHASHED) or len(global_signature) != 64:
        raise BundleError(f"signature file {where} is not a minisign Ed25519 signature", fix=fix)
    return Signature(head[:2], head[2:10], head[10:], lines[2][len(_TRUSTED) :], global_signature)


def sign_bundle(root: Path, key: SecretKey, *, signer: str) -> Path:
    """Write ``manifest.json.minisig`` next to the manifest; returns its path."""
    manifest = root / "manifest.json"
    try:
        data = manifest.read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read {manifest} ({error})", fix="pass a bundle directory") from error
    path = root / SIGNATURE_NAME
    tmp = root / f".{SIGNATURE_NAME}.tmp"
    tmp.write_text(sign_bytes(data, key, signer=signer, file_name="manifest.json"), encoding="utf-8")
    tmp.replace(path)
    return path


def read_signer(root: Path, trusted: Sequence[PublicKey] = (), data: bytes | None = None) -> Signer | None:
    """Who signed the bundle (None when unsigned); ``trusted`` says whether the signature of ``data`` (default: the
    manifest file's bytes) verifies against one of the given keys. :class:`BundleError` for a damaged file."""
    path = root / SIGNATURE_NAME
    if not path.is_file():
        return None
    signature = parse_signature(path.read_text(encoding="utf-8", errors="replace"), path)
    data = (root / "manifest.json").read_bytes() if data is None else data
    key = next((k for k in trusted if k.key_id == signature.key_id), None)
    valid = key is not None and _verifies(signature, key, data)
    return Signer(key_id_text(signature.key_id), signature.signer, signature.trusted_comment, valid)


def _verifies(signature: Signature, key: PublicKey, data: bytes) -> bool:
    comment = signature.trusted_comment.encode("utf-8")
    return key.verifies(signature.signature, signature.message(data)) and key.verifies(
        signature.global_signature, signature.signature + comment
    )


def verify_bundle(root: Path, trusted: Sequence[PublicKey], data: bytes | None = None) -> Signer:
    """Refuse (:class:`BundleError`, exit 4) a bundle whose manifest (``data``: its bytes, default read from the
    file) is unsigned or not signed by one of ``trusted``."""
    ids = ", ".join(k.id_text for k in trusted)
    signer = read_signer(root, trusted, data)
    if signer is None:
        raise BundleError(
            f"bundle {root} is not signed ({SIGNATURE_NAME} missing) and trust.bundle_keys requires a signature",
            fix="sign it on the engineer's machine (python -m export sign BUNDLE --key ENGINEER.key) and copy it again",
        )
    if not signer.trusted:
        known = any(k.id_text == signer.key_id for k in trusted)
        why = "does not verify (manifest changed after signing?)" if known else "is by a key the device does not trust"
        raise BundleError(
            f"bundle {root}: signature by key {signer.key_id} ({signer.name or 'unnamed'}) {why}; trusted keys: {ids}",
            fix="re-sign the bundle with a trusted key (python -m export sign) or add its public key to "
            "trust.bundle_keys",
        )
    return signer
