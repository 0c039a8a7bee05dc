from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.fit import fit_summary, plan_fit
from pipelines.schema import Slot


def test_fits_in_slot() -> None:
    plan = plan_fit([Slot(0, 1.0, 3.0, 5.0)], [1.5])
    [item] = plan.items
    assert (item.id, item.start_s, item.speed, item.overflow_s) == (0, 1.0, 1.0, 0.0)
    assert item.end_s == pytest.approx(2.5)


def test_uses_following_silence_before_speeding_up() -> None:
    [item] = plan_fit([Slot(0, 1.0, 3.0, 5.0)], [3.5], min_gap_s=0.05).items
    assert item.speed == 1.0 and item.end_s == pytest.approx(4.5) and item.overflow_s == 0.0


def test_last_slot_uses_the_rest_of_the_media() -> None:
    [item] = plan_fit([Slot(0, 1.0, 2.0, None)], [5.0], total_s=10.0).items
    assert item.speed == 1.0 and item.end_s == pytest.approx(6.0)


def test_speeds_up_within_cap() -> None:
    # room: 1.0 .. 4.95 = 3.95 s for 4.5 s of speech -> speed 1.139
    [item] = plan_fit([Slot(0, 1.0, 3.0, 5.0)], [4.5], max_speed=1.35, min_gap_s=0.05).items
    assert item.speed == pytest.approx(4.5 / 3.95)
    assert item.end_s == pytest.approx(4.95) and item.overflow_s == 0.0


def test_overflow_beyond_cap_pushes_next() -> None:
    slots = [Slot(0, 0.0, 1.0, 2.0), Slot(1, 2.0, 3.0, None)]
    plan = plan_fit(slots, [4.0, 0.5], max_speed=1.25, min_gap_s=0.1)
    first, second = plan.items
    assert first.speed == 1.25 and first.end_s == pytest.approx(3.2)
    assert first.overflow_s == pytest.approx(3.2 - 1.9)
    assert second.start_s == pytest.approx(3.3) and second.start_s >= first.end_s
    summary = fit_summary(plan)
    assert summary["sped_up"] == 1 and summary["max_speed"] == 1.25
    assert summary["overflow_ids"] == [0] and summary["total_overflow_s"] == pytest.approx(1.3)


def test_empty_clip_takes_no_time() -> None:
    slots = [Slot(0, 0.0, 1.0, 1.5), Slot(1, 1.5, 2.0, 3.0), Slot(2, 3.0, 4.0, None)]
    _, b, c = plan_fit(slots, [1.0, 0.0, 1.0]).items
    assert b.start_s == b.end_s and c.start_s == 3.0


def test_validation() -> None:
    with pytest.raises(ValueError):
        plan_fit([Slot(0, 0.0, 1.0, None)], [])
    with pytest.raises(ValueError):
        plan_fit([], [], max_speed=0.9)


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[Slot], list[float], float]:
    n = draw(st.integers(0, 12))
    gaps = draw(st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n))
    lengths = draw(st.lists(st.floats(0.05, 5.0), min_size=n, max_size=n))
    durations = draw(st.lists(st.floats(0.0, 8.0), min_size=n, max_size=n))
    starts, t = [], 0.0
    for gap, length in zip(gaps, lengths, strict=True):
        starts.append(t + gap)
        t += gap + length
    slots = [Slot(i, starts[i], starts[i] + lengths[i], starts[i + 1] if i + 1 < n else None) for i in range(n)]
    return slots, durations, t + draw(st.floats(0.0, 2.0))


@settings(max_examples=300, deadline=None)
@given(_case(), st.floats(1.0, 2.0), st.floats(0.0, 0.2))
def test_plan_properties(case: tuple[list[Slot], list[float], float], max_speed: float, gap: float) -> None:
    slots, durations, total = case
    plan = plan_fit(slots, durations, max_speed=max_speed, min_gap_s=gap, total_s=total)
    assert [i.id for i in plan.items] == [s.id for s in slots]
    spoken = [i for i in plan.items if i.end_s > i.start_s]
    for item, slot, dur in zip(plan.items, slots, durations, strict=True):
        assert 1.0 <= item.speed <= max_speed + 1e-9
        assert item.start_s >= slot.start_s - 1e-9
        assert item.overflow_s >= 0.0
        assert (item.end_s - item.start_s) * item.speed == pytest.approx(dur, abs=1e-6)
    for prev, cur in itertools.pairwise(spoken):
        assert cur.start_s >= prev.end_s + gap - 1e-9  # never overlap
