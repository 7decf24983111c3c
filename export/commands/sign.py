"""``python -m export sign``: sign a bundle's manifest (which hashes every file) with an Ed25519 key."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.bundle import load_bundle
from export.signing import add_key_option, sign

NAME = "sign"
HELP = "sign a bundle's manifest.json (minisign format, manifest.json.minisig) after verifying its files"
EXAMPLES = """\
  python -m export sign bundles/demo --key ~/.config/expresso-edge/engineer.key
  python -m export sign BUNDLE --key engineer.key --signer "A. Engineer, lab X"
  minisign -Vm BUNDLE/manifest.json -P RW...                     # verify with minisign itself
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """BUNDLE, --key, --signer."""
    parser.add_argument("bundle", type=Path, help="bundle directory")
    add_key_option(parser, required=True)


def run(args: argparse.Namespace) -> int:
    """Verify every file's hash (a corrupt bundle is never signed), then sign."""
    load_bundle(args.bundle)
    print(sign(args.bundle, args.key, args.signer))
    return 0
