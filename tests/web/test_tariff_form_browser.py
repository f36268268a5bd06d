"""The tariff form in a real headless Chromium (issue 16 item 7): add a tariff, see it described, edit it; the
form's CSRF field and the page's CSP hold; screenshots at desktop and phone widths."""

from __future__ import annotations

import json
from pathlib import Path

from backend_stub.app import Csms
from tests.web.conftest import Browser
from tests.web.test_dashboard_browser import log_in

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def test_add_and_edit_a_tariff_in_chromium(site: Csms, browser: Browser, tmp_path: Path) -> None:
    from playwright.async_api import expect

    page = await browser.new_page(**DESKTOP)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await log_in(page, site, "/tariffs")
    form = page.locator("form.tariff-form").last
    await form.get_by_label("Tariff id").fill("night")
    await form.get_by_label("Energy, per kWh (EUR, excl. VAT)").fill("0.22")
    await form.get_by_label("Session fee, per session (EUR, excl. VAT)").fill("0.50")
    await form.get_by_label("VAT (%)").fill("19")
    await form.get_by_label("Only from (local time)").fill("22:00")
    await form.get_by_label("until").fill("06:00")
    await form.get_by_role("button", name="Add tariff").click()
    await expect(page.locator("#flash")).to_have_text("Tariff night added.")
    section = page.locator("#tariff-night")
    await expect(section).to_contain_text("0.22 EUR per kWh, plus 19% VAT")
    await expect(section).to_contain_text("between 22:00 and 06:00 local time")
    await page.screenshot(path=tmp_path / "tariffs-desktop.png", full_page=True)

    await section.get_by_text("Edit night").click()
    await section.get_by_label("Energy, per kWh (EUR, excl. VAT)").fill("0.24")
    await section.get_by_role("button", name="Save night").click()
    await expect(page.locator("#flash")).to_have_text("Tariff night saved.")
    stored = json.loads(site.store.tariff_json("night") or "{}")
    assert stored["elements"][0]["price_components"][0] == {
        "type": "ENERGY",
        "price": 0.24,
        "step_size": 1,
        "vat": 19.0,
    }

    phone = await browser.new_page(**PHONE)
    await log_in(phone, site, "/tariffs")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    await phone.screenshot(path=tmp_path / "tariffs-phone.png", full_page=True)
    assert errors == [], errors
