"""The durable outbox on a real SQLite file: order, acknowledgement, restarts and the bound policy."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from small_disk import fill, small_disk

from edge.publish.outbox import OUTBOX_NAME, Outbox, OutboxWriteError
from edge.publish.settings import OutboxSettings


def test_rows_leave_in_order_only_when_acknowledged_and_survive_reopening(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, OutboxSettings())
    for i in range(5):
        outbox.put(f"id-{i}", "t/summary", f"payload {i}".encode(), kind="session")
    outbox.put("id-0", "t/summary", b"duplicate", kind="session")  # same message id: stored once
    rows = outbox.pending()
    assert [r.message_id for r in rows] == [f"id-{i}" for i in range(5)]
    outbox.ack(rows[1].row_id)
    assert [r.message_id for r in outbox.pending(after=rows[0].row_id, limit=2)] == ["id-2", "id-3"]
    outbox.close()
    with sqlite3.connect(tmp_path / OUTBOX_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = Outbox(tmp_path, OutboxSettings())
    assert [r.message_id for r in reopened.pending()] == ["id-0", "id-2", "id-3", "id-4"]
    assert reopened.stats()["messages"] == 4
    assert (tmp_path / OUTBOX_NAME).stat().st_mode & 0o077 == 0
    reopened.close()


def test_bound_policy_drops_oldest_rolling_first_and_sessions_only_over_the_hard_cap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = OutboxSettings(max_messages=4, hard_max_messages=6, max_inflight=1)
    outbox = Outbox(tmp_path, settings)
    caplog.set_level(logging.WARNING)
    for i in range(3):
        outbox.put(f"s{i}", "t", b"x", kind="session")
        outbox.put(f"r{i}", "t", b"x", kind="rolling")
    # 6 stored against a soft bound of 4: the two oldest rolling summaries went
    assert [r.message_id for r in outbox.pending()] == ["s0", "s1", "s2", "r2"]
    for i in range(3, 6):
        outbox.put(f"s{i}", "t", b"x", kind="session")
    # the last rolling summary went; sessions stay above the soft bound as long as the hard cap allows
    assert [r.message_id for r in outbox.pending()] == [f"s{i}" for i in range(6)]
    outbox.put("s6", "t", b"x", kind="session")  # over the hard cap: the oldest session goes
    assert [r.message_id for r in outbox.pending()] == [f"s{i}" for i in range(1, 7)]
    assert outbox.stats()["dropped"] == 4
    assert caplog.text.count("dropped") == 1 and "dropped 1 rolling and 0 other" in caplog.text  # throttled
    outbox.close()  # says what was dropped since the last line
    assert caplog.text.count("dropped") == 2 and "dropped 2 rolling and 1 other" in caplog.text


def test_byte_bound_applies_like_the_count_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, OutboxSettings(max_bytes=2048, hard_max_bytes=4096))
    outbox.put("r0", "t", b"x" * 1500, kind="rolling")
    outbox.put("s0", "t", b"x" * 1500, kind="session")
    assert [r.message_id for r in outbox.pending()] == ["s0"]
    outbox.close()


def test_a_row_not_due_holds_back_the_rows_after_it(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, OutboxSettings())
    outbox.put("early", "t/summary", b"a", kind="session", not_before=100.0)
    outbox.put("late", "t/summary", b"b", kind="session", not_before=900.0)
    outbox.put("after", "t/summary", b"c", kind="rolling", not_before=0.0)  # due, but behind a held row
    assert [r.message_id for r in outbox.pending(now=50.0)] == []
    assert [r.message_id for r in outbox.pending(now=100.0)] == ["early"]
    assert [r.message_id for r in outbox.pending(now=900.0)] == ["early", "late", "after"]
    assert [r.message_id for r in outbox.pending()] == ["early", "late", "after"]  # no clock: everything
    assert (outbox.due(50.0), outbox.due(100.0), outbox.due(900.0)) == (0, 1, 3)  # what pending would give
    # held for longer than max_hold: only a clock stepped back does that, so the row is due
    assert [r.message_id for r in outbox.pending(now=850.0, max_hold=10.0)] == ["early", "late", "after"]
    assert outbox.due(850.0, max_hold=10.0) == 3
    outbox.close()


def test_an_outbox_written_before_rows_were_held_is_upgraded_in_place(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / OUTBOX_NAME) as db:
        db.execute(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, kind TEXT NOT NULL, "
            "size INTEGER NOT NULL)"
        )
        db.execute(
            "INSERT INTO messages (message_id, topic, payload, qos, kind, size) "
            "VALUES ('old', 't', x'01', 1, 'session', 1)"
        )
    outbox = Outbox(tmp_path, OutboxSettings())
    assert [r.message_id for r in outbox.pending(now=0.0)] == ["old"]  # due at once, as before
    outbox.put("new", "t", b"\x02", kind="session", not_before=10.0)
    assert [r.message_id for r in outbox.pending(now=5.0)] == ["old"]
    outbox.close()


def test_a_full_database_raises_a_clear_error_and_keeps_what_it_had(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, OutboxSettings())
    outbox.put("kept", "t", b"x" * 100, kind="session")
    assert outbox._db is not None
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with pytest.raises(OutboxWriteError, match="database or disk is full") as error:
        outbox.put("big", "t", b"y" * 200_000, kind="session")
    assert error.value.fix and "free space" in error.value.fix
    assert [r.message_id for r in outbox.pending()] == ["kept"]
    outbox.close()


def test_a_restart_on_a_full_disk_opens_with_the_reserve_and_keeps_what_waited(tmp_path: Path) -> None:
    # a daemon restarted on a full disk (after a crash or a watchdog kill) could not make the WAL: exit 3, which
    # systemd does not restart, with the reserve meant for this still on the disk
    with small_disk(tmp_path / "disk", 8) as disk:
        outbox = Outbox(disk, OutboxSettings())
        outbox.put("waiting", "t", b"x" * 100, kind="session")
        outbox.close()
        fill(disk)
        again = Outbox(disk, OutboxSettings())
        assert [r.message_id for r in again.pending()] == ["waiting"]
        again.put("new", "t", b"y" * 100, kind="session")
        assert [r.message_id for r in again.pending()] == ["waiting", "new"]
        again.close()


def test_a_directory_where_the_reserve_belongs_is_named_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "outbox.reserve" / "kept").mkdir(parents=True)  # made by hand, or a restore gone wrong
    with caplog.at_level(logging.WARNING):
        outbox = Outbox(tmp_path, OutboxSettings())
    assert "no disk reserve for the outbox" in caplog.text and "outbox.reserve" in caplog.text
    outbox.put("kept", "t", b"x", kind="session")
    assert outbox.release_reserve() is False  # nothing to give back, and no traceback
    assert (tmp_path / "outbox.reserve" / "kept").is_dir()
    outbox.close()


def test_puts_and_stats_never_scan_the_table(tmp_path: Path) -> None:
    # each put counted and summed the whole table: 1,475 puts/s empty, 64/s at 10,000 rows
    outbox = Outbox(tmp_path, OutboxSettings(max_messages=3, hard_max_messages=4))
    for i in range(4):
        outbox.put(f"s{i}", "t", b"x" * 10, kind="session")
    statements: list[str] = []
    assert outbox._db is not None
    outbox._db.set_trace_callback(statements.append)
    assert outbox.put("r0", "t", b"x" * 10, kind="rolling") is False  # over the soft bound, no older rolling one
    assert not [s for s in statements if "INSERT" in s]  # so it is not even written (and counted as dropped)
    outbox.put("s4", "t", b"x" * 10, kind="session")  # over the hard bound: one session goes
    outbox.ack(outbox.pending(limit=1)[0].row_id)
    stats = outbox.stats()
    assert not [s for s in statements if "COUNT(" in s.upper() or "SUM(" in s.upper()], statements
    with sqlite3.connect(tmp_path / OUTBOX_NAME) as db:  # the kept counts agree with a recount
        assert (stats["messages"], stats["bytes"]) == db.execute("SELECT COUNT(*), SUM(size) FROM messages").fetchone()
    assert stats["messages"] == 3 and stats["dropped"] == 2
    outbox.close()


def test_a_message_dropped_as_soon_as_stored_is_reported_as_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # past the soft bound each new rolling summary was dropped at once, yet logged and counted as queued
    outbox = Outbox(tmp_path, OutboxSettings(max_messages=2, hard_max_messages=10))
    assert outbox.put("s0", "t", b"x", kind="session") and outbox.put("s1", "t", b"x", kind="session")
    caplog.set_level(logging.WARNING)
    drops = 1000
    kept = [outbox.put(f"r{i}", "t", b"x", kind="rolling") for i in range(drops)]
    assert not any(kept) and outbox.stats() == {"messages": 2, "bytes": 2, "dropped": drops}
    assert outbox.put("s2", "t", b"x", kind="session")  # a session stays (below the hard bound)
    outbox.close()
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 2, lines  # one at the first drop, one with the rest at close: not one per drop
    assert sum(int(line.split("dropped ")[1].split()[0]) for line in lines) == drops


def test_database_wal_and_shm_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)  # outside systemd (UMask=0077) the -wal and -shm were created 0644
    state = tmp_path / "state"  # and a state directory the outbox made was 0755
    try:
        outbox = Outbox(state, OutboxSettings())
        outbox.put("s0", "t", b"x", kind="session")
        files = [state / f"{OUTBOX_NAME}{suffix}" for suffix in ("", "-wal", "-shm")]
        assert all(path.exists() for path in files)
        assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o600"}
        assert oct(state.stat().st_mode & 0o777) == "0o700"
        outbox.close()
    finally:
        os.umask(old)


def test_the_outbox_benchmark_prints_puts_and_drain_rates_per_backlog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    argv = ["bench-outbox", "--rows", "0,300", "--puts", "20", "--drain", "30", "--dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["backlog"] for r in report["results"]] == [0, 300]
    assert [r["waiting_after_puts"] for r in report["results"]] == [20, 320]  # below the bounds: nothing dropped
    assert all(r["puts_per_s"] > 0 and r["drained"] >= min(30, r["waiting_after_puts"]) for r in report["results"])
    assert all(r["drain_rows_per_s"] > 0 for r in report["results"]) and list(tmp_path.iterdir()) == []
    assert main(["bench-outbox", "--rows", "x"]) == 2
