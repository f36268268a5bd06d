"""The operator dashboard in a real headless Chromium: log in with the token, watch a charger go from Available to
Charging and back without reloading, see the daily chart, and press command buttons against a real agent."""

from __future__ import annotations

from typing import Any

from backend_stub.app import Csms
from backend_stub.store import CardMode
from tests.integration.conftest import until
from tests.web.conftest import ADMIN_TOKEN, CP_ID, Browser, StartSiteAgent

CARD = "04A2B3C4"
TIMEOUT_MS = 15_000


async def log_in(page: Any, site: Csms, path: str = "/") -> None:
    """Open a page, get sent to the login form, type the token and land back on the page."""
    await page.goto(site.http_url + path)
    assert "/login" in page.url
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(site.http_url + path)


async def test_overview_follows_a_session_live(
    site: Csms, site_agent: StartSiteAgent, browser: Browser
) -> None:
    from playwright.async_api import expect

    user = site.store.add_user("Ada Lovelace")
    site.store.add_card(CARD, user_id=user.id, mode=CardMode.PERSONAL)
    agent = await site_agent()
    await until(lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no status")

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await log_in(page, site)

    badge = page.locator(f'[data-live="connector"][data-cp="{CP_ID}"][data-connector="1"]')
    await expect(badge).to_have_text("Available", timeout=TIMEOUT_MS)
    await expect(page.locator(f'[data-live="connected"][data-cp="{CP_ID}"]')).to_have_text("online")
    # A marker on the window survives only if the page is never reloaded.
    await page.evaluate("window.__noReload = 42")

    agent.plug()
    agent.swipe(CARD)
    await agent.wait_state("CHARGING")
    await expect(badge).to_have_text("Charging", timeout=TIMEOUT_MS)
    await expect(badge).to_have_class("status status-charging")
    await expect(page.locator(f'[data-live="active"][data-cp="{CP_ID}"]')).to_have_text("1")

    agent.unplug()
    await expect(badge).to_have_text("Available", timeout=TIMEOUT_MS)
    await expect(page.locator(f'[data-live="active"][data-cp="{CP_ID}"]')).to_have_text("0")
    assert await page.evaluate("window.__noReload") == 42
    await expect(page.locator("[data-live-updated]")).to_contain_text("UTC")

    # The finished session shows in the charger's daily chart: an inline SVG with energy and revenue bars.
    await page.get_by_role("link", name=CP_ID, exact=True).click()
    await page.wait_for_url(f"{site.http_url}/chargers/{CP_ID}")
    chart = page.locator("svg.bar-chart")
    await expect(chart).to_be_visible()
    assert await chart.locator("rect.bar-energy").count() == 14
    assert await chart.locator("rect.bar-revenue").count() == 14
    heights = await chart.locator("rect.bar").evaluate_all(
        "bars => bars.map(b => b.getBoundingClientRect().height)"
    )
    assert max(heights) > 10, heights  # today's bars are drawn at full height
    fill = await chart.locator("rect.bar-energy").last.evaluate("b => getComputedStyle(b).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)"), fill  # the local stylesheet applies (no CDN)
    assert errors == [], errors


async def test_command_buttons_show_the_charger_reply(
    site: Csms, site_agent: StartSiteAgent, browser: Browser
) -> None:
    from playwright.async_api import expect

    user = site.store.add_user("Grace Hopper")
    site.store.add_card(CARD, user_id=user.id)
    agent = await site_agent()
    await until(lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no status")

    page = await browser.new_page()
    await log_in(page, site, f"/chargers/{CP_ID}")

    await page.get_by_label("idTag").fill(CARD)
    await page.get_by_role("button", name="Remote start").click()
    flash = page.locator("#flash")
    await expect(flash).to_have_text("CP-1 answered RemoteStartTransaction: Accepted", timeout=TIMEOUT_MS)
    agent.plug()
    await agent.wait_state("CHARGING")
    await until(lambda: bool(site.store.active_transactions(CP_ID)), 5, "no StartTransaction")

    await page.reload()
    await page.get_by_role("button", name="Remote stop").first.click()
    await expect(flash).to_have_text("CP-1 answered RemoteStopTransaction: Accepted", timeout=TIMEOUT_MS)
    await until(lambda: not site.store.active_transactions(CP_ID), 5, "session did not stop")

    await page.get_by_label("Type").select_option("Soft")
    await page.get_by_role("button", name="Reset", exact=True).click()
    await expect(flash).to_have_text("CP-1 answered Reset: Accepted", timeout=TIMEOUT_MS)
    await expect(flash).to_have_attribute("role", "status")
