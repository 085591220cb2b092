"""Crews and shifts: ``[crews]``.

A van is available only while a crew is on shift for it:

- at a station with opening hours (AA: 06-22), its crews work those hours;
- at a station open 24 h (AAA), its crews work ``hours_per_day`` from ``first_shift_hour``
  (24 = round the clock, the default; 16 from 6 = two day shifts, no night crew);
- ``night_on_call = true``: outside those hours the crew is on call at home, so the van is
  available, but leaves ``on_call_turnout_minutes`` after the assignment instead of
  ``turnout_minutes``.

Turnout (assignment to departure) applies to a van idle at its station; a van already on the
road (driving home) leaves at once. With the defaults (24 h, no turnout, no on-call) a run is
the same as before crews existed. Applies to both dispatch policies.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dispatch.vans import VanState
from fleet.model import is_on_shift
from simulations.scenario import CrewSpec
from simulations.van_model import VanFleet


class Crews:
    """Per van: its crew's hours, and its dispatch state when idle at home at a given time."""

    def __init__(self, spec: CrewSpec, fleet: VanFleet) -> None:
        self.spec = spec
        round_the_clock = (fleet.shift_open_hour <= 0) & (fleet.shift_close_hour >= 24)
        first, last = spec.first_shift_hour, spec.first_shift_hour + spec.hours_per_day
        if spec.hours_per_day >= 24:
            first, last = 0.0, 24.0
        self.crew_open_hour = np.where(round_the_clock, first, fleet.shift_open_hour)
        self.crew_close_hour = np.where(round_the_clock, last, fleet.shift_close_hour)
        self._on_duty = [_with_turnout(s, spec.turnout_minutes) for s in fleet.at_home]
        self._on_call = [_with_turnout(s, spec.on_call_turnout_minutes) for s in fleet.at_home]

    def fleet_with_crews(self, fleet: VanFleet) -> VanFleet:
        """The fleet whose shift hours are the hours a van can be dispatched at all (0-24 with
        night on-call) and whose idle state carries the on-duty turnout."""
        if self.spec.night_on_call:
            n = len(fleet.vans)
            return replace(
                fleet,
                shift_open_hour=np.zeros(n),
                shift_close_hour=np.full(n, 24.0),
                at_home=tuple(self._on_duty),
            )
        return replace(
            fleet,
            shift_open_hour=self.crew_open_hour,
            shift_close_hour=self.crew_close_hour,
            at_home=tuple(self._on_duty),
        )

    def idle_state(self, van: int, now: float) -> VanState:
        """The van idle at home at minute ``now``: on-duty or on-call turnout."""
        if self.spec.night_on_call and not is_on_shift(
            float(self.crew_open_hour[van]), float(self.crew_close_hour[van]), now / 60.0
        ):
            return self._on_call[van]
        return self._on_duty[van]


def _with_turnout(state: VanState, minutes: float) -> VanState:
    return state if minutes <= 0 else replace(state, free_in_minutes=minutes)
