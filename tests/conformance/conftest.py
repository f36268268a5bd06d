"""Fixtures: the bundled central system on 127.0.0.1 with a real store seeded for the CSMS suite, and the
command-line arguments that point the CSMS runner at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend_stub.app import Csms
from backend_stub.domain.ca import CertificateAuthority
from backend_stub.ocpp.server import tls_context
from backend_stub.store import CsmsStore

ADMIN_TOKEN = "conformance-admin-token-0123456789"
CP, CP_PASSWORD = "CP-CONF-1", "conformance-password-1"
CP2, CP2_PASSWORD = "CP-CONF-2", "conformance-password-2"
CP_PENDING = "CP-CONF-PENDING"
CP_UPGRADE, CP_UPGRADE_PASSWORD = "CP-CONF-UP", "conformance-password-up"  # only the security profile upgrade
TAGS = {"accepted": "TAG-OK-1", "blocked": "TAG-BLOCKED", "expired": "TAG-EXPIRED", "invalid": "TAG-NOBODY"}


def seed(store: CsmsStore) -> None:
    """Three accepted chargers with passwords (the third for the security profile upgrade), a pending one, and
    cards with each status the cases need."""
    store.add_charger(CP, CP_PASSWORD)
    store.add_charger(CP2, CP2_PASSWORD)
    store.add_charger(CP_PENDING, status="pending")
    store.add_charger(CP_UPGRADE, CP_UPGRADE_PASSWORD)
    user = store.add_user("QA")
    store.add_card(TAGS["accepted"], user_id=user.id)
    store.add_card(TAGS["blocked"], user_id=user.id, status="blocked")
    store.add_card(TAGS["expired"], user_id=user.id, expiry=datetime.now(UTC) - timedelta(days=1))


@dataclass
class Site:
    """A running bundled central system and the runner arguments that describe it."""

    csms: Csms

    def args(self, *extra: str) -> list[str]:
        """`python -m conformance csms` arguments for this site (REST trigger profile, every setup need)."""
        return [
            "csms",
            "--url",
            self.csms.url,
            "--charger-id",
            CP,
            "--password",
            CP_PASSWORD,
            "--trigger",
            "bundled-csms",
            "--var",
            f"base_url={self.csms.http_url}",
            *(f"--id-tag-{k}={v}" for k, v in TAGS.items()),
            "--second-charger-id",
            CP2,
            "--second-password",
            CP2_PASSWORD,
            "--pending-charger-id",
            CP_PENDING,
            "--call-timeout",
            "5",
            "--trigger-wait",
            "5",
            "-q",
            *extra,
        ]


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    """The bundled central system (OCPP + REST on one 127.0.0.1 port) on a fresh seeded SQLite store."""
    monkeypatch.setenv("CSMS_ADMIN_TOKEN", ADMIN_TOKEN)
    store = CsmsStore(tmp_path / "csms.db")
    seed(store)
    # The CA signs chargers' CSRs (SignCertificate, security whitepaper A02: TC_074_CSMS).
    ca = CertificateAuthority.load_or_create(
        tmp_path / "ca.pem", tmp_path / "ca-key.pem", "Conformance CA", datetime.now(UTC)
    )
    app = Csms(store, heartbeat_interval_s=60, admin_token=ADMIN_TOKEN, ca=ca)
    await app.start()
    try:
        yield Site(app)
    finally:
        await app.stop()
        store.close()


@pytest.fixture
async def upgrade_args(site: Site, pki: Path) -> AsyncIterator[list[str]]:
    """The runner options of the security profile upgrade cases (TC_083_CSMS, TC_A_19_CSMS) on ``site``: its upgrade
    charger goes from profile 1 (the ws:// site) to 2 on the same central system served on wss:// too (a second
    port over the same store)."""
    wss = Csms(site.csms.store, admin_token=ADMIN_TOKEN)
    wss.server.ssl_context = tls_context(pki / "server.pem", pki / "server.key")
    await wss.start()
    try:
        yield [
            "--upgrade-charger-id", CP_UPGRADE, "--upgrade-password", CP_UPGRADE_PASSWORD,
            "--upgrade-url", wss.url, "--tls-ca", str(pki / "ca.pem"),
        ]  # fmt: skip
    finally:
        await wss.stop()
