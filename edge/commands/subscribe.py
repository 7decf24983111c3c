"""``python -m edge subscribe``: an integrator worker storing what devices publish (core dependencies only)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.client.messages import KINDS, Checked
from edge.client.stores import open_store
from edge.client.subscriber import Integrator, Outcome
from edge.commands._client_options import add_broker_options, connection_from

NAME = "subscribe"
HELP = "store what devices publish: validated against the schemas, de-duplicated by message_id (integrators)"
EXAMPLES = """\
  python -m edge subscribe --host broker.lan --store sqlite:///var/lib/expresso/messages.sqlite
  python -m edge subscribe --host broker.lan --store messages.jsonl --kind summary --count 10
  python -m edge subscribe --group ingest --client-id worker-1 --store postgresql://ingest@db/expresso
exit codes: 0 stopped (SIGINT/SIGTERM, --count or --seconds reached), 3 bad --store or TLS files, 8 broker
unreachable or refusing, 9 the store refused a message (it stays unacknowledged in the broker until the next start).
Invalid messages are counted and kept aside (table expresso_rejected, or FILE.rejected).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Broker options, --store, --kind, --group, --client-id, --count, --seconds, --quiet, --json."""
    add_broker_options(parser)
    parser.add_argument(
        "--store", default="expresso-messages.sqlite", help="sqlite:///PATH, postgresql://..., FILE.jsonl or a path"
    )
    parser.add_argument("--kind", action="append", choices=KINDS, help="message kinds to store (default: all)")
    parser.add_argument("--group", help="share the load with other workers: subscribe to $share/GROUP/...")
    parser.add_argument(
        "--client-id", help="fixed MQTT client id: a persistent session, so nothing is missed across restarts"
    )
    parser.add_argument("--count", type=int, help="stop after storing this many summaries")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--quiet", action="store_true", help="print only the final counts")
    parser.add_argument("--json", action="store_true", help="print the final counts as JSON")


def _printer(quiet: bool) -> Any:
    def show(message: Checked, outcome: Outcome) -> None:
        if not quiet:
            what = message.message_id if message.valid else "; ".join(message.errors)[:120]
            print(f"{outcome:9} {message.kind or '?':7} {message.device or '?'} {what}", flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    """Subscribe until stopped; print the counts."""
    connection = connection_from(args)
    store = open_store(args.store)
    stop = threading.Event()
    summaries = threading.Semaphore(0)
    show = _printer(args.quiet)

    def on_message(message: Checked, outcome: Outcome) -> None:
        show(message, outcome)
        if outcome == "stored" and message.kind == "summary":
            summaries.release()

    worker = Integrator(
        store, connection, prefix=args.prefix, kinds=args.kind or KINDS, group=args.group,
        client_id=args.client_id, on_message=on_message,
    )  # fmt: skip
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    if not args.quiet:
        print(f"subscribed to {', '.join(worker.filters)} at {connection.description}; storing in {args.store}")
        print(NOT_A_DIAGNOSTIC_DEVICE, flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    stored = 0
    while not stop.is_set() and worker.failed is None:
        if args.count is not None and stored >= args.count:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        if summaries.acquire(timeout=0.2):
            stored += 1
    worker.stop(close_store=False)  # nothing arrives after this: the counts and the store agree
    counts, kept = dict(worker.counts), store.counts()
    store.close()
    report = {**counts, "in_store": kept}
    print(json.dumps(report) if args.json else f"received {counts['received']}, stored {counts['stored']}, "
          f"duplicates {counts['duplicates']}, invalid {counts['invalid']}; the store holds {kept}")  # fmt: skip
    if worker.failed is not None:
        print(f"python -m edge subscribe: error: {worker.failed}", file=sys.stderr)
        return worker.failed.exit_code
    return 0
