"""``python -m edge run``: the device daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge.config import load_config
from edge.service import Notifier, StopRequest

NAME = "run"
HELP = "run the device daemon: camera in, aggregated anonymized scores out over MQTT"
EXAMPLES = """\
  python -m edge run --config /etc/expresso-edge/config.toml
  python -m edge run --config config.toml --set camera.source=/dev/video2 --set mqtt.host=broker.lan
  python -m edge -vv run --config config.toml --set camera.source=clip.mp4 --set camera.realtime=false
exit codes: 0 stopped cleanly (SIGTERM, end of a video file), 3 invalid configuration (also: a camera source kind
this OpenCV cannot open, unusable TLS or password files, a state directory not writable or held by another daemon),
4 model bundle refused, 5 backend unavailable, 6 input unusable; check-config refuses all of these first.
A broker that is down or refuses us is no exit: the daemon keeps retrying with backoff, keeps summaries in its
outbox and says why in the log and in systemctl status.
"""

DEFAULT_CONFIG = Path("/etc/expresso-edge/config.toml")
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--config and --set."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"TOML file (default {DEFAULT_CONFIG})")
    add_overrides(parser)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """The repeatable ``--set section.key=value`` option."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one configuration key, e.g. --set mqtt.port=8883 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the configuration, install the signal handlers and run the daemon until it stops."""
    config = load_config(args.config, args.overrides)
    from edge.daemon import Daemon  # imported here: check-config shares this module's options, not its weight

    stop = StopRequest()
    daemon = Daemon(config, stop=stop.event, notifier=Notifier())  # refuses a bad bundle before anything starts
    stop.install()
    code = daemon.run()
    if stop.requested:
        log.info("stopped on %s", stop.signal_name)
    return code
