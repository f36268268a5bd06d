"""Fast checks of the report arithmetic, the EV model, slow-response faults and the ctl error paths."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chargepoint.errors import StorageError
from hardware.sim import SimPlug, SimRelay
from simulator import control
from simulator.__main__ import main
from simulator.ev import Ev, EvMeter
from simulator.fleet import Fleet
from simulator.metrics import Metrics, comparable, merge_reports, percentile, summary
from simulator.scenario import EvModel, parse


@pytest.mark.parametrize(
    ("n", "q", "rank"),
    [
        (100, 0.50, 50),
        (100, 0.95, 95),
        (100, 0.99, 99),
        (20, 0.95, 19),
        (10, 0.99, 10),
        (1, 0.5, 1),
        (3, 0.5, 2),
    ],
)
def test_percentile_is_nearest_rank(n: int, q: float, rank: int) -> None:
    values = [float(i) for i in range(1, n + 1)]
    assert percentile(values, q) == rank


def test_summary_in_milliseconds() -> None:
    assert summary([0.001 * i for i in range(1, 101)]) == {
        "p50": 50.0,
        "p95": 95.0,
        "p99": 99.0,
        "max": 100.0,
    }
    assert summary([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}


def test_comparable_leaves_out_errors_by_action_like_errors() -> None:
    """A Timeout in one of two seeded runs is timing, not a different scenario outcome."""
    a = {"errors": {}, "errors_by_action": {}, "energy_wh": 5}
    b = {"errors": {"Timeout": 1}, "errors_by_action": {"Heartbeat:Timeout": 1}, "energy_wh": 5}
    assert comparable(a) == comparable(b)


def test_merged_report_recomputes_percentiles_from_all_samples() -> None:
    part: dict[str, Any] = {
        "calls": {"Heartbeat": 2},
        "errors": {},
        "reconnects": 1,
        "energy_wh": 10,
        "chargers": 1,
        "wall_s": 1.0,
        "sessions": [],
    }
    merged = merge_reports(
        [part, dict(part, wall_s=2.0)], [{"Heartbeat": [0.001, 0.002]}, {"Heartbeat": [0.1]}]
    )
    assert merged["calls"] == {"Heartbeat": 4} and merged["energy_wh"] == 20 and merged["reconnects"] == 2
    assert merged["latency_ms"]["Heartbeat"]["p99"] == 100.0 and merged["wall_s"] == 2.0


def test_latency_samples_are_bounded_by_a_uniform_reservoir() -> None:
    """A fleet answering CALLs for days keeps at most ``sample_cap`` samples per action; they stay a uniform
    sample of all latencies, so the percentiles still describe the whole run (here 0..1 s, evenly)."""
    metrics = Metrics(sample_cap=500)
    for i in range(20_000):
        metrics.observe("Heartbeat", i / 20_000, None)
    metrics.observe("Heartbeat", 0.5, "Timeout")
    assert len(metrics.latency["Heartbeat"]) == 500
    assert metrics.calls["Heartbeat"] == 20_001 and metrics.answered["Heartbeat"] == 20_000
    late = sum(1 for x in metrics.latency["Heartbeat"] if x >= 0.5)  # samples from the run's second half
    assert 175 < late < 325  # all-early (never replaced) or all-late (always replaced) would fail
    p50 = metrics.to_json()["latency_ms"]["Heartbeat"]["p50"]
    assert 350 < p50 < 650
    metrics.restart()
    assert not metrics.latency and not metrics.calls and not metrics.answered


def test_ev_takes_at_most_the_offer_and_tapers_near_full() -> None:
    model = EvModel("t", capacity_wh=50_000, max_power_w=11_000, phases=3, taper_soc=0.8, min_power_w=1000)
    ev = Ev(model, 0.5)
    assert ev.power_w(None, 230) == 0.0
    assert ev.power_w(16, 230) == 11_000  # 16 A x 230 V x 3 = 11,040 W offered
    assert ev.power_w(6, 230) == 6 * 230 * 3
    ev.soc = 0.9
    assert ev.power_w(32, 230) == pytest.approx(1000 + 10_000 * 0.5)
    ev.soc = 1.0
    assert ev.power_w(32, 230) == 0.0


async def test_meter_registers_exactly_what_the_ev_draws_in_wh() -> None:
    relay, plug = SimRelay(), SimPlug()
    meter = EvMeter(relay, plug, energy_wh=100.0)
    ev = meter.ev = Ev(EvModel("t", capacity_wh=40_000, max_power_w=7400, phases=1), 0.2)
    plug.set_plugged(True)
    assert meter.tick(60) == 0.0  # relay open: nothing flows
    await relay.close()
    plug.offer_current(16)
    drawn = sum(meter.tick(60) for _ in range(60))  # one virtual hour at 16 A x 230 V
    assert drawn == pytest.approx(3680.0)
    assert meter.energy_wh - 100.0 == pytest.approx(ev.taken_wh) == pytest.approx(drawn)


class _Ws:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)


async def test_slow_responses_end_when_the_fault_ends() -> None:
    fleet = Fleet(parse({"name": "slow"}), work_dir=Path("/nonexistent"))
    ws = _Ws()
    link = SimpleNamespace(connection=ws)
    fleet.chargers = {"CP-1": SimpleNamespace(agent=SimpleNamespace(link=link))}  # type: ignore[dict-item]
    fleet._slow["CP-1"] = 0.3
    fleet._slow_down()
    began = time.monotonic()
    await ws.send("slow")
    assert time.monotonic() - began >= 0.29
    fleet._slow.pop("CP-1")  # the fault ends; the connection stays the same
    fleet._slow_down()
    began = time.monotonic()
    await ws.send("fast")
    assert time.monotonic() - began < 0.1
    assert ws.sent == ["slow", "fast"]


async def test_a_fleet_that_cannot_start_stops_the_central_system_it_started(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    scenario = parse({"name": "broken", "fleet": {"count": 1, "store_path": str(tmp_path / "file" / "x.db")}})
    assert scenario.spawn_csms
    fleet = Fleet(scenario, work_dir=tmp_path / "work")
    with pytest.raises(StorageError):
        await fleet.start()
    assert fleet.csms_process is not None and fleet.csms_process.proc is not None
    assert fleet.csms_process.proc.returncode is not None  # not left running without a parent


def test_ctl_rejects_a_connector_that_is_not_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ctl", "--socket", str(tmp_path / "none.sock"), "plug", "CP-0001", "one"]) == 2
    assert "connector must be a number" in capsys.readouterr().err


async def test_ctl_reports_a_fleet_that_hangs_up_without_an_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = tmp_path / "mute.sock"

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_unix_server(hang_up, path=str(sock))
    try:
        with pytest.raises(ConnectionResetError):
            await control.request(sock, {"cmd": "status"})
        # A parent routing to a shard that is gone answers with an error instead of dropping the client.
        route = control.router([tmp_path / "gone.sock"], lambda cp_id: 0)
        answer = await route({"cmd": "plug", "charger": "CP-0001", "connector": 1})
        assert answer["ok"] is False and "does not answer" in answer["error"]
    finally:
        server.close()
        await server.wait_closed()
