"""``python -m edge check-config FILE``: validate a daemon configuration and its model bundle (hashes and, with
``trust.bundle_keys``, the signature) without starting anything: what ``run`` would refuse, this refuses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.bundle import load_bundle
from edge.commands.run import add_overrides
from edge.config import InvalidConfigError, load_config
from edge.errors import BundleError, ConfigError
from edge.trust.bundle_sig import read_signer

NAME = "check-config"
HELP = "validate a daemon configuration file and its bundle (exit 0 when valid, 3 or 4 with the problems otherwise)"
EXAMPLES = """\
  python -m edge check-config /etc/expresso-edge/config.toml
  python -m edge check-config config.toml --set mqtt.port=8883 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, overrides and --json."""
    parser.add_argument("file", type=Path, help="TOML configuration file")
    add_overrides(parser)
    parser.add_argument("--json", action="store_true", help="print the result (and the effective config) as JSON")


def run(args: argparse.Namespace) -> int:
    """Load and validate; print the problems (one per line) or the effective configuration."""
    try:
        config = load_config(args.file, args.overrides)
        trusted = config.trust.bundle_public_keys()
        bundle = load_bundle(config.model.bundle, trusted)
    except (ConfigError, BundleError) as error:
        problems = error.problems if isinstance(error, InvalidConfigError) else [str(error)]
        if args.json:
            print(json.dumps({"file": str(args.file), "valid": False, "problems": problems}, indent=2))
        else:
            print(f"{args.file}: invalid ({len(problems)} problem{'s' if len(problems) > 1 else ''})")
            for line in problems:
                print(f"  {line}")
        return error.exit_code
    if args.json:
        effective = config.model_dump(mode="json")
        if effective["mqtt"].get("password") is not None:  # a secret: never echoed into a terminal or a CI log
            effective["mqtt"]["password"] = "(set, not shown)"
        print(json.dumps({"file": str(args.file), "valid": True, "problems": [], "config": effective}, indent=2))
    else:
        signer = read_signer(bundle.root, trusted) if trusted else None
        signed = f", signed by key {signer.key_id}" if signer is not None else ""
        print(
            f"{args.file}: valid (camera {config.camera.source}, broker {config.mqtt.host}:{config.mqtt.port}, "
            f"bundle {bundle.root}{signed})"
        )
    return 0
