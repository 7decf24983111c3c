"""The durable outbox: summaries wait in SQLite (WAL mode) in the state directory until the broker acknowledges.

A row is deleted only after the broker's PUBACK for it, so broker outages, restarts and ``kill -9`` lose nothing
(``synchronous=FULL``: a committed row survives power loss too). Rows leave in insertion order, each not before
its ``not_before`` time: a summary waits until the coarse end of its period has passed, so when it arrives tells
no more than its coarsened timestamps do. A row that is not due yet holds back the rows after it.

Bound policy (docs/mqtt-contract.md): above the soft bounds (``max_messages`` / ``max_bytes``) the oldest
*rolling* summaries are dropped first; session summaries are dropped (oldest first) only above the hard bounds.
Every drop is logged as a warning with its counts and counted in ``dropped``.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError, ExpressoError
from edge.publish.settings import OutboxSettings

log = logging.getLogger(__name__)

OUTBOX_NAME = "outbox.sqlite3"
DROPPABLE_FIRST = "rolling"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0
)
"""


class OutboxWriteError(ExpressoError):
    """The state directory refused a write (disk full, read-only or failing)."""


@dataclass(frozen=True)
class OutboxRow:
    """One stored message; ``row_id`` orders rows and is what ``ack`` takes."""

    row_id: int
    message_id: str
    topic: str
    payload: bytes
    qos: int
    kind: str


class Outbox:
    """A bounded, thread-safe, crash-safe FIFO of messages awaiting acknowledgement."""

    def __init__(self, state_dir: Path, settings: OutboxSettings) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / OUTBOX_NAME
        self._settings = settings
        self._lock = threading.Lock()
        self.dropped = 0
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
            if "not_before" not in columns:  # an outbox written before summaries were held
                self._db.execute("ALTER TABLE messages ADD COLUMN not_before REAL NOT NULL DEFAULT 0")
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"outbox {self.path} cannot be opened ({error})",
                fix="check the state directory's permissions and free space; a corrupt outbox can be deleted",
            ) from error
        self.path.chmod(0o600)

    def put(
        self, message_id: str, topic: str, payload: bytes, *, kind: str, qos: int = 1, not_before: float = 0.0
    ) -> None:
        """Store a message durably (committed before returning), then apply the bound policy.

        Raises :class:`OutboxWriteError` when the database cannot take it (e.g. the disk is full).
        """
        with self._locked() as db:
            try:
                db.execute(
                    "INSERT OR IGNORE INTO messages (message_id, topic, payload, qos, kind, size, not_before) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (message_id, topic, payload, qos, kind, len(payload), not_before),
                )
                self._enforce_bounds(db)
            except sqlite3.DatabaseError as error:
                raise OutboxWriteError(
                    f"outbox {self.path} cannot store a summary ({error})",
                    fix="free space in the state directory's file system or check that it is writable",
                ) from error

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
                self._db.execute("DELETE FROM messages WHERE id = ?", (row_id,))

    def stats(self) -> dict[str, int]:
        """Messages and payload bytes waiting, and messages dropped by the bound policy since start."""
        with self._locked() as db:
            count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        return {"messages": int(count), "bytes": int(size), "dropped": self.dropped}

    def close(self) -> None:
        """Checkpoint the WAL and close the database (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
                self._db = None

    def delete_files(self) -> None:
        """Delete the closed database with its WAL and shared-memory files (an erase)."""
        with self._lock:
            if self._db is not None:
                raise ConfigError("the outbox is still open", fix="close it before deleting its files")
            for suffix in ("", "-wal", "-shm", "-journal"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise ConfigError("the outbox is closed", fix="open a new Outbox (after an erase or stop)")
            yield self._db

    def _enforce_bounds(self, db: sqlite3.Connection) -> None:
        s = self._settings
        first = self._drop_oldest(db, s.max_messages, s.max_bytes, kind=DROPPABLE_FIRST)
        second = self._drop_oldest(db, s.hard_max_messages, s.hard_max_bytes, kind=None)
        if first or second:
            self.dropped += first + second
            left = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            log.warning(
                "outbox over its bounds: dropped %d rolling and %d other summaries (oldest first); %d wait",
                first,
                second,
                left,
            )

    @staticmethod
    def _drop_oldest(db: sqlite3.Connection, max_messages: int, max_bytes: int, *, kind: str | None) -> int:
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        dropped = 0
        while count > max_messages or size > max_bytes:
            where = "WHERE kind = ?" if kind else ""
            row = db.execute(f"SELECT id, size FROM messages {where} ORDER BY id LIMIT 1", (kind,) if kind else ())
            found = row.fetchone()
            if found is None:
                break
            db.execute("DELETE FROM messages WHERE id = ?", (found[0],))
            count, size, dropped = count - 1, size - found[1], dropped + 1
        return dropped
