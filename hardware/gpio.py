"""GPIO drivers: a relay (contactor) with an optional mirror-contact feedback input, and a plug-detect input.

Both sit on a small ``LineBackend`` so the drivers can be tested without a GPIO chip: ``GpiodBackend`` talks to
the kernel through libgpiod v2 (the ``gpiod`` package), ``FakeLineBackend`` stands in for a chip in tests.
Values are logical: ``active`` means "relay energized" or "plug detected"; ``active_low`` flips the wire level.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from chargepoint.errors import ConfigError, HardwareError, RelayError

if TYPE_CHECKING:
    import gpiod

log = logging.getLogger(__name__)

CONSUMER = "chargepoint"  # shown by `gpioinfo` as the user of a requested line
DRIVER = "gpio"
MAX_BOUNCE_S = 2.0  # a line that keeps bouncing longer than this is taken at its level then, and logged


class GpioLine(Protocol):
    """One requested GPIO line; every method raises HardwareError when the chip fails."""

    def set_active(self, active: bool) -> None:
        """Drive an output line to the logical value ``active``."""
        ...

    def is_active(self) -> bool:
        """The logical value of the line now."""
        ...

    def wait_edges(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` for edge events; True when some are pending."""
        ...

    def drain_edges(self) -> int:
        """Read and discard the pending edge events; how many there were."""
        ...

    def release(self) -> None:
        """Give the line back to the kernel; idempotent."""
        ...


class LineBackend(Protocol):
    """Requests GPIO lines from a chip (the kernel's, or a fake one)."""

    def request_output(self, chip: str, line: int, *, active_low: bool, active: bool) -> GpioLine:
        """Request ``line`` of ``chip`` as an output that starts at the logical value ``active``."""
        ...

    def request_input(
        self, chip: str, line: int, *, active_low: bool, debounce_s: float, edges: bool
    ) -> GpioLine:
        """Request ``line`` of ``chip`` as an input, with edge events on both edges if ``edges``."""
        ...


# --- libgpiod v2 ---------------------------------------------------------------------------------------------


def _gpiod_errors() -> tuple[type[BaseException], ...]:
    import gpiod

    return (OSError, ValueError, gpiod.RequestReleasedError, gpiod.ChipClosedError)


class _GpiodLine:
    """A single-line ``gpiod.LineRequest``; gpiod and OS errors become HardwareError here."""

    def __init__(self, request: gpiod.LineRequest, chip: str, line: int) -> None:
        self._request = request
        self._chip = chip
        self._line = line
        self._errors = _gpiod_errors()

    def _fail(self, action: str, exc: BaseException) -> HardwareError:
        return HardwareError(f"GPIO {self._chip} line {self._line}: cannot {action}: {exc}")

    def set_active(self, active: bool) -> None:
        """Drive the line."""
        import gpiod

        try:
            self._request.set_value(
                self._line, gpiod.line.Value.ACTIVE if active else gpiod.line.Value.INACTIVE
            )
        except self._errors as exc:
            raise self._fail("set the value", exc) from exc

    def is_active(self) -> bool:
        """Read the line."""
        import gpiod

        try:
            return self._request.get_value(self._line) is gpiod.line.Value.ACTIVE
        except self._errors as exc:
            raise self._fail("read the value", exc) from exc

    def wait_edges(self, timeout_s: float) -> bool:
        """Poll the request's file descriptor."""
        try:
            return self._request.wait_edge_events(timedelta(seconds=timeout_s))
        except self._errors as exc:
            raise self._fail("wait for edge events", exc) from exc

    def drain_edges(self) -> int:
        """Read the kernel's buffered events."""
        try:
            return len(self._request.read_edge_events())
        except self._errors as exc:
            raise self._fail("read edge events", exc) from exc

    def release(self) -> None:
        """Release the request (libgpiod ignores a second release)."""
        try:
            self._request.release()
        except self._errors as exc:
            log.warning("GPIO %s line %s: release failed: %s", self._chip, self._line, exc)


