"""The QR payment flow with an OCPP 2.0.1 station (the `ocpp` package's ChargePoint over websockets)."""

from __future__ import annotations

import base64
from datetime import timedelta

import aiohttp
from ocpp.v201 import call
from websockets.asyncio.client import connect

from backend_stub.app import Csms
from backend_stub.store import LedgerKind, PaymentStatus
from tests.integration.conftest import until
from tests.integration.test_csms_v201 import Running, energy, event
from tests.web.conftest import CP_ID, CP_PASSWORD
from tests.web.test_payments import approve, checkout, ledger_of, provider, wait_status


async def test_a_qr_payment_starts_and_settles_a_201_session(site: Csms, http: aiohttp.ClientSession) -> None:
    auth = base64.b64encode(f"{CP_ID}:{CP_PASSWORD}".encode()).decode()
    ws = await connect(
        f"{site.url}/{CP_ID}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Basic {auth}"},
    )
    running = Running(ws, CP_ID)
    try:
        boot = await running.cp.ask(
            call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
        )
        assert boot.status == "Accepted"
        await running.cp.ask(
            call.StatusNotification(
                timestamp="2026-11-22T10:00:00Z", connector_status="Available", evse_id=1, connector_id=1
            )
        )
        ref = await checkout(http, 500)
        await approve(http, ref)
        payment = await wait_status(site, ref, PaymentStatus.CAPTURED)
        tag = payment.id_tag
        assert tag is not None
        await until(lambda: bool(running.cp.commands), 5, "no RequestStartTransaction")
        name, fields = running.cp.commands[0]
        assert name == "RequestStartTransaction" and fields["id_token"]["id_token"] == tag
        now = site.central.clock()
        t0, t1 = (now - timedelta(minutes=2)).isoformat(), now.isoformat()
        started = await running.cp.ask(
            event("Started", 0, "qr-tx", t0, token=tag, meter_value=energy(0, "Transaction.Begin", t0))
        )
        assert started.id_token_info["status"] == "Accepted"
        await running.cp.ask(event("Ended", 1, "qr-tx", t1, meter_value=energy(200, "Transaction.End", t1)))
        payment = await wait_status(site, ref, PaymentStatus.REFUNDED)
    finally:
        await running.close()
    assert payment.transaction_id is not None
    tx = site.store.transaction(payment.transaction_id)
    cost = tx.cost_minor
    assert tx.station_tx_id == "qr-tx" and tx.energy_wh == 200 and cost is not None and 0 < cost < 500
    assert ledger_of(site, tag) == [
        (LedgerKind.TOPUP, 500),
        (LedgerKind.CHARGE, -cost),
        (LedgerKind.ADJUSTMENT, -(500 - cost)),
    ]
    assert provider(site).refunded_minor(ref) == 500 - cost
    assert site.store.verify_balances() == []
    assert site.store.security_events(cp_id=CP_ID) == []
