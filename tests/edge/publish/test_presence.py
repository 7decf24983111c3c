"""PeriodSnapshot: figures that move with a face present are published as they stood one coarse period back."""

from __future__ import annotations

from edge.publish.presence import PeriodSnapshot


def test_values_are_held_back_to_the_last_update_of_the_previous_period() -> None:
    snapshot = PeriodSnapshot(900, enabled=True)
    assert snapshot.update(0.0, {"windows": 0}) == {"windows": 0}  # the first update: nothing has happened yet
    assert snapshot.update(60.0, {"windows": 4}) == {"windows": 0}  # same period: still what it was
    assert snapshot.update(840.0, {"windows": 9}) == {"windows": 0}
    assert snapshot.update(905.0, {"windows": 12}) == {"windows": 9}  # new period: the previous one's last
    assert snapshot.update(1700.0, {"windows": 20}) == {"windows": 9}
    assert snapshot.update(3000.0, {"windows": 31}) == {"windows": 20}  # a skipped period changes nothing
    assert snapshot.published("windows", -1) == 20 and snapshot.published("other", -1) == -1


def test_off_it_passes_values_through() -> None:
    snapshot = PeriodSnapshot(900, enabled=False)
    assert snapshot.update(0.0, {"windows": 1}) == {"windows": 1}
    assert snapshot.update(60.0, {"windows": 5}) == {"windows": 5}
    assert snapshot.published("windows", 7) == 7
