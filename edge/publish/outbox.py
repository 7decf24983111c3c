"""The durable outbox: summaries wait in SQLite (WAL mode) in the state directory until the broker acknowledges.

A row is deleted only after the broker's PUBACK for it, so broker outages, restarts and ``kill -9`` lose nothing
(``synchronous=FULL``: a committed row survives power loss too). Rows leave in insertion order, each not before
its ``not_before`` time: a summary waits until the coarse end of its period has passed, so when it arrives tells
no more than its coarsened timestamps do. A row that is not due yet holds back the rows after it.

Bound policy (docs/mqtt-contract.md): above the soft bounds (``max_messages`` / ``max_bytes``) the oldest
*rolling* summaries are dropped first; session summaries are dropped (oldest first) only above the hard bounds.
Every drop is counted in ``dropped`` and logged, at most one warning line per :data:`DROP_LOG_INTERVAL_S` with the
counts since the last one. :meth:`Outbox.put` says whether the new message itself was kept.

Constant time whatever the backlog: the message and byte counts are read once at open and kept up to date (one
``Outbox`` per state directory, see :mod:`edge.statelock`), and the oldest rolling row is found by an index.

Files: the database and its ``-wal``/``-shm`` are 0600 whatever the umask (SQLite gives the WAL and shared-memory
files the database's mode, so the database is made 0600 before SQLite opens it). The WAL is truncated to
``journal_size_limit`` after checkpoints, and :data:`RESERVE_BYTES` of disk are held in a reserve file that
:meth:`Outbox.release_reserve` gives back on a full disk, so that what waits in memory at a stop can still be
stored (docs/daemon.md, "Known states on failure").
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError, ExpressoError
from edge.publish.settings import OutboxSettings

log = logging.getLogger(__name__)

OUTBOX_NAME = "outbox.sqlite3"
RESERVE_NAME = "outbox.reserve"
RESERVE_BYTES = 4 * 2**20
"""Disk space held back for the stop path: room for the in-memory buffer's 1,000 summaries of ~2 KB each."""
WAL_LIMIT_BYTES = 2**20
"""The WAL is truncated to this after a checkpoint, so an outbox drained once does not keep a large WAL."""
DROP_LOG_INTERVAL_S = 60.0
"""At most one drop warning per this many seconds (the counts since the last one)."""
DROPPABLE_FIRST = "rolling"

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS messages_by_kind ON messages (kind, id)",
)
_HELD_INDEX = "CREATE INDEX IF NOT EXISTS messages_by_hold ON messages (not_before)"


class OutboxWriteError(ExpressoError):
    """The state directory refused a write (disk full, read-only or failing)."""


@dataclass(frozen=True)
class NewMessage:
    """A message to store (see :meth:`Outbox.put_many`)."""

    message_id: str
    topic: str
    payload: bytes
    kind: str
    qos: int = 1
    not_before: float = 0.0


@dataclass(frozen=True)
class OutboxRow:
    """One stored message; ``row_id`` orders rows and is what ``ack`` takes."""

    row_id: int
    message_id: str
    topic: str
    payload: bytes
    qos: int
    kind: str


class DropLog:
    """Counts drops and logs them at most once per ``interval`` seconds, with the counts since the last line."""

    def __init__(self, interval: float = DROP_LOG_INTERVAL_S) -> None:
        self.interval = interval
        self._last = -math.inf
        self._rolling = self._other = 0

    def add(self, rolling: int, other: int, waiting: int) -> None:
        """Record drops; log them now unless a line went out less than ``interval`` ago."""
        self._rolling += rolling
        self._other += other
        if time.monotonic() - self._last >= self.interval:
            self.flush(waiting)

    def flush(self, waiting: int) -> None:
        """Log what was dropped since the last line, if anything."""
        if self._rolling or self._other:
            log.warning(
                "outbox over its bounds: dropped %d rolling and %d other summaries (oldest first) since the last "
                "such line; %d wait",
                self._rolling,
                self._other,
                waiting,
            )
            self._last = time.monotonic()
            self._rolling = self._other = 0


