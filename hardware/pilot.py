"""The IEC 61851-1 control pilot: raw CP states, the PWM duty-cycle <-> current mapping, and a PlugSensor adapter.

A CP board (ADC on the pilot line plus a 1 kHz PWM generator) implements ``PilotBoard``; ``PilotPlugSensor``
turns its raw states into the core's plugged/unplugged events (EVerest's layering: raw CP state -> events ->
charger states), so a board plugs in later without changes to the core.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from enum import Enum
from typing import Protocol

from chargepoint.errors import HardwareError

log = logging.getLogger(__name__)


class PilotState(Enum):
    """Control-pilot states of IEC 61851-1 Annex A by the positive PWM level the EVSE measures."""

    A = "A"  # +12 V: no EV connected
    B = "B"  # +9 V: EV connected, not ready to charge
    C = "C"  # +6 V: EV connected, charging
    D = "D"  # +3 V: EV connected, charging, ventilation required
    E = "E"  # 0 V: CP shorted to PE, or the EVSE has no supply
    F = "F"  # -12 V: EVSE not available (fault)


PLUGGED_STATES = frozenset({PilotState.B, PilotState.C, PilotState.D})
ERROR_STATES = frozenset({PilotState.E, PilotState.F})

# IEC 61851-1:2017 Table A.7 (EVSE side) and Table A.8 (EV side), in percent and ampere.
MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0
LOW_RANGE_MAX_A = 51.0  # up to here duty = I / 0.6; above, duty = I / 2.5 + 64
SEAM_DUTY_PERCENT = 85.0  # = 51 A / 0.6, where the two formulas meet on the EV side
NO_CHARGING_DUTY_PERCENT = 100.0  # a steady +12/+9 V: no PWM, the EV must not draw current
DIGITAL_COMMUNICATION_DUTY_PERCENT = 5.0  # ISO 15118 / DIN 70121: current comes over high-level communication


def duty_percent_for_current(current_a: float | None) -> float:
    """The PWM duty cycle (percent) that offers ``current_a``; 0 or None gives 100 % (no charging allowed).

    Raises ValueError outside 6..80 A (the pilot cannot express it). Between 51 and 52.5 A Table A.7's second
    formula gives less than 85 %, which the EV decodes with the first one as < 51 A; we send 85 % (51 A) there,
    so the mapping is monotone and never offers more than asked.
    """
    if current_a is None or current_a == 0:
        return NO_CHARGING_DUTY_PERCENT
    if not math.isfinite(current_a) or not MIN_CURRENT_A <= current_a <= MAX_CURRENT_A:
        raise ValueError(f"a pilot offer must be 0 or {MIN_CURRENT_A}..{MAX_CURRENT_A} A, got {current_a}")
    if current_a <= LOW_RANGE_MAX_A:
        return current_a / 0.6
    return max(SEAM_DUTY_PERCENT, current_a / 2.5 + 64.0)


def current_for_duty_percent(duty_percent: float) -> float | None:
    """The current (A) an EV may draw at ``duty_percent`` (Table A.8); None where charging is not allowed.

    None also for 3..7 % (digital communication required: the current comes over ISO 15118, not the PWM).
    Raises ValueError outside 0..100 %.
    """
    d = duty_percent
    if not math.isfinite(d) or not 0.0 <= d <= 100.0:
        raise ValueError(f"a duty cycle must be 0..100 %, got {d}")
    if d < 8.0:
        return None  # < 3 %: no charging; 3..7 %: digital communication; 7..8 %: no charging
    if d < 10.0:
        return MIN_CURRENT_A
    if d <= SEAM_DUTY_PERCENT:
        return d * 0.6
    if d <= 96.0:
        return (d - 64.0) * 2.5
    if d <= 97.0:
        return MAX_CURRENT_A
    return None


class PilotBoard(Protocol):
    """A control-pilot board: measures the CP level, generates the 1 kHz PWM."""

    @property
    def state(self) -> PilotState:
        """The raw state measured last."""
        ...

    def states(self) -> AsyncIterator[PilotState]:
        """Every raw state the board decodes (repeats allowed); HardwareError when the board is gone."""
        ...

    def set_duty_percent(self, duty_percent: float) -> None:
        """Set the PWM duty cycle (100: a steady level, no PWM); HardwareError if the board refuses."""
        ...


class PilotPlugSensor:
    """The PlugSensor port over a pilot board: A is unplugged, B/C/D plugged, E/F raise HardwareError."""

    def __init__(self, board: PilotBoard) -> None:
        self.board = board
        self._plugged = board.state in PLUGGED_STATES
        self.offered_a: float | None = None
        self.duty_percent = NO_CHARGING_DUTY_PERCENT

    @property
    def plugged(self) -> bool:
        """True while the last non-error state was B, C or D."""
        return self._plugged

    async def changes(self) -> AsyncIterator[bool]:
        """Yield on every change between A and B/C/D; an E or F state raises HardwareError (the station faults)."""
        async for state in self.board.states():
            if state in ERROR_STATES:
                # IEC 61851-1 A.2: E (CP shorted) and F (EVSE fault) are errors, not plug events.
                raise HardwareError(f"control pilot in state {state.name}")
            plugged = state in PLUGGED_STATES
            if plugged != self._plugged:
                self._plugged = plugged
                yield plugged

    def offer_current(self, current_a: float | None) -> None:
        """Signal ``current_a`` by PWM (None, <= 0 or < 6 A: 100 %, > 80 A: 80 A); never raises, it logs.

        The station calls this right before opening the relay, so an error here must not stop the opening.
        """
        if current_a is not None and not (current_a >= MIN_CURRENT_A):  # also NaN and <= 0
            if current_a > 0:
                log.info(
                    "pilot cannot offer %.1f A (< %.0f A): no charging allowed instead",
                    current_a,
                    MIN_CURRENT_A,
                )
            current_a = None
        elif current_a is not None and current_a > MAX_CURRENT_A:
            log.info(
                "pilot cannot offer %.1f A (> %.0f A): offering %.0f A",
                current_a,
                MAX_CURRENT_A,
                MAX_CURRENT_A,
            )
            current_a = MAX_CURRENT_A
        duty = duty_percent_for_current(current_a)
        try:
            self.board.set_duty_percent(duty)
        except HardwareError as exc:
            log.error("pilot board refused a duty cycle of %.1f %%: %s", duty, exc)
            return
        self.offered_a, self.duty_percent = current_a, duty
