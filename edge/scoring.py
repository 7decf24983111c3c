"""Windows to outcomes: the backend scores passed windows on a worker thread while the face pipeline goes on.

ONNX Runtime and TensorRT release the GIL, so inference of one window overlaps the mesh of the next frames. At
most ``max_pending`` batches of windows are in the works (each holds its mosaic frames in memory); beyond that
:meth:`submit` waits for the oldest. Outcomes come back in submission order. A window's score leaves this
module only inside a :class:`edge.aggregate.WindowOutcome` for the aggregator, with the window's region shares
when an explainer (:mod:`edge.explain`) attributed it (an evenly spread share of the scored windows): every
output's shares, from one batch of occluded copies.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import numpy.typing as npt

from edge.aggregate import WindowOutcome
from edge.backends.base import Backend
from edge.explain import Explainer, RegionAttribution
from edge.explain.settings import EvenSampler
from edge.face import Window, WindowQuality
from edge.preprocess import batch_windows


def window_quality_figures(quality: WindowQuality) -> dict[str, float]:
    """The numeric quality figures of a window for the aggregate (never pixels or landmarks)."""
    figures = {
        "face_fraction": quality.face_fraction,
        "passed_fraction": quality.passed_fraction,
        "abs_yaw": quality.mean_abs_yaw,
        "abs_pitch": quality.mean_abs_pitch,
        "brightness": quality.mean_brightness,
        "contrast": quality.mean_contrast,
        "blur": quality.mean_blur,
    }
    return {name: float(value) for name, value in figures.items() if value is not None}


class WindowScorer:
    """Turns windows into outcomes in order, scoring the passed ones with ``backend`` on one worker thread.

    ``origin`` is added to the pipeline's window times to make them wall-clock timestamps. With an ``explainer``,
    ``explain_share`` of the scored windows are also attributed to regions.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        origin: float,
        max_pending: int = 2,
        explainer: Explainer | None = None,
        explain_share: float = 1.0,
    ) -> None:
        self.backend = backend
        self.origin = origin
        self.max_pending = max_pending
        self.explainer = explainer
        self._sampler = EvenSampler(explain_share)
        self.seconds = 0.0  # spent in normalisation and inference
        self.explain_seconds = 0.0  # spent attributing windows to regions
        self.scored = 0
        self.rejected = 0
        self.explained = 0
        self._pending: collections.deque[Future[list[WindowOutcome]]] = collections.deque()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def submit(self, windows: list[Window]) -> None:
        """Queue windows (rejected ones pass straight through, in order)."""
        if not windows:
            return
        unfinished = [future for future in self._pending if not future.done()]
        if len(unfinished) >= self.max_pending:
            wait(unfinished[:1])  # back-pressure: the pipeline waits for the oldest window in the works
        self._pending.append(self._worker.submit(self._outcomes, windows))

    def ready(self, *, wait: bool = False) -> list[WindowOutcome]:
        """Outcomes finished so far, oldest first (all of them with ``wait``)."""
        out: list[WindowOutcome] = []
        while self._pending and (wait or self._pending[0].done()):
            out += self._pending.popleft().result()
        return out

    def discard(self) -> None:
        """Forget what is queued (after an erase or a withdrawn consent)."""
        self.ready(wait=True)

    def close(self) -> None:
        """Stop the worker thread (queued windows are scored first)."""
        self._worker.shutdown(wait=True)

    def _outcomes(self, windows: list[Window]) -> list[WindowOutcome]:
        passed = [w for w in windows if w.quality.passed]
        scores: dict[int, npt.NDArray[np.float32]] = {}
        found: dict[int, RegionAttribution] = {}
        if passed:
            started = time.perf_counter()
            batch = batch_windows([w.frames for w in passed], self.backend.bundle.input)
            rows = self.backend.infer_outputs(batch)  # (N, K): every output of the bundle, primary first
            scores = {id(w): row for w, row in zip(passed, rows, strict=True)}
            self.seconds += time.perf_counter() - started
            if self.explainer is not None:
                found = self._explain(passed, batch, rows)
        self.scored += len(passed)
        self.rejected += len(windows) - len(passed)
        return [self._outcome(w, scores.get(id(w)), found.get(id(w))) for w in windows]

    def _outcome(
        self, window: Window, row: npt.NDArray[np.float32] | None, attribution: RegionAttribution | None
    ) -> WindowOutcome:
        """One window's outcome: its scores and region shares (primary and the other outputs) or its reject
        reason."""
        return WindowOutcome(
            start=self.origin + window.start,
            end=self.origin + window.end,
            score=None if row is None else float(row[0]),
            reject_reason=window.quality.reject_reason,
            quality=window_quality_figures(window.quality),
            attribution=None if attribution is None else attribution.shares,
            more=() if row is None else tuple(float(v) for v in row[1:]),
            more_attribution=() if attribution is None else attribution.outputs[1:],
        )

    def _explain(
        self, passed: list[Window], batch: npt.NDArray[np.float32], rows: npt.NDArray[np.float32]
    ) -> dict[int, RegionAttribution]:
        """Region shares, every output's, of the sampled windows among ``passed`` (their batch rows and every
        output's scores given: the occluded copies run once for all outputs)."""
        assert self.explainer is not None
        picked = [i for i in range(len(passed)) if self._sampler.take()]
        if not picked:
            return {}
        started = time.perf_counter()
        found = self.explainer.explain(batch[picked], rows[picked])
        self.explain_seconds += time.perf_counter() - started
        self.explained += sum(attribution.shares is not None for attribution in found)  # as the summaries count
        return {id(passed[i]): attribution for i, attribution in zip(picked, found, strict=True)}
