"""Simulated EVs and the meter they draw through.

The EV decides the power: its on-board charger takes at most what the charger offers (the pilot current, the
connector's ``max_current_a`` or a smart-charging limit) and its battery tapers above ``taper_soc``. The meter's
register integrates exactly that power, once per fleet tick of virtual time, so a seeded run delivers the same
energy whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chargepoint.errors import MeterError, ReaderError
from chargepoint.ports import MeterReading
from hardware.sim import SimRelay
from simulator.scenario import EvModel


@dataclass(slots=True)
class Ev:
    """One EV on a cable: its model, battery state, and the energy it took this visit."""

    model: EvModel
    soc: float
    taken_wh: float = 0.0

    def phases(self, connector_phases: int) -> int:
        """The phases the EV draws on: its on-board charger's, and no more than the connector has."""
        return min(self.model.phases, connector_phases)

    def power_w(self, offered_a: float | None, voltage_v: float, connector_phases: int = 3) -> float:
        """What the EV draws now, given the charger's current offer (A per phase) on a connector's phases."""
        if not offered_a or self.soc >= 1.0:
            return 0.0
        m = self.model
        limit = offered_a * voltage_v * self.phases(connector_phases)
        power = min(m.max_power_w, limit)
        if self.soc > m.taper_soc:
            # Constant-voltage phase: the power falls linearly to min_power_w at 100 % SoC.
            fraction = (1.0 - self.soc) / (1.0 - m.taper_soc)
            power = min(power, m.min_power_w + (m.max_power_w - m.min_power_w) * fraction)
        return max(0.0, power)

    def take(self, energy_wh: float) -> None:
        """Store ``energy_wh`` in the battery."""
        self.taken_wh += energy_wh
        self.soc = min(1.0, self.soc + energy_wh / self.model.capacity_wh)


class EvMeter:
    """A meter that registers the energy the plugged EV draws through the relay (the Meter port)."""

    __slots__ = ("energy_wh", "ev", "failing", "phases", "plug", "relay", "voltage_v")

    def __init__(
        self,
        relay: SimRelay,
        plug: FleetPlug,
        *,
        energy_wh: float = 0.0,
        voltage_v: float = 230.0,
        phases: int = 3,
    ):
        self.relay = relay
        self.plug = plug
        self.voltage_v = voltage_v
        self.phases = phases  # the connector's: a 3-phase EV on a 1-phase socket draws on one
        self.energy_wh = energy_wh
        self.ev: Ev | None = None
        self.failing = False

    def power_w(self) -> float:
        """Power flowing now: only through a closed relay into a plugged EV."""
        ev = self.ev
        if ev is None or not (self.relay.closed and self.plug.plugged):
            return 0.0
        return ev.power_w(self.plug.offered_a, self.voltage_v, self.phases)

    def tick(self, dt_virtual_s: float) -> float:
        """Advance by one fleet tick; returns the Wh that flowed."""
        power = self.power_w()
        if power <= 0.0:
            return 0.0
        energy = power * dt_virtual_s / 3600.0
        self.energy_wh += energy
        assert self.ev is not None
        self.ev.take(energy)
        return energy

    async def read(self) -> MeterReading:
        """The register, or a MeterError while the meter is made to fail."""
        if self.failing:
            raise MeterError("simulated meter does not answer")
        power = self.power_w()
        # Voltage on every phase of the connector, current on those the EV draws on (0 A on the others).
        used = self.ev.phases(self.phases) if self.ev is not None else self.phases
        current = round(power / (self.voltage_v * used), 2) if power else 0.0
        return MeterReading(
            energy_wh=self.energy_wh,
            power_w=power,
            voltage_v=(self.voltage_v,) * self.phases,
            current_a=(current,) * used + (0.0,) * (self.phases - used),
            frequency_hz=50.0,
            soc_percent=round(self.ev.soc * 100, 1) if self.ev is not None else None,
        )


class FleetPlug:
    """The EV's cable (the PlugSensor port) without an asyncio.Queue per subscriber: ~3 KB less per connector.

    Changes are kept in order until the station's plug loop takes them; a new subscriber (after an agent
    reset) starts from the present state, which the station reads at start.
    """

    __slots__ = ("_changes", "_plugged", "_waiter", "offered_a")

    def __init__(self) -> None:
        self._plugged = False
        self._changes: list[bool] = []
        self._waiter: asyncio.Future[None] | None = None
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
        self._changes.append(plugged)
        _wake(self._waiter)

    async def changes(self) -> AsyncIterator[bool]:
        """Every change of the plugged state."""
        self._changes.clear()
        while True:
            while not self._changes:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            yield self._changes.pop(0)

    def offer_current(self, current_a: float | None) -> None:
        """The charger's offer to the EV (the pilot's PWM)."""
        self.offered_a = current_a


class FleetReader:
    """A card reader (the TokenReader port) without an asyncio.Queue; ``fail()`` makes it vanish."""

    __slots__ = ("_cards", "_waiter", "present")

    def __init__(self) -> None:
        self._cards: list[str | None] = []
        self._waiter: asyncio.Future[None] | None = None
        self.present = True

    def swipe(self, id_tag: str) -> None:
        """Present a card."""
        self._cards.append(id_tag.upper())
        _wake(self._waiter)

    def fail(self, failed: bool = True) -> None:
        """Make the reader disappear (or come back)."""
        self.present = not failed
        if failed:
            self._cards.append(None)
            _wake(self._waiter)

    async def tokens(self) -> AsyncIterator[str | None]:
        """None when ready, then one idTag per presentation; ReaderError while the reader is gone."""
        if not self.present:
            raise ReaderError("simulated reader is gone")
        yield None
        while True:
            while not self._cards:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            tag = self._cards.pop(0)
            if tag is None or not self.present:
                raise ReaderError("simulated reader is gone")
            yield tag


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
