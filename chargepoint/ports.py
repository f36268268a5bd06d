"""Hardware and environment ports: what the core needs from the world, as Protocols.

Real drivers live in ``hardware/``; each port has a simulated twin in ``hardware/sim.py``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from chargepoint.errors import HardwareError

log = logging.getLogger(__name__)


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
class Instant(Protocol):
    """A driver whose coroutines need no task of their own: they use no ``asyncio.timeout`` or ``current_task``
    (the simulated twins). The station steps its meter polls of such a meter and relay inline, in the scheduler's
    callback, and gives a poll a task only if it has to wait: at 19,500 chargers, 2,000-4,000 tasks a second fewer."""

    instant: bool


@runtime_checkable
class TokenReader(Protocol):
    """An RFID reader: one token per card presentation, as an uppercase hex idTag."""

    def tokens(self) -> AsyncIterator[str | None]:
        """Yield None once the reader is ready, then one idTag per presentation; ReaderError when it is gone."""
        ...


# What a push reader delivers: None when it is (back) in working order, an idTag per presentation, or the
# HardwareError that says it is gone.
ReaderEvent = str | None | HardwareError


@runtime_checkable
class TokenWatch(Protocol):
    """A reader that can also push its tokens: a simulated one, whose fleet of thousands would otherwise keep a
    waiting task per connector. The station prefers ``watch`` when a reader has it, else iterates ``tokens``."""

    def watch(self, on_event: Callable[[ReaderEvent], None]) -> Callable[[], None]:
        """Call ``on_event`` (on the event loop) with the reader's state at once and then with every event, as
        ``tokens`` would yield or raise them, until the returned function is called."""
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


@runtime_checkable
class PlugWatch(Protocol):
    """A plug sensor that can also push its changes (see ``TokenWatch``)."""

    def watch(self, on_change: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``on_change`` (on the event loop) with the new plugged state on every change, as ``changes``
        would yield it, until the returned function is called."""
        ...


@dataclass
class ConnectorPorts:
    """The hardware of one connector."""

    relay: Relay
    meter: Meter
    plug: PlugSensor
    reader: TokenReader | None = None
    max_current_a: float = 32.0
    voltage_v: float = 230.0  # for smart-charging limits in W (per phase, nominal)
    phases: int = 3


class Clock(Protocol):
    """Wall-clock time, injected so the core never reads the system clock itself."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


# The range of times a central system may set (BootNotification/Heartbeat currentTime, OCPP 1.6 §4.2/§4.6). A
# charger has no better idea of the date than its CSMS, so any plausible time is adopted; what is outside is a
# hostile or broken CSMS: 9999-12-31 made every later clock read overflow and took the charger out of service.
# The floor is older than any charger running this code; the ceiling keeps every date computation (sampling
# boundaries, profile periods, a day ahead and more) far from datetime's year-9999 limit.
EARLIEST_TIME = datetime(2020, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
REFUSED_TIME_LOG_S = (
    60.0  # at most one log line per minute about refused times (a CSMS may send one a second)
)


class SystemClock:
    """The real clock, with an offset the CSMS may set (BootNotification/Heartbeat currentTime)."""

    def __init__(self) -> None:
        self.offset_s = 0.0
        self.refused = 0  # times refused as implausible, for the operator
        self._last_refusal_log = -REFUSED_TIME_LOG_S

    def now(self) -> datetime:
        """Current UTC time plus the offset; the plain system time if that would be out of range."""
        real = datetime.now(UTC)
        try:
            return datetime.fromtimestamp(real.timestamp() + self.offset_s, UTC)
        except (OverflowError, ValueError, OSError):
            return real  # unreachable through set_time; a clock read must never raise

    def set_time(self, when: datetime) -> None:
        """Adopt ``when`` as the current time from now on, unless it is implausible (counted, logged rate-limited)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if not EARLIEST_TIME <= when < LATEST_TIME:
            self.refused += 1
            mono = time.monotonic()
            if mono - self._last_refusal_log >= REFUSED_TIME_LOG_S:
                self._last_refusal_log = mono
                log.warning(
                    "ignoring an implausible time from the CSMS: %s (accepted: %s to %s; %s refused so far)",
                    when.isoformat(),
                    EARLIEST_TIME.date(),
                    LATEST_TIME.date(),
                    self.refused,
                )
            return
        self.offset_s = when.timestamp() - datetime.now(UTC).timestamp()


_clock_failure_logged = -REFUSED_TIME_LOG_S


def safe_now(clock: Clock) -> datetime:
    """``clock.now()``, or the system's UTC time if the clock fails: ending a session must not depend on it."""
    global _clock_failure_logged
    try:
        return clock.now()
    except Exception:
        mono = time.monotonic()
        if mono - _clock_failure_logged >= REFUSED_TIME_LOG_S:  # rate-limited: it fails on every read
            _clock_failure_logged = mono
            log.exception("the clock failed; using the system time")
        return datetime.now(UTC)


IdGenerator = Callable[[], str]


@dataclass
class CounterIds:
    """A deterministic message-id generator: a prefix and a counter."""

    prefix: str = ""
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self) -> str:
        """The next id."""
        return f"{self.prefix}{next(self._counter)}"


class FilePort(Protocol):
    """File transfers and firmware installation for the firmware and diagnostics blocks (``chargepoint.files``).

    Every method that moves bytes runs off the event loop and is bounded in size and time; failures are
    ``TransferError`` / ``InstallError``."""

    def supports(self, url: str) -> bool:
        """True if ``url``'s scheme is one this charger can transfer over (http, https, ftp)."""
        ...

    async def download(self, url: str, name: str) -> str:
        """Fetch ``url`` into the work directory as ``name`` (replacing a partial one); the file's path."""
        ...

    async def upload(self, path: str, url: str, file_name: str) -> None:
        """Send the file at ``path`` to ``url`` under ``file_name``."""
        ...

    async def build_archive(
        self, kind: str, file_name: str, start: datetime | None, stop: datetime | None
    ) -> str:
        """Collect logs (lines within [start, stop]), redacted configuration and a store summary into one
        tar.gz named ``file_name`` (``kind``: an ``UploadKind`` value); its path."""
        ...

    def check_signing_certificate(self, pem: str, now: datetime) -> str | None:
        """Why a firmware signing certificate is not trusted at ``now`` (None: it is trusted)."""
        ...

    async def verify_signature(self, path: str, certificate_pem: str, signature_b64: str) -> bool:
        """True if ``signature_b64`` is the certificate key's SHA-256 signature over the file at ``path``."""
        ...

    async def install(self, path: str) -> str | None:
        """Install the firmware at ``path``; the new firmware version if the installer told it."""
        ...

    def discard(self, path: str) -> None:
        """Remove a file the work directory no longer needs (missing is fine)."""
        ...
