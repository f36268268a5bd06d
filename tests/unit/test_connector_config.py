"""A connector's phases and voltage in the agent config, and how the sim meter and the fleet's EVs follow them."""

from __future__ import annotations

from typing import Any

import pytest

from chargepoint.config import parse
from chargepoint.errors import ConfigError
from hardware.factory import build_ports
from hardware.sim import SimMeter, SimPlug
from simulator.ev import Ev, EvMeter
from simulator.scenario import EvModel, ScenarioError
from simulator.scenario import parse as parse_scenario


def config(connector: dict[str, Any] | None = None, meter: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "station": {"id": "CP-1"},
        "csms": {"url": "ws://127.0.0.1:9000/ocpp"},
        "storage": {"path": ":memory:"},
        "connectors": [
            {
                "id": 1,
                "relay": {"driver": "sim"},
                "meter": {"driver": "sim", **(meter or {})},
                "plug": {"driver": "sim", "ev_power_w": 22_000},
                **(connector or {}),
            }
        ],
    }


def test_connector_defaults_to_three_phases_at_230_v() -> None:
    """Three phases is the safe default: a W limit divided over 3 phases never lets an EV draw more than it."""
    c = parse(config()).connectors[0]
    assert (c.phases, c.voltage_v) == (3, 230.0)


@pytest.mark.parametrize(
    ("keys", "key", "words"),
    [
        ({"phases": 2}, "connectors[0].phases", "1, 3"),
        ({"phases": 0}, "connectors[0].phases", "1, 3"),
        ({"phases": "1"}, "connectors[0].phases", "int"),
        ({"phases": True}, "connectors[0].phases", "int"),
        ({"phases": 1.0}, "connectors[0].phases", "int"),
        ({"voltage_v": 0}, "connectors[0].voltage_v", ">= 100"),
        ({"voltage_v": 1e9}, "connectors[0].voltage_v", "<= 480"),
        ({"voltage_v": float("nan")}, "connectors[0].voltage_v", "nan"),
        ({"voltage_v": float("inf")}, "connectors[0].voltage_v", "<= 480"),
        ({"voltage_v": "230"}, "connectors[0].voltage_v", "float"),
    ],
)
def test_bad_phases_or_voltage_names_the_key_and_range(keys: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(keys))
    assert err.value.key == key
    assert words in str(err.value)


def test_connector_keys_reach_the_ports_and_the_sim_meter() -> None:
    """build_ports hands the connector's phases and voltage to smart charging and to the simulated meter."""
    cfg = parse(config({"phases": 1, "voltage_v": 240})).connectors[0]
    ports, sim = build_ports(0, cfg)
    assert (ports.phases, ports.voltage_v) == (1, 240.0)
    assert isinstance(ports.meter, SimMeter) and (ports.meter.phases, ports.meter.voltage_v) == (1, 240.0)
    assert sim.relay is not None and sim.plug is not None
    sim.plug.set_plugged(True)
    sim.plug.offer_current(16.0)
    sim.relay._closed = True  # what close() does, without an event loop
    # A 1-phase connector's EV draws I x V x 1.
    assert ports.meter.power_w() == pytest.approx(16 * 240)


def test_old_sim_meter_keys_become_the_connectors() -> None:
    """``meter = { driver = "sim", phases = 1, voltage_v = 230 }`` (the old spelling) still configures a 1-phase
    connector, and no longer reaches the meter's options."""
    c = parse(config(meter={"phases": 1, "voltage_v": 220, "energy_wh": 5})).connectors[0]
    assert (c.phases, c.voltage_v) == (1, 220.0)
    assert c.meter.options == {"energy_wh": 5}


def test_old_key_that_agrees_with_the_connector_is_accepted() -> None:
    c = parse(config({"phases": 1}, meter={"phases": 1})).connectors[0]
    assert c.phases == 1


@pytest.mark.parametrize(
    ("connector", "meter", "key"),
    [
        ({"phases": 3}, {"phases": 1}, "connectors[0].meter.phases"),
        ({"voltage_v": 230}, {"voltage_v": 240}, "connectors[0].meter.voltage_v"),
        ({}, {"phases": 2}, "connectors[0].meter.phases"),
        ({}, {"voltage_v": -1}, "connectors[0].meter.voltage_v"),
    ],
)
def test_old_key_that_contradicts_or_is_out_of_range_is_an_error(
    connector: dict[str, Any], meter: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(connector, meter=meter))
    assert err.value.key == key


def test_a_modbus_meters_options_are_left_alone() -> None:
    """Only the sim meter had phases/voltage options; a real meter's options are its driver's business."""
    cfg = parse(config({"phases": 1}, meter={"driver": "modbus", "port": "/dev/ttyUSB0"}))
    assert cfg.connectors[0].meter.options == {"port": "/dev/ttyUSB0"}


# --- the fleet simulator's EVs ----------------------------------------------------------------------------


def test_fleet_ev_draws_on_no_more_phases_than_the_connector_has() -> None:
    """A 3-phase EV on a 1-phase connector draws I x V x 1, on a 3-phase connector I x V x 3; a 1-phase EV draws
    on one phase anywhere."""
    three = EvModel("three", max_power_w=22_000, phases=3)
    one = EvModel("one", max_power_w=22_000, phases=1)
    assert Ev(three, 0.2).power_w(16.0, 230.0, 1) == pytest.approx(16 * 230)
    assert Ev(three, 0.2).power_w(16.0, 230.0, 3) == pytest.approx(16 * 230 * 3)
    assert Ev(one, 0.2).power_w(16.0, 230.0, 3) == pytest.approx(16 * 230)


async def test_fleet_meter_reports_the_connectors_phases() -> None:
    from hardware.sim import SimRelay

    relay, plug = SimRelay(), SimPlug()
    meter = EvMeter(relay, plug, voltage_v=230.0, phases=3)
    meter.ev = Ev(EvModel("one", max_power_w=22_000, phases=1), 0.2)
    plug.set_plugged(True)
    plug.offer_current(16.0)
    await relay.close()
    reading = await meter.read()
    assert reading.power_w == pytest.approx(3680.0)
    assert reading.voltage_v == (230.0, 230.0, 230.0)
    assert reading.current_a == (16.0, 0.0, 0.0)


def test_scenario_fleet_phases_are_validated() -> None:
    spec = parse_scenario({"fleet": {"phases": 1}}).fleet
    assert spec.phases == 1
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"fleet": {"phases": 2}})
    assert err.value.key == "fleet.phases"
