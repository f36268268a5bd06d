"""Seed the bundled central system's SQLite store with what a load run needs: chargers with passwords, a user
with cards, and a default tariff. Chargers already in the store get the file's password; existing cards are
kept."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.credentials import Credential

__all__ = ["LOADTEST_TARIFF", "SeedResult", "seed_store"]

LOADTEST_TARIFF_ID = "LOADTEST"
LOADTEST_TARIFF: dict[str, Any] = {  # OCPI 2.2.1: 0.30 EUR/kWh excl. VAT, billed per Wh
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}],
}


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What seeding added or updated."""

    chargers_added: int
    chargers_updated: int
    cards_added: int
    tariff_id: str | None


def seed_store(
    db: str | Path,
    rows: Sequence[Credential],
    *,
    prepaid_balance_minor: int | None = None,
    tariff: bool = True,
) -> SeedResult:
    """Register every charger and card of `rows` in the store at `db` (created if missing).

    Cards are personal (billed afterwards) unless `prepaid_balance_minor` is given: then they are prepaid and
    topped up to that amount once. Password hashing (scrypt, ~30 ms each) runs on every core.
    """
    from backend_stub.domain import tariffs
    from backend_stub.store import CardMode, CsmsStore

    with CsmsStore(db) as store:

        def charger(row: Credential) -> bool:
            """Add the charger; True if added, False if it existed and only its password was set."""
            if store.charger(row.cp_id) is None:
                store.add_charger(row.cp_id, row.password)
                return True
            store.set_password(row.cp_id, row.password)
            return False

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            added = sum(pool.map(charger, rows))
        user = next((u for u in store.users() if u.name == "Load test"), None) or store.add_user("Load test")
        mode = CardMode.PERSONAL if prepaid_balance_minor is None else CardMode.PREPAID
        cards_added = 0
        for tag in dict.fromkeys(t for row in rows for t in row.id_tags):
            if store.card(tag) is None:
                store.add_card(tag, user_id=user.id, mode=mode)
                cards_added += 1
                if prepaid_balance_minor:
                    store.topup(tag, prepaid_balance_minor, f"loadtest-topup-{tag}", note="load test seed")
        tariff_id = None
        if tariff:
            tariffs.Tariff.from_ocpi(LOADTEST_TARIFF)  # fail here, not at the first StopTransaction
            store.put_tariff(LOADTEST_TARIFF_ID, json.dumps(LOADTEST_TARIFF))
            store.set_default_tariff_id(LOADTEST_TARIFF_ID)
            tariff_id = LOADTEST_TARIFF_ID
    return SeedResult(added, len(rows) - added, cards_added, tariff_id)
