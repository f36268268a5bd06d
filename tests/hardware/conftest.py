"""Emulated devices: a socat pty pair with a pymodbus RTU server on one end that plays a meter from its map."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hardware.modbus_meter import Field, Function, RegisterMap, ValueType
from tests.hardware.readers_conftest_helpers import PcscNamespace, pcsc_unavailable_reason

SOCAT = shutil.which("socat")

# Our value types -> pymodbus' own encoder, so the emulator does not share code with the decoder under test.
_PYMODBUS_TYPES = {
    ValueType.FLOAT32: AsyncModbusSerialClient.DATATYPE.FLOAT32,
    ValueType.INT16: AsyncModbusSerialClient.DATATYPE.INT16,
    ValueType.UINT16: AsyncModbusSerialClient.DATATYPE.UINT16,
    ValueType.INT32: AsyncModbusSerialClient.DATATYPE.INT32,
    ValueType.UINT32: AsyncModbusSerialClient.DATATYPE.UINT32,
    ValueType.INT64: AsyncModbusSerialClient.DATATYPE.INT64,
    ValueType.UINT64: AsyncModbusSerialClient.DATATYPE.UINT64,
}


def encode_raw(field: Field, raw: float) -> list[int]:
    """The registers a real meter sends for raw value ``raw`` (before scale), in the field's word order."""
    value: int | float = raw if field.type is ValueType.FLOAT32 else int(raw)
    return AsyncModbusSerialClient.convert_to_registers(value, _PYMODBUS_TYPES[field.type], field.word_order)


def raw_for(field: Field, value: float) -> float:
    """The raw register value that stands for ``value`` in Wh/W/V/A/Hz (rounded as the meter's resolution)."""
    raw = value / field.factor
    return raw if field.type is ValueType.FLOAT32 else round(raw)


@dataclass
class MeterValues:
    """What the emulated meter measures, in Wh, W, V, A and Hz."""

    energy_wh: float
    power_w: float
    voltage_v: tuple[float, ...]
    current_a: tuple[float, ...]
    frequency_hz: float


class EmulatedMeter:
    """A pymodbus server that answers like the meter ``register_map`` describes, with values tests can change."""

    def __init__(self, register_map: RegisterMap, values: MeterValues, *, device_id: int = 1) -> None:
        self.map = register_map
        self.device_id = device_id
        self.words: dict[tuple[Function, int], int] = {}
        self.server: ModbusBaseServer | None = None
        self.set_values(values)

    def set_values(self, values: MeterValues) -> None:
        """Encode every quantity the way the meter would."""
        m = self.map
        pairs: list[tuple[Field | None, float]] = [
            (m.energy, values.energy_wh),
            (m.power, values.power_w),
            (m.frequency, values.frequency_hz),
            *zip(m.voltage, values.voltage_v, strict=True),
            *zip(m.current, values.current_a, strict=True),
        ]
        for field, value in pairs:
            if field is not None:
                self.set_raw(field, raw_for(field, value))

    def set_raw(self, field: Field, raw: float) -> None:
        """Put a raw value (NaN, negative, anything) into a field's registers."""
        for address, word in zip(field.addresses, encode_raw(field, raw), strict=True):
            self.words[(field.function, address)] = word

    def set_words(self, field: Field, words: list[int]) -> None:
        """Put raw 16-bit words into a field's registers."""
        for address, word in zip(field.addresses, words, strict=True):
            self.words[(field.function, address)] = word

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Copy the current values into the block being read (function 03 holding, 04 input)."""
        function = {3: Function.HOLDING, 4: Function.INPUT}.get(function_code)
        for (fn, a), word in self.words.items():
            if fn is function and address <= a < address + count:
                registers[a - start_address] = word
        return None

    def device(self) -> SimDevice:
        """A SimDevice with separate holding and input blocks spanning every mapped register (gaps read 0)."""
        blocks: dict[Function, list[SimData]] = {}
        for function in Function:
            addresses = [a for f in self.map.fields if f.function is function for a in f.addresses]
            if addresses:
                lo, hi = min(addresses), max(addresses)
                blocks[function] = [SimData(lo, count=hi - lo + 1, values=0, datatype=DataType.REGISTERS)]
            else:
                blocks[function] = [SimData(0, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(
            self.device_id,
            simdata=(bits, list(bits), blocks[Function.HOLDING], blocks[Function.INPUT]),
            action=self._action,
        )

    async def start_serial(self, bus: Path) -> None:
        """Serve RTU on the ``bus`` end of the pty pair."""
        self.server = ModbusSerialServer(self.device(), framer=FramerType.RTU, port=str(bus), baudrate=9600)
        await self.server.serve_forever(background=True)

    async def start_tcp(self) -> int:
        """Serve RTU frames over TCP on 127.0.0.1 (an RTU-over-TCP gateway); returns the port."""
        server = ModbusTcpServer(self.device(), framer=FramerType.RTU, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        self.server = server
        # The listener's transport is the asyncio.Server; port 0 lets the OS pick a free port.
        listener: Any = server.transport
        port: int = listener.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop answering."""
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            self.server = None


@dataclass
class PtyPair:
    """Two linked pseudo-terminals: the driver opens ``meter``, the emulator serves on ``bus``."""

    meter: Path
    bus: Path


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    """A socat pty pair; skipped without socat, except under CI where that is a failure."""
    if SOCAT is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("socat is required for the emulated-device tests under CI (apt-get install socat)")
        pytest.skip("socat not installed")
    pair = PtyPair(meter=tmp_path / "meter", bus=tmp_path / "bus")
    proc = subprocess.Popen(
        [SOCAT, "-d", "-d", f"pty,raw,echo=0,link={pair.meter}", f"pty,raw,echo=0,link={pair.bus}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(500):  # up to 5 s; socat creates the links before its transfer loop
            if pair.meter.exists() and pair.bus.exists():
                break
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"socat exited: {proc.stderr.read().decode(errors='replace')}")
            time.sleep(0.01)
        else:
            pytest.fail("socat did not create the pty links within 5 s")
        yield pair
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
async def emulators() -> AsyncIterator[list[EmulatedMeter]]:
    """Emulators a test started; all stopped at the end."""
    started: list[EmulatedMeter] = []
    yield started
    for emulator in started:
        await emulator.stop()
    await asyncio.sleep(0)


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32, as a float32 meter stores it."""
    rounded: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return rounded if math.isfinite(rounded) else value


@pytest.fixture(scope="session")
def pcsc_base() -> Iterator[Path]:
    """The per-process directory whose run/ becomes /run inside the namespace; skip (or fail under CI)."""
    reason = pcsc_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the PC/SC emulation must run under CI: {reason}")
        pytest.skip(f"PC/SC emulation unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="pcsc-") as base:
        socket_name = str(Path(base) / "run" / "pcscd" / "pcscd.comm")
        previous = os.environ.get("PCSCLITE_CSOCK_NAME")
        if previous not in (None, socket_name):
            pytest.fail(
                f"PCSCLITE_CSOCK_NAME already points at {previous}; libpcsclite caches it per process"
            )
        os.environ["PCSCLITE_CSOCK_NAME"] = socket_name
        yield Path(base)


@pytest.fixture
def pcsc(pcsc_base: Path) -> Iterator[PcscNamespace]:
    """A fresh pcscd + virtual card supervisor for one test."""
    namespace = PcscNamespace(pcsc_base)
    namespace.start()
    try:
        yield namespace
    finally:
        namespace.close()
