"""The IEC 61851-1 duty-cycle mapping: monotone, round-trips within the PWM's rounding, rejects what it can't say."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.pilot import MAX_CURRENT_A, MIN_CURRENT_A, current_for_duty_percent, duty_percent_for_current

currents = st.floats(min_value=MIN_CURRENT_A, max_value=MAX_CURRENT_A, allow_nan=False)
RESOLUTION_PERCENT = 0.1  # a typical PWM generator's step; boards round down so the EV never gets more


def _round_down(duty_percent: float) -> float:
    return math.floor(duty_percent / RESOLUTION_PERCENT + 1e-9) * RESOLUTION_PERCENT


@given(currents, currents)
def test_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert duty_percent_for_current(lo) <= duty_percent_for_current(hi)


@given(currents)
def test_within_pwm_range(current_a: float) -> None:
    assert 10.0 <= duty_percent_for_current(current_a) <= 96.0


@given(currents)
def test_round_trip_exact(current_a: float) -> None:
    """Decoding the duty gives the current back, except at the 51..52.5 A seam, where it gives 51 A."""
    back = current_for_duty_percent(duty_percent_for_current(current_a))
    assert back is not None
    expected = 51.0 if 51.0 < current_a <= 52.5 else current_a
    assert back == pytest.approx(expected, abs=1e-9)


@given(currents)
def test_round_trip_after_pwm_rounding_never_offers_more(current_a: float) -> None:
    """A board that rounds the duty down to its step makes the EV draw at most one step less, never more."""
    duty = duty_percent_for_current(current_a)
    back = current_for_duty_percent(_round_down(duty))
    one_step_less = current_for_duty_percent(duty - RESOLUTION_PERCENT)
    assert back is not None and one_step_less is not None
    assert one_step_less - 1e-9 <= back <= current_a + 1e-9


@given(
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda x: not (x == 0 or MIN_CURRENT_A <= x <= MAX_CURRENT_A)
    )
)
def test_out_of_range_rejected(current_a: float) -> None:
    with pytest.raises(ValueError):
        duty_percent_for_current(current_a)


@given(st.floats(min_value=0.0, max_value=100.0))
def test_decoded_current_is_offerable(duty_percent: float) -> None:
    """Whatever duty an EV sees, it never decodes a current outside 6..80 A."""
    current_a = current_for_duty_percent(duty_percent)
    assert current_a is None or MIN_CURRENT_A <= current_a <= MAX_CURRENT_A
