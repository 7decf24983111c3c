"""systemd notifications: the watchdog is fed only while the daemon makes progress or idles on purpose."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from daemon_media import NotifySocket
from polling import wait_until

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
