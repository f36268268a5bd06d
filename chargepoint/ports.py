"""Hardware and environment ports: what the core needs from the world, as Protocols.

Real drivers live in ``hardware/``; each port has a simulated twin in ``hardware/sim.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One read of the energy meter; phase lists are L1..Ln, missing values are None."""

    energy_wh: float
    power_w: float | None = None
    voltage_v: tuple[float, ...] = ()
    current_a: tuple[float, ...] = ()
    frequency_hz: float | None = None
    soc_percent: float | None = None


@runtime_checkable
class Relay(Protocol):
    """The contactor that switches power to one connector."""

    @property
    def closed(self) -> bool:
        """True while the contactor is believed closed."""
        ...

    async def close(self) -> None:
        """Close the contactor; raises RelayError if it did not close."""
        ...

    async def open(self) -> None:
        """Open the contactor; raises RelayError if it did not open. Must never block on a queue."""
        ...

    async def check(self) -> None:
        """Compare the contactor with its last command (mirror contact); RelayError on a mismatch.

        Called every meter cycle, so a contactor that closes or drops out by itself between switches is seen.
        A driver without feedback has nothing to compare and returns.
        """
        ...


@runtime_checkable
class Meter(Protocol):
    """The energy meter of one connector."""

    async def read(self) -> MeterReading:
        """Read the meter once; raises MeterError when it does not answer or answers garbage."""
        ...


@runtime_checkable
class TokenReader(Protocol):
    """An RFID reader: one token per card presentation, as an uppercase hex idTag."""

    def tokens(self) -> AsyncIterator[str | None]:
        """Yield None once the reader is ready, then one idTag per presentation; ReaderError when it is gone."""
        ...


@runtime_checkable
class PlugSensor(Protocol):
    """EV plug detection (a GPIO input today, an IEC 61851 control-pilot decoder later)."""

    @property
    def plugged(self) -> bool:
        """True while a vehicle is connected."""
        ...

    def changes(self) -> AsyncIterator[bool]:
        """Yield the new plugged state on every debounced change."""
        ...

    def offer_current(self, current_a: float | None) -> None:
        """Tell the EV how much current it may draw (PWM duty on a pilot board); None means none."""
        ...


class Clock(Protocol):
    """Wall-clock time, injected so the core never reads the system clock itself."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock, with an offset the CSMS may set (BootNotification/Heartbeat currentTime)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> datetime:
        """Current UTC time plus the offset."""
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() + self.offset_s, UTC)

    def set_time(self, when: datetime) -> None:
        """Adopt ``when`` as the current time from now on."""
        self.offset_s = when.timestamp() - datetime.now(UTC).timestamp()


IdGenerator = Callable[[], str]


@dataclass
class CounterIds:
    """A deterministic message-id generator: a prefix and a counter."""

    prefix: str = ""
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self) -> str:
        """The next id."""
        return f"{self.prefix}{next(self._counter)}"
