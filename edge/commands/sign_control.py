"""``python -m edge sign-control``: a control message signed by an operator key, as JSON for ``mosquitto_pub``.

Run it on the operator's machine (the secret key never goes to a device). Integrator code signs with
``edge.trust.control_auth.sign_control`` instead.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
from pathlib import Path
from typing import Any

from edge.errors import UsageError
from edge.trust.control_auth import sign_control
from edge.trust.keys import read_secret

NAME = "sign-control"
HELP = "print a control message signed with an operator key for one device (JSON for mosquitto_pub)"
EXAMPLES = """\
  python -m edge sign-control pause --key ~/.config/expresso-edge/operator.key --device 3f1c0a9e5b7d2468ace0
  mosquitto_pub -h BROKER -V mqttv5 -q 1 -t expresso/v2/DEVICE/control \\
      -m "$(python -m edge sign-control erase --key operator.key --device DEVICE --ttl 120)"
"""

_MESSAGES: dict[str, dict[str, Any]] = {
    "pause": {"command": "pause"},
    "resume": {"command": "resume"},
    "grant": {"command": "consent", "granted": True},
    "revoke": {"command": "consent", "granted": False},
    "erase": {"command": "erase"},
}
_DEVICE = re.compile(r"^[0-9a-f]{20}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ACTION, --key, --device, --ttl, --request-id."""
    parser.add_argument("action", choices=sorted(_MESSAGES), help="what the device should do")
    parser.add_argument("--key", type=Path, required=True, help="operator secret key (python -m edge keygen)")
    parser.add_argument("--device", required=True, help="the device's pseudonym (python -m edge identity)")
    parser.add_argument("--ttl", type=float, default=300.0, help="seconds the message stays valid (300)")
    parser.add_argument("--request-id", help="echoed in the device's reply (default: random)")


def run(args: argparse.Namespace) -> int:
    """Sign and print one compact JSON line."""
    if not _DEVICE.match(args.device):
        raise UsageError(f"--device {args.device!r} is not a pseudonym", fix="pass the 20 hex digits identity prints")
    if not 0 < args.ttl <= 30 * 86400:
        raise UsageError(f"--ttl {args.ttl} is out of range", fix="pass seconds, e.g. 300 (the device caps validity)")
    key = read_secret(args.key)
    message = {**_MESSAGES[args.action], "request_id": args.request_id or f"op-{secrets.token_hex(6)}"}
    signed = sign_control(message, private_key=key, key_id=key.public.id_text, device=args.device, ttl_s=args.ttl)
    print(json.dumps(signed, separators=(",", ":")))
    return 0
