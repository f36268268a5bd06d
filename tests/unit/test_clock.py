"""SystemClock adopts a plausible CSMS time and refuses the rest (issue 10, finding 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargepoint.ports import EARLIEST_TIME, LATEST_TIME, SystemClock, safe_now


def test_a_plausible_time_is_adopted() -> None:
    clock = SystemClock()
    target = datetime(2031, 5, 1, 12, tzinfo=UTC)
    clock.set_time(target)
    assert abs(clock.now() - target) < timedelta(seconds=5)
    assert clock.refused == 0


@pytest.mark.parametrize(
    "when",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        EARLIEST_TIME - timedelta(seconds=1),
        LATEST_TIME,
    ],
)
def test_an_implausible_time_is_refused_and_the_clock_keeps_working(when: datetime) -> None:
    clock = SystemClock()
    clock.set_time(when)
    assert clock.refused == 1 and clock.offset_s == 0.0
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_naive_time_is_taken_as_utc() -> None:
    clock = SystemClock()
    clock.set_time(datetime(2030, 1, 1))
    assert clock.now().year in (2029, 2030) and clock.now().tzinfo is not None


def test_now_never_raises_even_with_an_absurd_offset() -> None:
    clock = SystemClock()
    clock.offset_s = 1e12  # only reachable by a bug: set_time refuses it
    assert clock.now().tzinfo is not None


def test_safe_now_falls_back_to_the_system_clock() -> None:
    class Broken:
        def now(self) -> datetime:
            raise OverflowError("date value out of range")

    assert abs(safe_now(Broken()) - datetime.now(UTC)) < timedelta(seconds=5)
