"""QR payment end to end over HTTP, with a real agent (simulated hardware) connected to the site over OCPP."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import segno

from backend_stub.app import Csms
from backend_stub.domain.payments import PAYMENT_TRANSITIONS
from backend_stub.store import AuthStatus, CardStatus, CsmsStore, LedgerKind, Payment, PaymentStatus
from backend_stub.web import pay as payments
from backend_stub.web.formatting import format_money
from tests.integration.conftest import RunningAgent, until
from tests.web.conftest import ADMIN_TOKEN, CP_ID, StartSiteAgent

FAST_METER = {"meter_value_sample_interval_s": 1}


def svc(site: Csms) -> payments.PaymentService:
    return payments.service(site.server.app)


def provider(site: Csms) -> payments.TestProvider:
    p = svc(site).providers["test"]
    assert isinstance(p, payments.TestProvider)
    return p


async def connected_agent(site: Csms, site_agent: StartSiteAgent, **kwargs: Any) -> RunningAgent:
    """A booted agent whose connector 1 status has reached the store."""
    handle = await site_agent(settings=FAST_METER, **kwargs)
    await until(
        lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no StatusNotification"
    )
    return handle


def major(amount_minor: int | str) -> str:
    """A form amount in EUR as the driver types it (500 -> '5.00'); text is passed through."""
    return (
        amount_minor if isinstance(amount_minor, str) else f"{amount_minor // 100}.{amount_minor % 100:02d}"
    )


async def checkout(http: aiohttp.ClientSession, amount_minor: int | str = 500, connector: int = 1) -> str:
    """Submit the pay form; return the test provider's checkout ref."""
    async with http.post(
        f"/pay/{CP_ID}/{connector}",
        data={"amount": major(amount_minor), "key": "k" * 20 + str(amount_minor)},
        allow_redirects=False,
    ) as r:
        assert r.status == 303, await r.text()
        location = r.headers["Location"]
    match = re.search(r"/pay/test-provider/(tp_[0-9a-f]+)$", location)
    assert match, location
    return match[1]


