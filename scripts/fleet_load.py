#!/usr/bin/env python3
"""Fleet load test: many simulated devices -> real Mosquitto -> two integrator workers on a shared subscription.

    PYTHONPATH=. python scripts/fleet_load.py --devices 1000 --summaries 10 --broker-option "max_queued_messages 100000"
    PYTHONPATH=. python scripts/fleet_load.py --devices 20 --summaries 2 --store sqlite  # a quick look

Each simulated device is the device's own publish path: an :class:`edge.publish.outbox.Outbox` (SQLite, in its
own state directory) drained by an :class:`edge.publish.mqtt.MqttLink` (its own paho client, TCP connection,
client id and reconnect backoff). Devices are spread over processes instead of 1,000 machines, at most
``--per-process`` (default 100) each: paho watches its sockets with select(), which cannot take a file
descriptor above 1023, and each simulated device holds about seven. They share the CPUs and one file system
(``/dev/shm`` when present, so 1,000 outboxes' fsyncs do not queue on one disk), and they put real summary
payloads (built once by the device's payload code, each with a fresh ``message_id`` and its device's pseudonym)
on a schedule instead of scoring video.
Two ``python -m edge subscribe --group fleet`` processes (persistent sessions) store into PostgreSQL (default)
or one SQLite file. Half-way through the schedule the broker is stopped (``--stop term``: a clean restart that
saves its persistence; ``--stop kill``: SIGKILL) and started again ``--down-s`` later on the same port.

Prints (``--json`` for scripts): devices, summaries sent (put in outboxes), acknowledged by the broker, received
by the workers, stored, lost (sent, never stored), stored twice, redeliveries absorbed, throughput, and CPU seconds
and peak memory of the broker and of each worker. Bounded by ``--budget-s``. Not part of the test suite (a tiny
run of it is: tests/edge/client/test_fleet_load.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the repository's edge, and the tests' real-service helpers

from mqtt_broker import Broker  # noqa: E402
from postgres_server import Postgres  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_figures(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and peak RSS (MiB) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"cpu_s": round(cpu, 2), "peak_rss_mib": round(int(peak) / 1024, 1)}


# ---- the device side: one process runs a slice of the fleet ------------------------------------------------------
def run_devices(args: argparse.Namespace) -> None:
    """Run devices ``first .. first+count-1`` until their outboxes are empty; print one JSON line."""
    from summary_factory import summary_document

    from edge.publish.mqtt import MqttLink, Topics
    from edge.publish.outbox import Outbox
    from edge.publish.settings import MqttSettings

    settings = MqttSettings(
        host="127.0.0.1", port=args.port, topic_prefix=args.prefix, keepalive_s=30, reconnect_min_s=1,
        reconnect_max_s=4,
    )  # fmt: skip
    template = summary_document()
    devices = []
    for number in range(args.first, args.first + args.count):
        pseudonym = f"{number:020x}"
        outbox = Outbox(Path(args.state) / pseudonym, settings.outbox)
        link = MqttLink(
            settings, Topics.for_device(args.prefix, pseudonym), outbox, client_id=f"sim-{pseudonym}",
            will=b'{"state":"offline"}', online=lambda: b'{"state":"online"}', on_control=lambda *_: None,
        )  # fmt: skip
        link.start()
        devices.append((pseudonym, outbox, link))
    ids = []
    for tick in range(args.summaries):  # device k puts its summary k/count of the way into each interval
        for k, (pseudonym, outbox, link) in enumerate(devices):
            due = args.start_at + (tick + k / len(devices)) * args.interval
            time.sleep(max(0.0, due - time.time()))
            message_id = str(uuid.uuid4())
            payload = json.dumps({**template, "message_id": message_id, "device": pseudonym}).encode()
            outbox.put(message_id, link.topics.summary, payload, kind="session")
            link.notify()
            ids.append(message_id)
    deadline = time.time() + args.drain_s
    while time.time() < deadline and any(outbox.stats()["messages"] for _, outbox, _ in devices):
        time.sleep(0.2)
    waiting = sum(outbox.stats()["messages"] for _, outbox, _ in devices)
    refused = sum(link.refused for _, _, link in devices)
    (Path(args.state) / f"ids-{args.first}.json").write_text(json.dumps(ids))
    figures = process_figures(os.getpid())
    for _, outbox, link in devices:
        link.stop(None, 1.0)
        outbox.close()
    print(json.dumps({"devices": len(devices), "sent": len(ids), "waiting": waiting, "refused": refused, **figures}))


# ---- the conductor ---------------------------------------------------------------------------------------------
def stored_ids(store: str) -> list[str]:
    """Every message_id in the store's table (one per row)."""
    if store.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(store) as db:
            return [row[0] for row in db.execute("SELECT message_id FROM expresso_messages")]
    import sqlite3

    with sqlite3.connect(store.removeprefix("sqlite://"), timeout=30) as db:  # the workers may be writing
        return [row[0] for row in db.execute("SELECT message_id FROM expresso_messages")]


