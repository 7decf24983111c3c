"""Region shares of every output of a bundle: one batch of occluded copies, averaged per output, gated, published."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import two_region_bundle
from summary_factory import BDI_AND_PHQ9, IDENTITY, T0

from edge.aggregate import Aggregator, Summary, WindowOutcome
from edge.backends import create
from edge.explain import create as create_explainer
from edge.face import Window, WindowQuality
from edge.privacy.release import PrivacyGate
from edge.publish.payloads import summary_payload
from edge.publish.settings import AggregationSettings, DifferentialPrivacySettings, PrivacySettings
from edge.schemas import schema_errors
from edge.scoring import WindowScorer

FRAMES, SIZE = 4, 32
MOUTHY = {"mouth": 0.7, "nose": 0.3}
EYEY = {"right_eye": 0.8, "left_eye": 0.2}


def noisy_window(start: float, seed: int) -> Window:
    """A passed window of random pixels (every tile holds energy)."""
    quality = WindowQuality(True, None, 1.0, 1.0, 2.0, 2.0, 120.0, 40.0, 300.0)
    times = start + np.arange(FRAMES) / 8
    frames = np.random.default_rng(seed).integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    return Window(frames, float(times[0]), float(times[-1]), quality, times, times, (), {}, FRAMES)


def test_each_output_is_explained_by_its_own_region_from_the_same_copies(tmp_path: Path) -> None:
    bundle = two_region_bundle(tmp_path / "bundle", frames=FRAMES, size=SIZE)
    backend = create("onnxruntime", bundle)
    runs = []
    infer = backend._infer
    backend._infer = lambda batch: runs.append(batch.shape[0]) or infer(batch)  # type: ignore[method-assign]
    scorer = WindowScorer(backend, origin=T0, explainer=create_explainer("occlusion", backend), explain_share=1.0)
    scorer.submit([noisy_window(i, seed=i) for i in range(6)])
    outcomes = scorer.ready(wait=True)
    scorer.close()
    copies = len(bundle.tiles) * FRAMES
    assert runs == [6] + [copies] * 6  # the scoring batch, then one batch of copies per window for both outputs
    agg = Aggregator(AggregationSettings(rolling_enabled=True, rolling_period_s=3600), IDENTITY, bundle.outputs)
    for outcome in outcomes:
        agg.add_window(outcome)
    for summary in agg.close(T0 + 3600):  # the session and its rolling period
        mouthy, eyey = summary.outputs
        assert mouthy.regions == summary.regions and mouthy.windows_explained == summary.windows_explained == 6
        assert eyey.regions is not None and eyey.windows_explained == 6
        assert eyey.regions["right_eye"] == pytest.approx(1.0) and mouthy.regions["mouth"] == pytest.approx(1.0)
        score = PrivacyGate(PrivacySettings(k_min_windows=5), tmp_path / "state").admit(summary)
        assert score is not None
        payload = summary_payload(summary, score, device="0" * 20, resolution_s=900, k=5)
        assert schema_errors(payload, "summary") == []
        first, second = payload["outputs"]
        assert payload["regions"] == first["regions"] and max(first["regions"], key=first["regions"].get) == "mouth"
        assert max(second["regions"], key=second["regions"].get) == "right_eye"
        assert second["regions"]["mouth"] == 0.0 and first["regions"]["right_eye"] == 0.0


def summary_with(explained: int, further: int, scored: int = 8) -> Summary:
    """A two-output session of ``scored`` windows: the first ``explained`` with the primary's shares, the first
    ``further`` of those with the PHQ-9 head's too (the others: occluding moved that output nothing)."""
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY, BDI_AND_PHQ9)
    for i in range(scored):
        primary: Mapping[str, float] | None = MOUTHY if i < explained else None
        more = (EYEY if i < further else None,) if i < explained else ()
        agg.add_window(WindowOutcome(T0 + i, T0 + i + 1, 12.0, None, {}, primary, (5.0,), more))
    (summary,) = agg.close(T0 + scored + 1)
    return summary


def test_a_further_outputs_regions_need_k_of_its_own_explained_windows(tmp_path: Path) -> None:
    gate = PrivacyGate(PrivacySettings(k_min_windows=5), tmp_path)
    few = summary_with(explained=6, further=4)
    assert few.outputs[1].windows_explained == 4 and few.windows_explained == 6
    released = gate.admit(few)
    assert released is not None and released.regions == pytest.approx(MOUTHY)
    assert released.outputs[1].regions is None and released.outputs[0].regions == released.regions
    enough = gate.admit(summary_with(explained=6, further=5))
    assert enough is not None and enough.outputs[1].regions == pytest.approx(EYEY)
    payload = summary_payload(summary_with(6, 5), enough, device="0" * 20, resolution_s=900, k=5)
    assert payload["outputs"][1]["regions"] == EYEY and schema_errors(payload, "summary") == []
    older = {**payload, "outputs": [{k: v for k, v in o.items() if k != "regions"} for o in payload["outputs"]]}
    assert schema_errors(older, "summary") == []  # optional: a device older than 2.2.0 stays valid
    wrong = {**payload, "outputs": [payload["outputs"][0], {**payload["outputs"][1], "regions": {"mouth": 2.0}}]}
    assert schema_errors(wrong, "summary") != []  # the same shape and bounds as the top-level regions
    assert summary_payload(few, released, device="0" * 20, resolution_s=900, k=5)["outputs"][1]["regions"] is None
    none = gate.admit(summary_with(explained=4, further=4))
    assert none is not None and none.regions is None and none.outputs[1].regions is None


def test_under_dp_a_further_outputs_regions_are_withheld_and_cost_nothing(tmp_path: Path) -> None:
    dp = DifferentialPrivacySettings(
        enabled=True, epsilon_per_summary=0.5, regions_epsilon_per_summary=1.0, daily_epsilon=10.0
    )
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    summary = summary_with(explained=40, further=40, scored=40)
    score = gate.admit(summary)
    assert score is not None and score.regions is not None and score.regions != pytest.approx(MOUTHY, abs=1e-6)
    assert score.outputs[0].regions == score.regions and score.outputs[1].regions is None
    assert gate.budget_remaining() == pytest.approx(10.0 - 2 * 0.5 - 1.0)  # two means and the primary's regions
    payload = summary_payload(summary, score, device="0" * 20, resolution_s=900, k=5)
    assert payload["outputs"][1]["regions"] is None and payload["outputs"][0]["regions"] == payload["regions"]
    assert "regions" not in payload["outputs"][1]["withheld"]  # not a statistic: no new value in that enum
    assert schema_errors(payload, "summary") == []


def test_the_explainer_wants_every_outputs_scores_of_a_bundle_of_several(tmp_path: Path) -> None:
    from edge.errors import InputError
    from edge.preprocess import batch_windows

    backend = create("onnxruntime", two_region_bundle(tmp_path, frames=FRAMES, size=SIZE))
    explainer = create_explainer("occlusion", backend)
    clips = batch_windows([noisy_window(0, seed=0).frames], backend.bundle.input)
    with pytest.raises(InputError, match=r"scores of 1 output\(s\) for a bundle of 2") as refused:
        explainer.explain(clips, backend.infer(clips))
    assert "infer_outputs" in (refused.value.fix or "")
    (known,) = explainer.explain(clips, backend.infer_outputs(clips))
    (fresh,) = explainer.explain(clips)
    assert known.outputs == fresh.outputs and len(known.outputs) == 2 and known.outputs[0] == known.shares
