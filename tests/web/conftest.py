"""Fixtures for the central system's HTTP side: a running site (OCPP + REST + pages on one port), a real agent
connected to it over OCPP with its password, an HTTP client, and a real headless Chromium (Debian `chromium`
driven by Playwright through ``executable_path``; Playwright never downloads a browser here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backend_stub.app import Csms
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, RunningAgent, agent_config, until

ADMIN_TOKEN = "test-admin-token-0123456789"
CP_ID = "CP-1"
CP_PASSWORD = "cp-1-password-123"
# 0.30 EUR/kWh + 0.50 EUR per session, 19% VAT: a realistic tariff for pages and pay flows.
TARIFF_ID = "standard"
TARIFF: dict[str, Any] = {
    "id": TARIFF_ID,
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.30, "vat": 19.0, "step_size": 1},
                {"type": "FLAT", "price": 0.50, "vat": 19.0, "step_size": 1},
            ]
        }
    ],
}

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Csms]:
    """The bundled central system on 127.0.0.1 with charger CP-1 (password), a default tariff, admin token."""
    store = CsmsStore(tmp_path / "csms.db")
    store.put_tariff(TARIFF_ID, json.dumps(TARIFF))
    store.set_default_tariff_id(TARIFF_ID)
    store.add_charger(CP_ID, CP_PASSWORD)
    app = Csms(store, heartbeat_interval_s=60, admin_token=ADMIN_TOKEN, payment_provider="test")
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        store.close()


StartSiteAgent = Callable[..., Awaitable[RunningAgent]]


@pytest.fixture
async def site_agent(site: Csms, tmp_path: Path) -> AsyncIterator[StartSiteAgent]:
    """Start real agents (simulated hardware) connected to `site` with their Basic-auth password."""
    running: list[RunningAgent] = []

    async def start(*, cp_id: str = CP_ID, password: str = CP_PASSWORD, **kwargs: Any) -> RunningAgent:
        config = agent_config(
            site.url,
            tmp_path / f"agent-{cp_id}.db",
            cp_id=cp_id,
            csms={"password": password, "security_profile": 1},
            **kwargs,
        )
        agent = Agent(config, timing=FAST_TIMING)
        task = asyncio.create_task(agent.run())
        handle = RunningAgent(agent, task, site.server)
        running.append(handle)
        await until(lambda: agent.started.is_set(), 5, "agent did not start")
        await handle.wait_booted()
        return handle

    try:
        yield start
    finally:
        for handle in running:
            with contextlib.suppress(Exception):
                await handle.stop()


@pytest.fixture
async def http(site: Csms) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for `site` (relative URLs), without credentials."""
    async with aiohttp.ClientSession(base_url=site.http_url) as session:
        yield session


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """The admin bearer token header."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def chromium_path() -> str | None:
    """The Debian chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Browser:
    """A headless Chromium browser (Playwright async API)."""

    browser: Any  # playwright.async_api.Browser

    async def new_page(self, **kwargs: Any) -> Any:
        context = await self.browser.new_context(**kwargs)
        return await context.new_page()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Real headless Chromium; under CI a missing browser fails instead of skipping."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield Browser(b)
        finally:
            await b.close()
