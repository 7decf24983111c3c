"""The figures of ``python -m export.explain.check`` on hand-built series whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from export.explain.check import _r, _rho, _tie_cap


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
