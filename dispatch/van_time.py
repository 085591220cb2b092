"""How long a rescue van stays busy with a job, and where it is when it is free again.

The live dispatch cycle offers a van that is still on a job as a candidate for the next one,
timed from when and where it will be free (``VanState.free_in_minutes`` and ``position``), as
the simulation does with the trips it plans. These are the expectations it uses, from the
triage estimate and the tow leg, until the van reports what really happens:

- at the breakdown, a tow job takes the hook-up only (the tow leg follows);
- any other job takes the expected repair, at least the diagnosis, at most
  :data:`MAX_ON_SITE_HOURS` (a longer repair is not done at the roadside: the van tows or
  leaves, and the technician's diagnosis then releases it);
- after a tow the van is free at its home station (the workshop), otherwise at the breakdown.
"""

from __future__ import annotations

import math

DIAGNOSIS_MINUTES = 30.0
"""On site before a van gives up on a roadside fix (the simulation's default too)."""
TOW_HOOKUP_MINUTES = 30.0
"""Hooking the vehicle up before a tow (the simulation's default too)."""
MAX_ON_SITE_HOURS = 6.0
"""The longest a van is expected to work at the roadside."""


def on_site_minutes(*, expected_repair_hours: float | None, needs_tow: bool) -> float:
    """Expected minutes from the van's arrival until it leaves the breakdown."""
    if needs_tow:
        return TOW_HOOKUP_MINUTES
    hours = expected_repair_hours
    if hours is None or not math.isfinite(hours) or hours < 0:
        return DIAGNOSIS_MINUTES
    return min(max(hours * 60.0, DIAGNOSIS_MINUTES), MAX_ON_SITE_HOURS * 60.0)


__all__ = ["DIAGNOSIS_MINUTES", "MAX_ON_SITE_HOURS", "TOW_HOOKUP_MINUTES", "on_site_minutes"]
