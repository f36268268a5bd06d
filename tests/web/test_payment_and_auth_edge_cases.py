"""Regression tests for bugs found in review of the web side (payments, auth helpers, shutdown)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backend_stub.app import Csms
from backend_stub.domain.payments import PAYMENT_TRANSITIONS
from backend_stub.store import CsmsStore, LedgerKind, PaymentStatus
from backend_stub.web import common as webapp
from backend_stub.web import pay as payments
from tests.integration.conftest import until
from tests.web.conftest import ADMIN_TOKEN, CP_ID, StartSiteAgent
from tests.web.test_dashboard import Admin, log_in
from tests.web.test_payments import (
    approve,
    checkout,
    connected_agent,
    ledger_of,
    payment_of,
    provider,
    wait_status,
)


@pytest.mark.parametrize("card_opened", [False, True])
async def test_restart_refunds_a_payment_captured_before_its_top_up(
    tmp_path: Path, card_opened: bool
) -> None:
    """A crash between capture and top-up must still refund the payer in full (it used to refund nothing)."""
    store = CsmsStore(tmp_path / "restart.db")
    store.add_charger(CP_ID)
    tag = "QR00000000000000CD34"
    p = store.create_payment(CP_ID, 1, 400, "test", id_tag=tag, provider_ref="tp_cut_short")
    store.set_payment_status(p.id, PaymentStatus.CAPTURED, transitions=PAYMENT_TRANSITIONS)
    if card_opened:
        store.add_card(tag, user_id=None, mode="prepaid")  # crash after the card, before the top-up
    app = Csms(store, admin_token=ADMIN_TOKEN, payment_provider="test")
    await app.start()
    try:
        await until(lambda: store.payment(p.id).status is PaymentStatus.REFUNDED, 5, "not refunded")
        assert ledger_of(app, tag) == [(LedgerKind.TOPUP, 400), (LedgerKind.ADJUSTMENT, -400)]
        assert provider(app).refunded_minor("tp_cut_short") == 400
        assert store.verify_balances() == []
    finally:
        await app.stop()
        store.close()


async def test_unexpected_error_while_starting_refunds_at_once(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception the start flow did not foresee must not leave a captured payment unrefunded."""
    await connected_agent(site, site_agent)
    real_call = site.server.call

    async def call(cp_id: str, action: str, payload: dict[str, Any], timeout: float | None = None) -> Any:
        if action == "RemoteStartTransaction":
            raise RuntimeError("something nobody expected")
        return await real_call(cp_id, action, payload, timeout)

    monkeypatch.setattr(site.server, "call", call)
    ref = await checkout(http, 600)
    await approve(http, ref)
    payment = await wait_status(site, ref, PaymentStatus.REFUNDED)
    assert payment.id_tag is not None
    assert ledger_of(site, payment.id_tag) == [(LedgerKind.TOPUP, 600), (LedgerKind.ADJUSTMENT, -600)]
    assert provider(site).refunded_minor(ref) == 600
    assert site.store.verify_balances() == []


def _latin1(text: str) -> str:
    """A header value whose bytes are the UTF-8 of `text` (aiohttp sends str headers as latin-1)."""
    return text.encode().decode("latin-1")


async def test_non_ascii_secrets_and_ids_are_refused_not_500(site: Csms, http: aiohttp.ClientSession) -> None:
    """hmac.compare_digest raises TypeError on non-ASCII str and int() refuses '²': both used to answer 500."""
    bad_cookie = {"Cookie": _latin1(f"{webapp.SESSION_COOKIE}=é")}
    cases: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
        ("POST", "/pay/callback/test", {payments.SIGNATURE_HEADER: _latin1("t=1,v1=éé")}, b"{}", 401),
        ("GET", "/pay/status/\u0661-abc", {}, None, 404),
        ("GET", "/pay/status/%C2%B2-abc", {}, None, 404),
        ("GET", f"/pay/{CP_ID}/%C2%B2", {}, None, 404),
        ("GET", f"/pay/{CP_ID}/\u0661", {}, None, 404),
        ("GET", "/", bad_cookie, None, 303),
        ("GET", "/api/users", bad_cookie, None, 401),
        ("GET", "/dash/status.json", bad_cookie, None, 401),
    ]
    for method, path, headers, body, expected in cases:
        async with http.request(method, path, headers=headers, data=body, allow_redirects=False) as r:
            assert r.status == expected, (method, path, r.status, await r.text())


async def test_non_ascii_csrf_token_and_flash_cookie_are_refused_not_500(
    site: Csms, http: aiohttp.ClientSession
) -> None:
    cookie = f"{webapp.SESSION_COOKIE}={_session()}"
    async with http.post(
        "/users", data={"name": "X", "csrf_token": "é" * 64}, headers={"Cookie": cookie}
    ) as r:
        assert r.status == 403
    # A forged flash cookie with non-ASCII text is ignored; the page renders.
    async with http.get("/users", headers={"Cookie": _latin1(f"{cookie}; csms_flash=a.é")}) as r:
        assert r.status == 200


def _session() -> str:
    return webapp.session_value(webapp.token_digest(ADMIN_TOKEN))


async def test_payment_bound_card_takes_no_manual_top_up(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    """Its remainder is refunded to the payer's provider; an operator top-up would make that refund exceed the
    payment, so the provider refuses it and the payer's own remainder is never refunded."""
    await connected_agent(site, site_agent)
    ref = await checkout(http, 500)
    await approve(http, ref)
    payment = await wait_status(site, ref, PaymentStatus.CAPTURED)
    tag = payment.id_tag
    assert tag is not None
    await until(lambda: site.store.card(tag) is not None, 5, "no payment card")
    async with http.post(
        f"/api/cards/{tag}/topup", json={"amount_minor": 100, "key": "op-1"}, headers=admin_headers
    ) as r:
        assert r.status == 409, await r.text()
    async with aiohttp.ClientSession(
        base_url=site.http_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        admin: Admin = await log_in(session)
        page = await admin.post(
            f"/cards/{tag}/topup", {"amount": "1.00", "nonce": "ab" * 10, "back": "/cards"}
        )
        assert "QR payment" in page
    assert ledger_of(site, tag) == [(LedgerKind.TOPUP, 500)]
    assert payment_of(site, ref).status is PaymentStatus.CAPTURED


async def test_stop_cancels_and_awaits_background_tasks(tmp_path: Path) -> None:
    """Csms.stop awaits its cancelled tasks, and a payment task spawned while connections close is cancelled."""
    store = CsmsStore(tmp_path / "stop.db")
    app = Csms(store, admin_token=ADMIN_TOKEN, payment_provider="test")
    svc = payments.service(app.server.app)
    late: list[asyncio.Task[None]] = []

    async def spawn_late(_: Any) -> None:  # runs after the payment service's own on_shutdown
        svc.flow._spawn(asyncio.sleep(100), "late")
        late.extend(svc.flow._tasks)

    app.server.app.on_shutdown.append(spawn_late)
    await app.start()
    csms_task = asyncio.get_running_loop().create_task(asyncio.sleep(100))
    app.central.prepaid._tasks.add(csms_task)  # type: ignore[arg-type]
    try:
        await app.stop()
        assert csms_task.done()
        assert late and all(t.done() for t in late)
    finally:
        store.close()