class GpiodBackend:
    """Lines of a real GPIO chip through libgpiod v2 (``gpiod.request_lines``)."""

    def _request(self, chip: str, line: int, settings: gpiod.LineSettings) -> _GpiodLine:
        import gpiod

        try:
            request = gpiod.request_lines(chip, consumer=CONSUMER, config={line: settings})
        except _gpiod_errors() as exc:
            # FileNotFoundError: no such chip; EBUSY: another process holds the line; EINVAL: no such offset.
            raise HardwareError(f"GPIO {chip} line {line}: cannot request the line: {exc}") from exc
        return _GpiodLine(request, chip, line)

    def request_output(self, chip: str, line: int, *, active_low: bool, active: bool) -> GpioLine:
        """Request an output; the kernel drives ``active`` from the moment of the request."""
        import gpiod
        from gpiod.line import Direction, Value

        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT,
            active_low=active_low,
            output_value=Value.ACTIVE if active else Value.INACTIVE,
        )
        return self._request(chip, line, settings)

    def request_input(
        self, chip: str, line: int, *, active_low: bool, debounce_s: float, edges: bool
    ) -> GpioLine:
        """Request an input; ``debounce_s`` goes to the kernel (gpiolib debounces in software if the chip can't)."""
        import gpiod
        from gpiod.line import Direction, Edge

        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            active_low=active_low,
            edge_detection=Edge.BOTH if edges else Edge.NONE,
            debounce_period=timedelta(seconds=debounce_s),
        )
        return self._request(chip, line, settings)


# --- a fake chip for tests -----------------------------------------------------------------------------------


@dataclass
class FakeLine:
    """One line of the fake chip; ``high`` is the wire level, the logical value applies ``active_low``."""

    chip: str
    line: int
    output: bool
    active_low: bool
    high: bool
    debounce_s: float = 0.0
    edges: bool = False
    released: bool = False
    pending_edges: int = 0
    followers: list[tuple[FakeLine, bool]] = field(default_factory=list)  # (input, inverted)
    cond: threading.Condition = field(default_factory=threading.Condition)
    fail: bool = False

    def _check(self) -> None:
        if self.fail:
            raise HardwareError(f"fake GPIO {self.chip} line {self.line}: simulated chip failure")
        if self.released:
            raise HardwareError(f"fake GPIO {self.chip} line {self.line}: released")

    def set_active(self, active: bool) -> None:
        """Drive the line; inputs wired to it follow."""
        self._check()
        if not self.output:
            raise HardwareError(f"fake GPIO {self.chip} line {self.line}: not an output")
        self.high = active != self.active_low
        for follower, inverted in self.followers:
            follower.set_level(self.high != inverted)

    def is_active(self) -> bool:
        """The logical value."""
        self._check()
        return self.high != self.active_low

    def set_level(self, high: bool) -> None:
        """Change the wire level from outside (the world side of an input); queues an edge event."""
        with self.cond:
            if high == self.high:
                return
            self.high = high
            if self.edges:
                self.pending_edges += 1
                self.cond.notify_all()

    def wait_edges(self, timeout_s: float) -> bool:
        """Block until an edge is pending or ``timeout_s`` passed."""
        self._check()
        with self.cond:
            return self.cond.wait_for(lambda: self.pending_edges > 0 or self.released, timeout_s) and (
                self.pending_edges > 0
            )

    def drain_edges(self) -> int:
        """Consume the pending edges."""
        self._check()
        with self.cond:
            count, self.pending_edges = self.pending_edges, 0
            return count

    def release(self) -> None:
        """Give the line back."""
        with self.cond:
            self.released = True
            self.cond.notify_all()


