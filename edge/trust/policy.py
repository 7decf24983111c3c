"""The remote control policy: whether a control message from the broker may do what it asks, and with what proof.

Order of checks: the policy rule of the action (``refuse`` ends it), then the signature when the rule says
``signed``, when operator keys are configured (then every remote message must be signed) or when the message
carries one. Every refusal names the rule or the signature problem and carries a reason code (counted in health).
The device's own commands (``python -m edge consent``) do not pass through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edge.control import ControlCommand, ControlMessageError
from edge.trust.control_auth import ControlAuthenticator, ControlAuthError
from edge.trust.settings import TrustSettings

_SIGN_FIX = "sign it with a trusted operator key (auth block, docs/security.md) for this device, freshly issued"


class ControlGuard:
    """Applies ``[trust]`` to each remote control command."""

    def __init__(
        self, settings: TrustSettings, *, device: str, state_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self._policy = settings.control
        self.authenticator = ControlAuthenticator(
            settings.operator_public_keys(),
            device=device,
            state_dir=state_dir,
            max_clock_skew_s=settings.max_clock_skew_s,
            max_validity_s=settings.max_validity_s,
            clock=clock,
        )

    def admit(self, command: ControlCommand) -> str | None:
        """The operator key id that signed an admitted command (None: admitted unsigned); raises
        :class:`ControlMessageError` naming the rule or the signature problem otherwise."""
        action = command.action
        rule = self._policy.rule(action)
        if rule == "refuse":
            fix = f"set trust.control.{action} to 'signed' or 'allow' on the device if it should be"
            if action == "grant":
                fix = "grant consent on the device: python -m edge consent --config FILE grant"
            raise self._refusal(
                command,
                "policy",
                f"'{action}' is not accepted from the broker (rule trust.control.{action} = 'refuse')",
                fix,
            )
        signed = "auth" in command.message
        if not signed and rule == "allow" and not self.authenticator.keys_configured:
            return None
        try:
            return self.authenticator.verify(command.message)
        except ControlAuthError as error:
            why = (
                f"rule trust.control.{action} = 'signed'"
                if rule == "signed"
                else "trust.operator_keys is set, so every remote command must be signed"
                if self.authenticator.keys_configured
                else "it carries a signature this device cannot check (no trust.operator_keys)"
            )
            raise self._refusal(
                command, error.reason, f"'{action}' refused: {error.message} ({why})", _SIGN_FIX
            ) from None

    @staticmethod
    def _refusal(command: ControlCommand, reason: str, message: str, fix: str) -> ControlMessageError:
        return ControlMessageError(
            message, fix=fix, request_id=command.request_id, command=command.command, reason=reason
        )
