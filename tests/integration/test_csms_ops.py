"""Issue 13 item 4: /healthz and /metrics of the bundled central system after real OCPP 1.6 traffic on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from backend_stub.app import Csms
from backend_stub.process import start_csms_process
from backend_stub.store import CsmsStore
from tests.integration.conftest import until
from tests.integration.test_csms_edge import ADMIN, ADMIN_TOKEN, PASSWORD, _basic, _call, _handshake

BOOT = {"chargePointVendor": "Ops", "chargePointModel": "Test"}
TARIFF = {
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.4, "step_size": 1}]}],
}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Csms]:
    """The central system with charger CP-1 (password), a 0.40 EUR/kWh tariff and a personal card TAG-1."""
    with CsmsStore(tmp_path / "csms.db") as store:
        store.add_charger("CP-1", PASSWORD)
        store.put_tariff("T", json.dumps(TARIFF))
        store.set_default_tariff_id("T")
        user = store.add_user("Driver")
        store.add_card("TAG-1", user_id=user.id, mode="personal")
        app = Csms(store, heartbeat_interval_s=60, admin_token=ADMIN_TOKEN)
        await app.start()
        try:
            yield app
        finally:
            await app.stop()


async def scrape(
    app: Csms, admin: dict[str, str] = ADMIN
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics with the admin token, parsed by prometheus_client: {(sample name, labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(f"{app.http_url}/metrics", headers=admin) as resp:
        assert resp.status == 200
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def health(app: Csms) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{app.http_url}/healthz") as resp:
        return resp.status, await resp.json()


V16 = ("version", "ocpp1.6")


async def test_metrics_after_a_session(site: Csms) -> None:
    """Connections, messages by action and result, latency, refusals, sessions, energy and revenue add up."""
    url = f"{site.url}/CP-1"
    assert (await _handshake(url, _basic("CP-1", "wrong-password")))[0] == 401
    assert (await _handshake(f"{site.url}/CP-UNKNOWN"))[0] == 404
    now = datetime.now(UTC).isoformat()
    async with connect(url, subprotocols=["ocpp1.6"], additional_headers=_basic("CP-1", PASSWORD)) as ws:
        assert (await _call(ws, "1", "BootNotification", BOOT))[0] == 3
        assert (await _call(ws, "2", "BootNotification", {"chargePointVendor": 5}))[0] == 4  # schema-invalid
        assert (await _call(ws, "3", "NoSuchAction", {}))[0] == 4
        start = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 1000, "timestamp": now}
        started = await _call(ws, "4", "StartTransaction", start)
        tx_id = started[2]["transactionId"]
        samples = await scrape(site)
        assert samples[("csms_connections", (V16,))] == 1
        assert samples[("csms_active_sessions", ())] == 1
        meter = {
            "timestamp": now,
            "sampledValue": [{"value": "2000", "measurand": "Energy.Active.Import.Register"}],
        }
        await _call(ws, "5", "MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [meter]})
        stop = {"transactionId": tx_id, "meterStop": 3500, "timestamp": now, "idTag": "TAG-1"}
        assert (await _call(ws, "6", "StopTransaction", stop))[0] == 3
    await until(lambda: not site.server.connected, 5, "CP-1 did not disconnect")
    samples = await scrape(site)
    cost_minor = site.store.transaction(tx_id).cost_minor
    assert cost_minor == 100  # 2.5 kWh at 0.40 EUR
    assert samples[("csms_connections", (V16,))] == 0
    assert samples[("csms_active_sessions", ())] == 0
    assert samples[("csms_energy_wh_total", ())] == 2500
    assert samples[("csms_revenue_minor_total", ())] == cost_minor

    def messages(action: str, result: str) -> float:
        return samples.get(("csms_messages_total", (("action", action), ("result", result), V16)), 0)

    assert messages("BootNotification", "ok") == 1
    assert messages("BootNotification", "invalid") == 1
    assert messages("other", "not_implemented") == 1  # a made-up action name is not a label
    for action in ("StartTransaction", "MeterValues", "StopTransaction"):
        assert messages(action, "ok") == 1
        assert samples[("csms_handler_seconds_count", (("action", action), V16))] == 1
    assert samples[("csms_handler_seconds_count", (("action", "BootNotification"), V16))] == 2
    assert samples[("csms_handshakes_refused_total", (("reason", "unauthorized"),))] == 1
    assert samples[("csms_handshakes_refused_total", (("reason", "unknown"),))] == 1
    assert ("csms_limits_hit_total", (("limit", "unauthorized"),)) not in samples  # bad credentials: no limit


async def test_metrics_count_the_limits_hit(tmp_path: Path) -> None:
    """A locked-out password guesser (429) and a WebSocket over the cap (503) are counted as limits hit."""
    with CsmsStore(tmp_path / "csms.db") as store:
        store.add_charger("CP-1", PASSWORD)
        app = Csms(store, admin_token=ADMIN_TOKEN)
        app.server.auth_throttle.free_per_id = 1
        await app.start()
        try:
            guesser = f"{app.url}/CP-2"
            statuses = [(await _handshake(guesser, _basic("CP-2", f"guess-{n}")))[0] for n in range(3)]
            assert statuses[0] == 404 and 429 in statuses
            headers = _basic("CP-1", PASSWORD)
            async with connect(f"{app.url}/CP-1", subprotocols=["ocpp1.6"], additional_headers=headers):
                guard = app.server.guard
                guard.api_reserve = guard.max_connections - 1  # one WebSocket slot, taken
                assert (await _handshake(f"{app.url}/CP-1", headers))[0] == 503
            samples = await scrape(app)
        finally:
            await app.stop()
    lockouts = statuses.count(429)
    assert samples[("csms_limits_hit_total", (("limit", "auth_lockout"),))] == lockouts
    assert samples[("csms_handshakes_refused_total", (("reason", "auth_lockout"),))] == lockouts
    assert samples[("csms_limits_hit_total", (("limit", "websocket_cap"),))] == 1
    assert samples[("csms_handshakes_refused_total", (("reason", "unknown"),))] == statuses.count(404)
    assert samples[("csms_limit_events_total", (("kind", "idle_evicted"),))] == 0


async def test_metrics_need_the_admin_token(site: Csms) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{site.http_url}/metrics") as resp:
        assert resp.status == 401


async def test_two_servers_in_one_process_count_apart(site: Csms, tmp_path: Path) -> None:
    """Each application has its own registry: a second server starts (no duplicate metric) at zero."""
    with CsmsStore(tmp_path / "other.db") as store:
        other = Csms(store, admin_token=ADMIN_TOKEN)
        await other.start()
        try:
            assert (await _handshake(f"{site.url}/CP-X"))[0] == 404
            assert ("csms_handshakes_refused_total", (("reason", "unknown"),)) not in await scrape(other)
        finally:
            await other.stop()


async def test_healthz_reports_store_and_loop(site: Csms) -> None:
    """200 while the store takes a write; 503 with reasons when it is read-only or the event loop stalled."""
    status, body = await health(site)
    assert (status, body["status"], body["store_writable"], body["reasons"]) == (200, "ok", True, [])
    site.store._db.execute("PRAGMA query_only = ON")  # the store refuses writes, as on a read-only disk
    try:
        status, body = await health(site)
    finally:
        site.store._db.execute("PRAGMA query_only = OFF")
    assert (status, body["status"], body["store_writable"]) == (503, "fail", False)
    assert "store not writable" in body["reasons"][0]
    asyncio.get_running_loop().call_soon(time.sleep, 1.5)  # a callback that blocks the loop
    await asyncio.sleep(0.6)  # the lag probe wakes after the stall and records it
    status, body = await health(site)
    assert status == 503 and body["store_writable"] is True
    assert body["loop_lag_s"] > 1.0 and "event loop lag" in body["reasons"][0]


async def test_serve_logs_json_lines(tmp_path: Path) -> None:
    """`serve --log-format json`: every stderr line is one JSON object; a refusal names the charger in cp_id."""
    db = tmp_path / "csms.db"
    with CsmsStore(db) as store:
        store.add_charger("CP-1", PASSWORD)
    err_path = tmp_path / "stderr.log"
    with err_path.open("w") as err:
        proc, url = await start_csms_process(db=db, stderr=err, extra_args=("--log-format", "json"))
        try:
            assert (await _handshake(f"{url}/CP-1", _basic("CP-1", "wrong-password")))[0] == 401
            async with connect(
                f"{url}/CP-1", subprotocols=["ocpp1.6"], additional_headers=_basic("CP-1", PASSWORD)
            ) as ws:
                assert (await _call(ws, "1", "BootNotification", BOOT))[0] == 3
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    lines = err_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(datetime.fromisoformat(r["ts"]).utcoffset() == timedelta(0) for r in records)
    refusal = next(r for r in records if "wrong or missing credentials" in r["message"])
    assert (refusal["level"], refusal["cp_id"]) == ("WARNING", "CP-1")
    assert refusal["logger"] == "backend_stub.ocpp.server.refusals"
    assert any(r.get("cp_id") == "CP-1" and r["message"] == "CP-1 connected" for r in records)


async def test_backup_while_the_server_takes_meter_values(tmp_path: Path) -> None:
    """`backup` of a store a running server writes: the copy is intact and holds every MeterValues acknowledged
    before the backup started (and none acknowledged after it ended)."""
    db, copy = tmp_path / "csms.db", tmp_path / "backup" / "copy.db"
    copy.parent.mkdir()
    with CsmsStore(db) as store:
        store.add_charger("CP-1", PASSWORD)
        store.add_card("TAG-1", user_id=store.add_user("Driver").id, mode="personal")
    proc, url = await start_csms_process(db=db)
    acked: list[int] = []
    try:
        headers = _basic("CP-1", PASSWORD)
        async with connect(f"{url}/CP-1", subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
            await _call(ws, "boot", "BootNotification", BOOT)
            start = {
                "connectorId": 1,
                "idTag": "TAG-1",
                "meterStart": 0,
                "timestamp": datetime.now(UTC).isoformat(),
            }
            tx_id = (await _call(ws, "start", "StartTransaction", start))[2]["transactionId"]
            base = datetime.now(UTC)

            async def meter_values() -> None:
                for n in itertools.count():
                    at = (base + timedelta(seconds=n)).isoformat()
                    sample = {"timestamp": at, "sampledValue": [{"value": str(n), "unit": "Wh"}]}
                    payload = {"connectorId": 1, "transactionId": tx_id, "meterValue": [sample]}
                    assert (await _call(ws, f"mv{n}", "MeterValues", payload))[0] == 3
                    acked.append(n)

            writer = asyncio.create_task(meter_values())
            try:
                await until(lambda: len(acked) >= 50, 20, "the server did not take MeterValues")
                acked_before = len(acked)
                backup = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "backend_stub", "backup", "--db", str(db), "--to", str(copy)),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await asyncio.wait_for(backup.communicate(), 60)
                acked_after = len(acked)
                await until(
                    lambda: len(acked) >= acked_after + 20, 20, "MeterValues stopped during the backup"
                )
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert backup.returncode == 0
    summary = json.loads(out)
    assert summary["integrity"] == "ok" and summary["backup"] == str(copy)
    assert not copy.with_name("copy.db.partial").exists()
    with contextlib.closing(sqlite3.connect(copy)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with CsmsStore(copy) as restored:  # a backup opens as a store: this is the restore
        stored = len(restored.meter_values(tx_id))
        assert restored.transaction(tx_id).active
    assert acked_before <= stored <= acked_after


def test_backup_refuses_a_missing_store_and_itself(tmp_path: Path) -> None:
    """Exit status 1 with a message: no store at the path, or the backup would overwrite the store."""
    for args in (["--db", str(tmp_path / "none.db"), "--to", str(tmp_path / "b.db")],):
        done = subprocess.run(
            [sys.executable, "-m", "backend_stub", "backup", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and "no store at" in done.stderr
    db = tmp_path / "csms.db"
    CsmsStore(db).close()
    done = subprocess.run(
        [sys.executable, "-m", "backend_stub", "backup", "--db", str(db), "--to", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "another file" in done.stderr
