"""The CSMS runner's 2.0.1 TLS cases against the bundled central system on 127.0.0.1 over wss://: it refuses a
TLS 1.1 handshake (TC_A_06_CSMS), admits a charger by its client certificate (TC_A_07_CSMS) and refuses one from
an unknown CA (TC_A_08_CSMS); negative controls: a central system that completes TLS 1.1 handshakes fails
TC_A_06_CSMS, one that does not check client certificates fails TC_A_08_CSMS, one refusing CSRs fails the
certificate renewal cases TC_A_11/TC_A_14_CSMS."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from backend_stub.app import Csms
from backend_stub.ocpp.server import OCPP201, tls_context
from backend_stub.store import CsmsStore
from conformance.__main__ import run_cli
from conformance.report import Report
from tests.conformance.conftest import Site
from tests.conformance.test_csms_suite import pki, reasons, verdicts

__all__ = ["pki"]  # the openssl-made CA, server certificate and CP-1's client certificate (a module fixture)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning"),
]

CASES = ("TC_A_06_CSMS", "TC_A_07_CSMS", "TC_A_08_CSMS")


async def run_tls_cases(tmp_path: Path, pki: Path, server_tls: ssl.SSLContext) -> tuple[int, Report | None]:
    """The three cases as CP-1 (registered without a password: its certificate identifies it) over wss://."""
    store = CsmsStore(tmp_path / "tls.db")
    store.add_charger("CP-1")
    app = Csms(store, admin_token="tls-admin-token-0123456789")
    app.server.ssl_context = server_tls
    await app.start()
    try:
        return await run_cli(
            [
                "csms",
                "--version",
                "2.0.1",
                "--url",
                app.url,
                "--charger-id",
                "CP-1",
                "--tls-ca",
                str(pki / "ca.pem"),
                "--tls-cert",
                str(pki / "client.pem"),
                "--tls-key",
                str(pki / "client.key"),
                "--cases",
                ",".join(CASES),
                "-q",
            ]
        )
    finally:
        await app.stop()
        store.close()


async def test_the_bundled_central_system_passes_the_201_tls_cases(tmp_path: Path, pki: Path) -> None:
    server_tls = tls_context(pki / "server.pem", pki / "server.key", client_ca=pki / "ca.pem")
    code, report = await run_tls_cases(tmp_path, pki, server_tls)
    assert report is not None
    assert verdicts(report) == dict.fromkeys(CASES, "passed"), reasons(report)
    assert code == 0
    too_low = next(r for r in report.results if r.id == "TC_A_06_CSMS")
    assert any("offering only TLSv1.1" in t.text for t in too_low.trace)


async def test_a_central_system_completing_tls_1_1_fails_tc_a_06(tmp_path: Path, pki: Path) -> None:
    server_tls = tls_context(pki / "server.pem", pki / "server.key", client_ca=pki / "ca.pem")
    server_tls.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_tls.minimum_version = ssl.TLSVersion.TLSv1_1
    code, report = await run_tls_cases(tmp_path, pki, server_tls)
    assert report is not None
    assert verdicts(report) == {"TC_A_06_CSMS": "failed", "TC_A_07_CSMS": "passed", "TC_A_08_CSMS": "passed"}
    assert reasons(report)["TC_A_06_CSMS"] == (
        "the CSMS completed a TLSv1.1 handshake; OCPP 2.0.1 A00.FR.304 asks for TLS 1.2 or above"
    )
    assert code == 1


async def test_a_central_system_not_checking_client_certificates_fails_tc_a_08(
    tmp_path: Path, pki: Path
) -> None:
    # Server TLS without a client CA: no certificate is asked for, so any (or none) gets in.
    code, report = await run_tls_cases(tmp_path, pki, tls_context(pki / "server.pem", pki / "server.key"))
    assert report is not None
    v = verdicts(report)
    assert v["TC_A_08_CSMS"] == "failed"
    assert reasons(report)["TC_A_08_CSMS"] == (
        "the CSMS opened a WebSocket for a client certificate from an unknown CA (A00.FR.407)"
    )
    assert v["TC_A_06_CSMS"] == "passed" and code == 1


async def test_a_central_system_refusing_csrs_fails_the_certificate_renewal_cases(site: Site) -> None:
    """TC_A_11/TC_A_14_CSMS: the bundled central system passes them (whole-suite test); one whose 2.0.1
    SignCertificate answers Rejected fails both, citing A02.FR.11."""
    table = site.csms.server.handlers_by_subprotocol[OCPP201.subprotocol]
    table["SignCertificate"] = lambda cp_id, payload: {"status": "Rejected"}
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", "TC_A_11_CSMS,TC_A_14_CSMS"))
    assert report is not None
    assert verdicts(report) == {"TC_A_11_CSMS": "failed", "TC_A_14_CSMS": "failed"}
    assert all("A02.FR.11" in reason for reason in reasons(report).values())
    assert code == 1
