"""``python -m edge``: the device side (daemon, demo, configuration check, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.cli_support import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m edge`` and the ``expresso-edge`` script."""
    return run_cli(
        "python -m edge", f"expresso-edge device daemon and tools. {NOT_A_DIAGNOSTIC_DEVICE}", "edge.commands", argv
    )
