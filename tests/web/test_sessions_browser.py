"""The sessions page in a real headless Chromium: date filter, paging and CSV export (issue 16 item 8), at
desktop and phone widths, with screenshots under the test's tmp dir."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from backend_stub.app import Csms
from tests.web.conftest import Browser
from tests.web.test_dashboard import seed_days
from tests.web.test_dashboard_browser import log_in

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def test_sessions_filter_paging_and_csv_in_chromium(
    site: Csms, browser: Browser, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    ids = seed_days(site)
    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page = await browser.new_page(accept_downloads=True, **size)
        errors: list[str] = []
        page.on("console", lambda msg, e=errors: e.append(msg.text) if msg.type == "error" else None)
        await log_in(page, site, "/sessions?limit=5")
        rows = page.locator("table.sessions tbody tr")
        await expect(rows).to_have_count(5)
        await page.get_by_role("link", name="Older →").click()
        await expect(page.locator("#page-range")).to_have_text("Sessions 6\u201310")
        await page.screenshot(path=tmp_path / f"sessions-page2-{name}.png", full_page=True)

        await page.get_by_label("Started from").fill("2026-01-10")
        await page.get_by_label("to", exact=True).fill("2026-01-12")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**/sessions?*from=2026-01-10*")
        await expect(rows).to_have_count(3)
        first_cells = await rows.locator("td:first-child").all_inner_texts()
        assert [int(t) for t in first_cells] == [ids[11], ids[10], ids[9]]
        await page.screenshot(path=tmp_path / f"sessions-filtered-{name}.png", full_page=True)

        async with page.expect_download() as info:
            await page.get_by_role("link", name="Export these sessions (CSV)").click()
        download = await info.value
        saved = tmp_path / f"sessions-{name}.csv"
        await download.save_as(saved)
        table = list(csv.reader(io.StringIO(saved.read_text())))
        assert [int(r[0]) for r in table[1:]] == [ids[11], ids[10], ids[9]]
        assert errors == [], errors
