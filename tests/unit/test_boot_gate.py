"""The boot-storm gate: when the central system counts as overloaded, and the retry appointments it hands out."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backend_stub.looplag import LoopLag
from backend_stub.ocpp.guard import listen_backlog
from backend_stub.ocpp.overload import BootGate


class FakeLag(LoopLag):
    """A loop-lag probe whose reading the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0.0

    @property
    def lag_s(self) -> float:
        return self.value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(**kwargs: float) -> tuple[BootGate, FakeLag, FakeClock]:
    lag, clock = FakeLag(), FakeClock()
    params: dict[str, float] = {
        "max_in_flight": 3,
        "max_lag_s": 0.5,
        "boots_per_s": 2,
        "min_interval_s": 5,
        "max_interval_s": 20,
        **kwargs,
    }
    g = BootGate(
        max_in_flight=int(params["max_in_flight"]),
        max_lag_s=params["max_lag_s"],
        boots_per_s=params["boots_per_s"],
        min_interval_s=int(params["min_interval_s"]),
        max_interval_s=int(params["max_interval_s"]),
        lag=lag,
        clock=clock,
        rng=random.Random(7),
    )
    return g, lag, clock


def test_overloaded_above_the_boots_in_flight_and_back_when_they_are_answered() -> None:
    g, _, _ = gate()
    for _ in range(3):
        g.arrived()
    assert g.overload() is None  # at the threshold, not above
    g.arrived()
    reason = g.overload()
    assert reason is not None and "4 BootNotifications" in reason
    g.answered()
    assert g.overload() is None
    for _ in range(10):
        g.answered()
    assert g.in_flight == 0  # never negative


def test_overloaded_while_the_event_loop_lags() -> None:
    g, lag, _ = gate()
    lag.value = 0.5
    assert g.overload() is None
    lag.value = 0.8
    reason = g.overload()
    assert reason is not None and "lag" in reason
    lag.value = 0.0
    assert g.overload() is None


def test_appointments_are_spread_at_the_boot_rate_from_the_minimum_interval() -> None:
    g, _, clock = gate(boots_per_s=2, min_interval_s=5, max_interval_s=20)
    intervals = [g.defer() for _ in range(6)]
    # Slots at +5.0, 5.5, 6.0, 6.5, 7.0, 7.5 s, rounded up to whole seconds: two chargers per second.
    assert intervals == [5, 6, 6, 7, 7, 8]
    assert g.deferred == 6
    clock.now += 100  # the book is empty again: the next charger gets the minimum
    assert g.defer() == 5


def test_when_the_book_is_full_the_rest_are_spread_over_the_whole_range() -> None:
    g, _, _ = gate(boots_per_s=1, min_interval_s=5, max_interval_s=10)
    booked = [g.defer() for _ in range(6)]
    assert booked == [5, 6, 7, 8, 9, 10]
    overflow = [g.defer() for _ in range(200)]
    assert all(5 <= i <= 10 for i in overflow)
    assert len(set(overflow)) > 1  # spread, not one second for all


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_in_flight": 0},
        {"max_lag_s": 0},
        {"boots_per_s": 0},
        {"min_interval_s": 0},
        {"max_interval_s": 4},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        gate(**kwargs)


def test_listen_backlog_is_the_systems_cap(tmp_path: Path) -> None:
    path = tmp_path / "somaxconn"
    path.write_text("8192\n")
    assert listen_backlog(path) == 8192
    assert listen_backlog(tmp_path / "missing") == 4096


def test_while_overloaded_boots_are_still_handled_at_the_boot_rate() -> None:
    g, lag, clock = gate(boots_per_s=2)
    assert g.admit() is None  # not overloaded: every boot is handled
    lag.value = 5.0  # overloaded, e.g. by a loaded machine: it may last
    admitted = [g.admit() is None for _ in range(5)]
    assert admitted == [True, True, False, False, False]  # a second's worth, then deferred
    clock.now += 1.0
    assert [g.admit() is None for _ in range(3)] == [True, True, False]  # 2 more each second: never starved
    lag.value = 0.0
    assert all(g.admit() is None for _ in range(10))