def _end(process: subprocess.Popen[str]) -> None:
    """Kill a child that is still running (after a failure) and reap it."""
    if process.poll() is None:
        process.kill()
        process.wait()


def _remove(work: Path) -> None:
    """Delete the run's directory, unless FLEET_KEEP is set (to read the broker's log afterwards)."""
    if not os.environ.get("FLEET_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


def conduct(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, run the schedule with one broker stop in the middle, collect the figures; whatever
    happens, stop every process it started and delete its files."""
    with contextlib.ExitStack() as cleanup:
        return _conduct(args, cleanup)


def _conduct(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    cleanup.callback(_remove, work)
    broker = Broker(work / "broker", persistence=True, options=args.broker_option)
    broker.start()
    cleanup.callback(broker.stop)
    database = Postgres() if args.store == "postgres" else None
    if database is not None:
        database.start()
        cleanup.callback(database.stop)
    store = database.url if database is not None else f"sqlite://{work / 'store.sqlite'}"
    prefix = f"fleet-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge",
                "subscribe",
                "--host",
                broker.host,
                "--port",
                str(broker.port),
                "--prefix",
                prefix,
                "--kind",
                "summary",
                "--group",
                "fleet",
                "--client-id",
                f"fleet-worker-{n}",
                "--store",
                store,
                "--quiet",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(args.workers)
    ]
    for worker in workers:
        cleanup.callback(_end, worker)
    time.sleep(2.0)  # the workers subscribe (a worker that cannot would exit: checked below)
    per_process = args.per_process
    start_at = time.time() + 3.0 + args.devices / 400  # time for every device to connect first
    fleet = []
    for first in range(0, args.devices, per_process):
        count = min(per_process, args.devices - first)
        fleet.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--role",
                    "devices",
                    "--first",
                    str(first),
                    "--count",
                    str(count),
                    "--port",
                    str(broker.port),
                    "--prefix",
                    prefix,
                    "--state",
                    str(work / "devices"),
                    "--summaries",
                    str(args.summaries),
                    "--interval",
                    str(args.interval),
                    "--start-at",
                    str(start_at),
                    "--drain-s",
                    str(args.budget_s),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    for process in fleet:
        cleanup.callback(_end, process)
    schedule_s = args.summaries * args.interval
    time.sleep(max(0.0, start_at + schedule_s / 2 - time.time()))
    broker_cpu = process_figures(broker.pid())
    if args.stop == "kill":
        broker.kill()
    else:
        broker.stop()
    stopped_at = time.time()
    time.sleep(args.down_s)
    broker.start()
    deadline = start_at + args.budget_s
    expected = args.devices * args.summaries
    count = 0
    while time.time() < deadline:
        count = len(stored_ids(store))
        if count >= expected or any(w.poll() is not None for w in workers):
            break
        time.sleep(0.5)
    finished = time.time()
    after = process_figures(broker.pid())
    devices_out = [json.loads(p.communicate(timeout=args.budget_s)[0].strip().splitlines()[-1]) for p in fleet]
    worker_figures = [process_figures(w.pid) if w.poll() is None else {"exited": w.returncode} for w in workers]
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    worker_out = []
    for worker in workers:
        out, err = worker.communicate(timeout=30)
        if worker.returncode != 0:
            raise SystemExit(f"a worker failed (exit {worker.returncode}): {err.strip()[-2000:]}")
        worker_out.append(json.loads(out.strip().splitlines()[-1]))
    ids = [i for path in (work / "devices").glob("ids-*.json") for i in json.loads(path.read_text())]
    rows = stored_ids(store)
    log = (work / "broker" / "mosquitto.log").read_text(errors="replace")
    sent, stored = len(ids), len(set(rows))
    waiting = sum(d["waiting"] for d in devices_out)
    return {
        "devices": args.devices,
        "device_processes": len(fleet),
        "summaries_per_device": args.summaries,
        "store": args.store,
        "broker_stop": f"{args.stop} at {stopped_at - start_at:.1f} s, down {args.down_s:g} s",
        "sent": sent,
        "acknowledged_by_broker": sent - waiting,
        "still_in_device_outboxes": waiting,
        "received_by_workers": sum(w["received"] for w in worker_out),
        "stored": stored,
        "lost": len(set(ids) - set(rows)) - waiting,
        "stored_twice": len(rows) - stored,
        "redeliveries_absorbed": sum(w["duplicates"] for w in worker_out),
        "invalid": sum(w["invalid"] for w in worker_out),
        "broker_log_lines_about_dropped_messages": sum("dropped" in line.lower() for line in log.splitlines()),
        "stored_per_worker": [w["stored"] for w in worker_out],
        "seconds_first_put_to_last_stored": round(finished - start_at, 1),
        "throughput_stored_per_s": round(stored / max(finished - start_at, 1e-9), 1),
        "broker": {
            "cpu_s": round(broker_cpu["cpu_s"] + after["cpu_s"], 2),
            "peak_rss_mib": max(broker_cpu["peak_rss_mib"], after["peak_rss_mib"]),
        },
        "workers": worker_figures,
        "device_processes_total": {
            "cpu_s": round(sum(d["cpu_s"] for d in devices_out), 1),
            "peak_rss_mib_each": max(d["peak_rss_mib"] for d in devices_out),
        },
    }


def render(report: dict[str, Any]) -> str:
    """The figures as lines for people."""
    return "\n".join(f"{key:34} {value}" for key, value in report.items())


def main() -> int:
    """Conduct (default) or run one slice of devices (``--role devices``, started by the conductor)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--summaries", type=int, default=10, help="summaries per device")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between a device's summaries")
    parser.add_argument("--per-process", type=int, default=100, help="simulated devices per process (<= ~140)")
    parser.add_argument("--workers", type=int, default=2, help="integrator workers on the shared subscription")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--stop", choices=("term", "kill"), default="term", help="how the broker is stopped")
    parser.add_argument("--down-s", type=float, default=3.0, help="seconds the broker stays down")
    parser.add_argument("--budget-s", type=float, default=240.0, help="give up this long after the first put")
    parser.add_argument(
        "--broker-option", action="append", default=[], help='a mosquitto.conf line, e.g. "max_queued_messages 100000"'
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--role", choices=("conductor", "devices"), default="conductor", help=argparse.SUPPRESS)
    for name in ("--first", "--count", "--port"):
        parser.add_argument(name, type=int, help=argparse.SUPPRESS)
    for name in ("--prefix", "--state"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--drain-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "devices":
        run_devices(args)
        return 0
    report = conduct(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    complete = report["stored"] == report["sent"] and report["stored_twice"] == 0
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
