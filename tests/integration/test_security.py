"""Security profiles 1-3 against the test central system: HTTP Basic, Basic over TLS, TLS client certificates."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend_stub.ocpp.server import tls_context
from backend_stub.process import start_csms_process
from backend_stub.store import CsmsStore
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, agent_config, until


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    """A self-signed CA (ca.key, ca.pem) in ``d``."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=d,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for CP-1, made with openssl."""
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "Test CA")
    for name, subject, ext in (
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "/CN=CP-1", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
            cwd=d,
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return d


async def _run(cs: CentralSystem, tmp_path: Path, csms: dict[str, object]) -> AsyncIterator[Agent]:
    agent = Agent(agent_config(cs.url, tmp_path / "agent.db", csms=csms), timing=FAST_TIMING)
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        agent.shutdown()
        await task


async def test_profile_1_basic_auth(tmp_path: Path) -> None:
    async with CentralSystem() as cs:
        cs.passwords["CP-1"] = "right-password-1234"
        async for agent in _run(cs, tmp_path, {"security_profile": 1, "password": "wrong-password-1234"}):
            await asyncio.sleep(0.5)
            assert not cs.calls("BootNotification"), "a wrong password must be refused at the handshake"
            assert agent.link is not None and agent.link.reconnects >= 1
        async for agent in _run(cs, tmp_path, {"security_profile": 1, "password": "right-password-1234"}):
            await cs.wait_for_call("BootNotification")
            await until(lambda a=agent: a.link is not None and a.link.online)


def _server_context(pki: Path, *, require_client_cert: bool) -> ssl.SSLContext:
    return tls_context(
        pki / "server.pem", pki / "server.key", pki / "ca.pem" if require_client_cert else None
    )


async def test_profile_2_basic_auth_over_tls(tmp_path: Path, pki: Path) -> None:
    async with CentralSystem(ssl_context=_server_context(pki, require_client_cert=False)) as cs:
        assert cs.url.startswith("wss://")
        cs.passwords["CP-1"] = "tls-password-123456"
        csms = {"security_profile": 2, "password": "tls-password-123456", "ca_file": str(pki / "ca.pem")}
        async for agent in _run(cs, tmp_path, csms):
            await cs.wait_for_call("BootNotification")
            await until(lambda a=agent: a.link is not None and a.link.online)


async def test_profile_2_refuses_an_untrusted_server(tmp_path: Path, pki: Path) -> None:
    """Without the CSMS's CA the agent must not talk to it (no silent fallback to an unverified TLS)."""
    async with CentralSystem(ssl_context=_server_context(pki, require_client_cert=False)) as cs:
        cs.passwords["CP-1"] = "tls-password-123456"
        other_ca = tmp_path / "other"
        other_ca.mkdir()
        _make_ca(other_ca, "Other CA")
        csms = {"security_profile": 2, "password": "tls-password-123456", "ca_file": str(other_ca / "ca.pem")}
        async for agent in _run(cs, tmp_path, csms):
            await asyncio.sleep(0.7)
            assert not cs.calls("BootNotification")
            assert agent.link is not None and agent.link.reconnects >= 1


async def test_profile_3_client_certificate(tmp_path: Path, pki: Path) -> None:
    async with CentralSystem(ssl_context=_server_context(pki, require_client_cert=True)) as cs:
        csms = {
            "security_profile": 3,
            "ca_file": str(pki / "ca.pem"),
            "client_cert": str(pki / "client.pem"),
            "client_key": str(pki / "client.key"),
        }
        async for agent in _run(cs, tmp_path, csms):
            await cs.wait_for_call("BootNotification")
            await until(lambda a=agent: a.link is not None and a.link.online)


async def test_bundled_central_system_serves_profile_2_from_the_command_line(
    tmp_path: Path, pki: Path
) -> None:
    """`serve --db --tls-cert/--tls-key`: wss:// on the one port, the registry's password checked over TLS."""
    with CsmsStore(tmp_path / "csms.db") as store:
        store.add_charger("CP-1", "tls-password-123456")
    proc, url = await start_csms_process(
        db=tmp_path / "csms.db",
        extra_args=["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")],
    )
    try:
        assert url.startswith("wss://127.0.0.1:")
        agent = Agent(
            agent_config(
                url,
                tmp_path / "agent.db",
                csms={
                    "security_profile": 2,
                    "password": "tls-password-123456",
                    "ca_file": str(pki / "ca.pem"),
                },
            ),
            timing=FAST_TIMING,
        )
        task = asyncio.create_task(agent.run())
        try:
            await until(
                lambda: agent.link is not None and agent.link.online, 10, "agent never booted over TLS"
            )
        finally:
            agent.shutdown()
            await task
    finally:
        proc.terminate()
        await proc.wait()
    with CsmsStore(tmp_path / "csms.db") as store:
        charger = store.charger("CP-1")
        assert charger is not None and charger.last_boot is not None
