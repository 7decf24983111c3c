"""One exception root for the project; every error names the bad value and the fix.

Command-line entry points turn an :class:`ExpressoError` into one line on stderr and its ``exit_code``.
"""

from __future__ import annotations


class ExpressoError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class UsageError(ExpressoError):
    """The command line asks for something impossible."""

    exit_code = 2


class ConfigError(ExpressoError):
    """A configuration file or option is invalid."""

    exit_code = 3


class BundleError(ExpressoError):
    """A model bundle is missing, malformed, tampered with or of an unsupported version."""

    exit_code = 4


class BackendUnavailableError(ExpressoError):
    """An inference backend cannot run here (SDK or device missing)."""

    exit_code = 5


class InputError(ExpressoError):
    """A video, camera or frame cannot be used."""

    exit_code = 6


class AccuracyGateError(ExpressoError):
    """A quantized model drifted further from FP32 than allowed."""

    exit_code = 7


class BrokerError(ExpressoError):
    """The MQTT broker cannot be reached or refused us."""

    exit_code = 8
