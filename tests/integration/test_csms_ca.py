"""Issue 13 item 3: the central system's CA for security profile 3, with a raw OCPP 1.6 client on 127.0.0.1.

The client makes its key and CSR with `cryptography`, sends SignCertificate (1.6 security whitepaper), answers the
CertificateSigned that follows, verifies the chain against the CA, then reconnects over TLS with the signed
certificate to a server that requires client certificates from that CA.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.client import ClientConnection, connect

from backend_stub.app import Csms
from backend_stub.domain.ca import CertificateAuthority
from backend_stub.ocpp.server import tls_context
from backend_stub.store import CsmsStore
from tests.integration.conftest import until
from tests.integration.test_csms_edge import ADMIN, ADMIN_TOKEN, BOOT, PASSWORD, _basic, _call, _handshake

NOW = datetime.now(UTC)


def make_csr(cn: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None) -> tuple[Any, str]:
    """A private key and a PEM CSR with subject CN ``cn``."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CsmsStore]:
    with CsmsStore(tmp_path / "csms.db") as s:
        s.add_charger("CP-1", PASSWORD)
        yield s


def profile3_server_tls(tmp_path: Path, ca: CertificateAuthority) -> ssl.SSLContext:
    """A server context for 127.0.0.1 (certificate from ``ca``) that requires client certificates from ``ca``."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.certificate.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=5))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "ca-only.pem").write_text(ca.pem)
    return tls_context(tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca-only.pem")


def client_tls(tmp_path: Path, chain_pem: str, key: Any) -> ssl.SSLContext:
    """A charger's client context: trusts the CA (the chain's last certificate), presents ``chain_pem``."""
    (tmp_path / "client.pem").write_text(chain_pem)
    (tmp_path / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    client = ssl.create_default_context(
        cadata=x509.load_pem_x509_certificates(chain_pem.encode())[-1]
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    client.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    return client


async def booted(url: str) -> ClientConnection:
    ws = await connect(f"{url}/CP-1", subprotocols=["ocpp1.6"], additional_headers=_basic("CP-1", PASSWORD))
    assert (await _call(ws, "boot", "BootNotification", BOOT))[2]["status"] == "Accepted"
    return ws


async def next_call(ws: ClientConnection, action: str) -> list[Any]:
    """The next CALL from the server (it must be ``action``)."""
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] == 2:
                assert frame[2] == action
                return list(frame)


async def test_sign_certificate_then_tls_with_it(
    store: CsmsStore, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Accepted CSR -> CertificateSigned chain (leaf CN = charger id, signed by the CA) -> profile-3 reconnect."""
    app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
    await app.start()
    try:
        ws = await booted(app.url)
        key, csr = make_csr("CP-1")
        assert (await _call(ws, "sign", "SignCertificate", {"csr": csr}))[2] == {"status": "Accepted"}
        call = await next_call(ws, "CertificateSigned")
        await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        await ws.close()
    finally:
        await app.stop()
    chain = x509.load_pem_x509_certificates(call[3]["certificateChain"].encode())
    assert len(chain) == 2 and chain[1] == ca.certificate
    leaf = chain[0]
    leaf.verify_directly_issued_by(ca.certificate)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issued = app.central.certificates.issued("CP-1")
    assert issued is not None and issued.not_after == leaf.not_valid_after_utc

    # Security profile 3: the server requires client certificates from this CA; the charger uses the new one.
    app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
    app.server.ssl_context = profile3_server_tls(tmp_path, ca)
    await app.start()
    try:
        client = client_tls(tmp_path, call[3]["certificateChain"], key)
        async with connect(f"{app.url}/CP-1", subprotocols=["ocpp1.6"], ssl=client) as tls_ws:
            assert (await _call(tls_ws, "boot", "BootNotification", BOOT))[2]["status"] == "Accepted"
        without = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        assert (await _handshake(f"{app.url}/CP-1", ssl_context=without))[0] == 403
    finally:
        await app.stop()


@pytest.mark.parametrize(
    "csr",
    [
        make_csr("CP-2")[1],  # another charger's id
        make_csr("cp-1")[1],  # not the same id
        make_csr("CP-1", rsa.generate_private_key(65537, 1024))[1],  # a weak key
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "not a csr",
        "",
    ],
    ids=["other-cn", "case", "rsa-1024", "bad-der", "garbage", "empty"],
)
async def test_bad_csrs_are_rejected(store: CsmsStore, ca: CertificateAuthority, csr: str) -> None:
    """An invalid CSR, or one whose CN is not the charger id, gets Rejected and no CertificateSigned."""
    app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
    await app.start()
    try:
        ws = await booted(app.url)
        assert (await _call(ws, "sign", "SignCertificate", {"csr": csr}))[2] == {"status": "Rejected"}
        assert (await _call(ws, "hb", "Heartbeat", {}))[0] == 3  # no CALL came in between
        await ws.close()
    finally:
        await app.stop()
    assert app.central.certificates.issued("CP-1") is None


async def test_without_a_ca_every_csr_is_rejected(store: CsmsStore) -> None:
    app = Csms(store, admin_token=ADMIN_TOKEN)
    await app.start()
    try:
        ws = await booted(app.url)
        assert (await _call(ws, "sign", "SignCertificate", {"csr": make_csr("CP-1")[1]}))[2][
            "status"
        ] == "Rejected"
        await ws.close()
    finally:
        await app.stop()


