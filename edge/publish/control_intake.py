"""Screening of control messages from the broker: parse, retained check, trust policy, signature, throttling.

What each message costs is bounded: an empty payload (a retained message being cleared) is ignored quietly;
rejections are counted per reason, and only a few per window (:class:`edge.control.RejectionThrottle`) are
answered on the status topic and logged, so a flood of junk costs neither a status publish nor a log line each.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from pathlib import Path

from edge.control import ControlCommand, ControlMessageError, RejectionThrottle, parse_control
from edge.trust.policy import ControlGuard
from edge.trust.settings import TrustSettings

log = logging.getLogger(__name__)


class ControlIntake:
    """Turns a control payload into a command to apply, a rejection to answer, or nothing."""

    def __init__(
        self,
        trust: TrustSettings,
        *,
        device: str,
        state_dir: Path,
        clock: Callable[[], float] = time.time,
        throttle: RejectionThrottle | None = None,
    ) -> None:
        self.guard = ControlGuard(trust, device=device, state_dir=state_dir, clock=clock)
        self.throttle = throttle or RejectionThrottle()
        self.rejected: collections.Counter[str] = collections.Counter()
        """Rejected messages per reason since start (answered or not)."""

    def screen(self, payload: bytes, retained: bool) -> ControlCommand | ControlMessageError | None:
        """The admitted command, the rejection to answer, or None (empty payload, or a throttled rejection)."""
        if not payload:
            log.debug("empty control payload ignored (a retained control message being cleared)")
            return None
        try:
            command = parse_control(payload, retained=retained)
            key_id = self.guard.admit(command)
        except ControlMessageError as error:
            self.rejected[error.reason] += 1
            if not self.throttle.allow():
                return None
            quiet = self.throttle.take_unreported()
            more = f" ({quiet} more rejected since the last such line, neither answered nor logged)" if quiet else ""
            log.warning("rejected a control message (%s): %s%s", error.reason, error, more)
            return error
        if key_id is not None:
            log.info("control %s signed by operator key %s", command.action, key_id)
        return command

    def metrics(self) -> dict[str, float]:
        """Health figures: ``control_rejected_<reason>`` and ``control_suppressed``."""
        figures: dict[str, float] = {f"control_rejected_{reason}": n for reason, n in self.rejected.items()}
        figures["control_suppressed"] = self.throttle.suppressed
        return figures