async def approve(http: aiohttp.ClientSession, ref: str, action: str = "approve") -> str:
    """Approve (or decline) at the test provider; return the status page path."""
    async with http.post(f"/pay/test-provider/{ref}", data={"action": action}, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        location = r.headers["Location"]
    path = "/" + location.split("/", 3)[3]
    assert path.startswith("/pay/status/")
    return path


def payment_of(site: Csms, ref: str) -> Payment:
    p = site.store.payment_by_ref("test", ref)
    assert p is not None
    return p


async def status_state(http: aiohttp.ClientSession, path: str) -> tuple[str, str]:
    async with http.get(path) as r:
        assert r.status == 200
        html = await r.text()
    match = re.search(r'data-state="(\w+)"', html)
    assert match
    return match[1], html


async def wait_status(site: Csms, ref: str, status: PaymentStatus, timeout: float = 10) -> Payment:
    await until(lambda: payment_of(site, ref).status is status, timeout, f"payment never reached {status}")
    return payment_of(site, ref)


def ledger_of(site: Csms, id_tag: str) -> list[tuple[LedgerKind, int]]:
    return [(e.kind, e.amount_minor) for e in site.store.entries(id_tag)]


def remote_starts(site: Csms) -> list[Any]:
    return [
        f
        for f in site.server.log
        if f.direction == "out" and f.action == "RemoteStartTransaction" and f.message_type == 2
    ]


async def post_callback(
    http: aiohttp.ClientSession, body: bytes, signature: str | None
) -> aiohttp.ClientResponse:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[payments.SIGNATURE_HEADER] = signature
    async with http.post("/pay/callback/test", data=body, headers=headers) as r:
        await r.read()
        return r


async def test_happy_path_charges_energy_and_refunds_remainder(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    agent = await connected_agent(site, site_agent)
    ref = await checkout(http, 500)
    assert payment_of(site, ref).status is PaymentStatus.CREATED
    status_path = await approve(http, ref)
    payment = await wait_status(site, ref, PaymentStatus.CAPTURED)
    tag = payment.id_tag
    assert tag is not None and len(tag) <= 20
    assert ledger_of(site, tag) == [(LedgerKind.TOPUP, 500)]
    await until(lambda: len(remote_starts(site)) == 1, 5, "no RemoteStartTransaction")
    assert remote_starts(site)[0].payload == {"connectorId": 1, "idTag": tag}
    state, html = await status_state(http, status_path)
    assert state == "starting", html

    agent.plug()
    await agent.wait_state("CHARGING", timeout=10)
    await until(lambda: payment_of(site, ref).transaction_id is not None, 5, "payment not bound")
    tx_id = payment_of(site, ref).transaction_id
    assert tx_id is not None
    await until(lambda: site.store.transaction(tx_id).energy_wh > 0, 10, "no energy metered")
    state, html = await status_state(http, status_path)
    assert state == "charging", html
    assert "kWh" in html and "Cost so far" in html

    # The idTag is spent: not accepted again, nor at another charger.
    hooks = svc(site).flow
    assert hooks.authorize(CP_ID, tag) is AuthStatus.BLOCKED
    assert hooks.authorize("CP-OTHER", tag) is AuthStatus.INVALID

    agent.unplug()
    payment = await wait_status(site, ref, PaymentStatus.REFUNDED)
    tx = site.store.transaction(tx_id)
    assert not tx.active and tx.energy_wh > 0
    cost = tx.cost_minor
    assert cost is not None and 60 <= cost < 500  # 0.50 EUR session fee + 19% VAT, plus energy
    remainder = 500 - cost
    entries = ledger_of(site, tag)
    assert entries == [
        (LedgerKind.TOPUP, 500),
        (LedgerKind.CHARGE, -cost),
        (LedgerKind.ADJUSTMENT, -remainder),
    ]
    assert site.store.balance(tag) == 0
    assert provider(site).refunded_minor(ref) == remainder
    card = site.store.card(tag)
    assert card is not None and card.status is CardStatus.BLOCKED
    assert site.store.verify_balances() == []
    state, html = await status_state(http, status_path)
    assert state == "finished", html
    assert format_money(remainder, "EUR") in html
    assert 'http-equiv="refresh"' not in html
    history = [s for s, _ in site.store.payment_history(payment.id)]
    assert history == [
        PaymentStatus.CREATED,
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURED,
        PaymentStatus.REFUNDED,
    ]


async def test_repeated_callback_is_idempotent(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    ref = await checkout(http, 700)
    await approve(http, ref)
    payment = await wait_status(site, ref, PaymentStatus.CAPTURED)
    await until(lambda: len(remote_starts(site)) == 1, 5, "no RemoteStartTransaction")
    tp = provider(site)
    body = tp.event_body(ref, "payment.captured")
    signature = tp.sign(body)
    for _ in range(3):  # a fresh event, then the very same delivery replayed
        r = await post_callback(http, body, signature)
        assert r.status == 200
    async with http.post(
        "/pay/callback/test", data=body, headers={payments.SIGNATURE_HEADER: signature}
    ) as r:
        assert (await r.json())["changed"] is False
    late_authorized = tp.event_body(ref, "payment.authorized")
    r = await post_callback(http, late_authorized, tp.sign(late_authorized))
    assert r.status == 200  # stale: the payment has moved on; nothing changes
    assert payment.id_tag is not None
    assert ledger_of(site, payment.id_tag) == [(LedgerKind.TOPUP, 700)]
    assert len(remote_starts(site)) == 1
    assert payment_of(site, ref).status is PaymentStatus.CAPTURED
    # "failed" after capture is refused, and changes nothing.
    failed = tp.event_body(ref, "payment.failed")
    r = await post_callback(http, failed, tp.sign(failed))
    assert r.status == 409
    assert payment_of(site, ref).status is PaymentStatus.CAPTURED


async def test_bad_callbacks_are_rejected(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    ref = await checkout(http, 300)
    tp = provider(site)
    body = tp.event_body(ref, "payment.captured")
    good = tp.sign(body)
    assert (await post_callback(http, body, None)).status == 401
    assert (await post_callback(http, body, good[:-1] + ("0" if good[-1] != "0" else "1"))).status == 401
    assert (await post_callback(http, body + b" ", good)).status == 401  # body changed after signing
    forged = payments.TestProvider(b"not-the-secret" * 3, clock=tp.clock)
    assert (await post_callback(http, body, forged.sign(body))).status == 401
    stale_at = int(tp.clock()) - payments.SIGNATURE_TOLERANCE_S - 10
    assert (await post_callback(http, body, tp.sign(body, at=stale_at))).status == 401
    unknown = json.dumps({"id": "evt_x", "type": "payment.captured", "data": {"ref": "tp_nope"}}).encode()
    assert (await post_callback(http, unknown, tp.sign(unknown))).status == 404
    wrong_amount = json.dumps(
        {"id": "evt_y", "type": "payment.captured", "data": {"ref": ref, "amount_minor": 1}}
    ).encode()
    assert (await post_callback(http, wrong_amount, tp.sign(wrong_amount))).status == 400
    garbage = b"{not json"
    assert (await post_callback(http, garbage, tp.sign(garbage))).status == 400
    async with http.post("/pay/callback/stripe", data=body) as r:
        assert r.status == 404
    payment = payment_of(site, ref)
    assert payment.status is PaymentStatus.CREATED
    assert site.store.card(payment.id_tag or "") is None
    assert site.store.entries() == []


async def test_declined_payment_starts_nothing(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    ref = await checkout(http, 400)
    status_path = await approve(http, ref, "decline")
    assert payment_of(site, ref).status is PaymentStatus.FAILED
    state, html = await status_state(http, status_path)
    assert state == "failed" and "declined" in html
    assert remote_starts(site) == []
    assert site.store.entries() == []


def stop_frames(site: Csms) -> list[Any]:
    return [
        f
        for f in site.server.log
        if f.direction == "out" and f.action == "RemoteStopTransaction" and f.message_type == 2
    ]


async def post_stop(
    http: aiohttp.ClientSession, status_path: str, csrf: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with http.post(
        f"{status_path}/stop", data={"csrf": csrf}, headers=headers or {}, allow_redirects=False
    ) as r:
        return r.status, await r.text()


async def test_driver_stops_only_their_own_session(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    agent = await connected_agent(site, site_agent)
    declined_path = await approve(http, await checkout(http, 400), "decline")
    ref = await checkout(http, 500)
    status_path = await approve(http, ref)
    await until(lambda: len(remote_starts(site)) == 1, 5, "no RemoteStartTransaction")
    agent.plug()
    await agent.wait_state("CHARGING", timeout=10)
    await until(lambda: payment_of(site, ref).transaction_id is not None, 5, "payment not bound")
    payment = payment_of(site, ref)
    state, html = await status_state(http, status_path)
    assert state == "charging" and "Stop charging" in html
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert csrf

    # Refused: a forged form field, a cross-site POST, another payment's link, a made-up link.
    assert (await post_stop(http, status_path, "0" * 32))[0] == 403
    assert (await post_stop(http, status_path, csrf[1], {"Origin": "https://evil.example"}))[0] == 403
    _, declined_html = await status_state(http, declined_path)
    assert "Stop charging" not in declined_html
    other = svc(site).payment_for_token(declined_path.rsplit("/", 1)[1])
    assert other is not None
    assert (await post_stop(http, declined_path, svc(site).stop_csrf(other.id)))[0] == 409
    assert (await post_stop(http, "/pay/status/1-" + "0" * 24, csrf[1]))[0] == 404
    assert stop_frames(site) == []
    assert agent.state() == "CHARGING"

    # The driver's own stop goes to that charger for exactly that transaction.
    status, _ = await post_stop(http, status_path, csrf[1], {"Origin": site.http_url})
    assert status == 303
    assert [f.payload for f in stop_frames(site)] == [{"transactionId": payment.transaction_id}]
    await wait_status(site, ref, PaymentStatus.REFUNDED)
    assert payment.transaction_id is not None
    assert not site.store.transaction(payment.transaction_id).active
    state, html = await status_state(http, status_path)
    assert state == "finished" and "Stop charging" not in html
    # Stopping again: nothing is running any more.
    assert (await post_stop(http, status_path, csrf[1]))[0] == 409
    assert len(stop_frames(site)) == 1


async def test_charger_rejects_start_refunds(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    ref = await checkout(http, 800)
    # Between checkout and capture the operator takes the connector out of service.
    answer = await site.server.call(CP_ID, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer["status"] == "Accepted"
    await until(
        lambda: any(c.status == "Unavailable" for c in site.store.connectors(CP_ID) if c.connector_id == 1), 5
    )
    status_path = await approve(http, ref)
    payment = await wait_status(site, ref, PaymentStatus.REFUNDED)
    assert payment.transaction_id is None
    assert remote_starts(site)[-1].payload["idTag"] == payment.id_tag
    assert payment.id_tag is not None
    assert ledger_of(site, payment.id_tag) == [(LedgerKind.TOPUP, 800), (LedgerKind.ADJUSTMENT, -800)]
    assert provider(site).refunded_minor(ref) == 800
    assert site.store.verify_balances() == []
    state, html = await status_state(http, status_path)
    assert state == "refunded" and "rejected" in html, html
    # And the pay page now refuses new payments for that connector, with a clear message.
    async with http.post(f"/pay/{CP_ID}/1", data={"amount": "5.00"}) as r:
        assert r.status == 409
        assert "unavailable" in (await r.text()).lower()


async def test_charger_not_connected_refunds(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    agent = await connected_agent(site, site_agent)
    ref = await checkout(http, 600)
    await agent.stop()
    await site.server.wait_disconnected(CP_ID)
    status_path = await approve(http, ref)
    await wait_status(site, ref, PaymentStatus.REFUNDED)
    assert remote_starts(site) == []
    assert provider(site).refunded_minor(ref) == 600
    state, html = await status_state(http, status_path)
    assert state == "refunded" and "not connected" in html


async def test_never_started_refunds_after_timeout(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    svc(site).config = replace(svc(site).config, start_timeout_s=1.0)
    agent = await connected_agent(site, site_agent)
    ref = await checkout(http, 900)
    status_path = await approve(http, ref)
    await until(lambda: len(remote_starts(site)) == 1, 5, "no RemoteStartTransaction")
    payment = await wait_status(site, ref, PaymentStatus.REFUNDED, timeout=10)
    assert payment.transaction_id is None
    assert payment.id_tag is not None
    assert ledger_of(site, payment.id_tag) == [(LedgerKind.TOPUP, 900), (LedgerKind.ADJUSTMENT, -900)]
    state, html = await status_state(http, status_path)
    assert state == "refunded" and "no charging session started within 1 s" in html, html

    # The EV arrives late: the charger still holds the remote start, but the spent idTag is refused and the
    # refused session costs nothing.
    agent.plug()
    await until(lambda: bool(site.server.calls("StartTransaction", CP_ID)), 10, "no StartTransaction")
    await until(lambda: bool(site.server.calls("StopTransaction", CP_ID)), 10, "refused session not stopped")
    await until(lambda: not site.store.active_transactions(CP_ID), 5)
    assert ledger_of(site, payment.id_tag) == [
        (LedgerKind.TOPUP, 900),
        (LedgerKind.ADJUSTMENT, -900),
        (LedgerKind.CHARGE, 0),
    ]
    assert payment_of(site, ref).transaction_id is None
    assert site.store.balance(payment.id_tag) == 0
    assert provider(site).refunded_minor(ref) == 900
    assert site.store.verify_balances() == []


async def test_session_stops_when_paid_amount_is_used_up(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    # 50 EUR/kWh at 7.4 kW is about 10 cents a second: 30 cents last about 3 s.
    site.store.put_tariff(
        "pricey",
        json.dumps(
            {
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "ENERGY", "price": 50, "step_size": 1}]}],
            }
        ),
    )
    site.store.set_charger_tariff(CP_ID, "pricey")
    svc(site).config = replace(svc(site).config, min_amount_minor=10)
    agent = await connected_agent(site, site_agent)
    agent.plug()
    await agent.wait_state("PREPARING", timeout=5)
    await until(lambda: any(c.status == "Preparing" for c in site.store.connectors(CP_ID)), 5)
    ref = await checkout(http, 30)
    status_path = await approve(http, ref)
    await agent.wait_state("CHARGING", timeout=10)
    frame = await site.server.wait_for_call("StopTransaction", CP_ID, timeout=20)
    assert frame.payload["reason"] == "Remote"
    assert any(f.action == "RemoteStopTransaction" and f.direction == "out" for f in site.server.log)
    await until(lambda: not site.store.active_transactions(CP_ID), 5)
    payment = payment_of(site, ref)
    assert payment.transaction_id is not None and payment.id_tag is not None
    tx = site.store.transaction(payment.transaction_id)
    assert tx.cost_minor is not None and 0 < tx.cost_minor <= 30
    assert tx.energy_wh >= 5  # 30 cents buy 6 Wh
    assert site.store.balance(payment.id_tag) == 0
    refunded = 30 - tx.cost_minor
    assert provider(site).refunded_minor(ref) == refunded
    expected = [(LedgerKind.TOPUP, 30), (LedgerKind.CHARGE, -tx.cost_minor)]
    assert ledger_of(site, payment.id_tag) == expected + (
        [(LedgerKind.ADJUSTMENT, -refunded)] if refunded else []
    )
    assert site.store.verify_balances() == []
    await until(lambda: payment_of(site, ref).status is not PaymentStatus.CAPTURED or not refunded, 5)
    state, _ = await status_state(http, status_path)
    assert state == "finished"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Enter the amount in EUR"),
        ("abc", "Enter the amount in EUR"),
        ("12.505", "at most 2 decimals"),  # never three decimals, never cents
        ("-5", "Enter the amount in EUR"),
        ("1e3", "Enter the amount in EUR"),
        ("NaN", "Enter the amount in EUR"),
        ("\uff15", "Enter the amount in EUR"),  # a full-width digit: ASCII only
        ("0", "between 1.00 EUR and 100.00 EUR"),
        ("0.99", "between 1.00 EUR and 100.00 EUR"),
        ("100.01", "between 1.00 EUR and 100.00 EUR"),
        ("9" * 40, "Enter the amount in EUR"),
    ],
)
async def test_bad_amounts_are_refused(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, amount: str, message: str
) -> None:
    await connected_agent(site, site_agent)
    async with http.post(f"/pay/{CP_ID}/1", data={"amount": amount}, allow_redirects=False) as r:
        assert r.status == 400
        assert message in await r.text()
    assert site.store.payments_with_status(PaymentStatus.CREATED) == []


async def test_amount_limits_accepted(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    await checkout(http, 100)
    await checkout(http, 10_000)
    assert [p.amount_minor for p in site.store.payments_with_status(PaymentStatus.CREATED)] == [100, 10_000]


async def test_same_form_twice_is_one_payment(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    first = await checkout(http, 500)
    second = await checkout(http, 500)  # the same form key: a double submit
    assert first == second
    assert len(site.store.payments_with_status(PaymentStatus.CREATED)) == 1


async def test_unknown_charger_or_connector_is_404(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    for path in (
        "/pay/NOPE/1",
        "/pay/CP-1/7",
        "/pay/CP-1/0",
        "/pay/CP-1/x",
        "/qr/NOPE/1.svg",
        "/qr/CP-1/7.svg",
    ):
        async with http.get(path) as r:
            assert r.status == 404, path
            if path.startswith("/pay/"):
                assert "Unknown charger" in await r.text()
    async with http.post("/pay/NOPE/1", data={"amount": "5.00"}) as r:
        assert r.status == 404
    for token in ("1-" + "0" * 24, "abc", "99999999-x"):
        async with http.get(f"/pay/status/{token}") as r:
            assert r.status == 404
    async with http.get("/pay/test-provider/tp_unknown") as r:
        assert r.status == 404


async def test_pay_page_shows_status_and_tariff(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    async with http.get(f"/pay/{CP_ID}/1") as r:
        assert r.status == 200
        html = await r.text()
    assert "online" in html and "Available" in html
    assert "per kWh" in html and "0.30 EUR" in html and "0.357 EUR" in html  # 0.30 + 19% VAT
    # A session fee is an amount: in minor units (0.595 -> 0.60), never with three decimals (issue 16 item 11).
    assert "per session" in html and "0.50 EUR" in html and "0.60 EUR" in html and "0.595" not in html
    assert "19 %" in html
    assert 'name="viewport"' in html
    assert "<script" not in html and "http://" not in html.replace(site.http_url, "")  # nothing external
    async with http.get("/static/pay.css") as r:
        assert r.status == 200


def svg_matrix(svg: bytes) -> list[list[int]]:
    """Read the dark modules back out of segno's SVG path (M/m moves, h runs, one row per unit)."""
    root = ET.fromstring(svg)
    width = int(root.attrib["width"])
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    scale = int(re.fullmatch(r"scale\((\d+)\)", path.attrib["transform"])[1])  # type: ignore[index]
    size = width // scale
    grid = [[0] * size for _ in range(size)]
    x = y = 0.0
    for cmd, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.attrib["d"]):
        if cmd == "M":
            x, y = float(a), float(b)
        elif cmd == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(a)):
                grid[int(y)][int(x) + i] = 1
            x += float(a)
    return grid


async def test_qr_code_encodes_the_pay_url(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession
) -> None:
    await connected_agent(site, site_agent)
    async with http.get(f"/qr/{CP_ID}/1.svg") as r:
        assert r.status == 200
        assert r.content_type == "image/svg+xml"
        svg = await r.read()
    url = f"{site.http_url}/pay/{CP_ID}/1"
    assert url.startswith("http://127.0.0.1:")
    qr = segno.make_qr(url, error="m")
    border = 4
    expected = [[0] * (len(qr.matrix) + 2 * border) for _ in range(border)]
    expected += [[0] * border + [int(bool(v)) for v in row] + [0] * border for row in qr.matrix]
    expected += [[0] * (len(qr.matrix) + 2 * border) for _ in range(border)]
    assert svg_matrix(svg) == expected  # valid XML, and exactly the QR code of the pay URL
    assert url.encode() in svg  # the title names the URL too

    svc(site).config = replace(svc(site).config, public_base_url="https://pay.example.org")
    async with http.get(f"/qr/{CP_ID}/1.svg") as r:
        public = await r.read()
    assert svg_matrix(public) != expected
    assert b"https://pay.example.org/pay/CP-1/1" in public


async def test_restart_settles_a_payment_cut_short(tmp_path: Path) -> None:
    """A payment captured just before a crash (no session yet) is refunded when the server starts again."""
    store = CsmsStore(tmp_path / "restart.db")
    store.add_charger(CP_ID)
    tag = "QR00000000000000AB12"
    p = store.create_payment(CP_ID, 1, 400, "test", id_tag=tag, provider_ref="tp_before_crash")
    store.set_payment_status(p.id, PaymentStatus.CAPTURED, transitions=PAYMENT_TRANSITIONS)
    store.add_card(tag, user_id=None, mode="prepaid")
    store.topup(tag, 400, f"payment:{p.id}:topup", payment_id=p.id)
    app = Csms(store, admin_token=ADMIN_TOKEN, payment_provider="test")
    await app.start()
    try:
        await until(lambda: store.payment(p.id).status is PaymentStatus.REFUNDED, 5, "not refunded")
        assert ledger_of(app, tag) == [(LedgerKind.TOPUP, 400), (LedgerKind.ADJUSTMENT, -400)]
        assert provider(app).refunded_minor("tp_before_crash") == 400
        assert store.verify_balances() == []
    finally:
        await app.stop()
        store.close()


async def test_without_a_payment_provider_nothing_is_taken(tmp_path: Path) -> None:
    """The default provider `none`: the pay pages say card payment is not configured; no checkout, no test page."""
    store = CsmsStore(tmp_path / "none.db")
    store.add_charger(CP_ID)
    store.record_status(CP_ID, 1, "Available", datetime.now(UTC))
    app = Csms(store, admin_token=ADMIN_TOKEN)
    await app.start()
    try:
        async with aiohttp.ClientSession(base_url=app.http_url) as http:
            async with http.get(f"/pay/{CP_ID}/1") as resp:
                assert resp.status == 503
                assert "Card payment is not configured" in await resp.text()
            form = {"amount_minor": "500", "provider": "test", "key": "k" * 20}
            async with http.post(f"/pay/{CP_ID}/1", data=form, allow_redirects=False) as resp:
                assert resp.status == 503
                assert "not configured" in await resp.text()
            for method, path in (("GET", "/pay/test-provider/tp_1"), ("POST", "/pay/test-provider/tp_1")):
                async with http.request(method, path, data={"action": "approve"}) as resp:
                    assert resp.status in (404, 405)
            async with http.post("/pay/callback/test", data=b"{}") as resp:
                assert resp.status == 404
        assert svc(app).providers == {}
        for status in PaymentStatus:
            assert store.payments_with_status(status) == []
    finally:
        await app.stop()
        store.close()
