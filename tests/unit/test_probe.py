"""``python -m chargepoint probe``: the wiring check, against simulated (``driver = "sim"``) ports."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chargepoint.__main__ import main
from chargepoint.config import AgentConfig, load
from chargepoint.ports import ConnectorPorts, MeterReading
from chargepoint.probe import probe, run_probe
from hardware.factory import SimConnector, build_ports

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[station]
id = "CP-PROBE"

[csms]
url = "ws://127.0.0.1:9/ocpp"

[storage]
path = "agent.db"

[[connectors]]
id = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim", energy_wh = 1234.5, voltage_v = 230, phases = 3 }}
plug = {{ driver = "sim" }}
{reader}
"""


def _config(tmp_path: Path, *, reader: bool = True, extra: str = "") -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        CONFIG.format(reader='reader = { driver = "sim" }' if reader else "") + extra, encoding="utf-8"
    )
    return path


def _built(cfg: AgentConfig) -> tuple[dict[int, ConnectorPorts], dict[int, SimConnector]]:
    ports, sims = {}, {}
    for index, conn in enumerate(cfg.connectors):
        ports[conn.id], sims[conn.id] = build_ports(index, conn)
    return ports, sims


async def test_all_checks_pass(tmp_path: Path) -> None:
    ports, sims = _built(load(_config(tmp_path)))
    reader = sims[1].reader
    assert reader is not None
    reader.swipe("04a2b3c4")
    out = io.StringIO()
    assert await probe(ports, relay=True, card_timeout_s=1, out=out)
    text = out.getvalue()
    for expected in (
        "connector 1",
        "ok   meter read",
        "energy 1234.5 Wh",
        "power 0.0 W",
        "voltage L3 230.0 V",
        "current L1 0.00 A",
        "frequency 50.00 Hz",
        "plug: unplugged",
        "ok   reader: idTag 04A2B3C4",
        "ok   relay closed (as reported by the driver)",
        "ok   relay open",
        "result: all checks passed",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    relay = sims[1].relay
    assert relay is not None and not relay.closed and relay.switch_count == 2


async def test_relay_untouched_without_flag(tmp_path: Path) -> None:
    ports, sims = _built(load(_config(tmp_path, reader=False)))
    out = io.StringIO()
    assert await probe(ports, relay=False, out=out)
    assert sims[1].relay is not None and sims[1].relay.switch_count == 0
    assert "reader: none configured" in out.getvalue()
    assert "relay: not switched" in out.getvalue()


async def test_failures_are_reported(tmp_path: Path) -> None:
    ports, sims = _built(load(_config(tmp_path)))
    meter, relay, reader = sims[1].meter, sims[1].relay, sims[1].reader
    assert meter is not None and relay is not None and reader is not None
    meter.failing = True
    relay.stuck = True
    out = io.StringIO()
    assert not await probe(ports, relay=True, card_timeout_s=0.1, out=out)
    text = out.getvalue()
    assert "FAIL meter: MeterError: simulated meter does not answer" in text
    assert "FAIL reader: no card within 0.1 s" in text
    assert "FAIL relay close: RelayError: simulated relay stuck open" in text
    assert "ok   relay open" in text  # opened again after the failed close
    assert "result: some checks FAILED" in text
    assert not relay.closed


async def test_meter_garbage_and_gone_reader_fail(tmp_path: Path) -> None:
    ports, sims = _built(load(_config(tmp_path)))
    assert sims[1].meter is not None and sims[1].reader is not None
    sims[1].meter.garbage = True
    sims[1].reader.fail()
    out = io.StringIO()
    assert not await probe(ports, card_timeout_s=1, out=out)
    assert "FAIL meter: answered non-finite values" in out.getvalue()
    assert "FAIL reader: ReaderError" in out.getvalue()


async def test_meter_timeout(tmp_path: Path) -> None:
    ports, sims = _built(load(_config(tmp_path, reader=False)))
    assert sims[1].meter is not None
    sims[1].meter.read_delay_s = 5
    out = io.StringIO()
    assert not await probe(ports, meter_timeout_s=0.05, out=out)
    assert "FAIL meter: no answer within 0.05 s" in out.getvalue()


def test_run_probe_exit_codes(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path, reader=False))
    out = io.StringIO()
    assert run_probe(cfg, relay=True, card_timeout_s=1, out=out) == 0
    assert run_probe(cfg, relay=False, card_timeout_s=0, out=out) == 2


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    # config.py leaves driver options to the driver; the sim relay's builder refuses an unknown one.
    text = path.read_text(encoding="utf-8").replace(
        'relay = { driver = "sim" }', 'relay = { driver = "sim", line = 4 }'
    )
    path.write_text(text, encoding="utf-8")
    assert main(["probe", "--config", str(path)]) == 2
    assert "connectors[0].relay.line" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("[station\n", encoding="utf-8")
    assert main(["probe", "--config", str(tmp_path / "broken.toml")]) == 2


