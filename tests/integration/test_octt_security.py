"""OCTT 1.6 Security cases where the charge point is the system under test (TC_073-078, TC_083), over loopback with
real TLS: the real agent against the scripted central system or the bundled one (its CA signs our CSR).

The firmware cases (TC_080, TC_081) and the security log (TC_079) need branch agent-firmware (GetLog,
SignedUpdateFirmware); they are not here yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from backend_stub.app import Csms
from backend_stub.domain.ca import CertificateAuthority
from backend_stub.ocpp.server import CallErrorReply, tls_context
from backend_stub.store import CsmsStore
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.certificates import pem_hash_data
from chargepoint.core.storage import CertificateUse, InstalledCertificate
from chargepoint.store import Store
from tests.integration.conftest import FAST_TIMING, agent_config, until
from tests.integration.octt_support import CP
from tests.pki import Issued, issue

NOW = datetime.now(UTC)
PASSWORD = "first-password-1234"
NEW_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # 16 bytes as hex


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A CSMS root, a server certificate for 127.0.0.1 from it, and an unrelated root with its own server."""
    d = tmp_path_factory.mktemp("pki")
    root = issue("CSMS Root", NOW, ca=True, days=30)
    server = issue("127.0.0.1", NOW, issuer=root, server_ip="127.0.0.1")
    other = issue("Other Root", NOW, ca=True, days=30)
    rogue = issue("127.0.0.1", NOW, issuer=other, server_ip="127.0.0.1")
    (d / "root.pem").write_text(root.pem)
    return {
        "dir": d,
        "root": root,
        "other": other,
        "server": server.write(d, "server"),
        "rogue": rogue.write(d, "rogue"),
    }


class Agents:
    """Agents run in the test's loop, stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[tuple[Agent, asyncio.Task[None]]] = []

    async def start(self, url: str, **kwargs: Any) -> Agent:
        agent = Agent(agent_config(url, self.tmp_path / "agent.db", **kwargs), timing=FAST_TIMING)
        self.running.append((agent, asyncio.create_task(agent.run())))
        await until(agent.started.is_set, 5, "agent did not start")
        return agent

    async def stop(self, agent: Agent) -> None:
        for a, task in list(self.running):
            if a is agent:
                a.shutdown()
                with contextlib.suppress(asyncio.CancelledError):
                    async with asyncio.timeout(15):
                        await task
                self.running.remove((a, task))


@pytest.fixture
async def agents(tmp_path: Path) -> AsyncIterator[Agents]:
    handle = Agents(tmp_path)
    try:
        yield handle
    finally:
        for agent, _ in list(handle.running):
            await handle.stop(agent)


def online(agent: Agent) -> Callable[[], bool]:
    return lambda: agent.link is not None and agent.link.online


async def security_event(cs: CentralSystem, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The payload of the charger's SecurityEventNotification of ``kind``."""
    frame = await cs.wait_for_call(
        "SecurityEventNotification", timeout=timeout, where=lambda p: p["type"] == kind
    )
    return frame.payload


async def config_value(cs: CentralSystem, key: str) -> dict[str, Any]:
    answer = await cs.call(CP, "GetConfiguration", {"key": [key]})
    (entry,) = answer["configurationKey"]
    return dict(entry)


# ---- TC_073_CS: update the charge point password for HTTP Basic authentication -----------------------------------


