"""A schedule window whose start equals its end (``"00:00"``-``"00:00"``, meant as all day) would
never be active: a rule never armed, a patrol plan waiting forever. It is refused, with a message
that says how to write all day; the two-window way it names covers every minute of the day."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from gridworker.patrol.config import PatrolPlan
from gridworker.vision.config import ScheduleConfig, TimeWindow, ZoneConfig


@pytest.mark.parametrize(("start", "end"), [("00:00", "00:00"), ("07:30", "07:30")])
def test_a_window_that_starts_when_it_ends_is_refused(start, end):
    with pytest.raises(ValidationError) as raised:
        TimeWindow(start=start, end=end)
    message = str(raised.value)
    assert f"start and end are both {start}" in message and "never active" in message
    assert "leave the schedule out" in message and 'start "12:00" end "00:00"' in message


def test_a_rule_and_a_patrol_plan_with_such_a_window_are_refused():
    window = {"start": "00:00", "end": "00:00"}
    with pytest.raises(ValidationError, match="never active"):
        ZoneConfig(id="gate", rules=[{"type": "intrusion", "schedule": {"windows": [window]}}])
    with pytest.raises(ValidationError, match="never active"):
        PatrolPlan(id="night", schedule={"windows": [window]})


def test_the_whole_day_as_the_message_says_is_always_active():
    schedule = ScheduleConfig(
        timezone="UTC", windows=[{"days": ["sat"], "start": "00:00", "end": "12:00"}, {"days": ["sat"], "start": "12:00", "end": "00:00"}]
    )
    saturday = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)  # a Saturday
    minutes = [saturday + dt.timedelta(minutes=m) for m in range(-60, 25 * 60)]
    armed = [m for m in minutes if schedule.active(m.timestamp())]
    assert armed[0] == saturday and armed[-1] == saturday + dt.timedelta(hours=23, minutes=59)
    assert len(armed) == 24 * 60


def test_other_windows_still_validate():
    assert TimeWindow(start="22:00", end="06:00").contains(dt.datetime(2024, 6, 1, 23, 0))
    assert TimeWindow(start="07:00", end="07:01").contains(dt.datetime(2024, 6, 1, 7, 0))
