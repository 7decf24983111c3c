"""The inference backend interface: load a bundle, run a batch of windows, say what it runs on.

A backend author writes one module with one :class:`Backend` subclass that sets ``key`` and fills in
``_probe``, ``_load`` and ``_infer``; the public methods here check state and shapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from edge.bundle import Bundle
from edge.errors import BackendUnavailableError, BundleError, ExpressoError, InputError


class Backend(ABC):
    """Runs a bundle's model on batches of normalised windows."""

    key: ClassVar[str]
    """Name used in configuration and on the command line."""

    def __init__(self, bundle: Bundle, *, precision: str = "auto", threads: int | None = None) -> None:
        available, reason = self.probe()
        if not available:
            raise BackendUnavailableError(f"backend {self.key!r} cannot run here: {reason}", fix=self.install_hint())
        self.bundle = bundle
        self.threads = threads
        self.precision = self._choose_precision(precision)
        self._closed = False
        try:
            self._load()
        except ExpressoError:
            raise
        except Exception as error:  # a model file that verifies but does not load is a bad bundle (exit 4), not a bug
            raise BundleError(
                f"backend {self.key!r} cannot load the {self.precision} model of bundle {bundle.root}: "
                f"{type(error).__name__}: {str(error)[:300]}",
                fix="the bundle's model file is damaged or was built for another runtime; re-export or rebuild it "
                "(python -m export onnx / engine) and sign it again",
            ) from error

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        """Whether this backend can run on this machine, and why not when it cannot."""
        return cls._probe()

    @classmethod
    @abstractmethod
    def _probe(cls) -> tuple[bool, str]: ...

    @classmethod
    def install_hint(cls) -> str:
        """How to make this backend available."""
        return "install its optional dependencies, or pick another backend with --backend"

    @classmethod
    def runnable_precisions(cls, bundle: Bundle) -> list[str]:
        """Precisions of ``bundle`` this backend could run, best first."""
        return []

    def _choose_precision(self, requested: str) -> str:
        choices = self.runnable_precisions(self.bundle)
        if not choices:
            raise InputError(
                f"bundle {self.bundle.root} has no model that backend {self.key!r} can run",
                fix="export or calibrate the bundle for this backend (python -m export onnx / calibrate / engine)",
            )
        if requested == "auto":
            return choices[0]
        if requested not in choices:
            raise InputError(
                f"backend {self.key!r} cannot run precision {requested!r} of bundle {self.bundle.root}; "
                f"it offers {', '.join(choices)}",
                fix=f"set model.precision to {choices[0]} or auto (--precision on the command line)",
            )
        return requested

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

    def infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The primary output's scores for a batch ``(N, ...)`` in the manifest's layout; returns shape ``(N,)``."""
        return self.infer_outputs(batch)[:, 0]

    def infer_outputs(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Every output's scores for a batch ``(N, ...)``: shape ``(N, K)``, K the manifest's outputs in order.

        The model has one output tensor of shape ``(N, K)`` (or ``(N,)``/``(N, 1)`` for one output); a tensor of
        another width does not belong to the manifest (a bad bundle, exit 4).
        """
        if self._closed:
            raise RuntimeError(f"backend {self.key!r} was closed")
        expected = self.bundle.input.shape[1:]
        if batch.ndim != 5 or tuple(batch.shape[1:]) != expected:
            raise InputError(
                f"batch has shape {batch.shape}; backend {self.key!r} wants (N, {', '.join(map(str, expected))})",
                fix="normalise windows with edge.preprocess.batch_windows",
            )
        scores = np.asarray(self._infer(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
        width = len(self.bundle.outputs)
        if scores.size != batch.shape[0] * width:
            raise BundleError(
                f"the {self.precision} model of bundle {self.bundle.root} returned shape {scores.shape} for "
                f"{batch.shape[0]} windows; its manifest names {width} output(s), so (N, {width}) was expected",
                fix="re-export the bundle so that its manifest's outputs match the model's output columns",
            )
        return scores.reshape(batch.shape[0], width)

    def describe(self) -> dict[str, Any]:
        """What this backend runs on: key, precision, device and provider details."""
        return {"backend": self.key, "precision": self.precision, **self._describe()}

    def _describe(self) -> dict[str, Any]:
        return {}

    def warm_up(self) -> None:
        """Run one inference so the first real window does not pay for lazy initialisation; a model that loads
        but cannot run the manifest's input shape is a bad bundle (exit 4)."""
        try:
            self.infer(np.zeros(self.bundle.input.shape, dtype=np.float32))
        except ExpressoError:
            raise
        except Exception as error:
            raise BundleError(
                f"the {self.precision} model of bundle {self.bundle.root} does not run the manifest's input "
                f"{self.bundle.input.shape} on backend {self.key!r}: {type(error).__name__}: {str(error)[:300]}",
                fix="the model file and the manifest do not belong together; re-export the bundle and sign it again",
            ) from error

    def close(self) -> None:
        """Release the model and its buffers."""
        self._closed = True

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
