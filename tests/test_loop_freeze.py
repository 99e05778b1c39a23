"""When the planning loop freezes the garbage collector's view again: once the informer caches
hold a quarter more objects than at the last freeze (and at least FREEZE_MIN more), so freezes
come O(log growth) times however the cluster grows."""

from __future__ import annotations

from lbipam.controllers.loop import FREEZE_MIN, freeze_due


def test_a_quarter_more_objects_is_due() -> None:
    assert not freeze_due(12_499, 10_000)
    assert freeze_due(12_500, 10_000)


def test_small_caches_wait_for_freeze_min_more() -> None:
    assert not freeze_due(FREEZE_MIN - 1, 0)
    assert freeze_due(FREEZE_MIN, 0)
    assert not freeze_due(100 + FREEZE_MIN - 1, 100)


def test_shrinking_or_steady_caches_are_not_due() -> None:
    assert not freeze_due(10_000, 10_000)
    assert not freeze_due(5_000, 10_000)


def test_growth_from_nothing_to_100k_freezes_a_handful_of_times() -> None:
    frozen_at, freezes = 0, 0
    for cached in range(0, 100_001, 100):
        if freeze_due(cached, frozen_at):
            frozen_at, freezes = cached, freezes + 1
    assert 10 <= freezes <= 25
