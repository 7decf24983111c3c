"""``python -m edge bench-outbox``: puts/s and drain rate of the durable outbox at several backlogs.

For each backlog the outbox is pre-filled (as a broker outage leaves it: sessions and rolling summaries of a
realistic size), opened, and then timed: ``--puts`` puts (half rolling, half session; above the soft bound these
drop the oldest rolling summaries, as in service) and a drain of ``--drain`` rows the way the MQTT link does it
(``pending`` in batches of ``max_inflight``, one ``ack`` per row). The default bounds apply (``mqtt.outbox``).
It runs on a temporary directory on the file system of ``--dir`` (default: the system's temporary directory):
point it at the device's state directory's file system to measure that disk.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.cli_support import add_json_flag, int_list, print_report
from edge.publish.outbox import OUTBOX_NAME, Outbox
from edge.publish.settings import OutboxSettings

NAME = "bench-outbox"
HELP = "measure the durable outbox: puts/s and drain rate (rows/s) at backlogs of 0, 10,000 and 50,000 rows"
EXAMPLES = """\
  python -m edge bench-outbox
  python -m edge bench-outbox --rows 0,10000,50000 --puts 1000 --drain 1000 --json
  python -m edge bench-outbox --dir /var/lib/expresso-edge      # on the state directory's disk
"""

PAYLOAD_BYTES = 1200
"""About the size of an encoded summary (50,000 of them stay under the default 64 MiB hard byte bound)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--rows, --puts, --drain, --dir, --json."""
    parser.add_argument("--rows", default="0,10000,50000", help="comma-separated backlogs (default 0,10000,50000)")
    parser.add_argument("--puts", type=int, default=1000, help="puts timed at each backlog (default 1000)")
    parser.add_argument("--drain", type=int, default=1000, help="rows drained and timed at each backlog (default 1000)")
    parser.add_argument("--dir", type=Path, default=None, help="measure on this directory's file system")
    add_json_flag(parser)


def prefill(state_dir: Path, rows: int) -> None:
    """Write ``rows`` waiting session summaries (what a long outage leaves below the hard bound) in one transaction."""
    Outbox(state_dir, OutboxSettings()).close()
    with sqlite3.connect(state_dir / OUTBOX_NAME) as db:
        db.executemany(
            "INSERT INTO messages (message_id, topic, payload, qos, kind, size) VALUES (?,?,?,?,?,?)",
            (
                (f"fill-{i}", "expresso/v2/dev/summary", bytes(PAYLOAD_BYTES), 1, "session",
                 PAYLOAD_BYTES)
                for i in range(rows)
            ),
        )  # fmt: skip


def measure(state_dir: Path, rows: int, puts: int, drain: int) -> dict[str, Any]:
    """Puts/s and drained rows/s of an outbox holding ``rows`` summaries."""
    prefill(state_dir, rows)
    settings = OutboxSettings()
    outbox = Outbox(state_dir, settings)
    try:
        started = time.perf_counter()
        for i in range(puts):
            kind = "rolling" if i % 2 else "session"
            outbox.put(f"put-{rows}-{i}", "expresso/v2/dev/summary", bytes(PAYLOAD_BYTES), kind=kind)
        put_s = time.perf_counter() - started
        waiting = outbox.stats()["messages"]
        started, drained, after = time.perf_counter(), 0, 0
        while drained < drain:
            batch = outbox.pending(after=after, limit=settings.max_inflight, now=time.time())
            if not batch:
                break
            for row in batch:
                outbox.ack(row.row_id)
            drained, after = drained + len(batch), batch[-1].row_id
        drain_s = time.perf_counter() - started
        stats = outbox.stats()
    finally:
        outbox.close()
    return {
        "backlog": rows,
        "puts": puts,
        "puts_per_s": round(puts / put_s, 1) if put_s else None,
        "put_ms": round(1000 * put_s / puts, 3) if puts else None,
        "waiting_after_puts": waiting,
        "dropped": stats["dropped"],
        "drained": drained,
        "drain_rows_per_s": round(drained / drain_s, 1) if drain_s and drained else None,
    }


def run(args: argparse.Namespace) -> int:
    """Measure each backlog in a fresh temporary state directory and print the figures."""
    results = []
    for rows in int_list(args.rows, "--rows", minimum=0, what="backlogs >= 0", example="0,10000,50000"):
        with tempfile.TemporaryDirectory(prefix="bench-outbox-", dir=args.dir) as tmp:
            results.append(measure(Path(tmp), rows, max(0, args.puts), max(0, args.drain)))
    base = results[0]["puts_per_s"] or 0
    for result in results:
        result["puts_vs_first"] = round(result["puts_per_s"] / base, 2) if base and result["puts_per_s"] else None
    report = {"payload_bytes": PAYLOAD_BYTES, "bounds": OutboxSettings().model_dump(), "results": results}
    print_report(report, as_json=args.json, render=_render)
    return 0


def _render(report: dict[str, Any]) -> str:
    lines = [
        f"outbox benchmark ({report['payload_bytes']} B payloads, default bounds: soft "
        f"{report['bounds']['max_messages']}, hard {report['bounds']['hard_max_messages']} messages)",
        f"{'backlog':>8} {'puts/s':>9} {'ms/put':>8} {'vs first':>9} {'dropped':>8} {'drain rows/s':>13}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['backlog']:>8} {r['puts_per_s']!s:>9} {r['put_ms']!s:>8} {r['puts_vs_first']!s:>9} "
            f"{r['dropped']:>8} {r['drain_rows_per_s']!s:>13}"
        )
    return "\n".join(lines)
