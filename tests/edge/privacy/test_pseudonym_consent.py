"""Device pseudonym, consent state and erase, on real files in a temporary state directory."""

from __future__ import annotations

import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.privacy.consent import CONSENT_NAME, CORRUPT_SOURCE, ConsentStore, erase
from edge.privacy.pseudonym import SECRET_NAME, device_pseudonym, pseudonym_from_secret


def test_pseudonym_is_stable_across_restarts_and_secret_is_0600(tmp_path: Path) -> None:
    first = device_pseudonym(tmp_path)
    assert stat.S_IMODE((tmp_path / SECRET_NAME).stat().st_mode) == 0o600
    assert device_pseudonym(tmp_path) == first
    assert len(first) == 20 and int(first, 16) >= 0
    assert device_pseudonym(tmp_path / "other") != first
    secret = (tmp_path / SECRET_NAME).read_bytes()
    assert first == pseudonym_from_secret(secret) and secret.hex()[:20] != first


def test_a_state_directory_made_for_the_secret_is_private(tmp_path: Path) -> None:
    # `edge identity` before the first start made the state directory 0755: every file name in it readable
    old = os.umask(0)
    try:
        device_pseudonym(tmp_path / "new" / "state")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700


def test_a_loose_secret_mode_is_tightened_and_a_short_secret_refused(tmp_path: Path) -> None:
    device_pseudonym(tmp_path)
    (tmp_path / SECRET_NAME).chmod(0o644)
    device_pseudonym(tmp_path)
    assert stat.S_IMODE((tmp_path / SECRET_NAME).stat().st_mode) == 0o600
    (tmp_path / SECRET_NAME).write_bytes(b"short")
    with pytest.raises(ConfigError, match="delete the file"):
        device_pseudonym(tmp_path)


def test_a_secret_appears_only_whole_so_racing_starts_share_one_pseudonym(tmp_path: Path) -> None:
    for trial in range(20):  # the old create-then-write left a window where a second start read an empty secret
        state = tmp_path / str(trial)
        barrier = threading.Barrier(4)

        def start(state: Path = state, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return device_pseudonym(state)

        with ThreadPoolExecutor(4) as pool:
            names = set(pool.map(lambda _: start(), range(4)))
        assert len(names) == 1
        assert [p.name for p in state.iterdir()] == [SECRET_NAME]  # no temporary file left behind
        assert stat.S_IMODE((state / SECRET_NAME).stat().st_mode) == 0o600


def test_consent_needs_a_decision_and_control_wins_over_config(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path)
    assert store.apply_config("required").processing_allowed is False
    assert store.apply_config("required").label == "unknown"
    assert store.apply_config("granted").processing_allowed is True
    store.record(False, "control")
    assert ConsentStore(tmp_path).apply_config("granted").label == "revoked"  # a restart keeps the revocation
    store.record(True, "control")
    assert store.set_paused(True).processing_allowed is False
    assert ConsentStore(tmp_path).load().paused is True  # pause survives restarts
    assert store.set_paused(False).processing_allowed is True


def test_erase_wipes_state_keeps_identity_and_budget_and_revokes_consent(tmp_path: Path) -> None:
    pseudonym = device_pseudonym(tmp_path)
    ConsentStore(tmp_path).record(True, "control")
    (tmp_path / "outbox.sqlite3").write_bytes(b"x")
    (tmp_path / "outbox.sqlite3-wal").write_bytes(b"x")
    (tmp_path / "privacy-budget.json").write_text('{"day": "2026-01-01", "spent": [[1.0, 0.0]]}')
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "thing").write_text("x")
    removed = erase(tmp_path)
    assert sorted(removed) == ["cache", "outbox.sqlite3", "outbox.sqlite3-wal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["consent.json", "device.secret", "privacy-budget.json"]
    assert ConsentStore(tmp_path).load().label == "revoked"
    assert device_pseudonym(tmp_path) == pseudonym
    erase(tmp_path, keep_identity=False)
    assert device_pseudonym(tmp_path) != pseudonym


@pytest.mark.parametrize(
    "content", ["{trunc", '"granted"', '{"granted": "yes", "paused": false, "source": "config"}', "{}", "\xff\xfe"]
)
def test_a_corrupt_consent_file_stays_revoked_even_with_consent_granted_in_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    ConsentStore(tmp_path).record(False, "control")  # the person revoked consent, then the file was damaged
    (tmp_path / CONSENT_NAME).write_bytes(content.encode("latin-1"))
    state = ConsentStore(tmp_path).apply_config("granted")
    assert state.granted is False and state.label == "revoked" and state.source == CORRUPT_SOURCE
    assert not state.processing_allowed
    assert [r.levelname for r in caplog.records if "consent record unreadable" in r.message] == ["ERROR"]
    assert '"command": "consent"' in caplog.text and "delete it" not in caplog.text
    assert "python -m edge consent --config FILE grant" in caplog.text  # remote grants are refused by default
    assert json.loads((tmp_path / CONSENT_NAME).read_text()) == {"granted": False, "paused": False, "source": "corrupt"}
    assert ConsentStore(tmp_path).apply_config("granted").label == "revoked"  # a restart does not re-grant it
    assert ConsentStore(tmp_path).record(True, "control").processing_allowed  # a control message does


def test_a_state_file_that_cannot_be_read_is_refused_like_a_corrupt_one(tmp_path: Path) -> None:
    # a read error other than a missing file (a directory here; a file of another owner outside systemd) was a
    # traceback and exit 1, which systemd restarts for ever; a corrupt record has a safe default (revoked, spent)
    from edge.privacy.statefile import read_json

    (tmp_path / CONSENT_NAME).mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        read_json(tmp_path / CONSENT_NAME, fix="f")


def test_a_directory_where_the_consent_file_belongs_is_exit_3_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # recording consent over it raised IsADirectoryError: a traceback and exit 1
    from edge.cli import main

    state = tmp_path / "state"
    (state / CONSENT_NAME).mkdir(parents=True)
    config = tmp_path / "c.toml"
    config.write_text(f'[device]\nstate_dir = "{state}"\n')
    assert main(["consent", "--config", str(config), "grant"]) == 3
    err = capsys.readouterr().err
    assert f"state file {state / CONSENT_NAME} cannot be written" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="cannot be written") as refused:  # the daemon refuses to start: exit 3
        ConsentStore(state).load()
    assert refused.value.exit_code == 3