def test_cli_meter_read_and_card_timeout(tmp_path: Path) -> None:
    """The real command in a subprocess: it prints the meter's values and fails (1) when no card comes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chargepoint",
            "probe",
            "--config",
            str(_config(tmp_path)),
            "--card-timeout-s",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "energy 1234.5 Wh" in proc.stdout
    assert "voltage L1 230.0 V" in proc.stdout
    assert "FAIL reader: no card within 0.2 s" in proc.stdout
    assert "result: some checks FAILED" in proc.stdout


GPIO_CONFIG = """
[station]
id = "CP-PROBE"

[csms]
url = "ws://127.0.0.1:9/ocpp"

[storage]
path = "agent.db"

[[connectors]]
id = 1
relay = { driver = "gpio", line = 17, feedback_line = 27 }
meter = { driver = "sim" }
plug = { driver = "gpio", line = 22 }
"""


@pytest.mark.parametrize("wired", [True, False])
def test_gpio_relay_feedback_and_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wired: bool
) -> None:
    """The gpio drivers (on the fake chip: no GPIO chip exists here) registered as the lead will in the factory."""
    from hardware import factory
    from hardware.gpio import FakeLineBackend, build_gpio_plug, build_gpio_relay

    fake = FakeLineBackend()

    def relay(cfg: Any, key: str, sim: SimConnector) -> Any:
        built = build_gpio_relay(cfg.relay.options, key, backend=fake)
        if wired:
            fake.wire("/dev/gpiochip0", 17, 27)
        return built

    monkeypatch.setitem(factory.DRIVERS["relay"], "gpio", relay)
    monkeypatch.setitem(
        factory.DRIVERS["plug"],
        "gpio",
        lambda cfg, key, sim: build_gpio_plug(cfg.plug.options, key, backend=fake),
    )
    # The sim meter needs the sim relay and plug; use a stand-alone meter instead.
    monkeypatch.setitem(factory.DRIVERS["meter"], "sim", lambda cfg, key, sim: _StaticMeter())
    path = tmp_path / "station.toml"
    path.write_text(GPIO_CONFIG, encoding="utf-8")
    out = io.StringIO()
    code = run_probe(load(path), relay=True, card_timeout_s=1, out=out)
    text = out.getvalue()
    if wired:
        assert code == 0, text
        assert "ok   relay closed (confirmed by the feedback contact)" in text
        assert "ok   relay open (confirmed by the feedback contact)" in text
    else:
        assert code == 1, text
        assert "FAIL relay close: RelayError" in text and "feedback on line 27 reads open" in text
    assert all(line.released for line in fake.requests)  # probe gives the lines back
    assert fake.line("/dev/gpiochip0", 17).high is False


class _StaticMeter:
    async def read(self) -> MeterReading:
        return MeterReading(energy_wh=42.0)
