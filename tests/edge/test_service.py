"""Service integration: the watchdog is fed only on progress or deliberate idling; no core dumps; the state dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_media import NotifySocket
from polling import wait_until

from edge.errors import ConfigError
from edge.preflight import check_state_dir
from edge.service import Notifier, StopRequest


def test_watchdog_is_fed_only_on_progress_or_deliberate_idling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "20000")  # ping at most every 10 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        notifier = Notifier()
        assert notifier.interval == pytest.approx(0.01)
        time.sleep(0.02)
        assert notifier.feed(1)  # frames processed since the last ping
        time.sleep(0.02)
        assert not notifier.feed(1)  # stuck: no new frame, no ping
        assert notifier.feed(1, idle_ok=True)  # paused or reconnecting a camera on purpose
        assert not notifier.feed(2)  # progress, but the interval has not passed yet
        time.sleep(0.02)
        assert notifier.feed(2)
        notifier.ready("ok")
        assert wait_until(lambda: len(notify.lines()) >= 5, 5)
    finally:
        notify.close()
    assert notify.lines() == ["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "READY=1", "STATUS=ok"]
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier().interval is None  # the watchdog is meant for another process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_become_a_stop_request(signum: signal.Signals) -> None:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = StopRequest().install()
        assert not stop.requested
        os.kill(os.getpid(), signum)
        assert wait_until(lambda: stop.requested, 5)
        assert stop.signal_name == signum.name
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and notifier.interval is None
    assert not notifier.feed(10)
    notifier.ready("fine")  # a no-op, not an error


def test_the_daemon_process_can_leave_no_core_dump() -> None:
    code = (
        "import ctypes, resource; from edge.service import forbid_core_dumps; forbid_core_dumps(); "
        "print(resource.getrlimit(resource.RLIMIT_CORE), ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"  # PR_GET_DUMPABLE
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(0,", "0)", "0"]  # no core size, and not dumpable at all


def test_a_state_directory_that_cannot_be_made_names_the_key(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"device\.state_dir") as error:
        check_state_dir(blocker / "state", create=True)
    assert error.value.fix and "writable" in error.value.fix
    check_state_dir(tmp_path / "fresh" / "state", create=True)
    assert (tmp_path / "fresh" / "state").stat().st_mode & 0o777 == 0o700
