"""Builds each connector's hardware ports from its config, by driver name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from chargepoint.config import ConnectorConfig, DriverConfig
from chargepoint.errors import ConfigError
from chargepoint.ports import ConnectorPorts
from hardware.sim import SimMeter, SimPlug, SimReader, SimRelay


@dataclass
class SimConnector:
    """Handles on one connector's simulated hardware, for the control interface and the simulator."""

    relay: SimRelay | None = None
    meter: SimMeter | None = None
    plug: SimPlug | None = None
    reader: SimReader | None = None


def _option(
    driver: DriverConfig,
    key: str,
    name: str,
    kind: type,
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> Any:
    value = driver.options.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{key}.{name}", f"must be {kind.__name__}, got {value!r}")
    # NaN fails both comparisons, so it is out of any range.
    if lo is not None and hi is not None and not lo <= cast("float", value) <= hi:
        raise ConfigError(f"{key}.{name}", f"must be {lo:g}..{hi:g}, got {value!r}")
    return value


# A simulated meter's register: a meterStart is an integer of Wh (OCPP 1.6 StartTransaction), which a NaN, a
# negative or an astronomic register would break; 1 TWh is far beyond any meter's life.
MAX_SIM_ENERGY_WH = 1e12
MAX_SIM_EV_POWER_W = 1e6


def _check_options(driver: DriverConfig, key: str, allowed: Mapping[str, Any]) -> None:
    for name in driver.options:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", f"is not an option of the {driver.driver!r} driver")


Builder = Callable[[ConnectorConfig, str, SimConnector], Any]


def _sim_relay(cfg: ConnectorConfig, key: str, sim: SimConnector) -> SimRelay:
    _check_options(cfg.relay, key, {})
    sim.relay = SimRelay()
    return sim.relay


def _sim_plug(cfg: ConnectorConfig, key: str, sim: SimConnector) -> SimPlug:
    _check_options(cfg.plug, key, {"ev_power_w": 0})
    sim.plug = SimPlug(
        ev_power_w=_option(cfg.plug, key, "ev_power_w", float, 7400.0, lo=0, hi=MAX_SIM_EV_POWER_W)
    )
    return sim.plug


def _sim_meter(cfg: ConnectorConfig, key: str, sim: SimConnector) -> SimMeter:
    # The meter's phases and voltage are the connector's (chargepoint.config moves the old meter options there).
    _check_options(cfg.meter, key, {"energy_wh": 0})
    if sim.relay is None or sim.plug is None:
        raise ConfigError(key, "the sim meter needs the sim relay and sim plug on the same connector")
    sim.meter = SimMeter(
        sim.relay,
        sim.plug,
        energy_wh=_option(cfg.meter, key, "energy_wh", float, 0.0, lo=0, hi=MAX_SIM_ENERGY_WH),
        voltage_v=cfg.voltage_v,
        phases=cfg.phases,
    )
    return sim.meter


def _sim_reader(cfg: ConnectorConfig, key: str, sim: SimConnector) -> SimReader:
    assert cfg.reader is not None
    _check_options(cfg.reader, key, {})
    sim.reader = SimReader()
    return sim.reader


def _modbus_meter(cfg: ConnectorConfig, key: str, sim: SimConnector) -> Any:
    from hardware.modbus_meter import build_modbus_meter  # imports pymodbus only when configured

    return build_modbus_meter(cfg.meter.options, key)


def _gpio_relay(cfg: ConnectorConfig, key: str, sim: SimConnector) -> Any:
    from hardware.gpio import build_gpio_relay

    return build_gpio_relay(cfg.relay.options, key)


def _gpio_plug(cfg: ConnectorConfig, key: str, sim: SimConnector) -> Any:
    from hardware.gpio import build_gpio_plug

    return build_gpio_plug(cfg.plug.options, key)


def _rdm6300(cfg: ConnectorConfig, key: str, sim: SimConnector) -> Any:
    from hardware.serial_readers import build_rdm6300

    assert cfg.reader is not None
    return build_rdm6300(cfg.reader.options, key)


def _pn532(cfg: ConnectorConfig, key: str, sim: SimConnector) -> Any:
    from hardware.serial_readers import build_pn532

    assert cfg.reader is not None
    return build_pn532(cfg.reader.options, key)


def _pcsc(cfg: ConnectorConfig, key: str, sim: SimConnector) -> Any:
    from hardware.pcsc_reader import build_pcsc  # imports pyscard only when configured

    assert cfg.reader is not None
    return build_pcsc(cfg.reader.options, key)


# port -> driver name -> builder. Real drivers (gpio, modbus, pcsc, rdm6300, pn532) register here too.
DRIVERS: dict[str, dict[str, Builder]] = {
    "relay": {"sim": _sim_relay, "gpio": _gpio_relay},
    "plug": {"sim": _sim_plug, "gpio": _gpio_plug},
    "meter": {"sim": _sim_meter, "modbus": _modbus_meter},
    "reader": {"sim": _sim_reader, "rdm6300": _rdm6300, "pn532": _pn532, "pcsc": _pcsc},
}


def check_ports(index: int, cfg: ConnectorConfig) -> None:
    """Validate every driver option of connector ``cfg`` without touching hardware; ConfigError names the key.

    The serial, PC/SC and Modbus drivers open their devices lazily, so building them is a dry run already; the
    GPIO drivers request their lines when built, so they are built on a fake chip here.
    """
    from hardware.gpio import FakeLineBackend, build_gpio_plug, build_gpio_relay

    fake = FakeLineBackend()
    dry: dict[tuple[str, str], Builder] = {
        ("relay", "gpio"): lambda c, key, sim: build_gpio_relay(c.relay.options, key, backend=fake),
        ("plug", "gpio"): lambda c, key, sim: build_gpio_plug(c.plug.options, key, backend=fake),
    }
    _build(index, cfg, SimConnector(), dry)


def build_ports(index: int, cfg: ConnectorConfig) -> tuple[ConnectorPorts, SimConnector]:
    """The ports of connector ``cfg`` (``index`` in the config's array), and handles on simulated parts."""
    sim = SimConnector()
    built = _build(index, cfg, sim, {})
    ports = ConnectorPorts(
        relay=built["relay"],
        meter=built["meter"],
        plug=built["plug"],
        reader=built.get("reader"),
        max_current_a=cfg.max_current_a,
        voltage_v=cfg.voltage_v,
        phases=cfg.phases,
    )
    return ports, sim


def _build(
    index: int, cfg: ConnectorConfig, sim: SimConnector, overrides: dict[tuple[str, str], Builder]
) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for port in ("relay", "plug", "meter", "reader"):
        driver: DriverConfig | None = getattr(cfg, port)
        if driver is None:
            continue
        key = f"connectors[{index}].{port}"
        builder = overrides.get((port, driver.driver)) or DRIVERS[port].get(driver.driver)
        if builder is None:
            raise ConfigError(
                f"{key}.driver", f"unknown driver {driver.driver!r} (known: {', '.join(DRIVERS[port])})"
            )
        try:
            built[port] = builder(cfg, key, sim)
        except ImportError as exc:  # a driver whose library is not installed (pip install '.[hw]')
            raise ConfigError(
                f"{key}.driver",
                f"driver {driver.driver!r} needs {exc.name or 'a library'}: pip install '.[hw]'",
            ) from exc
    return built
