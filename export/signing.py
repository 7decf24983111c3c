"""Signing a bundle from the export commands: ``sign``, and ``calibrate``/``engine`` which rewrite the manifest."""

from __future__ import annotations

import argparse
import getpass
import socket
from pathlib import Path

from edge.trust.bundle_sig import SIGNATURE_NAME, sign_bundle
from edge.trust.keys import read_secret


def add_key_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--key`` (the engineer's secret key) and ``--signer`` (the name recorded in the signature)."""
    parser.add_argument(
        "--key", type=Path, required=required, help="secret key from `python -m export keygen`: (re-)sign the manifest"
    )
    parser.add_argument(
        "--signer", default=None, help="name recorded in the signature's trusted comment (default: user@host)"
    )


def sign(root: Path, key_path: Path, signer: str | None) -> str:
    """Sign ``root``'s manifest; returns a line saying who signed with which key."""
    key = read_secret(key_path)  # read first: a bad key changes nothing
    name = signer or f"{getpass.getuser()}@{socket.gethostname()}"
    path = sign_bundle(root, key, signer=name)
    return f"signed {root / 'manifest.json'} as {name!r} with key {key.public.id_text}: {path}"


def was_signed(root: Path) -> bool:
    """Whether the bundle carries a signature now (call before rewriting its manifest)."""
    return (root / SIGNATURE_NAME).is_file()


def after_rewrite(root: Path, key_path: Path | None, signer: str | None, *, signed_before: bool) -> str | None:
    """After a command rewrote the manifest (which dropped the old signature): re-sign with ``--key``, or say the
    bundle must be re-signed when it was signed before. Returns the line to print, if any."""
    if key_path is not None:
        return sign(root, key_path, signer)
    if signed_before:
        return (
            f"note: {root} was signed; its manifest changed, so the signature was removed and a device that trusts "
            f"signed bundles will refuse it: re-sign it with `python -m export sign {root} --key ENGINEER.key`"
        )
    return None
