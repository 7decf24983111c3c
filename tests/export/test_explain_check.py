"""The figures of ``python -m export.explain.check`` on hand-built series whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from export.explain.check import _r, _rho, _tie_cap, _within_identity, hit_rate


def test_an_event_action_caps_spearman_for_any_descriptor_that_is_not_flat_between_events() -> None:
    action = np.zeros(64)
    action[20:28] = [0.2, 0.6, 1.0, 1.0, 1.0, 0.8, 0.4, 0.1]  # one brow raise, rest tied
    noisy = action + np.random.default_rng(3).normal(0.0, 1e-4, 64)  # follows the raise exactly, jitters at rest
    cap = _tie_cap(action)
    assert 0.4 < cap < 0.7
    assert _rho(noisy, action) == pytest.approx(cap, abs=0.1)  # a perfect tracker gets the cap, not 1
    assert _r(noisy, action) > 0.99  # and Pearson sees that it follows the action


def test_an_action_without_ties_has_no_cap() -> None:
    assert _tie_cap(np.linspace(0.0, 1.0, 30)) == pytest.approx(1.0)
    assert np.isnan(_tie_cap(np.ones(10))) and np.isnan(_r(np.ones(10), np.arange(10.0)))


def test_a_tonic_action_is_followed_within_identity_where_the_faces_swamp_it_across_clips() -> None:
    action = np.array([0.1, 0.5, 0.3, 0.7, 0.2, 0.6, 0.4])
    face = np.array([0.0, 0.0, 1.0, 1.0, -1.0, -1.0, 5.0])  # each identity's eye shape, far larger than the action
    descriptor = face + 0.01 * action
    identities = [1, 1, 2, 2, 3, 3, 4]  # identity 4 has one clip: nothing to compare it with
    assert _r(descriptor, action) < 0.5
    x, y = _within_identity(np.stack([descriptor, action], axis=1), identities)
    assert len(x) == 6 and _r(x, y) == pytest.approx(1.0)


def test_hits_count_the_planted_top_region_above_the_median_and_say_whether_the_model_learned_the_label() -> None:
    def video(label: float, scores: list[float], top: str) -> dict[str, object]:
        shares = {"right_eye": 0.1, "left_eye": 0.1, "right_eyebrow": 0.1, "left_eyebrow": 0.1, "nose": 0.1}
        shares = {**shares, "mouth": 0.1, top: 0.6}
        return {"label": label, "per_window": [{"score": s, "regions": shares} for s in scores]}

    doc = {"method": "occlusion", "videos": [video(10, [9, 11], "nose"), video(30, [31, 29], "mouth"),
                                             video(40, [41], "mouth"), video(50, [52, 48], "right_eye")]}  # fmt: skip
    result = hit_rate(doc, "mouth")
    assert result["windows"] == 3 and result["hit_rate"] == pytest.approx(1 / 3, abs=1e-3)  # videos 40 and 50 only
    assert result["top_regions"] == {"eyes": 2, "eyebrows": 0, "nose": 0, "mouth": 1}
    assert result["window_score_label_r"] > 0.95


def test_a_region_of_two_tiles_is_compared_per_tile_and_the_sum_is_reported_beside() -> None:
    # every tile gets some share whatever the model learned: summed, the two eye tiles' floors beat the mouth
    shares = {"right_eye": 0.2, "left_eye": 0.2, "right_eyebrow": 0.05, "left_eyebrow": 0.05, "nose": 0.15}
    shares = {**shares, "mouth": 0.35}
    low, high = ({"label": label, "per_window": [{"score": label, "regions": shares}]} for label in (10.0, 50.0))
    doc = {"method": "occlusion", "videos": [low, high]}
    result = hit_rate(doc, "mouth")
    assert result["hit_rate"] == 1.0 and result["top_regions"]["mouth"] == 1
    assert result["hit_rate_tiles_summed"] == 0.0 and result["top_regions_tiles_summed"]["eyes"] == 1
