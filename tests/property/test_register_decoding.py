"""Register decoding never fails with anything but a clean ValueError or MeterError, whatever a meter sends."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.errors import MeterError
from hardware.modbus_meter import MODELS, Function, RegisterMap, ValueType, decode_reading, decode_value

MAPS = {model: RegisterMap.model(model) for model in MODELS}
words = st.integers(min_value=0, max_value=0xFFFF)
any_ints = st.integers(min_value=-(2**20), max_value=2**20) | words


@given(
    registers=st.lists(any_ints, max_size=6),
    value_type=st.sampled_from(ValueType),
    word_order=st.sampled_from(["big", "little"]),
)
def test_decode_value_raises_only_value_error(
    registers: list[int], value_type: ValueType, word_order: str
) -> None:
    try:
        value = decode_value(registers, value_type, word_order)  # type: ignore[arg-type]
    except ValueError:
        return
    assert len(registers) == value_type.width_registers
    assert isinstance(value, float | int)


@given(value=st.integers(min_value=-(2**31), max_value=2**31 - 1), little=st.booleans())
def test_int32_round_trips(value: int, little: bool) -> None:
    hi, lo = (value & 0xFFFFFFFF) >> 16, value & 0xFFFF
    registers = [lo, hi] if little else [hi, lo]
    assert decode_value(registers, ValueType.INT32, "little" if little else "big") == value


@given(value=st.floats(width=32, allow_nan=False), little=st.booleans())
def test_float32_round_trips(value: float, little: bool) -> None:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    registers = [lo, hi] if little else [hi, lo]
    assert decode_value(registers, ValueType.FLOAT32, "little" if little else "big") == value


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=150)
@given(data=st.data())
def test_decode_reading_raises_only_meter_error(model: str, data: st.DataObject) -> None:
    m = MAPS[model]
    addresses = [(f.function, a) for f in m.fields for a in f.addresses]
    registers = data.draw(st.dictionaries(st.sampled_from(addresses), any_ints, max_size=len(addresses)))
    if data.draw(st.booleans()):  # usually a complete answer, so the value checks are reached too
        registers = {a: registers.get(a, data.draw(words)) for a in addresses}
    extra = data.draw(st.dictionaries(st.tuples(st.sampled_from(Function), words), words, max_size=3))
    try:
        reading = decode_reading(m, {**extra, **registers})
    except MeterError:
        return
    assert math.isfinite(reading.energy_wh) and reading.energy_wh >= 0
    # An implausible phase value drops that quantity for all phases (never a shifted phase list).
    assert len(reading.voltage_v) in (0, len(m.voltage)) and len(reading.current_a) in (0, len(m.current))
    assert all(math.isfinite(v) and v >= 0 for v in reading.voltage_v)
