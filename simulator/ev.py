"""Simulated EVs and the meter they draw through.

The EV decides the power: its on-board charger takes at most what the charger offers (the pilot current, the
connector's ``max_current_a`` or a smart-charging limit) and its battery tapers above ``taper_soc``. The meter's
register integrates exactly that power, once per fleet tick of virtual time, so a seeded run delivers the same
energy whatever the machine's speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from chargepoint.errors import MeterError
from chargepoint.ports import MeterReading
from hardware.sim import SimPlug, SimRelay
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

    instant = True  # chargepoint.ports.Instant: its read never waits

    def __init__(
        self,
        relay: SimRelay,
        plug: SimPlug,
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
