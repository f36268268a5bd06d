"""Relative paths in a config file are relative to that file, driver options included."""

from __future__ import annotations

from pathlib import Path

from chargepoint.config import load


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "station.toml").write_text("""
[station]
id = "CP-1"
[csms]
url = "ws://127.0.0.1:9000/ocpp"
[storage]
path = "data/agent.db"
[[connectors]]
id = 1
relay = { driver = "sim" }
meter = { driver = "modbus", port = "/dev/ttyUSB0", map = "maps/my_meter.toml" }
plug = { driver = "sim" }
""")
    cfg = load(site / "station.toml")
    assert cfg.storage.path == str(site / "data" / "agent.db")
    assert cfg.connectors[0].meter.options["map"] == str(site / "maps" / "my_meter.toml")
