"""Energy meter over Modbus RTU (serial, or an RTU-over-TCP gateway), driven by register maps kept as data.

A register map (``hardware/meters/<model>.toml`` or a user's file in the same schema) names, per quantity, the
register, the function (input or holding registers), the value type, the word order, a scale and a unit:

    [meter]                      # optional
    name = "Eastron SDM630"
    max_gap_registers = 0        # merge reads whose gap is at most this many registers (default 0)

    [energy]                     # required: import active energy
    register = 0x0048            # protocol address (0-based); a string "0x48" is accepted too
    function = "input"           # "input" (04) | "holding" (03)
    type = "float32"             # float32 | int16 | uint16 | int32 | uint32 | int64 | uint64
    word_order = "big"           # "big": high word first; "little": low word first (default "big")
    scale = 1.0                  # raw value x scale = value in `unit` (default 1.0)
    unit = "kWh"                 # energy: Wh | kWh; power: W | kW; voltage: V; current: A; frequency: Hz

    [power] / [frequency]        # optional, same keys
    [voltage] / [current]        # optional; `register` is a list, one address per phase (L1..Ln, n <= 3)

Decoding is pure and table-driven; the driver only moves registers. Library errors become ``MeterError``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import struct
import tomllib
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from chargepoint.errors import ConfigError, MeterError
from chargepoint.ports import MeterReading

log = logging.getLogger(__name__)

MAPS_DIR = Path(__file__).parent / "meters"
MODELS = ("sdm120", "sdm630", "abb_b23", "em340")

# Modbus application protocol v1.1b3 §6.3/§6.4: at most 125 registers per read request.
MAX_REGISTERS_PER_READ = 125

WordOrder = Literal["big", "little"]
_Err = Callable[[str, str], ConfigError]


class Function(Enum):
    """Which register table a quantity lives in."""

    INPUT = "input"  # function code 04, read input registers
    HOLDING = "holding"  # function code 03, read holding registers


class ValueType(Enum):
    """A register value type: struct format character and width in 16-bit registers."""

    FLOAT32 = ("f", 2)
    INT16 = ("h", 1)
    UINT16 = ("H", 1)
    INT32 = ("i", 2)
    UINT32 = ("I", 2)
    INT64 = ("q", 4)
    UINT64 = ("Q", 4)

    @property
    def width_registers(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return self.value[1]


VALUE_TYPES = {t.name.lower(): t for t in ValueType}

# Quantity -> allowed unit -> factor to the SI-ish unit MeterReading carries (Wh, W, V, A, Hz).
UNITS: dict[str, dict[str, float]] = {
    "energy": {"Wh": 1.0, "kWh": 1000.0},
    "power": {"W": 1.0, "kW": 1000.0},
    "voltage": {"V": 1.0},
    "current": {"A": 1.0},
    "frequency": {"Hz": 1.0},
}
PER_PHASE = frozenset({"voltage", "current"})
FIELD_KEYS = frozenset({"register", "function", "type", "word_order", "scale", "unit"})
METER_KEYS = frozenset({"name", "max_gap_registers"})

# Plausibility limits: a value outside them is garbage from the meter (or a wrong map), not a measurement.
MAX_ENERGY_WH = 1e13  # 10 TWh: far beyond any charger's lifetime
MAX_ABS_POWER_W = 1e6
MAX_VOLTAGE_V = 1000.0
MAX_ABS_CURRENT_A = 1000.0
MAX_FREQUENCY_HZ = 100.0


@dataclass(frozen=True, slots=True)
class Field:
    """Where and how one quantity (or one phase of it) is stored."""

    register: int
    function: Function
    type: ValueType
    word_order: WordOrder
    factor: float  # scale x unit factor: raw -> Wh, W, V, A or Hz

    @property
    def addresses(self) -> range:
        """The register addresses this field occupies."""
        return range(self.register, self.register + self.type.width_registers)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: a contiguous block of registers."""

    function: Function
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """A meter model's register map, validated; ``requests`` is the minimal set of reads that covers it."""

    name: str
    energy: Field
    power: Field | None
    voltage: tuple[Field, ...]
    current: tuple[Field, ...]
    frequency: Field | None
    requests: tuple[ReadRequest, ...]

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every field of the map."""
        scalars = (self.energy, self.power, self.frequency)
        return tuple(f for f in scalars if f is not None) + self.voltage + self.current

    @classmethod
    def load(cls, path: str | Path) -> RegisterMap:
        """Load and validate a map file; ConfigError names the file and key."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read register map: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def model(cls, name: str) -> RegisterMap:
        """One of the shipped maps (``MODELS``)."""
        if name not in MODELS:
            raise ConfigError("model", f"must be one of {', '.join(MODELS)}, got {name!r}")
        return cls.load(MAPS_DIR / f"{name}.toml")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<map>") -> RegisterMap:
        """Validate a parsed map; ``source`` prefixes the key in errors (``file.toml:voltage.register``)."""

        def err(key: str, problem: str) -> ConfigError:
            return ConfigError(f"{source}:{key}", problem)

        for table in data:
            if table != "meter" and table not in UNITS:
                raise err(table, f"unknown table (known: meter, {', '.join(UNITS)})")
        meter = data.get("meter", {})
        if not isinstance(meter, Mapping):
            raise err("meter", "must be a table")
        for k in meter:
            if k not in METER_KEYS:
                raise err(f"meter.{k}", f"unknown key (known: {', '.join(sorted(METER_KEYS))})")
        name = meter.get("name", Path(source).stem)
        if not isinstance(name, str):
            raise err("meter.name", f"must be a string, got {name!r}")
        max_gap = meter.get("max_gap_registers", 0)
        if isinstance(max_gap, bool) or not isinstance(max_gap, int) or not 0 <= max_gap <= 100:
            raise err("meter.max_gap_registers", f"must be an integer 0..100, got {max_gap!r}")
        if "energy" not in data:
            raise err("energy", "missing: a meter map must name the import energy register")

        parsed: dict[str, tuple[Field, ...]] = {}
        for quantity in UNITS:
            if quantity in data:
                parsed[quantity] = _parse_quantity(data[quantity], quantity, err)
        phases = {q: len(parsed[q]) for q in PER_PHASE if q in parsed}
        if len(set(phases.values())) > 1:
            raise err("current.register", f"{phases['current']} phases but voltage has {phases['voltage']}")
        voltage, current = parsed.get("voltage", ()), parsed.get("current", ())
        fields = parsed["energy"][0], *(f for q in parsed if q != "energy" for f in parsed[q])
        _check_overlaps(fields, err)
        return cls(
            name=name,
            energy=parsed["energy"][0],
            power=parsed["power"][0] if "power" in parsed else None,
            voltage=voltage,
            current=current,
            frequency=parsed["frequency"][0] if "frequency" in parsed else None,
            requests=plan_requests(fields, max_gap_registers=max_gap),
        )


