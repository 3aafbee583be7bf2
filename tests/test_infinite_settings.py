"""No setting takes NaN or an infinity, and disk and clock settings have upper bounds (review:
``min_free_mb: .inf`` stopped the start with an OverflowError; ``tick_interval_s: .inf`` ended the
work-order clock's thread, and escalation with it, without a word)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from gridworker.periodic import Periodic
from gridworker.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ({"evidence": {"min_free_mb": ".inf"}}, ".inf"),
        ({"evidence": {"min_free_mb": ".nan"}}, ".nan"),
        ({"evidence": {"min_free_mb": "1e300"}}, "1e300"),
        ({"reports": {"photos": {"min_free_mb": ".inf"}}}, ".inf"),
        ({"reports": {"photos": {"max_total_mb": ".inf"}}}, ".inf"),
        ({"reports": {"photos": {"max_total_mb": "1e300"}}}, "1e300"),
        ({"workorders": {"tick_interval_s": ".inf"}}, ".inf"),
        ({"workorders": {"tick_interval_s": "86400"}}, "86400"),
        ({"pipeline": {"batch_deadline_ms": ".nan"}}, ".nan"),
        ({"reports": {"photos": {"public_max_total_mb": ".inf"}}}, ".inf"),
        ({"retention": {"clips_max_total_mb": ".inf"}}, ".inf"),
        ({"retention": {"clips_max_total_mb": "1e300"}}, "1e300"),
    ],
)
def test_unbounded_and_non_finite_values_do_not_load(tmp_path, section, value):
    import yaml

    conf = tmp_path / "c.yaml"
    text = yaml.safe_dump(section).replace(f"'{value}'", value)
    conf.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(conf)
    key = next(iter(section))
    assert key in str(err.value), str(err.value)


def test_the_bounds_leave_room_for_real_disks(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "evidence: {min_free_mb: 50000}\nreports: {photos: {min_free_mb: 1000, max_total_mb: 20000000}}\nworkorders: {tick_interval_s: 3600}\n"
    )
    s = load_settings(conf)
    assert int(s.evidence.min_free_mb * 1e6) == 50_000_000_000 and int(s.reports.photos.max_total_mb * 1e6) == 20_000_000_000_000


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 0.0, -1.0])
def test_periodic_refuses_an_interval_it_cannot_wait(bad):
    with pytest.raises(ValueError, match="interval_s"):
        Periodic("gw-test", lambda: None, bad)
    with pytest.raises(ValueError, match="first_s"):
        Periodic("gw-test", lambda: None, 1.0, first_s=bad if bad != 0.0 else -0.5)


def test_periodic_keeps_running_with_a_wait_beyond_what_the_clock_takes(caplog):
    """A finite wait larger than threading.TIMEOUT_MAX raised OverflowError in the thread."""
    caplog.set_level(logging.ERROR)
    ran = threading.Event()
    timer = Periodic("gw-test", ran.set, 1e300, first_s=0.0)
    timer.start()
    assert ran.wait(2.0)
    time.sleep(0.1)  # the thread now waits (clamped) instead of dying
    assert timer.running and not caplog.records
    assert timer.stop(timeout=2.0)
