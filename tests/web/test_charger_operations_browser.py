"""The charger page's operator commands in a real headless Chromium against the real agent (OCPP 1.6): the device
model asked for and shown, availability changed, a message 1.6 cannot trigger refused with a clear reason, and a
password rotation the charger does not accept leaving the stored password as it was."""

from __future__ import annotations

from backend_stub.app import Csms
from tests.integration.conftest import until
from tests.web.conftest import CP_ID, CP_PASSWORD, Browser, StartSiteAgent
from tests.web.test_dashboard_browser import TIMEOUT_MS, log_in


async def test_operator_commands_on_the_charger_page(
    site: Csms, site_agent: StartSiteAgent, browser: Browser
) -> None:
    from playwright.async_api import expect

    await site_agent()
    await until(lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no status")
    page = await browser.new_page()
    await log_in(page, site, f"/chargers/{CP_ID}")
    flash = page.locator("#flash")

    await page.get_by_role("button", name="Ask the charger for its device model").click()
    await expect(flash).to_contain_text("CP-1 answered base-report: Accepted", timeout=TIMEOUT_MS)
    await page.reload()
    table = page.locator("#device-model table")
    await expect(table).to_contain_text("HeartbeatInterval")
    await expect(table).to_contain_text("OCPP16")

    await page.get_by_label("EVSE (empty: whole charger)").fill("1")
    await page.get_by_label("Make").select_option("Inoperative")
    await page.get_by_role("button", name="Change availability").click()
    await expect(flash).to_have_text("CP-1 answered change-availability: Accepted", timeout=TIMEOUT_MS)
    await until(
        lambda: any(c.connector_id == 1 and c.status == "Unavailable" for c in site.store.connectors(CP_ID)),
        5,
        "connector 1 did not become Unavailable",
    )

    await page.get_by_label("Message").select_option("LogStatusNotification")
    await page.get_by_role("button", name="Trigger").click()
    await expect(flash).to_contain_text("not a message OCPP 1.6 can trigger", timeout=TIMEOUT_MS)

    # The agent takes an AuthorizationKey (Security whitepaper, issue 11): the stored password becomes the new key
    # once the agent accepted it, and the old one no longer verifies.
    await page.get_by_role("button", name="Rotate password").click()
    await expect(flash).to_have_text("CP-1 answered rotate-password: Accepted", timeout=TIMEOUT_MS)
    await until(
        lambda: not site.store.verify_password(CP_ID, CP_PASSWORD), 5, "the old password still verifies"
    )
