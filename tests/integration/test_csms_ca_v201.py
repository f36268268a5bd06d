"""Issue 13 item 3 for OCPP 2.0.1: SignCertificate (A02) wired to the central system's CA, with a real 2.0.1 client
(the `ocpp` package) on 127.0.0.1; the signed certificate then carries a security profile 3 (TLS) reconnect."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import connect

from backend_stub.app import Csms
from backend_stub.domain.ca import CertificateAuthority
from backend_stub.store import CsmsStore
from tests.integration.conftest import until
from tests.integration.test_csms_ca import client_tls, make_csr, profile3_server_tls
from tests.integration.test_csms_edge import ADMIN, ADMIN_TOKEN, PASSWORD, _basic, _handshake

BOOT = call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")


class Station(ChargePoint):
    """A 2.0.1 station that keeps the CertificateSigned requests it gets and answers them ``answer``."""

    answer = "Accepted"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signed: list[dict[str, Any]] = []

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **kw: Any) -> Any:
        self.signed.append({"certificate_chain": certificate_chain, **kw})
        return call_result.CertificateSigned(status=self.answer)


async def run_station(url: str, cp_id: str, **connect_kw: Any) -> tuple[Station, asyncio.Task[None], Any]:
    """Connect ``cp_id`` as a 2.0.1 station, start its receive loop and boot it."""
    ws = await connect(f"{url}/{cp_id}", subprotocols=["ocpp2.0.1"], **connect_kw)  # type: ignore[list-item]
    assert ws.subprotocol == "ocpp2.0.1"
    station = Station(cp_id, ws)
    task = asyncio.create_task(station.start())
    assert (await station.call(BOOT, suppress=False)).status == "Accepted"
    return station, task, ws


async def stop_station(task: asyncio.Task[None], ws: Any) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await ws.close()


async def test_201_sign_certificate_then_tls_with_it(tmp_path: Path, ca: CertificateAuthority) -> None:
    """Accepted CSR -> CertificateSigned (ChargingStationCertificate, chain leaf CN = station id) -> the record
    kept in the store across a restart, its expiry on the dashboard -> a profile-3 reconnect with it."""
    db = tmp_path / "csms.db"
    with CsmsStore(db) as store:
        store.add_charger("CS-201", PASSWORD)  # the handshake authenticates it: only then is a CSR signed
        app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
        await app.start()
        try:
            station, task, ws = await run_station(
                app.url, "CS-201", additional_headers=_basic("CS-201", PASSWORD)
            )
            key, csr = make_csr("CS-201")
            reply = await station.call(call.SignCertificate(csr=csr), suppress=False)
            assert reply.status == "Accepted"
            await until(lambda: app.central.certificates.issued("CS-201") is not None, 10, "not kept")
            await stop_station(task, ws)
        finally:
            await app.stop()
    assert len(station.signed) == 1
    signed = station.signed[0]
    assert signed["certificate_type"] == "ChargingStationCertificate"
    chain = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())
    assert chain[1] == ca.certificate
    chain[0].verify_directly_issued_by(ca.certificate)
    assert chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CS-201"

    # A new process on the same database still knows the certificate (it was only in memory before).
    with CsmsStore(db) as store:
        app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
        app.server.ssl_context = profile3_server_tls(tmp_path, ca)
        await app.start()
        try:
            tls = client_tls(tmp_path, signed["certificate_chain"], key)
            issued = app.central.certificates.issued("CS-201")
            assert issued is not None and issued.not_after == chain[0].not_valid_after_utc
            async with (
                aiohttp.ClientSession(base_url=app.http_url, headers=ADMIN) as http,
                http.get("/chargers/CS-201", ssl=tls) as resp,
            ):
                page = await resp.text()
            assert f"expires {issued.not_after:%Y-%m-%d %H:%M:%S} UTC" in page
            # Security profile 3 (OCPP 2.0.1 Part 2 block A, Security): TLS with the signed client certificate.
            _station, task, ws = await run_station(app.url, "CS-201", ssl=tls)
            await stop_station(task, ws)
            without = ssl.create_default_context(cadata=ca.pem)  # no client certificate
            assert (await _handshake(f"{app.url}/CS-201", ssl_context=without))[0] == 403
        finally:
            await app.stop()


@pytest.mark.parametrize(
    "request_",
    [
        call.SignCertificate(csr=make_csr("CS-OTHER")[1]),  # another station's id
        call.SignCertificate(
            csr="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        ),
        call.SignCertificate(csr="not a csr"),
        call.SignCertificate(csr=make_csr("CS-201")[1], certificate_type="V2GCertificate"),
    ],
    ids=["other-cn", "bad-der", "garbage", "v2g"],
)
async def test_201_bad_csrs_are_rejected(
    tmp_path: Path, ca: CertificateAuthority, request_: call.SignCertificate
) -> None:
    """A CSR for another station, a malformed one, or a V2G request: Rejected, no CertificateSigned follows."""
    with CsmsStore(tmp_path / "csms.db") as store:
        store.add_charger("CS-201", PASSWORD)  # the handshake authenticates it: only then is a CSR signed
        app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
        await app.start()
        try:
            station, task, ws = await run_station(
                app.url, "CS-201", additional_headers=_basic("CS-201", PASSWORD)
            )
            assert (await station.call(request_, suppress=False)).status == "Rejected"
            await station.call(call.Heartbeat(), suppress=False)  # the link is up
            await stop_station(task, ws)
        finally:
            await app.stop()
        assert station.signed == []
        assert store.client_certificate("CS-201") is None
