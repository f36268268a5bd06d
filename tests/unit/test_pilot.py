"""IEC 61851-1 control pilot: duty-cycle tables (Annex A, Tables A.7/A.8) and the PlugSensor adapter over a fake board."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from chargepoint.errors import HardwareError
from chargepoint.ports import PlugSensor
from hardware.pilot import (
    PilotPlugSensor,
    PilotState,
    current_for_duty_percent,
    duty_percent_for_current,
)


@pytest.mark.parametrize(
    ("current_a", "duty_percent"),
    [
        (None, 100.0),
        (0, 100.0),
        (6, 10.0),
        (10, 16.6667),
        (16, 26.6667),
        (32, 53.3333),
        (51, 85.0),
        (52, 85.0),  # the seam: Table A.7 gives 84.8 %, which an EV reads as 50.9 A; 85 % keeps it monotone
        (52.5, 85.0),
        (63, 89.2),
        (80, 96.0),
    ],
)
def test_duty_for_current(current_a: float | None, duty_percent: float) -> None:
    assert duty_percent_for_current(current_a) == pytest.approx(duty_percent, abs=1e-4)


@pytest.mark.parametrize("current_a", [-1, 0.5, 5.99, 80.01, 100, math.nan, math.inf])
def test_duty_for_current_rejects(current_a: float) -> None:
    with pytest.raises(ValueError, match="pilot offer"):
        duty_percent_for_current(current_a)


@pytest.mark.parametrize(
    ("duty_percent", "current_a"),
    [
        (0, None),
        (2.9, None),  # < 3 %: no charging
        (5, None),  # digital communication (ISO 15118): no current by PWM
        (7.5, None),
        (8, 6.0),
        (9.9, 6.0),
        (10, 6.0),
        (25, 15.0),
        (50, 30.0),
        (85, 51.0),
        (86, 55.0),
        (90, 65.0),
        (96, 80.0),
        (97, 80.0),
        (97.1, None),
        (100, None),
    ],
)
def test_current_for_duty(duty_percent: float, current_a: float | None) -> None:
    result = current_for_duty_percent(duty_percent)
    if current_a is None:
        assert result is None
    else:
        assert result == pytest.approx(current_a)


@pytest.mark.parametrize("duty_percent", [-0.1, 100.1, math.nan])
def test_current_for_duty_rejects(duty_percent: float) -> None:
    with pytest.raises(ValueError, match="duty cycle"):
        current_for_duty_percent(duty_percent)


class FakeBoard:
    """A pilot board in memory: tests push raw states, the adapter sets duty cycles."""

    def __init__(self, state: PilotState = PilotState.A) -> None:
        self.state = state
        self.queue: asyncio.Queue[PilotState] = asyncio.Queue()
        self.duty_percent: list[float] = []
        self.refuse = False

    def push(self, *states: PilotState) -> None:
        for s in states:
            self.queue.put_nowait(s)

    async def states(self) -> AsyncIterator[PilotState]:
        while True:
            self.state = await self.queue.get()
            yield self.state

    def set_duty_percent(self, duty_percent: float) -> None:
        if self.refuse:
            raise HardwareError("board gone")
        self.duty_percent.append(duty_percent)


async def _take(changes: AsyncIterator[bool], n: int) -> list[bool]:
    out = []
    async with asyncio.timeout(1):
        for _ in range(n):
            out.append(await anext(changes))
    return out


def test_adapter_is_a_plug_sensor() -> None:
    assert isinstance(PilotPlugSensor(FakeBoard()), PlugSensor)


@pytest.mark.parametrize(
    ("state", "plugged"), [(PilotState.A, False), (PilotState.B, True), (PilotState.C, True)]
)
def test_initial_state(state: PilotState, plugged: bool) -> None:
    assert PilotPlugSensor(FakeBoard(state)).plugged is plugged


async def test_states_to_plug_events() -> None:
    board = FakeBoard()
    sensor = PilotPlugSensor(board)
    # B -> C -> D -> B are all "plugged": one event; A: unplugged.
    board.push(
        PilotState.A, PilotState.B, PilotState.C, PilotState.D, PilotState.B, PilotState.A, PilotState.C
    )
    assert await _take(sensor.changes(), 3) == [True, False, True]
    assert sensor.plugged


@pytest.mark.parametrize("state", [PilotState.E, PilotState.F])
async def test_error_states_raise(state: PilotState) -> None:
    board = FakeBoard(PilotState.B)
    sensor = PilotPlugSensor(board)
    board.push(PilotState.C, state)
    with pytest.raises(HardwareError, match=f"state {state.name}"):
        await _take(sensor.changes(), 1)


@pytest.mark.parametrize(
    ("offer_a", "duty_percent"),
    [(None, 100.0), (0, 100.0), (-3, 100.0), (3, 100.0), (16, 26.6667), (32, 53.3333), (125, 96.0)],
)
def test_offer_current_sets_pwm(offer_a: float | None, duty_percent: float) -> None:
    board = FakeBoard()
    PilotPlugSensor(board).offer_current(offer_a)
    assert board.duty_percent == [pytest.approx(duty_percent, abs=1e-4)]


def test_offer_current_never_raises() -> None:
    """The station offers None right before opening the relay: a failing board must not stop that."""
    board = FakeBoard()
    board.refuse = True
    sensor = PilotPlugSensor(board)
    sensor.offer_current(None)
    sensor.offer_current(math.nan)
    assert board.duty_percent == []