def _private_file(path: Path) -> None:
    """Create ``path`` if missing and make it 0600 (before SQLite copies its mode to the -wal and -shm)."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    path.chmod(0o600)


def _unopenable(path: Path, error: Exception) -> ConfigError:
    return ConfigError(
        f"outbox {path} cannot be opened ({error})",
        fix="check the state directory's permissions and free space; a corrupt outbox can be deleted",
    )


def check_outbox_file(state_dir: Path) -> bool:
    """An existing outbox is a database :class:`Outbox` can open (its ConfigError otherwise); False when there is
    none. Read as immutable: no lock, no ``-wal``/``-shm`` created (a root-owned one would lock the daemon out)."""
    path = state_dir / OUTBOX_NAME
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)) as db:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except (sqlite3.DatabaseError, OSError) as error:
        raise _unopenable(path, error) from error
    return True


class Outbox:
    """A bounded, thread-safe, crash-safe FIFO of messages awaiting acknowledgement."""

    def __init__(self, state_dir: Path, settings: OutboxSettings) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / OUTBOX_NAME
        self._settings = settings
        self._lock = threading.Lock()
        self.dropped = 0
        self._drops = DropLog()
        self.reserve = state_dir / RESERVE_NAME
        try:
            self._db: sqlite3.Connection | None = self._connect()
        except (sqlite3.DatabaseError, OSError) as error:
            # a restart on a full disk (after a crash or a watchdog kill): the WAL and -shm cannot be made; the
            # reserve gives the room back (it refused with exit 3, which systemd does not restart)
            if shutil.disk_usage(state_dir).free >= RESERVE_BYTES or not self.release_reserve():
                raise _unopenable(self.path, error) from error
            try:
                self._db = self._connect()
            except (sqlite3.DatabaseError, OSError) as again:
                raise _unopenable(self.path, again) from again
        self._hold_reserve()

    def _connect(self) -> sqlite3.Connection:
        """Open the database (0600), create or upgrade its table, and read the kept counts."""
        _private_file(self.path)
        for suffix in ("-wal", "-shm"):  # left by an older version or another umask
            with suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).chmod(0o600)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            db.execute(_SCHEMA[0])
            columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
            if "not_before" not in columns:  # an outbox written before summaries were held
                db.execute("ALTER TABLE messages ADD COLUMN not_before REAL NOT NULL DEFAULT 0")
            db.execute(_SCHEMA[1])
            db.execute(_HELD_INDEX)
            count, size, rolling = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COUNT(*) FILTER (WHERE kind = ?) FROM messages",
                (DROPPABLE_FIRST,),
            ).fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        self._count, self._bytes, self._rolling = int(count), int(size), int(rolling)
        return db

    def _hold_reserve(self) -> None:
        """Write the reserve file (real blocks, not a sparse file) unless it is there already."""
        try:
            if self.reserve.exists() and self.reserve.stat().st_size == RESERVE_BYTES:
                return
            with self.reserve.open("wb") as handle:
                self.reserve.chmod(0o600)
                handle.write(bytes(RESERVE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            with suppress(OSError):  # e.g. a directory a person made in its place: theirs to remove
                self.reserve.unlink(missing_ok=True)
            log.warning("no disk reserve for the outbox (%s): a full disk at a stop may lose summaries", error)

    def release_reserve(self) -> bool:
        """Give the reserve's space back (a full disk): True when there was one to give."""
        if not self.reserve.is_file():
            return False
        self.reserve.unlink(missing_ok=True)
        log.warning("state directory full: released the outbox's %d MiB disk reserve", RESERVE_BYTES // 2**20)
        return True

    def put(
        self, message_id: str, topic: str, payload: bytes, *, kind: str, qos: int = 1, not_before: float = 0.0
    ) -> bool:
        """Store one message (see :meth:`put_many`); whether it is kept."""
        return self.put_many([NewMessage(message_id, topic, payload, kind, qos, not_before)])[0]

    def put_many(self, messages: Sequence[NewMessage]) -> list[bool]:
        """Store messages durably in one transaction (committed before returning), the bound policy applied after
        each; whether each is kept.

        False when the bound policy dropped it (at once, e.g. a rolling summary above the soft bound with no older
        rolling one left, or for a later one of the batch); a duplicate ``message_id`` counts as kept. Raises
        :class:`OutboxWriteError` when the database cannot take them (e.g. the disk is full): then nothing was
        stored or dropped. One transaction writes each touched page once: far less WAL than a commit per message.
        """
        with self._locked() as db:
            counts = self._count, self._bytes, self._rolling
            new_ids: list[int | None] = []
            dropped: tuple[list[int], list[int]] = ([], [])
            try:
                db.execute("BEGIN IMMEDIATE")
                for m in messages:
                    if self._dropped_at_once(m.kind, len(m.payload)):  # not even written: it would go at once
                        new_ids.append(0)
                        dropped[0].append(0)
                        continue
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO messages (message_id, topic, payload, qos, kind, size, not_before) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (m.message_id, m.topic, m.payload, m.qos, m.kind, len(m.payload), m.not_before),
                    )
                    if cursor.rowcount != 1:  # a duplicate: the stored one stands for it
                        new_ids.append(None)
                        continue
                    new_ids.append(cursor.lastrowid)
                    self._count, self._bytes = self._count + 1, self._bytes + len(m.payload)
                    self._rolling += m.kind == DROPPABLE_FIRST
                    first, second = self._enforce_bounds(db)
                    dropped[0].extend(first)
                    dropped[1].extend(second)
                db.execute("COMMIT")
            except sqlite3.DatabaseError as error:
                self._count, self._bytes, self._rolling = counts
                with suppress(sqlite3.DatabaseError):
                    db.execute("ROLLBACK")
                raise OutboxWriteError(
                    f"outbox {self.path} cannot store {len(messages)} summaries ({error})",
                    fix="free space in the state directory's file system or check that it is writable",
                ) from error
            self._count_drops(dropped)
        gone = {*dropped[0], *dropped[1]}
        return [row_id is None or row_id not in gone for row_id in new_ids]

    def pending(
        self, *, after: int = 0, limit: int = 100, now: float | None = None, max_hold: float = math.inf
    ) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``row_id > after``, oldest first, up to the first row still held at ``now``
        (all rows when ``now`` is None; none once closed, e.g. during an erase).

        A row held for longer than ``max_hold`` from ``now`` can only come from a clock stepped back: it is due.
        """
        with self._lock:
            if self._db is None:
                return []
            first_held = self._first_held(self._db, now, max_hold)
            rows = self._db.execute(
                "SELECT id, message_id, topic, payload, qos, kind FROM messages WHERE id > ? AND id < ? "
                "ORDER BY id LIMIT ?",
                (after, first_held, limit),
            ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    def due(self, now: float, max_hold: float = math.inf) -> int:
        """How many messages may leave at ``now``: those before the first one still held."""
        with self._locked() as db:
            first_held = self._first_held(db, now, max_hold)
            if first_held == math.inf:
                return self._count
            return int(db.execute("SELECT COUNT(*) FROM messages WHERE id < ?", (first_held,)).fetchone()[0])

    @staticmethod
    def _first_held(db: sqlite3.Connection, now: float | None, max_hold: float) -> float:
        """The id of the oldest row still held at ``now`` (infinity when none is)."""
        if now is None:
            return math.inf
        row = db.execute(
            "SELECT MIN(id) FROM messages WHERE not_before > ? AND not_before <= ?", (now, now + max_hold)
        ).fetchone()
        return math.inf if row[0] is None else float(row[0])

    def ack(self, row_id: int) -> None:
        """Delete a row the broker acknowledged (ignored once closed: the row went with the erased outbox)."""
        with self._lock:
            if self._db is not None:
                for size, kind in self._db.execute("DELETE FROM messages WHERE id = ? RETURNING size, kind", (row_id,)):
                    self._count, self._bytes = self._count - 1, self._bytes - int(size)
                    self._rolling -= kind == DROPPABLE_FIRST

    def stats(self) -> dict[str, int]:
        """Messages and payload bytes waiting, and messages dropped by the bound policy since start."""
        with self._locked():
            return {"messages": self._count, "bytes": self._bytes, "dropped": self.dropped}

    def checkpoint(self) -> bool:
        """Fold the WAL into the database and truncate it (frees disk space); False when that failed."""
        with self._locked() as db:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError as error:
                log.error("outbox %s: the WAL cannot be checkpointed (%s); its rows stay in the WAL", self.path, error)
                return False
        return True

    def close(self) -> None:
        """Checkpoint the WAL and close the database (idempotent; a failed checkpoint is logged, rows stay safe in
        the WAL for the next start)."""
        if self._db is None:
            return
        self.checkpoint()
        with self._lock:
            if self._db is not None:
                self._drops.flush(self._count)
                self._db.close()
                self._db = None

    def delete_files(self) -> list[str]:
        """Delete the closed database with its WAL and shared-memory files (an erase); returns the names removed."""
        with self._lock:
            if self._db is not None:
                raise ConfigError("the outbox is still open", fix="close it before deleting its files")
            removed = []
            for suffix in ("", "-wal", "-shm", "-journal"):
                path = self.path.with_name(self.path.name + suffix)
                if path.exists():
                    path.unlink()
                    removed.append(path.name)
            return removed

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise ConfigError("the outbox is closed", fix="open a new Outbox (after an erase or stop)")
            yield self._db

    def _dropped_at_once(self, kind: str, size: int) -> bool:
        """A rolling summary over the soft bounds with no older rolling one to give way: the policy drops it."""
        s = self._settings
        over = self._count + 1 > s.max_messages or self._bytes + size > s.max_bytes
        return kind == DROPPABLE_FIRST and self._rolling == 0 and over

    def _enforce_bounds(self, db: sqlite3.Connection) -> tuple[list[int], list[int]]:
        """Drop per the bound policy; the ids dropped (rolling first, then any kind)."""
        s = self._settings
        first = self._drop_oldest(db, s.max_messages, s.max_bytes, kind=DROPPABLE_FIRST)
        second = self._drop_oldest(db, s.hard_max_messages, s.hard_max_bytes, kind=None)
        return first, second

    def _count_drops(self, dropped: tuple[list[int], list[int]]) -> None:
        first, second = map(len, dropped)
        if first or second:
            self.dropped += first + second
            self._drops.add(first, second, self._count)

    def _drop_oldest(self, db: sqlite3.Connection, max_messages: int, max_bytes: int, *, kind: str | None) -> list[int]:
        dropped: list[int] = []
        while self._count > max_messages or self._bytes > max_bytes:
            where = "WHERE kind = ?" if kind else ""
            query = f"SELECT id, size, kind FROM messages {where} ORDER BY id LIMIT 1"
            found = db.execute(query, (kind,) if kind else ()).fetchone()
            if found is None:
                break
            db.execute("DELETE FROM messages WHERE id = ?", (found[0],))
            self._count, self._bytes = self._count - 1, self._bytes - found[1]
            self._rolling -= found[2] == DROPPABLE_FIRST
            dropped.append(found[0])
        return dropped
