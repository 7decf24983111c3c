"""Inference backends, one module each, found by key; a missing SDK disables only its own backend."""

from __future__ import annotations

import importlib
import pkgutil

from edge.backends.base import Backend
from edge.bundle import Bundle
from edge.errors import BackendUnavailableError, UsageError

AUTO_ORDER = ("tensorrt", "onnxruntime")
"""Preference of ``--backend auto``: the fastest first."""


def registry() -> dict[str, type[Backend]]:
    """Every backend class, by key (modules are imported here; their SDKs only when used)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    return {cls.key: cls for cls in Backend.__subclasses__()}


def runnable(bundle: Bundle) -> dict[str, tuple[list[str], str]]:
    """Each backend's key with the precisions of ``bundle`` it can run here, best first, and why none when empty."""
    found = {}
    for key, cls in sorted(registry().items()):
        available, reason = cls.probe()
        precisions = cls.runnable_precisions(bundle) if available else []
        if available and not precisions:
            reason = "no model in this bundle for it"
        found[key] = (precisions, reason)
    return found


def create(key: str, bundle: Bundle, *, precision: str = "auto", threads: int | None = None) -> Backend:
    """Instantiate backend ``key`` (or the best available for ``auto``) for ``bundle``."""
    backends = registry()
    if key == "auto":
        found = runnable(bundle)
        for candidate in AUTO_ORDER:
            if found[candidate][0]:
                return backends[candidate](bundle, precision=precision, threads=threads)
        reasons = "; ".join(f"{k}: {reason}" for k, (_, reason) in found.items())
        raise BackendUnavailableError(f"no backend can run bundle {bundle.root} here ({reasons})")
    if key not in backends:
        raise UsageError(f"unknown backend {key!r}", fix=f"choose one of: auto, {', '.join(sorted(backends))}")
    return backends[key](bundle, precision=precision, threads=threads)
