"""The fleet's ramp keeps its rate when the event loop is busy (issue 17: at 100,000 chargers a ramp that slept
between two starts got one start per loop turn, and connections fell from 186/s to 8/s). ``Ramp`` counts from the
ramp's start: one start per turn while within 10 s of the schedule, further behind what is due beyond that."""

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


def test_a_turn_a_little_late_starts_one_charger_as_before() -> None:
    """Within the slack (10 s of the schedule) one charger per turn: chargers started in one turn would boot, and
    send their Heartbeats, together for good."""
    ramp = Ramp(10_000, rate_per_s=100)
    assert ramp.due(0.0) == 1
    assert ramp.due(0.5) == 1  # 50 due, 49 behind: within the slack of 1,000
    assert ramp.due(9.9) == 1
    assert ramp.started == 3 and ramp.largest == 1
    assert ramp.wait_s(9.9) == 0.0  # behind: the next turn comes at once


def test_a_ramp_far_behind_catches_up_a_quarter_seconds_worth_per_turn() -> None:
    """Turns of 750 ms (a saturated machine, 15,000 agents heartbeating): 25 per turn, not one."""
    ramp = Ramp(100_000, rate_per_s=100)
    assert ramp.slack == 1000 and ramp.max_batch == 25
    assert ramp.due(0.0) == 1
    assert ramp.due(10.1) == 10  # 1011 due, 1010 behind: 10 beyond the slack
    assert ramp.due(10.1) == 1  # within the slack again: one per turn
    assert ramp.due(30.0) == 25  # 3001 due, far behind: capped at a quarter second's worth
    assert ramp.largest == 25
    t, before = 30.0, ramp.started
    for _ in range(100):  # from then on, a turn every 750 ms
        t += 0.75
        ramp.due(t)
    assert ramp.started - before == 100 * 25  # 33 a second, where one start per turn made 1.3


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


@pytest.mark.parametrize("rate", [0.5, 3.0, 150.0])
def test_a_loop_that_keeps_up_starts_them_on_schedule(rate: float) -> None:
    total = 50
    ramp = Ramp(total, rate_per_s=rate)
    # Turns every 5 ms: after t seconds, 1 + floor(t * rate) have started.
    for k in range(40_000):
        t = k * 0.005
        ramp.due(t)
        assert ramp.started == min(total, int(t * rate + 1e-9) + 1)