def _parse_quantity(table: object, quantity: str, err: _Err) -> tuple[Field, ...]:
    """Validate one quantity's table; per-phase quantities take a list of registers."""
    if not isinstance(table, Mapping):
        raise err(quantity, "must be a table")
    for k in table:
        if k not in FIELD_KEYS:
            raise err(f"{quantity}.{k}", f"unknown key (known: {', '.join(sorted(FIELD_KEYS))})")
    for k in ("register", "function", "type", "unit"):
        if k not in table:
            raise err(f"{quantity}.{k}", "missing")

    function_name = table["function"]
    if function_name not in {f.value for f in Function}:
        raise err(f"{quantity}.function", f"must be 'input' or 'holding', got {function_name!r}")
    function = Function(function_name)
    type_name = table["type"]
    if not isinstance(type_name, str) or type_name not in VALUE_TYPES:
        raise err(f"{quantity}.type", f"must be one of {', '.join(VALUE_TYPES)}, got {type_name!r}")
    value_type = VALUE_TYPES[type_name]
    word_order = table.get("word_order", "big")
    if word_order not in ("big", "little"):
        raise err(f"{quantity}.word_order", f"must be 'big' or 'little', got {word_order!r}")
    scale = table.get("scale", 1.0)
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale == 0
    ):
        raise err(f"{quantity}.scale", f"must be a finite non-zero number, got {scale!r}")
    unit = table["unit"]
    if unit not in UNITS[quantity]:
        raise err(f"{quantity}.unit", f"must be one of {', '.join(UNITS[quantity])}, got {unit!r}")

    raw_registers = table["register"]
    if quantity in PER_PHASE:
        if not isinstance(raw_registers, list) or not 1 <= len(raw_registers) <= 3:
            raise err(
                f"{quantity}.register", f"must be a list of 1 to 3 registers (L1..L3), got {raw_registers!r}"
            )
    elif isinstance(raw_registers, list):
        raise err(f"{quantity}.register", "must be a single register, not a list")
    else:
        raw_registers = [raw_registers]
    fields = []
    for raw in raw_registers:
        register = _parse_register(raw)
        if register is None or register + value_type.width_registers - 1 > 0xFFFF:
            raise err(
                f"{quantity}.register", f"must be an address 0..0xFFFF that fits a {type_name}, got {raw!r}"
            )
        fields.append(Field(register, function, value_type, word_order, float(scale) * UNITS[quantity][unit]))
    return tuple(fields)


