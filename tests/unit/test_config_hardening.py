"""Config values that used to pass validation and then broke the agent at runtime are refused at load, naming the
key (review of chargepoint/config.py for issue 10).

- a csms.url port out of 1..65535 made websockets raise ValueError at every connect: the link crashed in a loop
  and the charger never came online;
- a control.socket path longer than a Unix socket address made ``run`` die with OSError at start (exit 1, so
  systemd restarted it in a loop) where a bad config exits 2;
- read-only OCPP keys in [settings] overrode the bounds that keep a central system from filling the store;
- a setting longer than 500 characters made every GetConfiguration answer schema-invalid (CiString500);
- a CA file or client certificate that is not PEM failed at every reconnect instead of once;
- a sim meter register of NaN, < 0 or 1e20 Wh and a NaN EV power went into meterStart and the readings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chargepoint.config import parse
from chargepoint.errors import ConfigError
from hardware.factory import build_ports

ROOT = Path(__file__).resolve().parents[2]


def config(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "station": {"id": "CP-1"},
        "csms": {"url": "ws://127.0.0.1:9000/ocpp"},
        "storage": {"path": ":memory:"},
        "connectors": [
            {"id": 1, "relay": {"driver": "sim"}, "meter": {"driver": "sim"}, "plug": {"driver": "sim"}}
        ],
    }
    for name, value in sections.items():
        data[name] = value
    return data


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ws://127.0.0.1:99999/ocpp", "1..65535"),
        ("ws://127.0.0.1:0/ocpp", "1..65535"),
        ("ws://127.0.0.1:abc/ocpp", "1..65535"),
        ("ws://user:pw@127.0.0.1:9000/ocpp", "csms.password"),
        ("ws://127.0.0.1:9000/oc pp", "spaces or control characters"),
        ("ws://127.0.0.1:9000/ocpp\n", "spaces or control characters"),
    ],
)
def test_unusable_csms_url_is_a_config_error(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(csms={"url": url}))
    assert err.value.key == "csms.url"
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("settings", "key", "words"),
    [
        ({"number_of_connectors": 4}, "settings.number_of_connectors", "read-only"),
        ({"max_charging_profiles_installed": 10**9}, "settings.max_charging_profiles_installed", "read-only"),
        ({"local_auth_list_max_length": 10**9}, "settings.local_auth_list_max_length", "read-only"),
        ({"charging_schedule_max_periods": -1}, "settings.charging_schedule_max_periods", "read-only"),
        ({"connector_phase_rotation": "0.RST" + "x" * 500}, "settings.connector_phase_rotation", "500"),
    ],
)
def test_settings_that_break_the_agent_are_refused(settings: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(settings=settings))
    assert err.value.key == key
    assert words in str(err.value)


def test_a_long_setting_within_500_characters_is_fine() -> None:
    assert parse(config(settings={"connector_phase_rotation": "x" * 500})).settings


def test_control_socket_path_must_fit_a_unix_socket_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(control={"socket": "/run/" + "s" * 120 + ".sock"}))
    assert err.value.key == "control.socket"
    assert parse(config(control={"socket": "/run/chargepoint/ctl.sock"})).control_socket
    with pytest.raises(ConfigError) as err:
        parse(config(control={"socket": ""}))
    assert err.value.key == "control.socket"


def test_tls_files_that_are_not_pem_are_config_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n", encoding="utf-8")
    csms = {"url": "wss://127.0.0.1:9000/ocpp", "security_profile": 2, "password": "p" * 16}
    with pytest.raises(ConfigError) as err:
        parse(config(csms={**csms, "ca_file": str(junk)}))
    assert err.value.key == "csms.ca_file"
    profile3 = {"url": "wss://127.0.0.1:9000/ocpp", "security_profile": 3}
    with pytest.raises(ConfigError) as err:
        parse(config(csms={**profile3, "client_cert": str(junk), "client_key": str(junk)}))
    assert err.value.key == "csms.client_cert"


@pytest.mark.parametrize(
    ("port", "options", "key"),
    [
        ("meter", {"energy_wh": float("nan")}, "connectors[0].meter.energy_wh"),
        ("meter", {"energy_wh": -1}, "connectors[0].meter.energy_wh"),
        ("meter", {"energy_wh": 1e20}, "connectors[0].meter.energy_wh"),
        ("plug", {"ev_power_w": float("nan")}, "connectors[0].plug.ev_power_w"),
        ("plug", {"ev_power_w": -5}, "connectors[0].plug.ev_power_w"),
        ("plug", {"ev_power_w": float("inf")}, "connectors[0].plug.ev_power_w"),
    ],
)
def test_sim_hardware_values_are_bounded(port: str, options: dict[str, Any], key: str) -> None:
    data = config()
    data["connectors"][0][port] = {"driver": "sim", **options}
    with pytest.raises(ConfigError) as err:
        build_ports(0, parse(data).connectors[0])
    assert err.value.key == key


def _run_agent(tmp_path: Path, toml: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "station.toml"
    path.write_text(toml, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "chargepoint", *args, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )


STATION = """
[station]
id = "CP-1"
[csms]
url = "{url}"
reconnect_min_s = 0.05
reconnect_max_s = 0.2
[storage]
path = "agent.db"
[control]
socket = "{socket}"
[[connectors]]
id = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim" }}
plug = {{ driver = "sim" }}
"""


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_the_real_agent_refuses_a_port_out_of_range_as_a_bad_config(tmp_path: Path, command: str) -> None:
    """``run`` exits 2 (bad config, not restarted by systemd) at once; it used to run with a crashing link."""
    toml = STATION.format(url="ws://127.0.0.1:99999/ocpp", socket="ctl.sock")
    proc = _run_agent(tmp_path, toml, command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'csms.url'" in proc.stderr and "1..65535" in proc.stderr


def test_the_real_agent_refuses_a_control_socket_path_too_long(tmp_path: Path) -> None:
    """``run`` exits 2 naming control.socket; it used to die with an OSError traceback (exit 1)."""
    toml = STATION.format(url="ws://127.0.0.1:9/ocpp", socket="s" * 120 + ".sock")
    proc = _run_agent(tmp_path, toml, "run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'control.socket'" in proc.stderr


@pytest.mark.parametrize(
    ("name", "limit"), [("vendor", 20), ("model", 20), ("serial_number", 25), ("firmware_version", 50)]
)
def test_boot_notification_fields_fit_their_ocpp_types(name: str, limit: int) -> None:
    """A vendor of 21 characters made every BootNotification fail validation before it was sent: the charger
    never came online. The limit itself is fine."""
    assert getattr(parse(config(station={"id": "CP-1", name: "x" * limit})).station, name) == "x" * limit
    with pytest.raises(ConfigError) as err:
        parse(config(station={"id": "CP-1", name: "x" * (limit + 1)}))
    assert err.value.key == f"station.{name}"
    assert str(limit) in str(err.value)


def test_fleet_vendor_and_model_fit_boot_notification() -> None:
    from simulator.scenario import ScenarioError
    from simulator.scenario import parse as parse_scenario

    with pytest.raises(ScenarioError) as err:
        parse_scenario({"fleet": {"vendor": "v" * 21}})
    assert err.value.key == "fleet.vendor"
