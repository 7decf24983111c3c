"""Checking and storing: schema and topic checks, one row per message_id in SQLite, PostgreSQL and JSON lines
(also across a reopen), invalid messages kept aside with their errors, clear errors for bad stores."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from summary_factory import summary_document

from edge.client.messages import check
from edge.client.stores import PostgresStore, Store, StoreError, open_store
from edge.errors import ConfigError

DEVICE = "0123456789abcdef0123"
TOPIC = f"acme/v2/{DEVICE}/summary"


def _payload(**changes: object) -> bytes:
    return json.dumps({**summary_document(DEVICE), **changes}).encode()


def test_a_valid_summary_passes_and_each_kind_of_fault_is_named() -> None:
    assert check(TOPIC, _payload()).valid
    assert check(TOPIC, _payload()).kind == "summary"
    faults = {
        "not JSON": check(TOPIC, b"{oops"),
        "schema": check(TOPIC, _payload(version=1)),  # a v1 payload on a v2 topic
        "device": check(f"acme/v2/{'f' * 20}/summary", _payload()),
        "topic": check("acme/v2/x/summary", _payload()),
        "kind": check(f"acme/v2/{DEVICE}/control", b"{}"),
        "empty": check(TOPIC, b""),
    }
    for name, checked in faults.items():
        assert not checked.valid and checked.errors, name
    assert "version" in faults["schema"].errors[0]
    assert "differs from the topic" in faults["device"].errors[0]


def _stores(tmp_path: Path, postgres_db: str) -> dict[str, Callable[[], Store]]:
    return {
        "sqlite": lambda: open_store(f"sqlite://{tmp_path / 'm.sqlite'}"),
        "jsonl": lambda: open_store(str(tmp_path / "m.jsonl")),
        "postgres": lambda: open_store(postgres_db),
    }


@pytest.mark.parametrize("kind", ["sqlite", "jsonl", "postgres"])
def test_each_message_is_stored_once_across_reopening_and_invalid_ones_are_kept_aside(
    tmp_path: Path, postgres_db: str, kind: str
) -> None:
    opener = _stores(tmp_path, postgres_db)[kind]
    first, second = check(TOPIC, _payload()), check(TOPIC, _payload())
    bad = check(TOPIC, b"\xff not json")
    store = opener()
    assert store.add(first) is True
    assert store.add(first) is False  # a QoS 1 redelivery
    store.reject(bad)
    store.close()
    store = opener()  # a restart: the duplicate is still recognised
    assert store.add(first) is False
    assert store.add(second) is True
    assert store.counts() == {"summary": 2, "rejected": 1}
    store.close()


def test_sqlite_and_postgres_hold_the_same_columns_and_the_stored_payload(tmp_path: Path, postgres_db: str) -> None:
    import sqlite3

    import psycopg

    message = check(TOPIC, _payload())
    for kind in ("sqlite", "postgres"):
        store = _stores(tmp_path, postgres_db)[kind]()
        store.add(message)
        store.close()
    query = "SELECT message_id, kind, device, topic, payload FROM expresso_messages"
    lite = sqlite3.connect(tmp_path / "m.sqlite").execute(query).fetchone()
    with psycopg.connect(postgres_db) as db:
        pg = db.execute(query).fetchone()
    assert pg is not None
    assert lite[:4] == pg[:4] == (message.message_id, "summary", DEVICE, TOPIC)
    assert json.loads(lite[4]) == pg[4] == message.document  # JSONB in PostgreSQL, text in SQLite


def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    open_store(str(tmp_path / "m.sqlite")).close()
    assert (tmp_path / "m.sqlite").stat().st_mode & 0o777 == 0o600


def test_bad_store_urls_fail_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scheme"):
        open_store("redis://localhost")
    with pytest.raises(ConfigError, match="cannot connect to the PostgreSQL store"):
        open_store(f"postgresql://nobody@/none?host={tmp_path}&port=1")
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ConfigError, match="cannot be opened"):
        open_store(str(tmp_path / "dir.sqlite"))


def test_a_store_that_stops_taking_writes_raises_store_error(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "m.sqlite"))
    store.close()
    with pytest.raises(StoreError, match="refused a write"):
        store.add(check(TOPIC, _payload()))


def test_workers_starting_together_on_a_fresh_postgres_database_all_open_it(postgres_db: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(lambda _: open_store(postgres_db), range(6)))  # six CREATE TABLE IF NOT EXISTS at once
    assert all(store.counts() == {"rejected": 0} for store in stores)
    for store in stores:
        store.close()


def test_workers_starting_together_on_a_fresh_sqlite_file_all_open_it(tmp_path: Path) -> None:
    """The switch to WAL needs the file to itself and SQLite does not wait for it: this failed in CI once."""
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(60):  # each a fresh file: only the first opening of a file switches it
        with ThreadPoolExecutor(4) as pool:
            stores = list(pool.map(open_store, [str(tmp_path / f"m{attempt}.sqlite")] * 4))
        assert all(store.counts() == {"rejected": 0} for store in stores)
        for store in stores:
            store.close()


def test_a_json_lines_store_opens_after_a_crash_left_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    store = open_store(str(path))
    first = check(TOPIC, _payload())
    assert store.add(first)
    store.reject(check(TOPIC, b"{}"))
    store.close()
    with path.open("a") as file:  # the crash: a message's line half written, never acknowledged
        file.write('{"topic": "acme/v2/')
    with path.with_name("in.jsonl.rejected").open("a") as file:
        file.write('{"topic": ')
    store = open_store(str(path))  # the broker delivers the torn message again: it must be stored
    assert store.add(first) is False and store.add(check(TOPIC, _payload())) is True
    store.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["kind"] == "summary" for line in lines)
    assert len(path.with_name("in.jsonl.rejected").read_text().splitlines()) == 1


def test_the_fleet_guide_shows_the_exact_postgresql_tables_a_dba_can_create(postgres_db: str) -> None:
    guide = (Path(__file__).parents[3] / "docs" / "fleet.md").read_text()
    block = re.search(r"```sql\n(.*?)```", guide, re.S)
    assert block is not None and " ".join(block[1].split()) == " ".join(PostgresStore.ddl().split())
    import psycopg

    role = f"ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_db, autocommit=True) as db:  # created by hand, as the worker's error says
        db.execute(block[1])
        db.execute(f"CREATE ROLE {role} LOGIN")  # may read and write the tables, not create any
        db.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        db.execute(f"GRANT SELECT, INSERT ON expresso_messages, expresso_rejected TO {role}")
        db.execute(f"GRANT USAGE ON SEQUENCE expresso_rejected_id_seq TO {role}")
    store = open_store(postgres_db.replace("postgresql://postgres@", f"postgresql://{role}@"))
    assert store.add(check(TOPIC, _payload())) and store.counts() == {"summary": 1, "rejected": 0}
    store.reject(check(TOPIC, b"{}"))
    store.close()


def test_a_json_lines_file_takes_one_worker_at_a_time(tmp_path: Path) -> None:
    path = str(tmp_path / "in.jsonl")
    first = open_store(path)
    with pytest.raises(ConfigError, match="another worker"):  # it would store what the first one stored
        open_store(path)
    first.close()
    open_store(path).close()  # free again once closed
