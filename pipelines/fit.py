"""Timing fit: where each dubbed clip plays and how fast. Pure functions over schema types.

Each clip starts at its sentence's source start, or right after the previous clip (plus a
minimum gap) when that one still runs. A clip longer than its sentence first spills into the
silence that follows (up to the next sentence, or the end of the media), then is sped up, to
``max_speed`` at most; whatever is still left over is reported as ``overflow_s`` and pushes the
next clip. Clips never overlap and are never slowed down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pipelines.schema import DubPlan, PlanItem, Slot

_EPS = 1e-9


def plan_fit(
    slots: Sequence[Slot],
    durations_s: Sequence[float],
    *,
    max_speed: float = 1.35,
    min_gap_s: float = 0.05,
    total_s: float | None = None,
) -> DubPlan:
    """Place one clip of ``durations_s[i]`` seconds per slot, in order.

    Returns a DubPlan whose items keep the slot ids. ``speed`` is in [1, max_speed];
    ``overflow_s`` is how far a clip runs past the room it had. Raises ValueError when the
    lengths differ or ``max_speed`` < 1 or ``min_gap_s`` < 0.
    """
    if len(slots) != len(durations_s):
        raise ValueError(f"{len(slots)} slots but {len(durations_s)} durations")
    if max_speed < 1.0:
        raise ValueError(f"max_speed must be >= 1, got {max_speed}")
    if min_gap_s < 0:
        raise ValueError(f"min_gap_s must be >= 0, got {min_gap_s}")
    items: list[PlanItem] = []
    prev_end: float | None = None
    for slot, duration in zip(slots, durations_s, strict=True):
        item = _place(
            slot, max(0.0, float(duration)), prev_end, max_speed=max_speed, min_gap_s=min_gap_s, total_s=total_s
        )
        items.append(item)
        if item.end_s > item.start_s:  # an empty clip occupies no time and pushes nothing
            prev_end = item.end_s
    return DubPlan(items=tuple(items))


def _place(
    slot: Slot, duration_s: float, prev_end: float | None, *, max_speed: float, min_gap_s: float, total_s: float | None
) -> PlanItem:
    start = slot.start_s if prev_end is None else max(slot.start_s, prev_end + min_gap_s)
    if duration_s <= 0:
        return PlanItem(slot.id, start, start, 1.0, 0.0)
    limit = _room_end(slot, min_gap_s=min_gap_s, total_s=total_s)
    available = limit - start
    if duration_s <= available + _EPS:
        return PlanItem(slot.id, start, start + duration_s, 1.0, 0.0)
    speed = max_speed if available <= 0 else min(max_speed, duration_s / available)
    speed = max(1.0, speed)
    end = start + duration_s / speed
    overflow = max(0.0, end - limit)
    return PlanItem(slot.id, start, end, speed, overflow if overflow > _EPS else 0.0)


def _room_end(slot: Slot, *, min_gap_s: float, total_s: float | None) -> float:
    """The latest a clip for ``slot`` may end: its own end, or later if silence follows."""
    if slot.next_start_s is not None:
        limit = slot.next_start_s - min_gap_s
    elif total_s is not None:
        limit = total_s
    else:
        limit = math.inf
    if total_s is not None:
        limit = min(limit, total_s)
    return max(slot.end_s, limit)


def fit_summary(plan: DubPlan) -> dict[str, Any]:
    """Figures for the report: how many clips were sped up, the fastest speed, the overflow."""
    spoken = [item for item in plan.items if item.end_s > item.start_s]
    overflowing = [item for item in spoken if item.overflow_s > 0]
    return {
        "clips": len(spoken),
        "sped_up": sum(1 for item in spoken if item.speed > 1.0 + 1e-6),
        "max_speed": round(max((item.speed for item in spoken), default=1.0), 4),
        "mean_speed": round(sum(item.speed for item in spoken) / len(spoken), 4) if spoken else 1.0,
        "overflow_count": len(overflowing),
        "total_overflow_s": round(float(sum(item.overflow_s for item in overflowing)), 4),
        "overflow_ids": [item.id for item in overflowing],
    }
