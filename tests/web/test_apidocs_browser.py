"""Interactive API docs at /api/docs in a real headless Chromium: Swagger UI served by the central system itself
(no CDN), reachable from the dashboard, and a call tried from the page with the admin token."""

from __future__ import annotations

from pathlib import Path

from backend_stub.app import Csms
from tests.web.conftest import ADMIN_TOKEN, Browser
from tests.web.test_dashboard_browser import TIMEOUT_MS, log_in


async def test_api_docs_render_every_route_and_try_a_call(
    site: Csms, browser: Browser, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    page = await browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    await log_in(page, site)
    await page.get_by_role("link", name="API", exact=True).click()
    await page.wait_for_url(f"{site.http_url}/api/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "central system", timeout=TIMEOUT_MS
    )
    # Every documented operation is listed.
    await expect(page.locator(".opblock-summary-path[data-path='/api/chargers']").first).to_be_visible()
    assert await page.locator(".opblock").count() >= 20
    await page.screenshot(path=str(tmp_path / "api-docs-desktop.png"), full_page=False)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=str(tmp_path / "api-docs-phone.png"), full_page=False)
    await page.set_viewport_size({"width": 1280, "height": 800})

    # Authorize with the token, then try GET /api/chargers from the page.
    await page.get_by_role("button", name="Authorize").first.click()
    await page.locator(".auth-container input").first.fill(ADMIN_TOKEN)
    await page.locator(".auth-btn-wrapper button.authorize").click()
    await page.locator(".btn-done").click()
    block = page.locator(
        "#operations-chargers-get_api_chargers, .opblock-get:has([data-path='/api/chargers'])"
    )
    await block.first.locator(".opblock-summary").click()
    await block.first.get_by_role("button", name="Try it out").click()
    await block.first.get_by_role("button", name="Execute").click()
    await expect(block.first.locator(".live-responses-table tbody .response-col_status").first).to_have_text(
        "200", timeout=TIMEOUT_MS
    )
    # Nothing came from another origin.
    assert all(url.startswith(site.http_url) for url in requests), [
        u for u in requests if site.http_url not in u
    ]
    assert errors == [], errors


async def test_api_docs_are_public_but_calls_are_not(site: Csms, browser: Browser) -> None:
    page = await browser.new_page()
    response = await page.goto(site.http_url + "/api/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    api = await page.request.get(site.http_url + "/api/chargers")
    assert api.status == 401
