"""Simulated twins of the hardware ports: relay, meter that integrates power over time, token reader, EV plug.

The simulator and the tests drive them; the agent cannot tell them from real drivers.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable

from chargepoint.errors import MeterError, ReaderError, RelayError
from chargepoint.ports import MeterReading, ReaderEvent


class SimRelay:
    """A contactor that switches instantly; ``stuck`` makes it refuse to close."""

    __slots__ = ("_closed", "close_delay_s", "contact", "stuck", "switch_count")

    instant = (
        True  # chargepoint.ports.Instant: its coroutines need no task of their own (a delay only sleeps)
    )

    def __init__(self) -> None:
        self._closed = False
        self.stuck = False
        self.switch_count = 0
        self.close_delay_s = 0.0  # a slow contactor: the close completes this long after it was asked for
        self.contact: bool | None = (
            None  # force the contacts (True: welded/closed by itself, False: dropped out)
        )

    @property
    def closed(self) -> bool:
        """True while closed."""
        return self._closed

    async def close(self) -> None:
        """Close, unless stuck."""
        if self.stuck:
            raise RelayError("simulated relay stuck open")
        if self.close_delay_s:
            await asyncio.sleep(self.close_delay_s)
        if not self._closed:
            self.switch_count += 1
        self._closed = True

    async def open(self) -> None:
        """Open."""
        if self._closed:
            self.switch_count += 1
        self._closed = False

    async def check(self) -> None:
        """RelayError when forced contacts disagree with the last command."""
        if self.contact is not None and self.contact != self._closed:
            raise RelayError(
                f"simulated contactor is {'closed' if self.contact else 'open'} but was commanded "
                f"{'closed' if self._closed else 'open'}"
            )


class SimPlug:
    """An EV cable and the EV behind it: plugged state, current offered, power the EV wants. A new watcher (after
    an agent reset) hears the changes from then on; the station reads the present state at start."""

    __slots__ = ("_plugged", "_watchers", "ev_power_w", "offered_a")

    def __init__(self, *, ev_power_w: float = 7400.0) -> None:
        self._plugged = False
        # Whoever hears the changes: a station's callback (``watch``), or the queue of a ``changes`` iterator.
        self._watchers: list[Callable[[bool], None]] = []
        self.ev_power_w = ev_power_w
        self.offered_a: float | None = None

    @property
    def plugged(self) -> bool:
        """True while an EV is connected."""
        return self._plugged

    def set_plugged(self, plugged: bool) -> None:
        """Plug the EV in or out."""
        if plugged == self._plugged:
            return
        self._plugged = plugged
        for watcher in list(self._watchers):
            watcher(plugged)

    def watch(self, on_change: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``on_change`` with every change of the plugged state (no task, no queue), until unwatched."""
        self._watchers.append(on_change)
        return functools.partial(
            self._watchers.remove, on_change
        )  # smaller than a closure, kept per connector

    async def changes(self) -> AsyncIterator[bool]:
        """Every change of the plugged state."""
        q: asyncio.Queue[bool] = asyncio.Queue()
        self._watchers.append(q.put_nowait)
        try:
            while True:
                yield await q.get()
        finally:
            self._watchers.remove(q.put_nowait)

    def offer_current(self, current_a: float | None) -> None:
        """The charger's offer to the EV."""
        self.offered_a = current_a


class SimMeter:
    """A meter whose register integrates the power flowing through a relay into a plugged EV."""

    instant = True  # chargepoint.ports.Instant: its read needs no task of its own (a delay only sleeps)

    def __init__(
        self,
        relay: SimRelay,
        plug: SimPlug,
        *,
        energy_wh: float = 0.0,
        voltage_v: float = 230.0,
        phases: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.relay = relay
        self.plug = plug
        self.energy_wh = energy_wh
        self.voltage_v = voltage_v
        self.phases = phases
        self.failing = False  # does not answer: MeterError
        self.garbage = False  # answers nonsense: a NaN register
        self.driver_bug = False  # the driver itself breaks: an unexpected exception type
        self.read_delay_s = 0.0
        self._monotonic = monotonic
        self._last = monotonic()

    def power_w(self) -> float:
        """Power flowing now."""
        if not (self.relay.closed and self.plug.plugged):
            return 0.0
        limit = (self.plug.offered_a or 0.0) * self.voltage_v * self.phases
        return max(0.0, min(self.plug.ev_power_w, limit))

    def advance(self) -> None:
        """Integrate power since the last call."""
        now = self._monotonic()
        self.energy_wh += self.power_w() * (now - self._last) / 3600.0
        self._last = now

    async def read(self) -> MeterReading:
        """Read the register, or fail like a meter that stopped answering."""
        if self.read_delay_s:
            await asyncio.sleep(self.read_delay_s)
        self.advance()
        if self.failing:
            raise MeterError("simulated meter does not answer")
        if self.driver_bug:
            raise OSError("simulated driver failure")
        if self.garbage:
            return MeterReading(energy_wh=float("nan"), power_w=float("nan"))
        power = self.power_w()
        current = power / (self.voltage_v * self.phases) if power else 0.0
        return MeterReading(
            energy_wh=self.energy_wh,
            power_w=power,
            voltage_v=(self.voltage_v,) * self.phases,
            current_a=(round(current, 2),) * self.phases,
            frequency_hz=50.0,
        )


class SimReader:
    """A card reader that yields (``tokens``) or pushes (``watch``) the idTags swiped at it; ``fail()`` makes it
    vanish. A card swiped while nobody listens, or while the reader is gone, is held until someone can hear it."""

    __slots__ = ("_held", "_queue", "_watchers", "present")

    def __init__(self) -> None:
        # Only for a ``tokens`` iterator (an asyncio.Queue is ~2 KB: a fleet's watched readers have none).
        self._queue: asyncio.Queue[str | None] | None = None
        self._watchers: list[Callable[[ReaderEvent], None]] = []
        self._held: list[str] = []
        self.present = True

    def swipe(self, id_tag: str) -> None:
        """Present a card."""
        self._held.append(id_tag.upper())
        self._flush()

    def fail(self, failed: bool = True) -> None:
        """Make the reader disappear (or come back)."""
        self.present = not failed
        if failed:
            if self._queue is not None:
                self._queue.put_nowait(None)
            for watcher in list(self._watchers):
                watcher(ReaderError("simulated reader is gone"))
        else:
            for watcher in list(self._watchers):
                watcher(None)  # in working order again
            self._flush()

    def _flush(self) -> None:
        """Hand the held cards to whoever listens: the watchers while the reader is present, else the queue."""
        if self._watchers:
            if self.present:
                held, self._held = self._held, []
                for tag in held:
                    for watcher in list(self._watchers):
                        watcher(tag)
        elif self._queue is not None:
            held, self._held = self._held, []
            for tag in held:
                self._queue.put_nowait(tag)

    def watch(self, on_event: Callable[[ReaderEvent], None]) -> Callable[[], None]:
        """Push the reader's state now (None: ready, or ReaderError), then every card and failure, until unwatched."""
        self._watchers.append(on_event)
        on_event(None if self.present else ReaderError("simulated reader is gone"))
        self._flush()
        return functools.partial(self._watchers.remove, on_event)

    async def tokens(self) -> AsyncIterator[str | None]:
        """None when ready, then one idTag per presentation; raises ReaderError while the reader is gone."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._flush()
        if not self.present:
            raise ReaderError("simulated reader is gone")
        yield None
        while True:
            tag = await self._queue.get()
            if tag is None or not self.present:
                raise ReaderError("simulated reader is gone")
            yield tag