async def test_tc_073_cs_update_charge_point_password(
    agents: Agents, caplog: pytest.LogCaptureFixture
) -> None:
    """The new AuthorizationKey is Accepted, never read back nor logged (not even in the frame log), used for the
    next connection (at once) and kept across a restart; a ReconfigurationOfSecurityParameters event is sent."""
    caplog.set_level(logging.DEBUG, logger="chargepoint")
    async with CentralSystem(port=low_port()) as cs:
        cs.passwords[CP] = PASSWORD
        agent = await agents.start(cs.url, csms={"security_profile": 1, "password": PASSWORD})
        await until(online(agent), 5)
        assert agent.link is not None
        connections = agent.link.connections
        answer = await cs.call(CP, "ChangeConfiguration", {"key": "AuthorizationKey", "value": NEW_KEY})
        assert answer == {"status": "Accepted"}
        cs.passwords[CP] = NEW_KEY  # the CSMS now expects the new key only
        await until(
            lambda: agent.link is not None and agent.link.connections > connections, 5, "no reconnect"
        )
        await until(online(agent), 5)
        assert await config_value(cs, "AuthorizationKey") == {"key": "AuthorizationKey", "readonly": False}
        event = await security_event(cs, "ReconfigurationOfSecurityParameters")
        assert NEW_KEY not in str(event)
        await agents.stop(agent)

        agent = await agents.start(cs.url, csms={"security_profile": 1, "password": PASSWORD})
        await until(online(agent), 5, "the restarted agent did not log in with the stored key")
    agent_lines = [r.getMessage() for r in caplog.records if r.name.startswith("chargepoint")]
    assert any("ChangeConfiguration" in line for line in agent_lines)  # the frame log was on
    assert not [line for line in agent_lines if NEW_KEY in line]


@pytest.mark.parametrize(
    "value",
    ["a1b2c3d4e5f6071829", "zz" * 16, "ab" * 41, "ab" * 15 + "a", "", "ab " * 16],
    ids=["short", "not-hex", "long", "odd", "empty", "spaces"],
)
async def test_a_bad_authorization_key_is_rejected_and_changes_nothing(agents: Agents, value: str) -> None:
    async with CentralSystem(port=low_port()) as cs:
        cs.passwords[CP] = PASSWORD
        agent = await agents.start(cs.url, csms={"security_profile": 1, "password": PASSWORD})
        await until(online(agent), 5)
        assert agent.link is not None
        connections = agent.link.connections
        answer = await cs.call(CP, "ChangeConfiguration", {"key": "AuthorizationKey", "value": value})
        assert answer == {"status": "Rejected"}
        await asyncio.sleep(0.3)
        assert agent.link.connections == connections and agent.link.online
        assert agent.link.password() == PASSWORD


# ---- TC_075_CS / TC_076_CS: install and delete certificates ------------------------------------------------------


async def test_tc_075_cs_install_a_certificate(agents: Agents, pki: dict[str, Any]) -> None:
    """Both root types are installed and listed with their hash data; GetInstalledCertificateIds of an empty type
    says NotFound."""
    async with CentralSystem(port=low_port()) as cs:
        agent = await agents.start(cs.url)
        await until(online(agent), 5)
        root: Issued = pki["root"]
        empty = await cs.call(
            CP, "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}
        )
        assert empty == {"status": "NotFound"}
        for kind, pem in (
            ("CentralSystemRootCertificate", root.pem),
            ("ManufacturerRootCertificate", pki["other"].pem),
        ):
            answer = await cs.call(CP, "InstallCertificate", {"certificateType": kind, "certificate": pem})
            assert answer == {"status": "Accepted"}
        listed = await cs.call(
            CP, "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
        )
        expected = pem_hash_data(root.pem)
        assert listed == {
            "status": "Accepted",
            "certificateHashData": [
                {
                    "hashAlgorithm": "SHA256",
                    "issuerNameHash": expected.issuer_name_hash,
                    "issuerKeyHash": expected.issuer_key_hash,
                    "serialNumber": expected.serial_number,
                }
            ],
        }
        assert agent.store is not None
        assert [c.pem for c in agent.store.installed_certificates(CertificateUse.MANUFACTURER_ROOT)] == [
            pki["other"].pem
        ]


