"""Region explanations on the device, one module per method, found by key (like :mod:`edge.backends`).

Today's method is ``occlusion`` (:mod:`edge.explain.occlusion`); a new one is one new module with an
:class:`~edge.explain.base.Explainer` subclass.
"""

from __future__ import annotations

import importlib
import pkgutil

from edge.backends.base import Backend
from edge.errors import UsageError
from edge.explain.base import Explainer, RegionAttribution, to_shares

__all__ = ["Explainer", "RegionAttribution", "create", "registry", "to_shares"]

_NOT_METHODS = {"base", "settings"}


def registry() -> dict[str, type[Explainer]]:
    """Every explainer class, by key."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_METHODS:
            importlib.import_module(f"{__name__}.{info.name}")
    return {cls.key: cls for cls in Explainer.__subclasses__()}


def create(key: str, backend: Backend) -> Explainer:
    """Instantiate explainer ``key`` for ``backend``."""
    explainers = registry()
    if key not in explainers:
        raise UsageError(f"unknown explanation method {key!r}", fix=f"choose one of: {', '.join(sorted(explainers))}")
    return explainers[key](backend)
