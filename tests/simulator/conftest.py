"""Fixtures: the bundled central system as a separate process on a seeded SQLite store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from backend_stub.store import CsmsStore
from simulator.fleet import CsmsProcess
from simulator.pytest_plugin import charger_fleet

# Other projects enable the fixture with pytest_plugins = ["simulator.pytest_plugin"] in their top-level
# conftest.py; pytest allows that only at the root, so this package imports it.
__all__ = ["charger_fleet", "csms_factory", "seed_csms"]

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


@pytest.fixture
async def csms_factory(tmp_path: Path) -> AsyncIterator[list[CsmsProcess]]:
    """Central-system processes a test starts (``CsmsProcess(db).start()``); all stopped at the end."""
    started: list[CsmsProcess] = []
    yield started
    for proc in started:
        await proc.stop()