@pytest.mark.parametrize("case", ["garbage", "expired", "not-a-ca", "two-certificates", "store-full"])
async def test_bad_install_certificate_is_rejected_and_installs_nothing(
    agents: Agents, pki: dict[str, Any], case: str
) -> None:
    async with CentralSystem(port=low_port()) as cs:
        agent = await agents.start(cs.url)
        await until(online(agent), 5)
        if case == "store-full":  # CertificateStoreMaxLength (16) roots installed already
            for n in range(16):
                pem = issue(f"Root {n}", NOW, ca=True).pem
                first = {"certificateType": "ManufacturerRootCertificate", "certificate": pem}
                assert (await cs.call(CP, "InstallCertificate", first))["status"] == "Accepted"
        pem = {
            "garbage": "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
            "expired": issue("Old", NOW - timedelta(days=10), ca=True, days=1).pem,
            "not-a-ca": issue("Leaf", NOW).pem,
            "two-certificates": pki["root"].pem + pki["other"].pem,
            "store-full": pki["root"].pem,
        }[case]
        answer = await cs.call(
            CP, "InstallCertificate", {"certificateType": "CentralSystemRootCertificate", "certificate": pem}
        )
        assert answer == {"status": "Rejected"}
        assert agent.store is not None
        assert agent.store.installed_certificates(CertificateUse.CENTRAL_SYSTEM_ROOT) == []


async def test_an_oversize_certificate_gets_a_call_error_and_the_link_stays_up(agents: Agents) -> None:
    async with CentralSystem(port=low_port()) as cs:
        agent = await agents.start(cs.url)
        await until(online(agent), 5)
        with pytest.raises(CallErrorReply):
            await cs.call(
                CP,
                "InstallCertificate",
                {"certificateType": "CentralSystemRootCertificate", "certificate": "A" * 6000},
            )
        assert (
            await cs.call(
                CP, "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
            )
        )["status"] == "NotFound"


def _hash_json(pem: str, algorithm: str = "SHA256") -> dict[str, str]:
    h = pem_hash_data(pem, algorithm)
    return {
        "hashAlgorithm": h.hash_algorithm,
        "issuerNameHash": h.issuer_name_hash.upper(),  # another spelling of the same hash
        "issuerKeyHash": h.issuer_key_hash,
        "serialNumber": h.serial_number.upper(),
    }


async def test_tc_076_cs_delete_a_certificate(agents: Agents, pki: dict[str, Any]) -> None:
    """Delete by hash data (SHA256 or SHA384, any spelling): Accepted, then NotFound."""
    async with CentralSystem(port=low_port()) as cs:
        agent = await agents.start(cs.url)
        await until(online(agent), 5)
        for kind, pem in (
            ("CentralSystemRootCertificate", pki["root"].pem),
            ("ManufacturerRootCertificate", pki["other"].pem),
        ):
            await cs.call(CP, "InstallCertificate", {"certificateType": kind, "certificate": pem})
        answer = await cs.call(
            CP, "DeleteCertificate", {"certificateHashData": _hash_json(pki["other"].pem, "SHA384")}
        )
        assert answer == {"status": "Accepted"}
        answer = await cs.call(CP, "DeleteCertificate", {"certificateHashData": _hash_json(pki["other"].pem)})
        assert answer == {"status": "NotFound"}
        listed = await cs.call(
            CP, "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}
        )
        assert listed == {"status": "NotFound"}
        # Profile 0: the CSMS root is not in use, so it may go.
        answer = await cs.call(CP, "DeleteCertificate", {"certificateHashData": _hash_json(pki["root"].pem)})
        assert answer == {"status": "Accepted"}


# ---- TC_083_CS: upgrade the security profile, and fall back when the new one fails -------------------------------


# A server swapped on its port (plain -> TLS, TLS -> client certificates), or stopped before the agent that talks to
# it, leaves the port free while the agent reconnects. Taken from below the kernel's ephemeral range
# (ip_local_port_range starts at 32768), it cannot be handed to another test's server bound to port 0 meanwhile,
# which the reconnecting agent (CP-1, like theirs) would then talk to. Every server in this file uses one.
LOW_PORTS = (20_000, 32_000)


