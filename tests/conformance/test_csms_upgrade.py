"""Security profile upgrade cases against the bundled central system on 127.0.0.1: OCPP 1.6 TC_083_CSMS
(ChangeConfiguration SecurityProfile, Reset Hard) and OCPP 2.0.1 TC_A_19_CSMS (SetNetworkProfile one profile up,
NetworkConfigurationPriority, Reset), each on its own upgrade charger (--upgrade-charger-id), from profile 1 (ws://)
to 2 (wss://, --upgrade-url) and from 2 to 3 (client certificate); it must then be refused at the old profile, so a
second run is a setup error naming the fix. Negative control: a central system that never records the higher
profile admits the charger at the old one again and fails both cases. Without the upgrade charger the cases are
inconclusive, naming the options."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from backend_stub.app import Csms
from backend_stub.ocpp.server import tls_context
from backend_stub.store import CsmsStore
from conformance.__main__ import run_cli
from conformance.report import Report
from tests.conformance.test_csms_suite import pki, reasons, verdicts

__all__ = ["pki"]  # the openssl-made CA, server certificate and CP-1's client certificate (a module fixture)

pytestmark = pytest.mark.timeout(300)

CP, CP_PASSWORD = "CP-1", "main-password-0123456789"
UP_PASSWORD = "upgrade-password-0123456789"
TOKEN = "upgrade-admin-token-0123456789"
CASE = {"1.6": "TC_083_CSMS", "2.0.1": "TC_A_19_CSMS"}


def client_certificate(pki: Path, cp_id: str) -> tuple[Path, Path]:
    """A client certificate for ``cp_id`` signed by the fixture's CA (its key is ca.key there)."""
    cert, key, csr = pki / f"{cp_id}.pem", pki / f"{cp_id}.key", pki / f"{cp_id}.csr"
    if not cert.exists():
        (pki / "clientauth.ext").write_text("extendedKeyUsage=clientAuth\n")
        for argv in (
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={cp_id}"],
            ["x509", "-req", "-in", csr.name, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", cert.name, "-days", "2", "-extfile", "clientauth.ext"],
        ):  # fmt: skip
            subprocess.run(["openssl", *argv], cwd=pki, check=True, capture_output=True)
    return cert, key


class Site:
    """The bundled central system serving the lower profile (``lower``: 1 on ws://, 2 on wss://) and, on a second
    port over the same store, the higher one (2: wss:// with passwords, 3: wss:// with client certificates), and a
    plain-HTTP relay to its commands.

    The relay stands in for the REST command API (`POST /api/chargers/{cp}/commands/{Action}`, which the
    bundled-csms trigger profile uses): on a wss:// port that API is https with the test CA, which the runner's HTTP
    client does not trust. It makes the central system send exactly the CALL asked for, as that API does."""

    def __init__(self, lower: Csms, higher: Csms, relay_url: str) -> None:
        self.lower, self.higher, self.relay_url = lower, higher, relay_url


@pytest.fixture(params=[1, 2], ids=["from-1", "from-2"])
async def site(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Site]:
    monkeypatch.setenv("CSMS_ADMIN_TOKEN", TOKEN)  # read by the bundled-csms profile
    store = CsmsStore(tmp_path / "up.db")
    store.add_charger(CP, CP_PASSWORD)
    for version in CASE:
        store.add_charger(f"CP-UP-{version}", UP_PASSWORD)
    server, key, ca = pki / "server.pem", pki / "server.key", pki / "ca.pem"
    lower_tls = None if request.param == 1 else tls_context(server, key)
    higher_tls = tls_context(server, key) if request.param == 1 else tls_context(server, key, client_ca=ca)
    apps = [Csms(store, admin_token=TOKEN), Csms(store, admin_token=TOKEN)]
    apps[0].server.ssl_context, apps[1].server.ssl_context = lower_tls, higher_tls
    for app in apps:
        await app.start()

    async def command(req: web.Request) -> web.Response:
        cp, action = req.match_info["cp"], req.match_info["action"]
        return web.json_response(await apps[0].server.call(cp, action, await req.json()))

    relay_app = web.Application()
    relay_app.router.add_post("/api/chargers/{cp}/commands/{action}", command)
    relay = web.AppRunner(relay_app)
    await relay.setup()
    await web.TCPSite(relay, "127.0.0.1", 0).start()
    try:
        yield Site(apps[0], apps[1], f"http://127.0.0.1:{relay.addresses[0][1]}")
    finally:
        await relay.cleanup()
        for app in apps:
            await app.stop()
        store.close()


async def run_upgrade(
    site: Site, pki: Path, version: str, *, upgrade: bool = True
) -> tuple[int, Report | None]:
    cert, key = client_certificate(pki, f"CP-UP-{version}")
    args = [
        "csms", "--version", version, "--url", site.lower.url, "--charger-id", CP, "--password", CP_PASSWORD,
        "--tls-ca", str(pki / "ca.pem"), "--trigger", "bundled-csms", "--var", f"base_url={site.relay_url}",
        "--cases", CASE[version], "--call-timeout", "5", "--trigger-wait", "5", "-q",
    ]  # fmt: skip
    if upgrade:
        args += [
            "--upgrade-charger-id", f"CP-UP-{version}", "--upgrade-password", UP_PASSWORD,
            "--upgrade-url", site.higher.url, "--upgrade-tls-cert", str(cert), "--upgrade-tls-key", str(key),
        ]  # fmt: skip
    return await run_cli(args)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_bundled_central_system_passes_the_security_profile_upgrade_case(
    site: Site, pki: Path, version: str
) -> None:
    code, report = await run_upgrade(site, pki, version)
    assert verdicts(report) == {CASE[version]: "passed"}, reasons(report)
    assert code == 0
    assert report is not None
    [result] = report.results
    trace = "\n".join(t.text for t in result.trace)
    assert "refused: HTTP 401" in trace  # the old profile after the upgrade
    sent = "ChangeConfiguration" if version == "1.6" else "SetNetworkProfile"
    assert f'"{sent}"' in trace
    # The charger stays up there: a second run finds the precondition broken and says so (a setup error, exit 2).
    code, report = await run_upgrade(site, pki, version)
    assert verdicts(report) == {CASE[version]: "setup_error"}
    assert "register a fresh --upgrade-charger-id" in reasons(report)[CASE[version]]
    assert code == 2


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_central_system_admitting_the_lower_profile_after_the_upgrade_fails(
    site: Site, pki: Path, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It never records that the charger used the higher profile, so the lower one stays good enough.
    monkeypatch.setattr(site.lower.store, "raise_security_profile", lambda cp_id, profile: None)
    code, report = await run_upgrade(site, pki, version)
    assert verdicts(report) == {CASE[version]: "failed"}
    assert f"admitted CP-UP-{version} at security profile" in reasons(report)[CASE[version]]
    assert "a charger must not fall back to a lower profile" in reasons(report)[CASE[version]]
    assert code == 1


async def test_without_an_upgrade_charger_the_upgrade_case_is_inconclusive(site: Site, pki: Path) -> None:
    code, report = await run_upgrade(site, pki, "1.6", upgrade=False)
    assert verdicts(report) == {"TC_083_CSMS": "inconclusive"}
    assert "needs --upgrade-charger-id ID --upgrade-password PW" in reasons(report)["TC_083_CSMS"]
    assert code == 0