def _parse_register(raw: object) -> int | None:
    """An address from an int or a string such as "0x0048"; None when it is neither or out of range."""
    if isinstance(raw, str):
        try:
            raw = int(raw, 0)
        except ValueError:
            return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFFFF:
        return None
    return raw


def _check_overlaps(fields: Sequence[Field], err: _Err) -> None:
    """Reject two quantities sharing a register: a typo in a map, never a real layout."""
    seen: dict[tuple[Function, int], Field] = {}
    for f in fields:
        for address in f.addresses:
            if (f.function, address) in seen:
                raise err("register", f"register 0x{address:04X} ({f.function.value}) is used twice")
            seen[(f.function, address)] = f


def plan_requests(fields: Sequence[Field], *, max_gap_registers: int = 0) -> tuple[ReadRequest, ...]:
    """The fewest reads covering ``fields``: neighbours merge when the gap is small and the read stays <= 125."""
    requests: list[ReadRequest] = []
    for function in Function:
        spans = sorted(
            (f.register, f.register + f.type.width_registers) for f in fields if f.function is function
        )
        start: int | None = None
        end = 0
        for lo, hi in spans:
            if (
                start is not None
                and lo - end <= max_gap_registers
                and max(end, hi) - start <= MAX_REGISTERS_PER_READ
            ):
                end = max(end, hi)
                continue
            if start is not None:
                requests.append(ReadRequest(function, start, end - start))
            start, end = lo, hi
        if start is not None:
            requests.append(ReadRequest(function, start, end - start))
    return tuple(requests)


# ---------------------------------------------------------------------------------------------------------
# Pure decoding: registers -> numbers. Only ValueError (decode_value) or MeterError (decode_reading) escape.


def decode_value(registers: Sequence[int], value_type: ValueType, word_order: WordOrder = "big") -> float:
    """One raw value from its registers; ValueError on a wrong count or a register outside 0..0xFFFF."""
    if len(registers) != value_type.width_registers:
        raise ValueError(
            f"{value_type.name.lower()} needs {value_type.width_registers} registers, got {len(registers)}"
        )
    words = list(registers) if word_order == "big" else list(reversed(registers))
    for word in words:
        if not isinstance(word, int) or isinstance(word, bool) or not 0 <= word <= 0xFFFF:
            raise ValueError(f"register value {word!r} is not a 16-bit word")
    raw = b"".join(word.to_bytes(2, "big") for word in words)
    value: float = struct.unpack(">" + value_type.value[0], raw)[0]
    return value


