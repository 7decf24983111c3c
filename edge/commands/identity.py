"""``python -m edge identity --config FILE``: the device's pseudonym, topics, MQTT client id and its ACL lines.

An operator pairs a device with its broker credentials with this: the user name and client id should equal the
pseudonym (the topics' device segment) so that the shipped ACL's ``%u`` patterns confine it to its own topics.
The pseudonym is created on first use (the device secret in the state directory), so this works before the
daemon ever ran.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.cli_support import add_json_flag, print_report
from edge.commands.run import DEFAULT_CONFIG, add_overrides
from edge.config import load_config
from edge.privacy.pseudonym import device_pseudonym
from edge.publish.mqtt import Topics
from edge.trust.acl import device_lines, pattern_lines

NAME = "identity"
HELP = "print the device pseudonym, topic root, MQTT client id and user name, and the broker ACL lines for it"
EXAMPLES = """\
  sudo python -m edge identity --config /etc/expresso-edge/config.toml
  python -m edge identity --config config.toml --json | jq -r .pseudonym
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, overrides, --json."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"TOML file (default {DEFAULT_CONFIG})")
    add_overrides(parser)
    add_json_flag(parser)


def identity_report(config_path: Path | None, overrides: list[str]) -> dict[str, Any]:
    """Everything ``identity`` prints."""
    config = load_config(config_path, overrides)
    mqtt = config.mqtt
    pseudonym = device_pseudonym(config.device.state_dir)
    topics = Topics.for_device(mqtt.topic_prefix, pseudonym)
    client_id = mqtt.client_id or pseudonym
    problems = []
    if client_id != pseudonym:
        problems.append(f"mqtt.client_id {client_id!r} is not the pseudonym: ACL %c patterns will not match")
    if mqtt.username not in (None, pseudonym):
        problems.append(f"mqtt.username {mqtt.username!r} is not the pseudonym: the shipped %u patterns will not match")
    return {
        "pseudonym": pseudonym,
        "topic_root": topics.status.rsplit("/", 1)[0],
        "topics": {
            "status": topics.status,
            "summary": topics.summary,
            "health": topics.health,
            "control": topics.control,
        },
        "client_id": client_id,
        "username": mqtt.username,
        "suggested_username": pseudonym,
        "acl_patterns": pattern_lines(mqtt.topic_prefix),
        "acl_device_lines": device_lines(mqtt.topic_prefix, pseudonym),
        "passwd_command": f"mosquitto_passwd /etc/mosquitto/passwd {pseudonym}",
        "problems": problems,
    }


def _render(report: dict[str, Any]) -> str:
    lines = [
        f"pseudonym   {report['pseudonym']}",
        f"topic root  {report['topic_root']}",
        f"client id   {report['client_id']}",
        f"user name   {report['username'] or '(none set: use ' + report['suggested_username'] + ')'}",
        "broker user:",
        f"  {report['passwd_command']}",
        "ACL (once per broker, covers every device; systemd/mosquitto/acl.template):",
        *(f"  {line}" for line in report["acl_patterns"]),
        "or, for this device alone:",
        *(f"  {line}" for line in report["acl_device_lines"]),
    ]
    lines += [f"WARNING: {problem}" for problem in report["problems"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the identity."""
    print_report(identity_report(args.config, args.overrides), as_json=args.json, render=_render)
    return 0
