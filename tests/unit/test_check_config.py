"""`check-config` validates every driver option without touching hardware (GPIO on a fake chip)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chargepoint import config as config_mod

BASE = """
[station]
id = "CP-CHK"
[csms]
url = "ws://127.0.0.1:9/ocpp"
[storage]
path = "agent.db"
[[connectors]]
id = 1
meter = {{ driver = "modbus", port = "/dev/ttyUSB0", model = "sdm630" }}
plug = {{ driver = "gpio", chip = "/dev/gpiochip0", line = 22 }}
relay = {relay}
"""


def _check(tmp_path: Path, relay: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "station.toml"
    config.write_text(BASE.format(relay=relay))
    return subprocess.run(
        [sys.executable, "-m", "chargepoint", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_misspelt_gpio_option_is_named(tmp_path: Path) -> None:
    result = _check(tmp_path, '{ driver = "gpio", chip = "/dev/gpiochip0", lin = 17 }')
    assert result.returncode == 2
    assert "connectors[0].relay.lin" in result.stderr


def test_a_good_gpio_relay_passes_without_a_chip(tmp_path: Path) -> None:
    result = _check(tmp_path, '{ driver = "gpio", chip = "/dev/gpiochip0", line = 17, feedback_line = 27 }')
    assert result.returncode == 0, result.stderr
    assert "ok (1 connectors" in result.stdout


def test_the_example_station_runs_from_the_checkout(tmp_path: Path) -> None:
    # README: docs/examples/station.toml runs from a checkout as any user; its files sit next to it.
    example = Path(__file__).parents[2] / "docs" / "examples" / "station.toml"
    cfg = config_mod.load(example)
    assert Path(cfg.storage.path).parent == example.parent
    assert Path(cfg.control_socket).parent == example.parent
    assert cfg.csms.password is not None and 8 <= len(cfg.csms.password) <= 40
