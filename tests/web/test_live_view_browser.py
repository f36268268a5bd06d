"""The live charger view in a real headless Chromium (issue 16 item 9): "last seen" from any message, the running
session's power and energy curve redrawn by the poll, and the overview's site totals; screenshots at desktop and
phone widths under the test's tmp dir."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backend_stub.app import Csms
from backend_stub.store import CardMode
from tests.integration.conftest import until
from tests.web.conftest import CP_ID, Browser, StartSiteAgent
from tests.web.test_dashboard_browser import log_in

CARD = "04A2B3C4"
TIMEOUT_MS = 15_000
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SAMPLED = {
    "meter_value_sample_interval_s": 1,
    "meter_values_sampled_data": ["Energy.Active.Import.Register", "Power.Active.Import"],
}


async def test_live_charger_view_and_site_totals(
    site: Csms, site_agent: StartSiteAgent, browser: Browser, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    site.store.add_card(CARD, user_id=site.store.add_user("Ada").id, mode=CardMode.PERSONAL)
    # A session that ended earlier today counts in today's energy and revenue.
    start = datetime.now(UTC).replace(hour=0, minute=5, second=0, microsecond=0)
    old = site.store.start_transaction(CP_ID, 1, CARD, 0, start)
    site.store.stop_transaction(
        CP_ID, old, 2000, start + timedelta(minutes=10), "Local", site.central.pricing.price
    )
    earlier = site.store.transaction(old)
    assert earlier.cost_minor is not None

    agent = await site_agent(settings=SAMPLED)
    await until(lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no status")
    charger = site.store.charger(CP_ID)
    assert charger is not None and charger.last_heartbeat is None  # heartbeats come every 60 s only

    page = await browser.new_page(**DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await log_in(page, site)
    # Boot and StatusNotification are messages too: "last seen" is set long before the first heartbeat.
    last_seen = page.locator(f'[data-live="last-seen"][data-cp="{CP_ID}"]')
    await expect(last_seen).to_contain_text("UTC")
    assert "Revenue today" in await page.inner_text("#site-totals")
    await expect(page.locator('[data-live-total="energy"]')).to_have_text("2.000 kWh")

    agent.plug()
    agent.swipe(CARD)
    await agent.wait_state("CHARGING")
    await expect(page.locator('[data-live-total="power"]')).not_to_have_text("0.0 kW", timeout=TIMEOUT_MS)
    power_kw = float((await page.inner_text('[data-live-total="power"]')).split()[0])
    assert power_kw > 1, power_kw  # the simulated EV draws kilowatts
    await page.screenshot(path=tmp_path / "overview-desktop.png", full_page=True)

    # The charger page draws the running session's curves and the poll redraws them as samples arrive.
    await page.get_by_role("link", name=CP_ID, exact=True).click()
    await page.wait_for_url(f"{site.http_url}/chargers/{CP_ID}")
    power_line = page.locator("#live polyline.curve-power")
    energy_line = page.locator("#live polyline.curve-energy")
    await expect(energy_line).to_have_count(1, timeout=TIMEOUT_MS)
    before = len((await energy_line.get_attribute("points") or "").split())
    await page.wait_for_function(
        f"() => (document.querySelector('#live polyline.curve-energy')?.getAttribute('points') || '')"
        f".trim().split(/\\s+/).length > {before + 1}",
        timeout=TIMEOUT_MS,
    )
    assert await power_line.count() == 1
    await expect(page.locator("#live .panel.power .last-value")).to_contain_text("kW")
    box = await page.locator("#live svg.line-chart").bounding_box()
    assert box is not None and box["height"] > 100
    stroke = await energy_line.evaluate("l => getComputedStyle(l).stroke")
    assert stroke not in ("", "none"), stroke  # the local stylesheet applies
    await page.screenshot(path=tmp_path / "charger-live-desktop.png", full_page=True)
    phone = await browser.new_page(**PHONE)
    await log_in(phone, site, f"/chargers/{CP_ID}")
    await expect(phone.locator("#live polyline.curve-energy")).to_have_count(1)
    await phone.screenshot(path=tmp_path / "charger-live-phone.png", full_page=True)

    agent.unplug()
    await expect(page.locator("#live")).to_contain_text("No session is running", timeout=TIMEOUT_MS)
    await until(lambda: not site.store.active_transactions(), 5)
    total = await page.locator('[data-live-total="revenue"]').count()
    assert total == 0  # totals live on the overview only
    await page.goto(site.http_url + "/")
    revenue = await page.inner_text('[data-live-total="revenue"]')
    tx_costs = sum(tx.cost_minor or 0 for tx in site.store.recent_transactions())
    assert re.fullmatch(r"[0-9.,]+ EUR", revenue) and round(float(revenue.split()[0]) * 100) == tx_costs
    assert errors == [], errors