def low_port() -> int:
    """A free port below the ephemeral range."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(*LOW_PORTS)
        with contextlib.closing(socket.socket()) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free low port")


async def _serve(port: int | None, tls: tuple[Path, Path] | None = None) -> CentralSystem:
    """A scripted central system on ``port`` (None: a free low port), plain or TLS."""
    cs = CentralSystem(
        port=low_port() if port is None else port, ssl_context=tls_context(*tls) if tls else None
    )
    await cs.start()
    return cs


async def test_tc_083_cs_upgrade_security_profile_1_to_2(agents: Agents, pki: dict[str, Any]) -> None:
    """Profile 1 -> 2: the CSMS installs its root, asks for profile 2; the charger reconnects over TLS (wss://,
    the installed root verifying the server) and keeps profile 2 after a restart. Lower or unknown profiles are
    Rejected."""
    plain = await _serve(None)
    port = plain.port
    plain.passwords[CP] = PASSWORD
    tls_cs: CentralSystem | None = None
    try:
        agent = await agents.start(plain.url, csms={"security_profile": 1, "password": PASSWORD})
        await until(online(agent), 5)
        install = {"certificateType": "CentralSystemRootCertificate", "certificate": pki["root"].pem}
        assert (await plain.call(CP, "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}))[
            "status"
        ] == "Rejected", "profile 2 needs a CentralSystemRootCertificate first"
        assert (await plain.call(CP, "InstallCertificate", install))["status"] == "Accepted"
        for bad in ("0", "1", "9", "x"):
            answer = await plain.call(CP, "ChangeConfiguration", {"key": "SecurityProfile", "value": bad})
            assert answer == {"status": "Rejected"}, bad
        answer = await plain.call(CP, "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"})
        assert answer == {"status": "Accepted"}
        await plain.stop()
        tls_cs = await _serve(port, pki["server"])
        tls_cs.passwords[CP] = PASSWORD
        await tls_cs.wait_connected(CP, 10)
        assert agent.link is not None and agent.link.url().startswith("wss://")
        assert await config_value(tls_cs, "SecurityProfile") == {
            "key": "SecurityProfile",
            "readonly": False,
            "value": "2",
        }
        await security_event(tls_cs, "ReconfigurationOfSecurityParameters")
        await agents.stop(agent)
        agent = await agents.start(plain.url, csms={"security_profile": 1, "password": PASSWORD})
        await until(online(agent), 10, "the restarted agent did not use profile 2")
        assert agent.link is not None and agent.link.profiles.active == 2
    finally:
        with contextlib.suppress(Exception):
            await plain.stop()
        if tls_cs is not None:
            await tls_cs.stop()


async def test_tc_083_cs_a_new_profile_that_fails_falls_back(agents: Agents, pki: dict[str, Any]) -> None:
    """Profile 1 -> 2 against a server whose certificate the installed root does not verify: after a few tries the
    charger goes back to profile 1 and reports InvalidCentralSystemCertificate once it is connected again."""
    plain = await _serve(None)
    port = plain.port
    rogue: CentralSystem | None = None
    try:
        agent = await agents.start(plain.url, csms={"security_profile": 1, "password": PASSWORD})
        await until(online(agent), 5)
        install = {"certificateType": "CentralSystemRootCertificate", "certificate": pki["root"].pem}
        assert (await plain.call(CP, "InstallCertificate", install))["status"] == "Accepted"
        assert (await plain.call(CP, "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}))[
            "status"
        ] == "Accepted"
        await plain.stop()
        rogue = await _serve(port, pki["rogue"])
        assert agent.link is not None
        link = agent.link
        await until(lambda: link.profiles.pending is None, 10, "never fell back")
        assert link.profiles.active == 1 and not link.url().startswith("wss://")
        assert not rogue.calls("BootNotification") and not rogue.log
        await rogue.stop()
        rogue = None
        plain = await _serve(port)
        await plain.wait_connected(CP, 10)
        event = await security_event(plain, "InvalidCentralSystemCertificate")
        assert "certificate verify failed" in event.get("techInfo", "")
        assert (
            len(
                [
                    f
                    for f in plain.calls("SecurityEventNotification")
                    if f.payload["type"] == "InvalidCentralSystemCertificate"
                ]
            )
            == 1
        )
    finally:
        with contextlib.suppress(Exception):
            await plain.stop()
        if rogue is not None:
            await rogue.stop()


# ---- TC_078_CS: invalid CentralSystemCertificate ------------------------------------------------------------------


async def test_tc_078_cs_invalid_central_system_certificate(agents: Agents, pki: dict[str, Any]) -> None:
    """A server certificate from another CA: no connection; the event is queued and sent once a trusted server is
    there (nothing lost offline)."""
    rogue = await _serve(None, pki["rogue"])
    port = rogue.port
    csms = {"security_profile": 2, "password": PASSWORD, "ca_file": str(pki["dir"] / "root.pem")}
    good: CentralSystem | None = None
    try:
        agent = await agents.start(rogue.url, csms=csms)
        assert agent.link is not None
        link = agent.link
        await until(lambda: link.reconnects >= 2, 10)
        assert not rogue.log and not link.online
        await rogue.stop()
        good = await _serve(port, pki["server"])
        await good.wait_connected(CP, 10)
        event = await security_event(good, "InvalidCentralSystemCertificate")
        assert event["timestamp"]
    finally:
        with contextlib.suppress(Exception):
            await rogue.stop()
        if good is not None:
            await good.stop()


# ---- TC_077_CS: invalid ChargePointCertificate, TC_074_CS: the certificate by request of the central system ----


def _sign(
    ca: Issued, csr_pem: str, cn: str | None = None, days: float = 30, not_before: datetime | None = None
) -> str:
    """A certificate for the CSR's key, as ``cn`` (default: the CSR's CN), signed by ``ca``: leaf + CA."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    name = cn or str(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(csr.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(minutes=5))
        .not_valid_after(NOW + timedelta(days=days))
        .sign(ca.key, hashes.SHA256())
    )
    return leaf.public_bytes(serialization.Encoding.PEM).decode() + ca.pem