def decode_field(registers: Mapping[tuple[Function, int], int], field: Field) -> float:
    """One field, scaled to Wh/W/V/A/Hz; ValueError when a register is missing or the value is not finite."""
    try:
        words = [registers[(field.function, a)] for a in field.addresses]
    except KeyError as exc:
        raise ValueError(f"register 0x{field.register:04X} was not read") from exc
    value = decode_value(words, field.type, field.word_order) * field.factor
    if not math.isfinite(value):
        raise ValueError(f"register 0x{field.register:04X} holds {value}")
    return value


def _checked(name: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise ValueError(f"{name} {value:g} outside the plausible range {low:g}..{high:g}")
    return value


def decode_reading(register_map: RegisterMap, registers: Mapping[tuple[Function, int], int]) -> MeterReading:
    """A whole reading from the registers read.

    The energy register is what billing rests on: missing, NaN or implausible, it is a MeterError. The other
    quantities are informative: an implausible one (a meter's "not available" pattern, 0 Hz in a brownout) is
    left out, so one odd voltage does not stop charging.
    """
    try:
        energy_wh = _checked("energy_wh", decode_field(registers, register_map.energy), 0.0, MAX_ENERGY_WH)
    except ValueError as exc:
        raise MeterError(f"{register_map.name}: {exc}") from exc

    def optional(name: str, field: Field | None, lo: float, hi: float) -> float | None:
        if field is None:
            return None
        try:
            return _checked(name, decode_field(registers, field), lo, hi)
        except ValueError as exc:
            log.debug("%s: %s left out: %s", register_map.name, name, exc)
            return None

    def phases(name: str, fields: Sequence[Field], lo: float, hi: float) -> tuple[float, ...]:
        values = [optional(name, f, lo, hi) for f in fields]
        # All phases or none: dropping one would shift the others to the wrong phase labels.
        return tuple(v for v in values if v is not None) if None not in values else ()

    power_w = optional("power_w", register_map.power, -MAX_ABS_POWER_W, MAX_ABS_POWER_W)
    voltage_v = phases("voltage_v", register_map.voltage, 0.0, MAX_VOLTAGE_V)
    current_a = phases("current_a", register_map.current, -MAX_ABS_CURRENT_A, MAX_ABS_CURRENT_A)
    frequency_hz = optional("frequency_hz", register_map.frequency, 0.0, MAX_FREQUENCY_HZ)
    return MeterReading(
        energy_wh=energy_wh,
        power_w=power_w,
        voltage_v=voltage_v,
        current_a=current_a,
        frequency_hz=frequency_hz,
    )


# ---------------------------------------------------------------------------------------------------------
# The bus: one client per port, shared by every meter on that RS-485 line (one per connector is common).

ModbusClient = AsyncModbusSerialClient | AsyncModbusTcpClient


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How to open a port; every meter on one port must agree."""

    port: str
    baudrate: int
    parity: str
    stopbits: int
    timeout_s: float


class _Bus:
    """One port, opened lazily, with a lock so requests from several meters never interleave."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.client: ModbusClient | None = None
        self.lock = asyncio.Lock()

    def _new_client(self) -> ModbusClient:
        s = self.settings
        # retries=0: the station retries on its next poll; reconnect_delay=0: we reconnect ourselves, lazily.
        if s.port.startswith("socket://"):
            url = urlsplit(s.port)
            assert url.hostname is not None and url.port is not None  # checked in ModbusMeter.__init__
            return AsyncModbusTcpClient(
                url.hostname,
                port=url.port,
                framer=FramerType.RTU,
                timeout=s.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusSerialClient(
            s.port,
            framer=FramerType.RTU,
            baudrate=s.baudrate,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=s.timeout_s,
            retries=0,
            reconnect_delay=0,
        )

    async def connected_client(self) -> ModbusClient:
        """The open client, (re)connecting if needed; MeterError when the port cannot be opened."""
        if self.client is not None and self.client.connected:
            return self.client
        self.drop()
        client = self._new_client()
        if not await client.connect():
            client.close()
            raise MeterError(f"cannot open Modbus port {self.settings.port}")
        self.client = client
        return client

    def drop(self) -> None:
        """Close the client so the next request reopens the port (and discards any late answer)."""
        if self.client is not None:
            self.client.close()
            self.client = None


_BUSES: weakref.WeakValueDictionary[str, _Bus] = weakref.WeakValueDictionary()


def _bus_key(port: str) -> str:
    """One bus per device: /dev/ttyUSB0 and its /dev/serial/by-id/... alias are the same RS-485 line."""
    return port if port.startswith("socket://") else os.path.realpath(port)


def _bus_for(settings: BusSettings) -> _Bus:
    bus = _BUSES.get(_bus_key(settings.port))
    if bus is None:
        bus = _Bus(settings)
        _BUSES[_bus_key(settings.port)] = bus
    elif bus.settings != settings:
        raise ValueError(f"port {settings.port} is already used with other settings ({bus.settings})")
    return bus


class ModbusMeter:
    """The ``Meter`` port for a Modbus RTU energy meter described by a ``RegisterMap``."""

    def __init__(
        self,
        port: str,
        *,
        map: RegisterMap,
        device_id: int = 1,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        timeout_s: float = 0.5,
    ) -> None:
        if port.startswith("socket://"):
            url = urlsplit(port)
            try:
                url_port = url.port
            except ValueError as exc:
                raise ValueError(f"bad port in {port!r}") from exc
            if not url.hostname or url_port is None:
                raise ValueError(f"{port!r} must look like socket://host:port")
        self.map = map
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._bus = _bus_for(BusSettings(port, baudrate, parity, stopbits, timeout_s))
        self._last_energy_wh: float | None = None

    @property
    def port(self) -> str:
        """The serial device or socket:// URL."""
        return self._bus.settings.port

    async def read(self) -> MeterReading:
        """Read the meter once; raises MeterError when it does not answer or answers garbage."""
        registers: dict[tuple[Function, int], int] = {}
        # Each request waits timeout_s at most; the outer bound also covers opening the port.
        deadline_s = self.timeout_s * (len(self.map.requests) + 1)
        async with self._bus.lock:
            try:
                async with asyncio.timeout(deadline_s):
                    client = await self._bus.connected_client()
                    for request in self.map.requests:
                        registers.update(await self._read_block(client, request))
            except MeterError:
                raise
            except (ModbusException, OSError, TimeoutError) as exc:
                # No answer or a broken link: reopen next time, so a late answer cannot pose as the next one.
                self._bus.drop()
                raise MeterError(
                    f"{self.map.name} (device {self.device_id} on {self.port}) did not answer: {exc}"
                ) from exc
            except Exception as exc:
                # The station only expects MeterError from a meter (it counts them into PowerMeterFailure);
                # anything else escaping the client library must not take the station down.
                self._bus.drop()
                raise MeterError(
                    f"{self.map.name} (device {self.device_id} on {self.port}): Modbus client failed: {exc!r}"
                ) from exc
            except BaseException:
                self._bus.drop()  # cancelled mid-request: a late answer must not pose as the next one
                raise
        reading = decode_reading(self.map, registers)
        return self._monotonic(reading)

    async def _read_block(
        self, client: ModbusClient, request: ReadRequest
    ) -> dict[tuple[Function, int], int]:
        if request.function is Function.INPUT:
            response = await client.read_input_registers(
                request.address, count=request.count, device_id=self.device_id
            )
        else:
            response = await client.read_holding_registers(
                request.address, count=request.count, device_id=self.device_id
            )
        if response.isError():
            raise MeterError(
                f"{self.map.name} (device {self.device_id}) refused {request.function.value} registers "
                f"0x{request.address:04X}+{request.count}: {response}"
            )
        if len(response.registers) != request.count:
            raise MeterError(
                f"{self.map.name} (device {self.device_id}) answered {len(response.registers)} registers "
                f"for 0x{request.address:04X}+{request.count}"
            )
        return {(request.function, request.address + i): word for i, word in enumerate(response.registers)}

    def _monotonic(self, reading: MeterReading) -> MeterReading:
        """Never report less energy than before: a register must not run backwards."""
        last = self._last_energy_wh
        if last is not None and reading.energy_wh < last:
            log.warning(
                "%s (device %s on %s) energy went backwards: %.3f Wh after %.3f Wh; keeping %.3f Wh",
                self.map.name,
                self.device_id,
                self.port,
                reading.energy_wh,
                last,
                last,
            )
            return MeterReading(
                energy_wh=last,
                power_w=reading.power_w,
                voltage_v=reading.voltage_v,
                current_a=reading.current_a,
                frequency_hz=reading.frequency_hz,
                soc_percent=reading.soc_percent,
            )
        self._last_energy_wh = reading.energy_wh
        return reading

    async def close(self) -> None:
        """Close the port (it reopens on the next read)."""
        async with self._bus.lock:
            self._bus.drop()


# ---------------------------------------------------------------------------------------------------------
# Config: the agent's `meter = { driver = "modbus", ... }` table.

OPTIONS = frozenset({"port", "model", "map", "device_id", "baudrate", "parity", "stopbits", "timeout_s"})
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


def build_modbus_meter(options: Mapping[str, Any], key: str) -> ModbusMeter:
    """A ModbusMeter from a driver's options; ConfigError names ``key.<option>`` on a bad value."""
    for name in options:
        if name != "driver" and name not in OPTIONS:
            raise ConfigError(
                f"{key}.{name}",
                f"is not an option of the 'modbus' driver (known: {', '.join(sorted(OPTIONS))})",
            )

    port = options.get("port")
    if not isinstance(port, str) or not port:
        raise ConfigError(f"{key}.port", f"must be a serial device or socket://host:port, got {port!r}")

    model, map_path = options.get("model"), options.get("map")
    if (model is None) == (map_path is None):
        raise ConfigError(
            f"{key}.model", "give exactly one of 'model' (a shipped map) or 'map' (a TOML file)"
        )
    if model is not None:
        if model not in MODELS:
            raise ConfigError(f"{key}.model", f"must be one of {', '.join(MODELS)}, got {model!r}")
        register_map = RegisterMap.model(model)
    else:
        if not isinstance(map_path, str) or not map_path:
            raise ConfigError(f"{key}.map", f"must be the path of a register map TOML file, got {map_path!r}")
        try:
            register_map = RegisterMap.load(map_path)
        except ConfigError as exc:
            raise ConfigError(f"{key}.map", f"{exc.key}: {exc.problem}") from exc

    device_id = options.get("device_id", 1)
    # Modbus over serial line v1.02 §2.2: unicast addresses are 1..247.
    if isinstance(device_id, bool) or not isinstance(device_id, int) or not 1 <= device_id <= 247:
        raise ConfigError(f"{key}.device_id", f"must be an integer 1..247, got {device_id!r}")
    baudrate = options.get("baudrate", 9600)
    if baudrate not in BAUDRATES or isinstance(baudrate, bool):
        raise ConfigError(
            f"{key}.baudrate", f"must be one of {', '.join(map(str, BAUDRATES))}, got {baudrate!r}"
        )
    parity = options.get("parity", "N")
    if parity not in ("N", "E", "O"):
        raise ConfigError(f"{key}.parity", f"must be 'N', 'E' or 'O', got {parity!r}")
    stopbits = options.get("stopbits", 1)
    if stopbits not in (1, 2) or isinstance(stopbits, bool):
        raise ConfigError(f"{key}.stopbits", f"must be 1 or 2, got {stopbits!r}")
    timeout_s = options.get("timeout_s", 0.5)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0.05 <= timeout_s <= 10:
        raise ConfigError(f"{key}.timeout_s", f"must be a number of seconds 0.05..10, got {timeout_s!r}")

    try:
        return ModbusMeter(
            port,
            map=register_map,
            device_id=device_id,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            timeout_s=float(timeout_s),
        )
    except ValueError as exc:
        raise ConfigError(f"{key}.port", str(exc)) from exc