async def test_serve_generates_and_keeps_its_ca(tmp_path: Path) -> None:
    """First start: a CA next to the db, key mode 0600; the second start uses the same CA."""
    db = tmp_path / "csms.db"
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "backend_stub", "serve", "--port", "0", "--db", str(db)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).startswith(b"ws://")
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        if _ == 0:
            first = (tmp_path / "csms.db.ca.pem").read_bytes()
    assert (tmp_path / "csms.db.ca.pem").read_bytes() == first
    mode = stat.S_IMODE(os.stat(tmp_path / "csms.db.ca-key.pem").st_mode)
    assert mode == 0o600
    CertificateAuthority.load(tmp_path / "csms.db.ca.pem", tmp_path / "csms.db.ca-key.pem")


async def test_certificates_from_the_rest_api_and_expiry_on_the_dashboard(
    store: CsmsStore, ca: CertificateAuthority
) -> None:
    """InstallCertificate, DeleteCertificate and GetInstalledCertificateIds go out through the command port with
    the 1.6 payloads; the charger page shows the expiry of the certificate our CA signed for it."""
    app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
    await app.start()
    received: list[list[Any]] = []
    hash_data = {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "ab" * 32,
        "issuerKeyHash": "cd" * 32,
        "serialNumber": "0a1b",
    }
    answers = {
        "CertificateSigned": {"status": "Accepted"},
        "InstallCertificate": {"status": "Accepted"},
        "DeleteCertificate": {"status": "NotFound"},
        "GetInstalledCertificateIds": {"status": "Accepted", "certificateHashData": [hash_data]},
    }
    try:
        ws = await booted(app.url)

        results: dict[str, Any] = {}

        async def charger() -> None:
            """The charger's side: answer the server's CALLs, keep the answers to ours."""
            async for text in ws:
                frame = json.loads(text)
                if frame[0] == 2:
                    received.append(frame)
                    await ws.send(json.dumps([3, frame[1], answers[frame[2]]]))
                else:
                    results[frame[1]] = frame[2]

        responder = asyncio.create_task(charger())
        await ws.send(json.dumps([2, "sign", "SignCertificate", {"csr": make_csr("CP-1")[1]}]))
        await until(lambda: "sign" in results, 10, "no SignCertificate answer")
        assert results["sign"] == {"status": "Accepted"}
        await until(
            lambda: app.central.certificates.issued("CP-1") is not None, 10, "no CertificateSigned accepted"
        )
        async with aiohttp.ClientSession(base_url=app.http_url, headers=ADMIN) as http:
            async with http.post(
                "/api/chargers/CP-1/certificates", json={"kind": "csms_root", "pem": ca.pem}
            ) as resp:
                assert (resp.status, (await resp.json())["status"]) == (200, "Accepted")
            delete = {
                "hash_algorithm": "SHA256",
                "issuer_name_hash": "ab" * 32,
                "issuer_key_hash": "cd" * 32,
                "serial_number": "0a1b",
            }
            async with http.post("/api/chargers/CP-1/certificates/delete", json=delete) as resp:
                assert (resp.status, (await resp.json())["status"]) == (200, "NotFound")
            async with http.get("/api/chargers/CP-1/certificates?kind=manufacturer_root") as resp:
                listed = await resp.json()
            issued = app.central.certificates.issued("CP-1")
            assert issued is not None
            assert listed["certificates"] == [delete]
            assert listed["client_certificate"]["serial_number"] == issued.serial_hex
            for bad in ({"kind": "csms_root", "pem": "not a certificate"}, {"kind": "other", "pem": ca.pem}):
                async with http.post("/api/chargers/CP-1/certificates", json=bad) as resp:
                    assert resp.status == 400
            async with http.post(
                "/api/chargers/CP-1/certificates/delete", json={**delete, "serial_number": "x"}
            ) as resp:
                assert resp.status == 400
            async with http.get("/api/chargers/CP-9/certificates") as resp:
                assert resp.status == 404
            async with http.get("/chargers/CP-1") as resp:
                page = await resp.text()
        responder.cancel()
        await ws.close()
    finally:
        await app.stop()
    assert [f[2] for f in received] == [
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "GetInstalledCertificateIds",
    ]
    assert received[1][3] == {"certificateType": "CentralSystemRootCertificate", "certificate": ca.pem}
    assert received[2][3] == {"certificateHashData": hash_data}
    assert received[3][3] == {"certificateType": "ManufacturerRootCertificate"}
    assert f"expires {issued.not_after:%Y-%m-%d %H:%M:%S} UTC" in page


def _leaf(ca: CertificateAuthority, cn: list[str], san: list[str]) -> tuple[Any, str]:
    """A client certificate signed by ``ca`` with the given commonNames and DNS subjectAltNames (PEM chain)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name) for name in cn]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=5))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in san]), critical=False
        )
    leaf = builder.sign(ca.key, hashes.SHA256())
    return key, leaf.public_bytes(serialization.Encoding.PEM).decode() + ca.pem


async def test_profile_3_identity_is_the_one_common_name_not_an_alt_name(
    store: CsmsStore, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A certificate from the trusted CA passes only for the charger its single CN names: alt names listing
    CP-1, or a second CN, do not make it CP-1's (else one certificate could pass for a whole fleet)."""
    store.add_charger("CP-2", PASSWORD)
    app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
    app.server.ssl_context = profile3_server_tls(tmp_path, ca)
    await app.start()
    try:
        for cn, san in ((["FLEET"], ["CP-1", "CP-2"]), (["CP-2", "CP-1"], []), (["CP-2"], ["CP-1"])):
            key, chain = _leaf(ca, cn, san)
            status, _ = await _handshake(f"{app.url}/CP-1", ssl_context=client_tls(tmp_path, chain, key))
            assert status in (401, 403), (cn, san, status)
        key, chain = _leaf(ca, ["CP-1"], [])
        assert (await _handshake(f"{app.url}/CP-1", ssl_context=client_tls(tmp_path, chain, key)))[0] == 101
    finally:
        await app.stop()