async def test_tc_077_cs_invalid_charge_point_certificate(agents: Agents, pki: dict[str, Any]) -> None:
    """CertificateSigned with garbage, another CN, an expired leaf or from an untrusted CA is Rejected with an
    InvalidChargePointCertificate event; nothing is installed; a valid one is then Accepted. A chain over
    CertificateSignedMaxChainSize (10,000, the schema's bound) gets a CallError."""
    async with CentralSystem(port=low_port()) as cs:
        csrs: list[str] = []

        def sign_certificate(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
            csrs.append(payload["csr"])
            return {"status": "Accepted"}

        cs.handlers["SignCertificate"] = sign_certificate
        agent = await agents.start(cs.url, settings={"cpo_name": "Example CPO"})
        await until(online(agent), 5)
        install = {"certificateType": "CentralSystemRootCertificate", "certificate": pki["root"].pem}
        assert (await cs.call(CP, "InstallCertificate", install))["status"] == "Accepted"
        trigger = {"requestedMessage": "SignChargePointCertificate"}
        assert await cs.call(CP, "ExtendedTriggerMessage", trigger) == {"status": "Accepted"}
        await until(lambda: bool(csrs), 5, "no SignCertificate")
        csr = x509.load_pem_x509_csr(csrs[0].encode())
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CP
        assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example CPO"
        root: Issued = pki["root"]
        bad = {
            "garbage": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "other-cn": _sign(root, csrs[0], cn="CP-2"),
            "expired": _sign(root, csrs[0], days=-1, not_before=NOW - timedelta(days=3)),
            "untrusted": _sign(pki["other"], csrs[0]),
        }
        for name, chain in bad.items():
            answer = await cs.call(CP, "CertificateSigned", {"certificateChain": chain})
            assert answer == {"status": "Rejected"}, name
        events = await cs.wait_for(
            lambda f: (
                len(
                    [
                        c
                        for c in cs.calls("SecurityEventNotification")
                        if c.payload["type"] == "InvalidChargePointCertificate"
                    ]
                )
                >= len(bad)
            ),
            5,
        )
        assert events is not None
        assert agent.store is not None
        assert agent.store.installed_certificates(CertificateUse.CHARGE_POINT) == []
        good = _sign(root, csrs[0])
        assert await cs.call(CP, "CertificateSigned", {"certificateChain": good}) == {"status": "Accepted"}
        (own,) = agent.store.installed_certificates(CertificateUse.CHARGE_POINT)
        assert own.pem == good and own.key_ref is not None
        assert stat.S_IMODE(os.stat(own.key_ref).st_mode) == 0o600
        with pytest.raises(CallErrorReply):  # over the schema's 10,000 characters
            await cs.call(CP, "CertificateSigned", {"certificateChain": good + "x" * 10_001})


async def test_extended_trigger_message_sends_each_message(agents: Agents) -> None:
    async with CentralSystem(port=low_port()) as cs:
        agent = await agents.start(cs.url)
        await until(online(agent), 5)
        for what in (
            "BootNotification",
            "Heartbeat",
            "StatusNotification",
            "MeterValues",
            "FirmwareStatusNotification",
            "LogStatusNotification",
        ):
            after = len(cs.log)
            answer = await cs.call(CP, "ExtendedTriggerMessage", {"requestedMessage": what, "connectorId": 1})
            assert answer == {"status": "Accepted"}, what
            await cs.wait_for_call(what, after=after, timeout=5)
        answer = await cs.call(
            CP, "ExtendedTriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 7}
        )
        assert answer == {"status": "Rejected"}


async def test_tc_074_cs_certificate_by_request_of_the_bundled_csms_then_profile_3(
    agents: Agents, tmp_path: Path
) -> None:
    """End to end with the bundled central system: at profile 2 it triggers SignChargePointCertificate, its CA
    signs our CSR, CertificateSigned installs the chain; then SecurityProfile 3 and a real TLS reconnect with the
    signed certificate to the CSMS requiring client certificates from its CA."""
    ca = CertificateAuthority.load_or_create(tmp_path / "ca.pem", tmp_path / "ca-key.pem", "CSMS CA", NOW)
    server = issue("127.0.0.1", NOW, issuer=Issued(ca.certificate, ca.key), server_ip="127.0.0.1")  # type: ignore[arg-type]
    server_files = server.write(tmp_path, "server")
    with CsmsStore(tmp_path / "csms.db") as store:
        store.add_charger(CP, PASSWORD)
        port = low_port()
        app = Csms(store, admin_token="t" * 32, ca=ca, port=port)
        app.server.ssl_context = tls_context(*server_files)
        await app.start()
        csms = {"security_profile": 2, "password": PASSWORD, "ca_file": str(tmp_path / "ca.pem")}
        try:
            agent = await agents.start(app.server.url, csms=csms)
            await until(online(agent), 10)
            trigger = {"requestedMessage": "SignChargePointCertificate"}
            assert await app.server.call(CP, "ExtendedTriggerMessage", trigger) == {"status": "Accepted"}
            await until(
                lambda: app.central.certificates.issued(CP) is not None,
                10,
                "CertificateSigned never accepted",
            )
            assert agent.store is not None
            (own,) = agent.store.installed_certificates(CertificateUse.CHARGE_POINT)
            leaf = x509.load_pem_x509_certificates(own.pem.encode())[0]
            assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CP
            answer = await app.server.call(
                CP, "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}
            )
            assert answer == {"status": "Accepted"}
        finally:
            await app.stop()
        # The operator switches the port to profile 3: client certificates from the CSMS's CA are required.
        app = Csms(store, admin_token="t" * 32, ca=ca, port=port)
        app.server.ssl_context = tls_context(*server_files, tmp_path / "ca.pem")
        await app.start()
        try:
            await app.server.wait_connected(CP, 15)
            assert agent.link is not None
            await until(
                lambda: agent.link is not None and agent.link.profiles.active == 3, 10, "profile 3 not kept"
            )
            assert "Authorization" not in agent.link._headers()  # profile 3: the certificate alone
            answer = await app.server.call(CP, "GetConfiguration", {"key": ["SecurityProfile"]})
            assert answer["configurationKey"][0]["value"] == "3"
        finally:
            await app.stop()


async def test_the_last_central_system_root_in_use_is_not_deleted(
    agents: Agents, pki: dict[str, Any], tmp_path: Path
) -> None:
    """At profile 2 with no configured CA, the only installed CentralSystemRootCertificate verifies the server:
    DeleteCertificate answers Failed and the connection keeps working; a second root makes the first deletable."""

    store = Store(
        tmp_path / "agent.db"
    )  # installed before the agent starts, as by an earlier InstallCertificate
    root_pem = pki["root"].pem
    store.install_certificate(
        InstalledCertificate(CertificateUse.CENTRAL_SYSTEM_ROOT, root_pem, pem_hash_data(root_pem), NOW)
    )
    store.close()
    tls_cs = await _serve(None, pki["server"])
    try:
        agent = await agents.start(tls_cs.url, csms={"security_profile": 2, "password": PASSWORD})
        await until(online(agent), 10, "the installed root did not verify the server")
        delete = {"certificateHashData": _hash_json(root_pem)}
        assert await tls_cs.call(CP, "DeleteCertificate", delete) == {"status": "Failed"}
        listed = await tls_cs.call(
            CP, "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
        )
        assert listed["status"] == "Accepted" and len(listed["certificateHashData"]) == 1
        install = {"certificateType": "CentralSystemRootCertificate", "certificate": pki["other"].pem}
        assert (await tls_cs.call(CP, "InstallCertificate", install))["status"] == "Accepted"
        assert await tls_cs.call(CP, "DeleteCertificate", delete) == {"status": "Accepted"}
    finally:
        await tls_cs.stop()


async def test_security_events_startup_reset_time_and_invalid_messages(agents: Agents) -> None:
    """Whitepaper A04: StartupOfTheDevice at start, ResetOrReboot after a Reset, SettingSystemTime when the CSMS
    moves the clock by more than a minute, InvalidMessages for a malformed frame; each as
    SecurityEventNotification, in order, queued while offline."""
    async with CentralSystem(port=low_port()) as cs:
        jump = [timedelta(0)]
        started = datetime.now(
            UTC
        )  # not NOW: that is fixed at collection, minutes before a long run gets here

        def heartbeat(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
            when = datetime.now(UTC) + jump[0]
            return {"currentTime": when.isoformat().replace("+00:00", "Z")}

        cs.handlers["Heartbeat"] = heartbeat
        cs.refuse_connections = True
        agent = await agents.start(cs.url)
        await asyncio.sleep(0.3)  # offline: StartupOfTheDevice waits in the outbox
        assert agent.store is not None and agent.store.outbox_size() >= 1
        cs.refuse_connections = False
        startup = await security_event(cs, "StartupOfTheDevice")
        assert abs(datetime.fromisoformat(startup["timestamp"].replace("Z", "+00:00")) - started) < timedelta(
            minutes=1
        )
        after = len(cs.log)
        assert await cs.call(CP, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == {
            "status": "Accepted"
        }
        await cs.wait_for_call("Heartbeat", after=after)
        await asyncio.sleep(0.3)
        assert not [
            c for c in cs.calls("SecurityEventNotification") if c.payload["type"] == "SettingSystemTime"
        ]
        jump[0] = timedelta(hours=2)
        assert await cs.call(CP, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == {
            "status": "Accepted"
        }
        moved = await security_event(cs, "SettingSystemTime")
        assert "+7200 s" in moved["techInfo"]
        await cs.send_raw(CP, '[2, "bad-1", "Heartbeat", {"x": NaN}]')
        await security_event(cs, "InvalidMessages")
        assert await cs.call(CP, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        reset = await security_event(cs, "ResetOrReboot", timeout=15)
        assert "soft reset" in reset["techInfo"]
