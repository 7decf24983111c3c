"""``python -m edge consent --config FILE grant|revoke|show``: record the subject's consent on the device itself.

By default a consent *grant* is refused from the broker (``trust.control.grant = "refuse"``): it is given here,
by someone at the device. A running daemon picks the decision up within a second; run this as root or as the
service's user (the record is handed to the owner of the state directory).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge.cli_support import add_json_flag, print_report
from edge.commands.run import DEFAULT_CONFIG, add_overrides
from edge.config import load_config
from edge.privacy.consent import CONSENT_NAME, ConsentStore

NAME = "consent"
HELP = "grant, revoke or show the consent recorded on this device (local: the default refuses remote grants)"
EXAMPLES = """\
  sudo python -m edge consent --config /etc/expresso-edge/config.toml grant
  sudo python -m edge consent --config /etc/expresso-edge/config.toml revoke
  python -m edge consent --config config.toml show --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Decision, --config, overrides, --json."""
    parser.add_argument("decision", choices=("grant", "revoke", "show"), help="what to record (or show)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"TOML file (default {DEFAULT_CONFIG})")
    add_overrides(parser)
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    """Record the decision in the state directory (revoking also stops processing; erase is a control command)."""
    state_dir = load_config(args.config, args.overrides).device.state_dir
    store = ConsentStore(state_dir)
    if args.decision == "show":
        state = store.load()
    else:
        state = store.record(args.decision == "grant", "local")
        _hand_to_owner(state_dir)
    report = {"consent": state.label, "paused": state.paused, "source": state.source, "state_dir": str(state_dir)}
    print_report(report, as_json=args.json, render=_render)
    return 0


def _render(report: dict[str, object]) -> str:
    where = report["state_dir"]
    return f"consent {report['consent']} (source {report['source']}, paused {report['paused']}) in {where}"


def _hand_to_owner(state_dir: Path) -> None:
    """Give the record to the state directory's owner (the daemon's user) when root wrote it."""
    if os.geteuid() == 0:
        owner = state_dir.stat()
        os.chown(state_dir / CONSENT_NAME, owner.st_uid, owner.st_gid)
