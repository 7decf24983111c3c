"""Where checked messages go: SQLite (the default), PostgreSQL (several workers) or a JSON-lines file.

SQLite and PostgreSQL share one table layout: ``expresso_messages`` keyed by ``message_id`` (its primary key), so
an ``INSERT ... ON CONFLICT (message_id) DO NOTHING`` stores a QoS 1 redelivery, a replayed retained status or
a message two workers of a shared subscription both saw exactly once, across restarts. Invalid messages go to
``expresso_rejected`` with their errors. Every write is committed before it returns: the client acknowledges a
message to the broker only after that, so a crash loses nothing (the broker redelivers).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from edge.client.messages import Checked
from edge.errors import ConfigError, ExpressoError

log = logging.getLogger(__name__)
MESSAGES = "expresso_messages"
REJECTED = "expresso_rejected"
TABLES = """
CREATE TABLE IF NOT EXISTS expresso_messages (
    message_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    payload {json} NOT NULL
);
CREATE INDEX IF NOT EXISTS expresso_messages_device ON expresso_messages (device, kind);
CREATE TABLE IF NOT EXISTS expresso_rejected (
    id {serial},
    topic TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    payload {blob} NOT NULL,
    errors TEXT NOT NULL
);
"""
"""The schema both SQL stores create; ``{json}``, ``{serial}``, ``{blob}`` are the only per-database words."""
SQLITE_WAIT_S = 30.0
"""How long a SQLite store waits for another connection that holds the file before it gives up."""


class StoreError(ExpressoError):
    """The store cannot take a message: the client stops without acknowledging it (the broker keeps it)."""

    exit_code = 9


class Store(ABC):
    """Keeps valid messages once each (by ``message_id``) and invalid ones aside."""

    @abstractmethod
    def add(self, message: Checked, received_at: float | None = None) -> bool:
        """Store a valid message; False when its ``message_id`` was already stored (a duplicate)."""

    @abstractmethod
    def reject(self, message: Checked, received_at: float | None = None) -> None:
        """Keep an invalid message with its errors."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Stored messages per kind, and ``rejected``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection or file."""


class SqlStore(Store):
    """The SQL both databases run; subclasses open the connection and name the placeholder."""

    placeholder = "?"
    words: ClassVar[dict[str, str]]
    """The database's words for ``{json}``, ``{serial}`` and ``{blob}`` in :data:`TABLES`."""

    def __init__(self, connection: Any) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self._create_tables([s for s in self.ddl().split(";") if s.strip()])

    @classmethod
    def ddl(cls) -> str:
        """The statements that create this database's tables (docs/fleet.md shows PostgreSQL's)."""
        return TABLES.format(**cls.words)

    def _create_tables(self, statements: list[str]) -> None:
        for statement in statements:
            self._execute(statement)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            with self._lock:
                return self._db.execute(sql.replace("?", self.placeholder), params)
        except Exception as error:  # sqlite3.Error / psycopg.Error: the store is down, full or refuses
            raise StoreError(
                f"the store refused a write ({type(error).__name__}: {error})",
                fix="check the database (space, permissions, server up); unacknowledged messages wait in the broker",
            ) from error

    def add(self, message: Checked, received_at: float | None = None) -> bool:
        """Insert once: ``ON CONFLICT (message_id) DO NOTHING``."""
        cursor = self._execute(
            f"INSERT INTO {MESSAGES} (message_id, kind, device, topic, received_at, payload) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (message_id) DO NOTHING",
            (
                message.message_id,
                message.kind,
                message.device,
                message.topic,
                received_at or time.time(),
                json.dumps(message.document, ensure_ascii=False),
            ),
        )
        return bool(cursor.rowcount == 1)

    def reject(self, message: Checked, received_at: float | None = None) -> None:
        """Insert into ``expresso_rejected``."""
        self._execute(
            f"INSERT INTO {REJECTED} (topic, received_at, payload, errors) VALUES (?,?,?,?)",
            (message.topic, received_at or time.time(), message.payload, "\n".join(message.errors)),
        )

    def counts(self) -> dict[str, int]:
        """Rows per kind and rejected rows."""
        rows = self._execute(f"SELECT kind, COUNT(*) FROM {MESSAGES} GROUP BY kind").fetchall()
        rejected = self._execute(f"SELECT COUNT(*) FROM {REJECTED}").fetchone()[0]
        return {**{str(kind): int(n) for kind, n in rows}, "rejected": int(rejected)}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


