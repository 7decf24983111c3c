"""``python -m edge check-config FILE``: a preflight; what ``run`` would refuse, refused first, same code and message.

The checks are the daemon's own start-up functions (:mod:`edge.preflight`), in the order ``run`` meets them:
configuration (3), model bundle (4), camera source kind vs this OpenCV build (3), TLS and password files (3),
backend and precision (5, 6), state directory and the device secret and outbox in it (3); then what only a
preflight looks at: that a V4L2 camera node exists (6), with ``--probe`` that the source opens and gives a frame
(6), with ``--connect`` that the broker takes the configured credentials (8). Every check runs; the exit code is
that of the first failure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.commands.run import add_overrides
from edge.config import Config, InvalidConfigError, load_config
from edge.errors import ConfigError, ExpressoError
from edge.trust.bundle_sig import read_signer

NAME = "check-config"
HELP = "preflight a daemon configuration: what run would refuse, refused first with the same exit code and message"
EXAMPLES = """\
  python -m edge check-config /etc/expresso-edge/config.toml
  python -m edge check-config config.toml --probe --connect       # also open the camera and reach the broker
  python -m edge check-config config.toml --set mqtt.port=8883 --json
exit codes: 0 ready to run, 3 configuration (values, camera source kind, TLS/password files, state directory),
4 model bundle, 5 backend unavailable, 6 input (precision, video file, camera node, --probe), 8 broker (--connect).
Run it as the daemon's user: files and the state directory are checked with this process's permissions.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, overrides, --probe, --connect and --json."""
    parser.add_argument("file", type=Path, help="TOML configuration file")
    add_overrides(parser)
    parser.add_argument("--probe", action="store_true", help="open the camera source and read one frame")
    parser.add_argument("--connect", action="store_true", help="connect to the broker with the configured TLS/login")
    parser.add_argument("--json", action="store_true", help="print the result (and the effective config) as JSON")


Check = tuple[str, Callable[[], str]]
SKIPPED = "skipped: needs the bundle"


def _checks(config: Config, args: argparse.Namespace) -> list[Check]:
    """The daemon's start-up checks, then the preflight's own, each as (name, callable returning a detail)."""
    from edge import preflight
    from edge.bundle import Bundle

    loaded: list[Bundle] = []

    def bundle() -> str:
        loaded.append(preflight.load_checked_bundle(config))
        trusted = config.trust.bundle_public_keys()
        signer = read_signer(loaded[0].root, trusted) if trusted else None
        weights = preflight.check_weights(loaded[0], allow_random=True)
        detail = f"{loaded[0].name}, verified" + (f", signed by key {signer.key_id}" if signer is not None else "")
        return detail if weights == "trained" else f"{detail}; {weights}"

    def backend() -> str:
        if not loaded:
            return SKIPPED
        with preflight.open_backend(config, loaded[0]) as opened:
            found = opened.describe()
        return f"{found['backend']} {found['precision']} loads here"

    def tls_files() -> str:
        return "parse" if preflight.check_tls_files(config.mqtt) else "not used"

    def password_file() -> str:
        return "readable" if preflight.check_password_file(config.mqtt) else "not used"

    def state_dir() -> str:
        preflight.check_state_dir(config.device.state_dir, create=False)
        return str(config.device.state_dir)

    checks: list[Check] = [
        ("bundle", bundle),
        ("camera source", lambda: preflight.check_source(config.camera.source)),
        ("TLS files", tls_files),
        ("password file", password_file),
        ("backend", backend),
        ("state directory", state_dir),
        ("state files", lambda: preflight.check_state_files(config.device.state_dir)),
        ("camera node", lambda: preflight.check_camera_present(config.camera.source)),
    ]
    if args.probe:
        checks.append(("probe", lambda: "frame {}x{}".format(*preflight.probe_source(config.camera.source))))
    if args.connect:  # asked for and silently skipped, it read as a broker that takes us
        enabled = config.mqtt.enabled
        checks.append(("connect", lambda: preflight.check_connect(config.mqtt) if enabled else "skipped: MQTT is off"))
    return checks


def _run_checks(checks: list[Check]) -> list[dict[str, Any]]:
    results = []
    for name, check in checks:
        try:
            results.append({"check": name, "ok": True, "detail": check()})
        except ExpressoError as error:
            results.append({"check": name, "ok": False, "detail": str(error), "exit_code": error.exit_code})
    return results


def run(args: argparse.Namespace) -> int:
    """Load and validate, run the preflight checks; print the problems (one per line) or that it is ready."""
    try:
        config = load_config(args.file, args.overrides)
    except ConfigError as error:
        problems = error.problems if isinstance(error, InvalidConfigError) else [str(error)]
        _print(args, problems, [], None)
        return error.exit_code
    results = _run_checks(_checks(config, args))
    failed = [r for r in results if not r["ok"]]
    _print(args, [f"{r['check']}: {r['detail']}" for r in failed], results, config)
    return int(failed[0]["exit_code"]) if failed else 0


def _print(args: argparse.Namespace, problems: list[str], results: list[dict[str, Any]], config: Config | None) -> None:
    if args.json:
        report: dict[str, Any] = {"file": str(args.file), "valid": not problems, "problems": problems}
        if results:
            report["checks"] = results
        if config is not None and not problems:
            report["config"] = effective = config.model_dump(mode="json")
            if effective["mqtt"].get("password") is not None:  # a secret: never echoed into a terminal or a CI log
                effective["mqtt"]["password"] = "(set, not shown)"
        print(json.dumps(report, indent=2))
        return
    for result in results:
        print(f"  {'ok    ' if result['ok'] else 'FAILED'} {result['check']}: {result['detail']}")
    if problems:
        print(f"{args.file}: invalid ({len(problems)} problem{'s' if len(problems) > 1 else ''})")
        for line in problems if not results else ():  # the failed checks were printed above
            print(f"  {line}")
    elif config is not None:
        print(f"{args.file}: valid (camera {config.camera.source}, broker {config.mqtt.host}:{config.mqtt.port})")
