"""Fixtures: the bundled central system as a separate process on a seeded SQLite store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from backend_stub.store import CsmsStore
from simulator.fleet import CsmsProcess
from simulator.pytest_plugin import charger_fleet
from simulator.scenario import Scenario

# Other projects enable the fixture with pytest_plugins = ["simulator.pytest_plugin"] in their top-level
# conftest.py; pytest allows that only at the root, so this package imports it.
__all__ = ["charger_fleet", "csms_factory", "scenario_csms", "seed_csms"]

# 10.00 EUR/kWh with a 1 Wh step: one cent per Wh, so a session's cost in minor units equals its energy in Wh.
TARIFF = {
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 10, "step_size": 1}]}],
}


def seed_csms(db: Path, chargers: Iterable[tuple[str, str | None]], cards: Iterable[str]) -> None:
    """Register chargers (with passwords), one user's personal cards and the default tariff."""
    with CsmsStore(db) as store:
        for cp_id, password in chargers:
            store.add_charger(cp_id, password)
        user = store.add_user("Fleet Driver")
        for tag in cards:
            store.add_card(tag, user_id=user.id)
        store.put_tariff("T-FLEET", json.dumps(TARIFF))
        store.set_default_tariff_id("T-FLEET")


async def scenario_csms(scenario: Scenario, db: Path, csms_factory: list[CsmsProcess]) -> str:
    """Start a central system (Heartbeat 60 s) knowing every charger of ``scenario`` with its password and the
    drivers' cards; returns its URL."""
    f = scenario.fleet
    chargers = [
        (f.charger_id(i), scenario.credentials.password(f.charger_id(i), f.first + i)) for i in range(f.count)
    ]
    seed_csms(db, chargers, scenario.drivers.id_tags)
    csms = CsmsProcess(db, heartbeat_interval_s=60)
    csms_factory.append(csms)
    return await csms.start()


def check_sessions_in_csms(db: Path, sessions: list[dict[str, Any]]) -> None:
    """Every started session of a fleet report (either OCPP version) is in the central system's records with the
    same charger, connector, card and energy, ended and billed; and the records hold no other transaction."""
    with CsmsStore(db) as store:
        records = store.recent_transactions(limit=100_000)
    by_id = {tx.id: tx for tx in records}  # OCPP 1.6: the central system's integer transactionId
    by_station_id = {
        tx.station_tx_id: tx for tx in records if tx.station_tx_id is not None
    }  # 2.0.1: the station's
    seen = set()
    for s in sessions:
        if s["ocpp_version"] == "1.6":
            assert isinstance(s["transaction_id"], int), s
            tx = by_id[s["transaction_id"]]
        else:
            assert isinstance(s["transaction_id"], str), s  # 2.0.1 has no central-system integer
            tx = by_station_id[s["transaction_id"]]
        assert (tx.cp_id, tx.connector_id, tx.id_tag) == (s["charger"], s["connector"], s["id_tag"])
        assert tx.meter_stop_wh is not None, f"the end of {s} never arrived"
        assert tx.energy_wh == s["energy_wh"]
        assert tx.cost_minor == s["energy_wh"]  # TARIFF: 10 EUR/kWh, one cent per Wh
        seen.add(tx.id)
    assert seen == {tx.id for tx in records}  # nothing the report does not know


@pytest.fixture
async def csms_factory(tmp_path: Path) -> AsyncIterator[list[CsmsProcess]]:
    """Central-system processes a test starts (``CsmsProcess(db).start()``); all stopped at the end."""
    started: list[CsmsProcess] = []
    yield started
    for proc in started:
        await proc.stop()
