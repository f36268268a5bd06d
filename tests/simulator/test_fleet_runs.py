"""Seeded runs are reproducible; network drops and a central-system crash lose no transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backend_stub.store import CsmsStore
from simulator.fleet import CsmsProcess, Fleet
from simulator.metrics import comparable
from simulator.scenario import Scenario, parse
from tests.simulator.conftest import seed_csms

pytestmark = pytest.mark.slow

TAGS = [f"RUN-{i:03d}" for i in range(40)]


def scenario_data(**changes: Any) -> dict[str, Any]:
    """A small scenario as TOML data; each keyword replaces a top-level key or updates a table."""
    data: dict[str, Any] = {
        "name": "small",
        "seed": 11,
        "duration_s": 8,
        "time_scale": 120,
        "tick_s": 0.5,
        "drain_s": 30,
        "fleet": {
            "count": 12,
            "connectors": 2,
            "durable": False,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 2,
            "reconnect_jitter_s": 0.3,
            "response_timeout_s": 5,
            "meter_value_sample_interval_s": 20,
        },
        "drivers": {
            "arrivals_per_hour": 6,
            "id_tags": TAGS,
            "unknown_share": 0.1,
            "target_energy_wh": [1000, 6000],
            "session_minutes": [5, 15],
            "end": "swipe",
            "act_delay_s": 10,
            "patience_s": 60,
        },
        "ev": [{"capacity_wh": 40_000, "start_soc": [0.2, 0.95], "max_power_w": 7400, "phases": 1}],
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def small_scenario(**changes: Any) -> Scenario:
    return parse(scenario_data(**changes))


async def _run(fleet: Fleet, during: Any = None) -> dict[str, Any]:
    try:
        await fleet.start()
        side = asyncio.create_task(during()) if during is not None else None
        await fleet.run()
        if side is not None:
            await side
        await fleet.wind_down()
    finally:
        await fleet.stop()
    report = fleet.report()
    await fleet.close()
    return report


async def test_two_runs_of_a_seeded_scenario_give_the_same_report(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    async def run(name: str, seed: int) -> dict[str, Any]:
        """A run of the small scenario with ``seed`` against a central system of its own (the same charger ids)."""
        db = tmp_path / f"csms-{name}.db"
        seed_csms(db, [(f"CP-{n:04d}", None) for n in range(1, 13)], TAGS)
        csms = CsmsProcess(db)
        csms_factory.append(csms)
        url = await csms.start()
        return await _run(
            Fleet(small_scenario(seed=seed).with_overrides(csms_url=url), work_dir=tmp_path / name)
        )

    # Side by side: each run is the scenario's 8 s of wall clock, and little CPU.
    first, second, other = await asyncio.gather(run("a", 11), run("b", 11), run("c", 12))
    assert first["sessions_by_outcome"].get("completed", 0) >= 5
    assert comparable(first) == comparable(second)
    # A different seed plans different visits.
    assert comparable(other)["sessions"] != comparable(first)["sessions"]


async def test_network_drops_and_a_csms_crash_lose_no_transaction(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    ids = [f"CP-{n:04d}" for n in range(1, 13)]
    db = tmp_path / "csms.db"
    seed_csms(db, [(cp, f"pw-{cp}") for cp in ids], TAGS)
    csms = CsmsProcess(db)
    csms_factory.append(csms)
    url = await csms.start()
    scenario = small_scenario(
        duration_s=16,
        fleet={"durable": True},
        credentials={"password_pattern": "pw-{id}"},
        faults=[{"kind": "network_drop", "at_s": 2, "duration_s": 3, "share": 0.5}],
    ).with_overrides(csms_url=url)

    async def crash_and_restart() -> None:
        await asyncio.sleep(7)
        await csms.kill()  # SIGKILL: whatever was in flight is lost on the server side
        await asyncio.sleep(3)
        await csms.start()  # same port, same database

    report = await _run(Fleet(scenario, work_dir=tmp_path / "fleet"), crash_and_restart)
    sessions = [s for s in report["sessions"] if s["transaction_id"] is not None]
    assert len(sessions) >= 5, report["sessions_by_outcome"]
    # Drivers who came while their charger was offline with an uncached card could not start ("not_started");
    # every transaction that did start ended and its StopTransaction was acknowledged.
    outcomes = report["sessions_by_outcome"]
    assert set(outcomes) <= {"completed", "rejected", "not_started"}, outcomes
    assert report["reconnects"] >= 6  # half the fleet dropped, then everyone lost the central system
    with CsmsStore(db) as store:
        for s in sessions:
            tx = store.transaction(s["transaction_id"])
            assert tx.meter_stop_wh is not None, f"StopTransaction of {s} never arrived"
            assert tx.energy_wh == s["energy_wh"]
        assert store.active_transactions() == []