class SQLiteStore(SqlStore):
    """One file (WAL, ``synchronous=FULL``: a committed message survives a power cut), mode 0600."""

    words: ClassVar[dict[str, str]] = {"json": "TEXT", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"}

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=SQLITE_WAIT_S)
            _switch_to_wal(db)
            db.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(
                f"store {path} cannot be opened ({error})", fix="pass --store with a writable path"
            ) from error
        super().__init__(db)


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to :data:`SQLITE_WAIT_S`: the switch needs the file to itself,
    and SQLite answers "database is locked" at once, without its busy wait, while another connection holds it
    (workers of one store starting together, or a reader counting rows)."""
    give_up = time.monotonic() + SQLITE_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > give_up:
                raise
            time.sleep(0.05)


class PostgresStore(SqlStore):
    """A PostgreSQL database through psycopg 3 (extra ``postgres``), autocommit: each message its own commit."""

    placeholder = "%s"
    words: ClassVar[dict[str, str]] = {"json": "JSONB", "serial": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"}

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as error:
            raise ConfigError(
                "a postgresql:// store needs psycopg", fix="pip install 'expresso-edge[postgres]'"
            ) from error
        try:
            db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            raise ConfigError(
                f"cannot connect to the PostgreSQL store ({error})".strip(),
                fix="check the URL (postgresql://user@host/db or postgresql:///db?host=/run/postgresql)",
            ) from error
        super().__init__(db)

    def _create_tables(self, statements: list[str]) -> None:
        """Unless both tables exist (a user without CREATE rights is refused even ``CREATE ... IF NOT EXISTS``), in
        one transaction under an advisory lock: workers starting together would otherwise race in ``CREATE TABLE
        IF NOT EXISTS`` (a unique violation in PostgreSQL's catalogue)."""
        exist = f"SELECT to_regclass('{MESSAGES}') IS NOT NULL AND to_regclass('{REJECTED}') IS NOT NULL"
        try:
            with self._db.transaction():
                if self._db.execute(exist).fetchone()[0]:
                    return
                self._db.execute("SELECT pg_advisory_xact_lock(hashtext('expresso_messages'))")
                for statement in statements:
                    self._db.execute(statement)
        except Exception as error:
            raise ConfigError(
                f"cannot create the store's tables ({type(error).__name__}: {error})",
                fix="give the database user CREATE rights on its schema, or create the tables from docs/fleet.md",
            ) from error


class JsonLinesStore(Store):
    """One JSON object per line (``{"topic", "received_at", "payload"}``), rejected ones in ``<file>.rejected``.

    The ``message_id``s already in the file are read at start, so de-duplication holds across restarts; each
    line is flushed and fsynced before the message is acknowledged (a line a crash left half written is cut).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rejected_path = path.with_name(path.name + ".rejected")
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()
        self._rejected = 0
        try:
            self._file = self._open(path)
            _lock_for_one_worker(self._file, path)
            for line in _whole_lines(path):
                record = json.loads(line)
                self._seen[record["payload"]["message_id"]] = record["kind"]
            self._rejected = len(_whole_lines(self._rejected_path))
            self._rejected_file = self._open(self._rejected_path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"JSON-lines store {path} cannot be used ({error})", fix="pass --store with a writable .jsonl file"
            ) from error

    @staticmethod
    def _open(path: Path) -> Any:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8")

    def _write(self, file: Any, record: dict[str, Any]) -> None:
        try:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        except OSError as error:
            raise StoreError(f"cannot append to {file.name} ({error})", fix="free space or fix permissions") from error

    def add(self, message: Checked, received_at: float | None = None) -> bool:
        """Append unless the ``message_id`` is already in the file."""
        with self._lock:
            if message.message_id in self._seen:
                return False
            record = {"topic": message.topic, "kind": message.kind, "received_at": received_at or time.time()}
            self._write(self._file, {**record, "payload": message.document})
            self._seen[message.message_id] = str(message.kind)
            return True

    def reject(self, message: Checked, received_at: float | None = None) -> None:
        """Append to ``<file>.rejected`` with the errors and the raw payload (as text, undecodable bytes escaped)."""
        with self._lock:
            raw = message.payload.decode("utf-8", errors="backslashreplace")
            record = {"topic": message.topic, "received_at": received_at or time.time(), "errors": message.errors}
            self._write(self._rejected_file, {**record, "payload": raw})
            self._rejected += 1

    def counts(self) -> dict[str, int]:
        """Lines per kind and rejected lines."""
        with self._lock:
            kinds = list(self._seen.values())
            return {**{kind: kinds.count(kind) for kind in sorted(set(kinds))}, "rejected": self._rejected}

    def close(self) -> None:
        """Close both files."""
        with self._lock:
            self._file.close()
            self._rejected_file.close()


def _lock_for_one_worker(file: Any, path: Path) -> None:
    """Hold an exclusive lock on the open ``file`` until it is closed: a second worker would know only the ids
    that were in the file when it started, and store again what the first stores."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        file.close()
        raise ConfigError(
            f"JSON-lines store {path} is in use by another worker",
            fix="give each worker its own file, or let workers share SQLite or PostgreSQL (one unique key for all)",
        ) from error


def _whole_lines(path: Path) -> list[str]:
    """The file's complete lines; a last line a crash left half written (no newline) is cut off the file: its
    message was never acknowledged, so the broker delivers it again."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        whole = data.rfind(b"\n") + 1
        log.warning("%s: cut a half-written last line (%d bytes) left by a crash", path, len(data) - whole)
        os.truncate(path, whole)
        data = data[:whole]
    return data.decode("utf-8").splitlines()


def open_store(url: str) -> Store:
    """A store from a URL: ``sqlite:///abs/path``, ``postgresql://...``, ``path.jsonl``; a bare path is SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite://"):
        return SQLiteStore(Path(url.removeprefix("sqlite://")))  # sqlite:///abs/path or sqlite://relative/path
    if url.endswith((".jsonl", ".ndjson")):
        return JsonLinesStore(Path(url))
    if "://" in url:
        raise ConfigError(
            f"store {url!r} has an unknown scheme",
            fix="use sqlite:///path.sqlite, postgresql://user@host/db or a path ending in .jsonl",
        )
    return SQLiteStore(Path(url))
