"""``python -m edge keygen`` / ``python -m export keygen``: an Ed25519 key pair in minisign's formats.

Run it on the engineer's machine (bundle signing) or the operator's machine (control signing), never on a device:
a device holds only public keys.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.trust.keys import generate, write_key_pair

NAME = "keygen"
HELP = "create an Ed25519 key pair (STEM.key, 0600, and STEM.pub) for signing bundles or control messages"
EXAMPLES = """\
  python -m export keygen ~/.config/expresso-edge/engineer             # bundle signing key (engineer's machine)
  python -m edge keygen ~/.config/expresso-edge/operator --role operator  # control signing key (operator's machine)
  (then put the RW... line of STEM.pub in the device's trust.bundle_keys or trust.operator_keys)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """STEM, --role, --force."""
    parser.add_argument("stem", type=Path, help="path without extension: writes STEM.key and STEM.pub")
    parser.add_argument("--role", choices=("engineer", "operator"), default="engineer", help="named in the comment")
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")


def run(args: argparse.Namespace) -> int:
    """Generate and write the pair; print the public key line and where it goes."""
    key = generate()
    secret, public = write_key_pair(key, args.stem, role=args.role, force=args.force)
    setting = "trust.bundle_keys" if args.role == "engineer" else "trust.operator_keys"
    print(f"secret key {secret} (0600: keep it on this machine, never on a device)")
    print(f"public key {public}, key id {key.public.id_text}:")
    print(f"  {key.public.encoded()}")
    print(f"add that line to the device configuration's {setting}")
    return 0