class FakeLineBackend:
    """A GPIO chip in memory, for tests: this machine has no ``/dev/gpiochip*`` and a chip cannot be emulated.

    Outputs record their wire level; ``wire()`` makes an input follow an output (a mirror contact);
    ``set_level()`` drives an input from the world side and queues an edge event as the kernel would.
    """

    def __init__(self, *, initial_high: bool = False) -> None:
        self.lines: dict[tuple[str, int], FakeLine] = {}
        self.requests: list[FakeLine] = []
        self.initial_high = initial_high  # the level an input reads before anything drives it

    def _claim(self, chip: str, line: int) -> None:
        held = self.lines.get((chip, line))
        if held is not None and not held.released:
            raise HardwareError(f"fake GPIO {chip} line {line}: busy")

    def request_output(self, chip: str, line: int, *, active_low: bool, active: bool) -> GpioLine:
        """Request an output at ``active``."""
        self._claim(chip, line)
        fake = FakeLine(chip, line, output=True, active_low=active_low, high=active != active_low)
        self._store(fake)
        return fake

    def request_input(
        self, chip: str, line: int, *, active_low: bool, debounce_s: float, edges: bool
    ) -> GpioLine:
        """Request an input; it keeps the wire level an earlier request (or ``wire()``) left."""
        self._claim(chip, line)
        old = self.lines.get((chip, line))
        fake = FakeLine(
            chip,
            line,
            output=False,
            active_low=active_low,
            high=old.high if old is not None else self.initial_high,
            debounce_s=debounce_s,
            edges=edges,
        )
        self._store(fake)
        return fake

    def _store(self, fake: FakeLine) -> None:
        old = self.lines.get((fake.chip, fake.line))
        if old is not None:
            for line in self.lines.values():
                line.followers = [(fake if f is old else f, inv) for f, inv in line.followers]
        self.lines[(fake.chip, fake.line)] = fake
        self.requests.append(fake)

    def line(self, chip: str, line: int) -> FakeLine:
        """The line currently known at ``chip``/``line``."""
        return self.lines[(chip, line)]

    def set_level(self, chip: str, line: int, high: bool) -> None:
        """Drive an input's wire from the world side (creating it unrequested if needed)."""
        fake = self.lines.get((chip, line))
        if fake is None:
            fake = FakeLine(chip, line, output=False, active_low=False, high=high, released=True)
            self.lines[(chip, line)] = fake
        fake.set_level(high)

    def wire(self, chip: str, output_line: int, input_line: int, *, inverted: bool = False) -> None:
        """Make ``input_line`` follow ``output_line``'s wire level (inverted: an NC contact)."""
        out, inp = self.line(chip, output_line), self.line(chip, input_line)
        out.followers.append((inp, inverted))
        inp.set_level(out.high != inverted)


# --- drivers --------------------------------------------------------------------------------------------------


class GpioRelay:
    """A contactor on a GPIO output (via a relay board), optionally checked by a mirror contact on an input."""

    def __init__(
        self,
        backend: LineBackend,
        chip: str,
        line: int,
        *,
        active_low: bool = False,
        feedback_line: int | None = None,
        feedback_active_low: bool = False,
        settle_s: float = 0.05,
    ) -> None:
        self.chip = chip
        self.line = line
        self.feedback_line = feedback_line
        self.settle_s = settle_s
        # Requested with the OFF value: a (re)started agent never closes a contactor by requesting its line.
        self._out = backend.request_output(chip, line, active_low=active_low, active=False)
        self._feedback: GpioLine | None = None
        if feedback_line is not None:
            try:
                self._feedback = backend.request_input(
                    chip, feedback_line, active_low=feedback_active_low, debounce_s=0.0, edges=False
                )
            except HardwareError:
                self._out.release()
                raise
        self._closed = False
        self._commanded = False
        self._switching = False
        self._generation = 0

    @property
    def closed(self) -> bool:
        """True while the contactor is believed closed (the feedback's word once it has been read)."""
        return self._closed

    @property
    def has_feedback(self) -> bool:
        """True when a mirror contact is wired, so switching is confirmed."""
        return self._feedback is not None

    async def close(self) -> None:
        """Energize the coil, wait settle_s, check the feedback; RelayError (and the coil off) on a mismatch."""
        await self._switch(True)

    async def open(self) -> None:
        """De-energize the coil at once, wait settle_s, check the feedback; RelayError if it did not open."""
        await self._switch(False)

    async def check(self) -> None:
        """Read the mirror contact between switches; RelayError when it disagrees with the last command."""
        if self._feedback is None or self._switching:
            return
        try:
            actual = self._feedback.is_active()
        except HardwareError as exc:
            raise RelayError(f"relay on {self.chip} line {self.line}: feedback unreadable: {exc}") from exc
        if actual != self._commanded:
            raise RelayError(
                f"relay on {self.chip} line {self.line}: commanded {'closed' if self._commanded else 'open'} but "
                f"its feedback on line {self.feedback_line} reads {'closed' if actual else 'open'}"
            )

    async def _switch(self, closed: bool) -> None:
        self._switching = True
        try:
            await self._switch_checked(closed)
        finally:
            self._switching = False

    async def _switch_checked(self, closed: bool) -> None:
        self._generation += 1
        generation = self._generation
        self._commanded = closed
        self._drive(closed)
        self._closed = closed
        if self.settle_s > 0:
            try:
                await asyncio.sleep(self.settle_s)
            except BaseException:
                if closed and generation == self._generation:
                    # A close abandoned half-way (cancelled) must not leave the coil energised unchecked.
                    self._drive(False)
                    self._closed = self._commanded = False
                raise
        if self._feedback is None or generation != self._generation:
            return  # a later switch superseded this one and checks its own result
        try:
            actual = self._feedback.is_active()
        except HardwareError as exc:
            if closed:
                self._drive(False)
                self._closed = self._commanded = False
            raise RelayError(f"relay on {self.chip} line {self.line}: feedback unreadable: {exc}") from exc
        self._closed = actual
        if actual != closed:
            if closed:
                self._drive(False)  # an unconfirmed close is undone; the station then opens and faults too
                self._commanded = False
            raise RelayError(
                f"relay on {self.chip} line {self.line}: switched {'closed' if closed else 'open'} but its "
                f"feedback on line {self.feedback_line} reads {'closed' if actual else 'open'} after {self.settle_s} s"
            )

    def _drive(self, closed: bool) -> None:
        try:
            self._out.set_active(closed)
        except HardwareError as exc:
            raise RelayError(f"relay on {self.chip} line {self.line}: {exc}") from exc

    def release(self) -> None:
        """Drive the coil off and release the lines (the contactor opens); the driver is unusable after."""
        try:
            self._out.set_active(False)
        except HardwareError as exc:
            log.error(
                "relay on %s line %s: could not drive it open on release: %s", self.chip, self.line, exc
            )
        self._closed = False
        self._out.release()
        if self._feedback is not None:
            self._feedback.release()


