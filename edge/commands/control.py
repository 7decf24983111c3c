"""``python -m edge control``: send pause, resume, consent or erase to one device and print its reply."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from edge.client.control import ControlSender, Signer
from edge.commands._client_options import add_broker_options, connection_from
from edge.control import ControlMessageError
from edge.errors import UsageError

NAME = "control"
HELP = "send a control command to one device and wait for its correlated reply (integrators)"
EXAMPLES = """\
  python -m edge control --host broker.lan --device 3f2a9c0d1e2b3c4d5e6f pause
  python -m edge control --device 3f2a9c0d1e2b3c4d5e6f consent --granted yes --json
  python -m edge control --device 3f2a9c0d1e2b3c4d5e6f erase --timeout 30
  python -m edge control --device 3f2a9c0d1e2b3c4d5e6f pause --sign-key ~/.config/expresso-edge/operator.key
exit codes: 0 accepted, 1 the device rejected it (the reason is printed), 2 usage, 3 TLS files unusable, 8 broker
unreachable or no reply in time (is the device online? its retained status says).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Broker options, --device, the command, --granted, --request-id, --timeout, --json."""
    add_broker_options(parser)
    parser.add_argument("--device", required=True, help="the device's pseudonym (20 hex digits, from its topics)")
    parser.add_argument("command", choices=("pause", "resume", "consent", "erase"))
    parser.add_argument("--granted", choices=("yes", "no"), help="with consent: grant (yes) or withdraw (no)")
    parser.add_argument("--request-id", help="correlation id (default: a fresh one)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply (default 10)")
    parser.add_argument(
        "--sign-key",
        type=Path,
        help="operator secret key (python -m edge keygen --role operator): sign the message for this device, as a "
        "device with trust.operator_keys requires (needs the cryptography package)",
    )
    parser.add_argument("--ttl", type=float, default=300.0, help="seconds a signed message stays valid (300)")
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")


def run(args: argparse.Namespace) -> int:
    """Send and wait; exit 0 when the device accepted the command."""
    if (args.command == "consent") != (args.granted is not None):
        raise UsageError("--granted goes with the consent command, and only with it", fix="add or drop --granted")
    message: dict[str, object] = {"command": args.command}
    if args.granted is not None:
        message["granted"] = args.granted == "yes"
    if args.request_id:
        message["request_id"] = args.request_id
    signer = _signer(args.sign_key, device=args.device, ttl_s=args.ttl) if args.sign_key else None
    sender = ControlSender(connection_from(args), prefix=args.prefix, signer=signer)
    try:
        reply = sender.send(args.device, message, timeout=args.timeout)
    except ControlMessageError as error:  # e.g. a --request-id the schema refuses (checked before connecting)
        raise UsageError(error.message, fix=error.fix or "") from error
    if args.json:
        print(json.dumps({"request_id": reply.request_id, "accepted": reply.accepted, "command": reply.command,
                          "error": reply.error, "via": reply.via}))  # fmt: skip
    else:
        verdict = "accepted" if reply.accepted else f"rejected: {reply.error}"
        print(f"{args.command} (request_id {reply.request_id}) {verdict} (reply via {reply.via})")
    return 0 if reply.accepted else 1


def _signer(key_path: Path, *, device: str, ttl_s: float) -> Signer:
    """Sign with the operator key at ``key_path`` for ``device`` (cryptography is imported only here)."""
    if not 0 < ttl_s <= 30 * 86400:
        raise UsageError(f"--ttl {ttl_s} is out of range", fix="pass seconds, e.g. 300 (the device caps validity)")
    try:
        from edge.trust.control_auth import sign_control
        from edge.trust.keys import read_secret
    except ModuleNotFoundError as error:
        raise UsageError(
            f"--sign-key needs {error.name}, which is not installed", fix="pip install 'expresso-edge[sign]'"
        ) from error
    key = read_secret(key_path)
    return functools.partial(sign_control, private_key=key, key_id=key.public.id_text, device=device, ttl_s=ttl_s)
