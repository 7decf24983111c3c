"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import Broker, mosquitto_path


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the root-logger set-up of an in-process CLI run, whose handler writes to a stream pytest then closes."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port (persistence off); ``stop()``/``start()`` keep the port."""
    if mosquitto_path() is None:  # CI installs it (make broker-dep): a fail, never a silent skip
        pytest.fail("mosquitto is not installed (apt-get install mosquitto, or make broker-dep)")
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}"


# ---- exported model bundles (helper A: export zoo / ONNX export; used by tests/edge and tests/export) ----------
TINY_TSM_OPTIONS = {"stem": 8, "widths": [16, 16], "blocks": [1, 1]}
"""A tiny expresso-tsm (4 frames of 32x32): exports in about a second, same operators as the real one."""


@pytest.fixture(scope="session")
def exported_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny expresso-tsm bundle made by the real export chain, once per session; do not modify it."""
    from export.bundle_build import export_bundle

    out = tmp_path_factory.mktemp("exported") / "tiny-tsm"
    export_bundle("expresso-tsm", out, frames=4, size=32, options=TINY_TSM_OPTIONS, verify_windows=4)
    return out


@pytest.fixture
def exported_bundle(exported_bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny exported bundle, free to tamper with."""
    import shutil

    return Path(shutil.copytree(exported_bundle_dir, tmp_path / "bundle"))


# ---- end of exported model bundles ------------------------------------------------------------------------------


# ---- PostgreSQL (the integrator client's shared store) -----------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL cluster on a unix socket in a temporary directory, for the whole session."""
    from postgres_server import Postgres, postgres_bin

    if postgres_bin() is None:  # CI installs it (make postgres-dep): a fail, never a silent skip
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql, or make postgres-dep)")
    server = Postgres()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def postgres_db(postgres_url: str) -> str:
    """The URL of a fresh, empty database in the session's cluster."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return postgres_url.replace("@/postgres?", f"@/{name}?")