class GpioPlugSensor:
    """Plug detection on a GPIO input: edges wait in a thread of its own, changes count after debounce_s quiet."""

    def __init__(
        self,
        backend: LineBackend,
        chip: str,
        line: int,
        *,
        active_low: bool = False,
        debounce_s: float = 0.05,
        poll_s: float = 0.25,
    ) -> None:
        self.chip = chip
        self.line = line
        self.debounce_s = debounce_s
        self.poll_s = poll_s  # how often the thread looks up from waiting (a level check catches lost edges)
        self._line = backend.request_input(
            chip, line, active_low=active_low, debounce_s=debounce_s, edges=True
        )
        try:
            self._plugged = self._line.is_active()
        except HardwareError:
            self._line.release()
            raise
        # One thread per sensor, so blocking waits neither sit on the event loop nor starve the default pool.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gpio-plug-{line}")
        self._lock = threading.Lock()
        self._warned_offer = False

    @property
    def plugged(self) -> bool:
        """The last debounced state."""
        return self._plugged

    async def changes(self) -> AsyncIterator[bool]:
        """Yield the new plugged state on every debounced change; HardwareError if the line fails."""
        loop = asyncio.get_running_loop()
        while True:
            state = await loop.run_in_executor(self._executor, self._next_state, self._plugged)
            # Only the consumer updates the state, so a wait abandoned by a cancelled consumer loses nothing.
            if state is not None and state != self._plugged:
                self._plugged = state
                yield state

    def _next_state(self, last: bool) -> bool | None:
        """Block up to poll_s (plus the debounce) for a settled level different from ``last``."""
        with self._lock:
            if self._line.wait_edges(self.poll_s):
                self._line.drain_edges()
                # Software debounce on top of the kernel's: the level counts once debounce_s passed without an edge.
                deadline = time.monotonic() + MAX_BOUNCE_S
                while self.debounce_s > 0 and self._line.wait_edges(self.debounce_s):
                    self._line.drain_edges()
                    if time.monotonic() > deadline:
                        log.warning(
                            "GPIO %s line %s keeps bouncing; taking its level now", self.chip, self.line
                        )
                        break
            level = self._line.is_active()
        return level if level != last else None

    def offer_current(self, current_a: float | None) -> None:
        """A plain input cannot tell the EV anything; log that once."""
        if not self._warned_offer:
            self._warned_offer = True
            log.info(
                "plug sensor on %s line %s has no control pilot: the offered current (%s A) is not signalled",
                self.chip,
                self.line,
                current_a,
            )

    def release(self) -> None:
        """Stop the wait thread and release the line (blocks up to poll_s plus the debounce)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._line.release()


# --- builders from TOML options --------------------------------------------------------------------------------

_RELAY_OPTIONS = ("chip", "line", "active_low", "feedback_line", "feedback_active_low", "settle_s")
_PLUG_OPTIONS = ("chip", "line", "active_low", "debounce_s")
DEFAULT_CHIP = "/dev/gpiochip0"


def _check_names(options: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    for name in options:
        if name not in allowed:
            raise ConfigError(
                f"{key}.{name}", f"is not an option of the {DRIVER!r} driver ({', '.join(allowed)})"
            )


def _chip(options: Mapping[str, Any], key: str) -> str:
    chip = options.get("chip", DEFAULT_CHIP)
    if not isinstance(chip, str) or not chip.startswith("/"):
        raise ConfigError(
            f"{key}.chip", f"must be the path of a GPIO chip like '/dev/gpiochip0', got {chip!r}"
        )
    return chip


def _int(options: Mapping[str, Any], key: str, name: str, *, required: bool) -> int | None:
    value = options.get(name)
    if value is None:
        if required:
            raise ConfigError(
                f"{key}.{name}", "is required (the line offset on the chip, e.g. 17 for GPIO17)"
            )
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1023:
        raise ConfigError(f"{key}.{name}", f"must be an integer 0..1023, got {value!r}")
    return value


def _bool(options: Mapping[str, Any], key: str, name: str) -> bool:
    value = options.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{name}", f"must be true or false, got {value!r}")
    return value


def _seconds(options: Mapping[str, Any], key: str, name: str, default: float, hi: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}.{name}", f"must be a number of seconds 0..{hi}, got {value!r}")
    if not 0 <= value <= hi:
        raise ConfigError(f"{key}.{name}", f"must be 0..{hi}, got {value}")
    return float(value)


def _default_backend(key: str) -> LineBackend:
    try:
        import gpiod  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"{key}.driver", "the 'gpio' driver needs the gpiod package (pip install '.[hw]')"
        ) from exc
    return GpiodBackend()


def build_gpio_relay(
    options: Mapping[str, Any], key: str, *, backend: LineBackend | None = None
) -> GpioRelay:
    """A GpioRelay from a connector's ``relay`` options; ConfigError names the bad key, HardwareError the chip."""
    _check_names(options, key, _RELAY_OPTIONS)
    chip = _chip(options, key)
    line = _int(options, key, "line", required=True)
    assert line is not None
    feedback_line = _int(options, key, "feedback_line", required=False)
    if feedback_line == line:
        raise ConfigError(f"{key}.feedback_line", f"must differ from line ({line})")
    active_low = _bool(options, key, "active_low")
    feedback_active_low = _bool(options, key, "feedback_active_low")
    if feedback_line is None and "feedback_active_low" in options:
        raise ConfigError(f"{key}.feedback_active_low", "needs feedback_line")
    settle_s = _seconds(options, key, "settle_s", 0.05, 2.0)
    if feedback_line is not None and settle_s == 0:
        # The mirror contact lags the coil by the contactor's operate time: read at once, it always disagrees.
        raise ConfigError(f"{key}.settle_s", "must be > 0 when feedback_line is set")
    return GpioRelay(
        backend or _default_backend(key),
        chip,
        line,
        active_low=active_low,
        feedback_line=feedback_line,
        feedback_active_low=feedback_active_low,
        settle_s=settle_s,
    )


def build_gpio_plug(
    options: Mapping[str, Any], key: str, *, backend: LineBackend | None = None
) -> GpioPlugSensor:
    """A GpioPlugSensor from a connector's ``plug`` options; ConfigError names the bad key, HardwareError the chip."""
    _check_names(options, key, _PLUG_OPTIONS)
    chip = _chip(options, key)
    line = _int(options, key, "line", required=True)
    assert line is not None
    active_low = _bool(options, key, "active_low")
    debounce_s = _seconds(options, key, "debounce_s", 0.05, 1.0)
    return GpioPlugSensor(
        backend or _default_backend(key), chip, line, active_low=active_low, debounce_s=debounce_s
    )
