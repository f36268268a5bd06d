"""The chargers overview and the sessions page on a phone (issue 16 item 10): nothing wider than 390 px, the
essential columns visible without horizontal scrolling; screenshots at phone and desktop widths."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_stub.app import Csms
from tests.integration.conftest import until
from tests.web.conftest import CP_ID, Browser, StartSiteAgent
from tests.web.test_dashboard import seed_days
from tests.web.test_dashboard_browser import log_in

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
# What an operator must read on each page without scrolling sideways.
ESSENTIAL = {
    "/": ["Charger", "Connection", "Connectors", "Last seen"],
    "/sessions": ["Session", "Charger", "Started", "Energy", "Cost"],
}


@pytest.mark.parametrize("path", ["/", "/sessions"])
async def test_page_fits_a_phone(
    site: Csms, site_agent: StartSiteAgent, browser: Browser, tmp_path: Path, path: str
) -> None:
    seed_days(site, 8)
    await site_agent()
    await until(lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no status")
    name = "overview" if path == "/" else "sessions"

    desktop = await browser.new_page(**DESKTOP)
    await log_in(desktop, site, path)
    await desktop.screenshot(path=tmp_path / f"{name}-desktop.png", full_page=True)

    page = await browser.new_page(**PHONE)
    await log_in(page, site, path)
    await page.screenshot(path=tmp_path / f"{name}-phone.png", full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
    # Every essential column's text is inside the viewport (no cell clipped or scrolled away).
    table = "table.chargers" if path == "/" else "table.sessions"
    for label in ESSENTIAL[path]:
        cells = page.locator(f'{table} tbody [data-label="{label}"]')
        assert await cells.count() > 0, label
        box = await cells.first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
        assert await cells.first.is_visible(), label
