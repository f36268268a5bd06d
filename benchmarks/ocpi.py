"""OCPI 2.2.1 CPO side: how long a partner's full locations pull and the initial push of every location take.

Runs the bundled central system with N accepted chargers (each with one connector status) and the loopback eMSP
test party in this process; prints the numbers. Usage: .venv/bin/python benchmarks/ocpi.py [--chargers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend_stub.app import Csms
from backend_stub.ocpi.config import OcpiConfig
from backend_stub.store import CsmsStore
from tests.integration.ocpi_party import EmspParty


async def main(chargers: int, pulls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = CsmsStore(Path(tmp) / "csms.db")
        store.put_tariff(
            "T1",
            json.dumps(
                {
                    "id": "T1",
                    "currency": "EUR",
                    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}],
                }
            ),
        )
        store.set_default_tariff_id("T1")
        at = datetime(2026, 11, 22, 10, tzinfo=UTC)
        for i in range(chargers):
            store.add_charger(f"CP-{i:05d}")
            store.record_status(f"CP-{i:05d}", 1, "Available", at, error_code="NoError", info=None)
        app = Csms(store, admin_token="bench", ocpi=OcpiConfig(page_limit_max=100))
        emsp = EmspParty()
        await emsp.start()
        await app.start()
        try:
            assert app.ocpi is not None
            t0 = time.perf_counter()
            await app.ocpi.register_with("eMSP", emsp.versions_url, emsp.token_a)
            while len(emsp.locations) < chargers:
                await asyncio.sleep(0.01)
            push_s = time.perf_counter() - t0
            url = f"{app.ocpi.details_url}/locations?limit=100"
            pages: list[float] = []
            for _ in range(pulls):
                t1 = time.perf_counter()
                _, headers, body = await emsp.get(url)
                pages.append((time.perf_counter() - t1) * 1000)
                assert body["status_code"] == 1000 and headers["X-Total-Count"] == str(chargers)
        finally:
            await app.stop()
            await emsp.stop()
            store.close()
    print(f"chargers: {chargers}")
    print(f"register + initial push of every location: {push_s:.2f} s ({chargers / push_s:.0f} pushes/s)")
    print(
        f"GET locations, one page of 100 of {chargers}: p50 {statistics.median(pages):.1f} ms, "
        f"max {max(pages):.1f} ms over {pulls} pulls"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--pulls", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.chargers, args.pulls))
