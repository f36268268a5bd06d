"""The Modbus meter driver: decoding tables, map validation, options, and reads from emulated meters."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest

from chargepoint.errors import ConfigError, MeterError
from chargepoint.ports import Meter, MeterReading
from hardware.modbus_meter import (
    MODELS,
    Field,
    Function,
    ModbusMeter,
    RegisterMap,
    ValueType,
    build_modbus_meter,
    decode_field,
    decode_reading,
    decode_value,
    plan_requests,
)
from tests.hardware.conftest import EmulatedMeter, MeterValues, PtyPair, float32, raw_for

# ------------------------------------------------------------------------------------------ decoding tables

DECODE_TABLE: list[tuple[list[int], ValueType, str, float]] = [
    # float32 1234.5 = 0x449A5000: Eastron sends the high word first.
    ([0x449A, 0x5000], ValueType.FLOAT32, "big", 1234.5),
    ([0x5000, 0x449A], ValueType.FLOAT32, "little", 1234.5),
    ([0xC366, 0x0000], ValueType.FLOAT32, "big", -230.0),
    ([0x0000, 0x0000], ValueType.FLOAT32, "big", 0.0),
    # int32 123456 = 0x0001E240; Carlo Gavazzi sends the low word first.
    ([0xE240, 0x0001], ValueType.INT32, "little", 123456),
    ([0x0001, 0xE240], ValueType.INT32, "big", 123456),
    ([0xFFFE, 0xFFFF], ValueType.INT32, "little", -2),
    ([0xFFFF, 0xFFFE], ValueType.UINT32, "big", 0xFFFFFFFE),
    ([0xFFFF], ValueType.INT16, "big", -1),
    ([0xFFFF], ValueType.UINT16, "little", 0xFFFF),
    ([0x0000, 0x0000, 0x00BC, 0x614E], ValueType.UINT64, "big", 12345678),
    ([0x614E, 0x00BC, 0x0000, 0x0000], ValueType.UINT64, "little", 12345678),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], ValueType.UINT64, "big", 2**64 - 1),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], ValueType.INT64, "big", -1),
]


@pytest.mark.parametrize(("registers", "value_type", "word_order", "expected"), DECODE_TABLE)
def test_decode_value_table(
    registers: list[int], value_type: ValueType, word_order: Any, expected: float
) -> None:
    assert decode_value(registers, value_type, word_order) == expected


@pytest.mark.parametrize(
    ("registers", "value_type"),
    [
        ([1], ValueType.FLOAT32),
        ([1, 2, 3], ValueType.INT32),
        ([], ValueType.UINT16),
        ([0x10000], ValueType.UINT16),
    ],
)
def test_decode_value_rejects_bad_input(registers: list[int], value_type: ValueType) -> None:
    with pytest.raises(ValueError):
        decode_value(registers, value_type)


def test_scaled_fields_convert_kwh_to_wh() -> None:
    abb = RegisterMap.model("abb_b23")
    words = {(Function.HOLDING, 0x5000 + i): w for i, w in enumerate([0, 0, 0x00BC, 0x614E])}
    assert decode_field(words, abb.energy) == 123_456_780.0  # 12345678 x 0.01 kWh
    em340 = RegisterMap.model("em340")
    words = {(Function.INPUT, 0x0034): 0xE240, (Function.INPUT, 0x0035): 0x0001}
    assert decode_field(words, em340.energy) == 12_345_600.0  # 123456 x 0.1 kWh
    sdm = RegisterMap.model("sdm630")
    words = {(Function.INPUT, 0x0048): 0x449A, (Function.INPUT, 0x0049): 0x5000}
    assert decode_field(words, sdm.energy) == 1_234_500.0  # 1234.5 kWh


def test_decode_reading_rejects_nan_and_negative_energy() -> None:
    sdm = RegisterMap.model("sdm120")
    good = {(Function.INPUT, a): 0 for f in sdm.fields for a in f.addresses}
    assert decode_reading(sdm, good).energy_wh == 0.0
    with pytest.raises(MeterError, match=r"holds nan"):
        decode_reading(sdm, {**good, (Function.INPUT, 0x0048): 0x7FC0})
    with pytest.raises(MeterError, match="energy_wh"):
        decode_reading(sdm, {**good, (Function.INPUT, 0x0048): 0xC366})
    with pytest.raises(MeterError, match="not read"):
        decode_reading(sdm, {k: v for k, v in good.items() if k != (Function.INPUT, 0x0049)})


# ------------------------------------------------------------------------------------------ maps


@pytest.mark.parametrize("model", MODELS)
def test_shipped_maps_cover_every_quantity(model: str) -> None:
    m = RegisterMap.model(model)
    assert m.power is not None and m.frequency is not None
    assert len(m.voltage) == len(m.current) == (1 if model == "sdm120" else 3)
    assert all(r.count <= 125 for r in m.requests)
    covered = {(r.function, r.address + i) for r in m.requests for i in range(r.count)}
    assert {(f.function, a) for f in m.fields for a in f.addresses} <= covered


def test_requests_are_grouped() -> None:
    assert len(RegisterMap.model("sdm630").requests) == 3  # V+I, P, f+kWh
    assert len(RegisterMap.model("abb_b23").requests) == 3  # kWh, V+I+P (gaps are defined registers), f
    fields = [Field(a, Function.INPUT, ValueType.FLOAT32, "big", 1.0) for a in range(0, 200, 2)]
    requests = plan_requests(fields)
    assert [(r.address, r.count) for r in requests] == [(0, 124), (124, 76)]


VALID_FIELD = {"register": 0x48, "function": "input", "type": "float32", "word_order": "big", "unit": "kWh"}


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({}, "energy", "missing"),
        ({"energy": {**VALID_FIELD, "type": "float64"}}, "energy.type", "float32"),
        ({"energy": {**VALID_FIELD, "function": "coil"}}, "energy.function", "input"),
        ({"energy": {**VALID_FIELD, "word_order": "middle"}}, "energy.word_order", "big"),
        ({"energy": {**VALID_FIELD, "unit": "V"}}, "energy.unit", "Wh, kWh"),
        ({"energy": {**VALID_FIELD, "scale": 0}}, "energy.scale", "non-zero"),
        ({"energy": {**VALID_FIELD, "register": 0xFFFF}}, "energy.register", "0..0xFFFF"),
        ({"energy": {**VALID_FIELD, "register": "banana"}}, "energy.register", "banana"),
        ({"energy": {**VALID_FIELD, "regster": 1}}, "energy.regster", "unknown key"),
        ({"energy": {k: v for k, v in VALID_FIELD.items() if k != "unit"}}, "energy.unit", "missing"),
        ({"energy": VALID_FIELD, "volts": {}}, "volts", "unknown table"),
        ({"energy": VALID_FIELD, "voltage": {**VALID_FIELD, "unit": "V"}}, "voltage.register", "list"),
        (
            {"energy": VALID_FIELD, "power": {**VALID_FIELD, "register": [1], "unit": "W"}},
            "power.register",
            "single",
        ),
        ({"energy": VALID_FIELD, "meter": {"max_gap_registers": -1}}, "meter.max_gap_registers", "0..100"),
        (
            {"energy": VALID_FIELD, "power": {**VALID_FIELD, "register": 0x49, "unit": "W"}},
            "register",
            "used twice",
        ),
        (
            {
                "energy": VALID_FIELD,
                "voltage": {**VALID_FIELD, "register": [0, 2, 4], "unit": "V"},
                "current": {**VALID_FIELD, "register": [6], "unit": "A"},
            },
            "current.register",
            "phases",
        ),
    ],
)
def test_map_errors_name_file_and_key(data: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        RegisterMap.from_dict(data, source="my_meter.toml")
    assert info.value.key == f"my_meter.toml:{key}"
    assert problem in info.value.problem


def test_map_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[energy\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*not valid TOML"):
        RegisterMap.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        RegisterMap.load(tmp_path / "missing.toml")
    good = tmp_path / "good.toml"
    good.write_text('[energy]\nregister = "0x0048"\nfunction = "input"\ntype = "uint32"\nunit = "Wh"\n')
    m = RegisterMap.load(good)
    assert m.name == "good" and m.energy.register == 0x48 and m.power is None


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"model": "sdm630"}, "m.port"),
        ({"port": "/dev/null", "model": "sdm999"}, "m.model"),
        ({"port": "/dev/null"}, "m.model"),
        ({"port": "/dev/null", "model": "sdm630", "map": "x.toml"}, "m.model"),
        ({"port": "/dev/null", "map": "/nonexistent.toml"}, "m.map"),
        ({"port": "/dev/null", "model": "sdm630", "device_id": 0}, "m.device_id"),
        ({"port": "/dev/null", "model": "sdm630", "device_id": True}, "m.device_id"),
        ({"port": "/dev/null", "model": "sdm630", "baudrate": 1234}, "m.baudrate"),
        ({"port": "/dev/null", "model": "sdm630", "parity": "X"}, "m.parity"),
        ({"port": "/dev/null", "model": "sdm630", "stopbits": 3}, "m.stopbits"),
        ({"port": "/dev/null", "model": "sdm630", "timeout_s": 0}, "m.timeout_s"),
        ({"port": "/dev/null", "model": "sdm630", "speed": 1}, "m.speed"),
        ({"port": "socket://host", "model": "sdm630"}, "m.port"),
    ],
)
def test_builder_option_errors_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_modbus_meter(options, "m")
    assert info.value.key == key


def test_builder_builds_and_shares_a_bus(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB0")
    a = build_modbus_meter({"port": port, "model": "sdm630", "device_id": 1, "timeout_s": 1}, "c0.meter")
    b = build_modbus_meter({"port": port, "model": "em340", "device_id": 2, "timeout_s": 1}, "c1.meter")
    assert isinstance(a, Meter) and a.device_id == 1 and b.map.name == "Carlo Gavazzi EM340"
    assert a._bus is b._bus  # two meters on one RS-485 line share the port and its lock
    with pytest.raises(ConfigError) as info:
        build_modbus_meter({"port": port, "model": "sdm630", "baudrate": 19200, "timeout_s": 1}, "c2.meter")
    assert info.value.key == "c2.meter.port"


# ------------------------------------------------------------------------------------------ emulated meters

FAST_TIMEOUT_S = 0.2


def values_for(m: RegisterMap, *, energy_wh: float) -> MeterValues:
    """Plausible values for map ``m``, one voltage and current per phase."""
    n = len(m.voltage)
    return MeterValues(
        energy_wh=energy_wh,
        power_w=11_040.5,
        voltage_v=(230.1, 231.2, 229.8)[:n],
        current_a=(16.05, 15.95, 16.0)[:n],
        frequency_hz=50.02,
    )


def expected(field: Field, value: float) -> float:
    """What the driver must report for ``value`` once the meter stored it at its resolution."""
    raw = raw_for(field, value)
    return (float32(raw) if field.type is ValueType.FLOAT32 else raw) * field.factor


def assert_reading(m: RegisterMap, reading: MeterReading, values: MeterValues) -> None:
    assert reading.energy_wh == expected(m.energy, values.energy_wh)
    assert m.power is not None and m.frequency is not None
    assert reading.power_w == pytest.approx(expected(m.power, values.power_w), rel=1e-9)
    assert reading.frequency_hz == pytest.approx(expected(m.frequency, values.frequency_hz), rel=1e-9)
    assert reading.voltage_v == pytest.approx(
        [expected(f, v) for f, v in zip(m.voltage, values.voltage_v, strict=True)]
    )
    assert reading.current_a == pytest.approx(
        [expected(f, v) for f, v in zip(m.current, values.current_a, strict=True)]
    )
    # and close to the truth, within the meter's resolution
    assert reading.voltage_v == pytest.approx(values.voltage_v, abs=0.1)
    assert reading.current_a == pytest.approx(values.current_a, abs=0.01)


# Energies each map stores exactly: float32 1234.5 kWh, ABB 12345678 x 0.01 kWh, EM340 123456 x 0.1 kWh.
ENERGY_WH = {"sdm120": 1_234_500.0, "sdm630": 1_234_500.0, "abb_b23": 123_456_780.0, "em340": 12_345_600.0}


@pytest.mark.parametrize("model", MODELS)
async def test_reads_each_shipped_map_over_rtu(
    model: str, pty_pair: PtyPair, emulators: list[EmulatedMeter]
) -> None:
    m = RegisterMap.model(model)
    values = values_for(m, energy_wh=ENERGY_WH[model])
    emulator = EmulatedMeter(m, values, device_id=7)
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    meter = ModbusMeter(str(pty_pair.meter), map=m, device_id=7, timeout_s=1.0)
    try:
        reading = await meter.read()
        assert reading.energy_wh == ENERGY_WH[model]
        assert_reading(m, reading, values)
        values.energy_wh += 1000.0
        emulator.set_values(values)
        assert (await meter.read()).energy_wh == ENERGY_WH[model] + 1000.0
    finally:
        await meter.close()


async def test_silent_meter_raises_within_timeout_and_recovers(
    pty_pair: PtyPair, emulators: list[EmulatedMeter]
) -> None:
    m = RegisterMap.model("sdm630")
    values = values_for(m, energy_wh=1_000.0)
    emulator = EmulatedMeter(m, values)
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    meter = ModbusMeter(str(pty_pair.meter), map=m, timeout_s=FAST_TIMEOUT_S)
    try:
        assert (await meter.read()).energy_wh == 1_000.0
        await emulator.stop()
        for _ in range(2):  # the station counts two failed cycles before it raises PowerMeterFailure
            started = time.monotonic()
            with pytest.raises(MeterError, match="did not answer"):
                await meter.read()
            assert time.monotonic() - started < FAST_TIMEOUT_S * 2
        await emulator.start_serial(pty_pair.bus)
        assert (await meter.read()).energy_wh == 1_000.0
    finally:
        await meter.close()


async def test_missing_port_raises_meter_error(tmp_path: Path) -> None:
    meter = ModbusMeter(str(tmp_path / "ttyUSB9"), map=RegisterMap.model("sdm120"), timeout_s=FAST_TIMEOUT_S)
    with pytest.raises(MeterError, match="cannot open"):
        await meter.read()


GARBAGE: list[tuple[str, str, float, str]] = [
    ("sdm630", "energy", math.nan, "nan"),
    ("sdm630", "energy", math.inf, "inf"),
    ("em340", "energy", -1000, "energy_wh"),  # signed INT32 register gone negative
]

# Implausible secondary quantities (a meter's "not available" pattern) are left out, not a failed read: billing
# rests on the energy register alone.
ODD_SECONDARY: list[tuple[str, str, float, str]] = [
    ("sdm120", "voltage", -5.0, "voltage_v"),
    ("abb_b23", "voltage", 50_000, "voltage_v"),  # 5000 V
    ("abb_b23", "frequency", 65_535, "frequency_hz"),  # 655.35 Hz
]


@pytest.mark.parametrize(("model", "quantity", "raw", "attribute"), ODD_SECONDARY)
async def test_implausible_secondary_values_are_left_out(
    model: str, quantity: str, raw: float, attribute: str, pty_pair: PtyPair, emulators: list[EmulatedMeter]
) -> None:
    m = RegisterMap.model(model)
    emulator = EmulatedMeter(m, values_for(m, energy_wh=ENERGY_WH[model]))
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    meter = ModbusMeter(str(pty_pair.meter), map=m, timeout_s=1.0)
    try:
        field = getattr(m, quantity)
        emulator.set_raw(field[0] if isinstance(field, tuple) else field, raw)
        reading = await meter.read()
        assert reading.energy_wh == pytest.approx(ENERGY_WH[model], abs=100)
        assert getattr(reading, attribute) in ((), None)
    finally:
        await meter.close()


@pytest.mark.parametrize(("model", "quantity", "raw", "match"), GARBAGE)
async def test_garbage_raises_meter_error(
    model: str, quantity: str, raw: float, match: str, pty_pair: PtyPair, emulators: list[EmulatedMeter]
) -> None:
    m = RegisterMap.model(model)
    emulator = EmulatedMeter(m, values_for(m, energy_wh=ENERGY_WH[model]))
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    meter = ModbusMeter(str(pty_pair.meter), map=m, timeout_s=1.0)
    try:
        await meter.read()
        field = getattr(m, quantity)
        emulator.set_raw(field[0] if isinstance(field, tuple) else field, raw)
        with pytest.raises(MeterError, match=match):
            await meter.read()
    finally:
        await meter.close()


async def test_exception_response_raises_meter_error(
    pty_pair: PtyPair, emulators: list[EmulatedMeter]
) -> None:
    m = RegisterMap.model("sdm120")
    emulator = EmulatedMeter(m, values_for(m, energy_wh=0.0), device_id=1)
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    # A map that reads one register past what the device defines: the device answers "illegal address".
    data = {
        "energy": {"register": 0x0048, "function": "input", "type": "float32", "unit": "kWh"},
        "power": {"register": 0x0049 + 1, "function": "input", "type": "float32", "unit": "W"},
    }
    meter = ModbusMeter(str(pty_pair.meter), map=RegisterMap.from_dict(data), timeout_s=1.0)
    try:
        with pytest.raises(MeterError, match="refused"):
            await meter.read()
    finally:
        await meter.close()


async def test_energy_never_reported_lower(
    pty_pair: PtyPair, emulators: list[EmulatedMeter], caplog: pytest.LogCaptureFixture
) -> None:
    m = RegisterMap.model("abb_b23")
    values = values_for(m, energy_wh=5_000_000.0)
    emulator = EmulatedMeter(m, values)
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    meter = ModbusMeter(str(pty_pair.meter), map=m, timeout_s=1.0)
    try:
        assert (await meter.read()).energy_wh == 5_000_000.0
        values.energy_wh = 4_000_000.0
        emulator.set_values(values)
        with caplog.at_level(logging.WARNING, logger="hardware.modbus_meter"):
            reading = await meter.read()
        assert reading.energy_wh == 5_000_000.0
        assert reading.voltage_v == pytest.approx(values.voltage_v)  # only the energy is held
        assert "went backwards" in caplog.text
        values.energy_wh = 5_000_010.0
        emulator.set_values(values)
        assert (await meter.read()).energy_wh == 5_000_010.0
    finally:
        await meter.close()


async def test_socket_url_reads_rtu_over_tcp(emulators: list[EmulatedMeter]) -> None:
    m = RegisterMap.model("em340")
    values = values_for(m, energy_wh=ENERGY_WH["em340"])
    emulator = EmulatedMeter(m, values, device_id=3)
    emulators.append(emulator)
    tcp_port = await emulator.start_tcp()
    meter = ModbusMeter(f"socket://127.0.0.1:{tcp_port}", map=m, device_id=3, timeout_s=1.0)
    try:
        assert_reading(m, await meter.read(), values)
        await emulator.stop()
        with pytest.raises(MeterError):
            await meter.read()
    finally:
        await meter.close()


async def test_two_meters_share_one_bus(pty_pair: PtyPair, emulators: list[EmulatedMeter]) -> None:
    m = RegisterMap.model("sdm120")
    emulator = EmulatedMeter(m, values_for(m, energy_wh=2_000.0), device_id=1)
    emulators.append(emulator)
    await emulator.start_serial(pty_pair.bus)
    a = ModbusMeter(str(pty_pair.meter), map=m, device_id=1, timeout_s=1.0)
    b = ModbusMeter(str(pty_pair.meter), map=m, device_id=1, timeout_s=1.0)
    try:
        readings = await asyncio.gather(*(meter.read() for meter in (a, b, a, b)))
        assert {r.energy_wh for r in readings} == {2_000.0}
    finally:
        await a.close()
