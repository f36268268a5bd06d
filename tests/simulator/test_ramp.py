"""The fleet's ramp keeps its rate when the event loop is busy (issue 17: at 100,000 chargers a ramp that slept
between two starts got one start per loop turn, and connections fell from 186/s to 8/s). ``Ramp`` counts from the
ramp's start: each turn starts every charger due by then, bounded by one second's worth."""

from __future__ import annotations

import pytest

from simulator.fleet import Ramp


def test_the_first_charger_starts_at_once_and_the_next_when_due() -> None:
    ramp = Ramp(10, rate_per_s=100)
    assert ramp.due(0.0) == 1
    assert ramp.wait_s(0.0) == pytest.approx(0.01)
    assert ramp.due(0.005) == 0  # a turn before the next is due starts nothing
    assert ramp.due(0.01) == 1  # due exactly now: started now, not a turn later
    assert ramp.started == 2


def test_a_turn_that_came_late_starts_everyone_due_by_then() -> None:
    ramp = Ramp(1000, rate_per_s=100)
    assert ramp.due(0.0) == 1
    # The loop was busy for half a second (Heartbeats of the chargers already up): the 50 due meanwhile start
    # in this one turn, so the ramp keeps its rate rather than one charger per turn.
    assert ramp.due(0.5) == 50
    assert ramp.started == 51
    assert ramp.wait_s(0.5) == pytest.approx(0.01)


def test_a_long_stall_is_caught_up_one_seconds_worth_per_turn() -> None:
    ramp = Ramp(1000, rate_per_s=100)
    assert ramp.due(0.0) == 1
    # 3 s behind: 300 are due, at most 100 start per turn (no storm of handshakes), the rest on the next turns.
    assert ramp.due(3.0) == 100
    assert ramp.wait_s(3.0) == 0.0  # still behind: the next turn comes at once
    assert ramp.due(3.0) == 100
    assert ramp.due(3.0) == 100
    assert ramp.started == 301
    assert ramp.due(3.0) == 0  # caught up
    assert ramp.wait_s(3.0) == pytest.approx(0.01)


def test_it_never_starts_more_than_the_fleet() -> None:
    ramp = Ramp(7, rate_per_s=100)
    started = sum(ramp.due(t / 10) for t in range(100))
    assert started == 7 == ramp.started
    assert ramp.due(100.0) == 0
    assert ramp.wait_s(100.0) == 0.0


def test_a_storm_starts_every_charger_in_the_first_turn() -> None:
    ramp = Ramp(10_000, rate_per_s=1e9)
    assert ramp.due(0.0) == 10_000
    assert ramp.started == ramp.total


@pytest.mark.parametrize("rate", [0.5, 3.0, 400.0])
def test_the_starts_over_time_follow_the_rate(rate: float) -> None:
    total = 50
    ramp = Ramp(total, rate_per_s=rate)
    # Turns every 37 ms, as an irregular busy loop gives them: after t seconds, 1 + floor(t * rate) have started.
    for k in range(2000):
        t = k * 0.037
        ramp.due(t)
        assert ramp.started == min(total, int(t * rate + 1e-9) + 1)
