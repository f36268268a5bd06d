"""The QR pay flow end to end in a real headless Chromium, with a real agent charging over OCPP."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from backend_stub.app import Csms
from backend_stub.store import PaymentStatus
from backend_stub.web import pay as payments
from backend_stub.web.formatting import format_money
from tests.integration.conftest import until
from tests.web.conftest import CP_ID, Browser, StartSiteAgent

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


async def test_qr_pay_flow_in_chromium(
    site: Csms, site_agent: StartSiteAgent, browser: Browser, tmp_path: Path
) -> None:
    svc = payments.service(site.server.app)
    svc.config = replace(svc.config, status_refresh_s=1)
    agent = await site_agent(settings={"meter_value_sample_interval_s": 1})
    await until(lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5)
    page = await browser.new_page(**PHONE)

    # The QR code points at the pay page; the phone opens it.
    await page.goto(f"{site.http_url}/pay/{CP_ID}/1")
    assert "Available" in await page.inner_text("#connector-status")
    tariff = await page.inner_text("#tariff")
    assert "per kWh" in tariff and "0.357 EUR" in tariff and "per session" in tariff

    # Amounts are asked for in EUR, never in cents (issue 16 item 11).
    assert "in EUR" in await page.inner_text("label[for=amount]")
    assert "cents" not in await page.inner_text("#pay")
    assert "0.60 EUR" in tariff and "0.595" not in tariff
    await page.screenshot(path=tmp_path / "pay-phone.png", full_page=True)
    desktop = await browser.new_page(**DESKTOP)
    await desktop.goto(f"{site.http_url}/pay/{CP_ID}/1")
    await desktop.screenshot(path=tmp_path / "pay-desktop.png", full_page=True)

    # A bad amount is refused by the server with a clear message (the browser's own check is bypassed).
    await page.fill("#amount", "0.595")
    await page.eval_on_selector("form", "f => f.noValidate = true")
    await page.click("#pay-button")
    assert "at most 2 decimals" in await page.inner_text("#error")
    await page.fill("#amount", "0.50")
    await page.eval_on_selector("form", "f => f.noValidate = true")
    await page.click("#pay-button")
    assert "between 1.00 EUR and 100.00 EUR" in await page.inner_text("#error")

    await page.fill("#amount", "5")
    await page.click("#pay-button")
    await page.wait_for_url("**/pay/test-provider/**")
    assert "5.00 EUR" in await page.inner_text("#amount")
    await page.click("#approve")
    await page.wait_for_url("**/pay/status/**")
    await page.wait_for_selector('main[data-state="starting"]', timeout=10_000)

    # The driver plugs in; the page refreshes itself until it shows the session charging.
    agent.plug()
    await page.wait_for_selector('main[data-state="charging"]', timeout=15_000)
    assert agent.state() == "CHARGING"
    await page.wait_for_function(
        "() => document.querySelector('#connector-status')?.textContent.includes('Charging')", timeout=10_000
    )
    await page.wait_for_function(
        "() => parseFloat(document.querySelector('#energy')?.textContent) > 0", timeout=15_000
    )

    # The driver stops from the phone; the charger ends the session, the page shows cost and refund.
    await page.screenshot(path=tmp_path / "status-charging-phone.png", full_page=True)
    await desktop.goto(page.url)
    await desktop.screenshot(path=tmp_path / "status-charging-desktop.png", full_page=True)
    await page.click("#stop-button")
    await page.wait_for_selector('main[data-state="finished"]', timeout=15_000)
    assert agent.state() != "CHARGING"
    await page.screenshot(path=tmp_path / "status-finished-phone.png", full_page=True)
    refs = site.store.payments_with_status(PaymentStatus.REFUNDED)
    assert len(refs) == 1
    payment = refs[0]
    assert payment.transaction_id is not None
    cost = site.store.transaction(payment.transaction_id).cost_minor
    assert cost is not None and 0 < cost < 500
    assert format_money(cost, "EUR") in await page.inner_text("#cost")
    await page.wait_for_function(
        "() => !document.querySelector('#refund').textContent.includes('processing')", timeout=10_000
    )
    assert format_money(500 - cost, "EUR") in await page.inner_text("#refund")
    assert site.store.verify_balances() == []
