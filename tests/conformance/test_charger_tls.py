"""The charger runner on wss://: this project's agent (its own process, driven by the ctl actuation profile)
connects with security profile 2 (server certificate + HTTP Basic) or 3 (client certificate) and passes the TLS
cases of both versions (valid server certificate, client certificate, a server certificate from an unknown CA, the
upgrade from 2 to 3, a downgrade Rejected, TLS 1.1 only offered, an upgrade to 3 without a station certificate
Rejected) and on ws:// the Basic auth and upgrade-without-root cases; an agent at profile 2 fails the
client-certificate case, and raw negative-control stations fail the case their fault breaks (no certificate
verification: TC_078; a downgrade accepted: TC_084; no Basic auth: TC_085 / TC_A_01; TLS 1.1: TC_A_06; any upgrade
accepted: TC_A_20 / TC_A_21). Without TLS options those cases are not applicable (the whole-suite tests), and a
half-given TLS option is a setup error."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend_stub.ocpp_server import tls_context
from conformance.__main__ import run_cli
from conformance.charger_runner import ChargerSetup, run_charger_suite
from conformance.engine import select_cases
from conformance.pki import write_server_pki
from conformance.report import EXIT_SETUP, Report
from conformance.versions import VERSIONS
from tests.conformance.test_charger_suite import AGENT_CONFIG, charger_args, free_port
from tests.pki import issue

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning"),
]

CASES = {"1.6": ("TC_086_CS", "TC_087_CS"), "2.0.1": ("TC_A_04_CS", "TC_A_07_CS")}
UNKNOWN_CA = {"1.6": "TC_078_CS", "2.0.1": "TC_A_05_CS"}
AT_PROFILE_3 = {"1.6": (), "2.0.1": ("TC_A_22_CS",)}  # a downgrade from 3 is Rejected


def tls_agent(
    tmp_path: Path, version: str, profile: int, ca: Path, *, client_cert: bool = False
) -> tuple[int, Path]:
    """The agent's config at ``profile`` (2, or 3), trusting ``ca`` for the central system's certificate; at 3
    (or with ``client_cert``) with a client certificate for CP-AGENT from its own CA (``tmp_path/client-ca.pem``)."""
    port = free_port()
    tls = f'ca_file = "{ca}"\n'
    if profile == 3 or client_cert:
        now = datetime.now(UTC)
        client_ca = issue("Charger CA", now, ca=True)
        client_ca.write(tmp_path, "client-ca")
        cert, key = issue("CP-AGENT", now, issuer=client_ca, client=True).write(tmp_path, "client")
        tls += f'client_cert = "{cert}"\nclient_key = "{key}"\n'
    text = (
        AGENT_CONFIG.format(port=port, dir=tmp_path)
        .replace("ws://", "wss://", 1)
        .replace("security_profile = 1", f"security_profile = {profile}", 1)
        .replace("[csms]\n", f'[csms]\nocpp_versions = ["{version}"]\n{tls}', 1)
    )
    config = tmp_path / "station.toml"
    config.write_text(text, encoding="utf-8")
    return port, config


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_agent_at_profile_3_passes_the_tls_cases(tmp_path: Path, version: str) -> None:
    now = datetime.now(UTC)
    server_ca = issue("CSMS CA", now, ca=True)
    ca_pem, _ = server_ca.write(tmp_path, "server-ca")
    cert, key = issue("127.0.0.1", now, issuer=server_ca, server_ip="127.0.0.1").write(tmp_path, "server")
    port, config = tls_agent(tmp_path, version, 3, ca_pem)
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(tmp_path / "client-ca.pem")]
    ids = (*CASES[version], UNKNOWN_CA[version], *AT_PROFILE_3[version])
    args = charger_args(port, config, "--version", version, "--cases", ",".join(ids), *tls)
    code, report = await run_cli(args)
    assert report is not None
    assert {r.id: (str(r.verdict), r.reason) for r in report.results} == dict.fromkeys(ids, ("passed", ""))
    assert code == 0
    client = next(r for r in report.results if r.id == CASES[version][1])
    assert any("client certificate names ['CP-AGENT']" in t.text for t in client.trace)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_agent_at_profile_2_passes_the_server_case_and_fails_the_client_certificate_case(
    tmp_path: Path, version: str
) -> None:
    # --tls-self-signed writes the throwaway CA before the runner starts the agent, which trusts it.
    pki_dir = tmp_path / "pki"
    port, config = tls_agent(tmp_path, version, 2, pki_dir / "ca.pem")
    client_ca = issue("Charger CA", datetime.now(UTC), ca=True).write(tmp_path, "client-ca")[0]
    tls = ["--tls-self-signed", str(pki_dir), "--tls-ca", str(client_ca)]
    # The agent's config names ca.pem, which must exist when the config is checked: the runner writes it first.
    args = charger_args(port, config, "--version", version, "--cases", ",".join(CASES[version]), *tls)
    code, report = await run_cli(args)
    assert report is not None
    verdicts = {r.id: (str(r.verdict), r.reason) for r in report.results}
    server_case, client_case = CASES[version]
    assert verdicts[server_case] == ("passed", "")
    assert verdicts[client_case][0] == "failed"
    assert "presented no client certificate" in verdicts[client_case][1]
    assert code != 0 and code != EXIT_SETUP


# 1.6: a new password (TC_073) and a certificate the runner signed (TC_074) first, then the upgrade, then the
# client certificate case: the runner lets the profile 3 charger in by that certificate, whatever password TC_073
# set.
UPGRADE = {"1.6": ["TC_073_CS", "TC_074_CS", "TC_083_CS", "TC_087_CS"], "2.0.1": ["TC_A_11_CS", "TC_A_19_CS"]}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_agent_upgrades_from_profile_2_to_3(tmp_path: Path, version: str) -> None:
    pki_dir = tmp_path / "pki"
    port, config = tls_agent(tmp_path, version, 2, pki_dir / "ca.pem", client_cert=True)
    tls = ["--tls-self-signed", str(pki_dir), "--tls-ca", str(tmp_path / "client-ca.pem")]
    ids = UPGRADE[version]
    code, report = await run_cli(
        charger_args(port, config, "--version", version, "--cases", ",".join(ids), *tls)
    )
    assert report is not None
    # The case sees the reconnect's client certificate and SecurityProfile 3 read back.
    assert [(r.id, str(r.verdict), r.reason) for r in report.results] == [(i, "passed", "") for i in ids]
    assert code == 0


async def test_a_tls_key_without_its_certificate_is_a_setup_error(tmp_path: Path) -> None:
    port = free_port()
    code, report = await run_cli(
        ["charger", "--listen", f"127.0.0.1:{port}", "--tls-key", str(tmp_path / "k.pem"), "-q"]
    )
    assert report is not None
    assert report.setup_error == "TLS set-up: --tls-cert and --tls-key go together"
    assert code == EXIT_SETUP


async def lax_charger(port: int) -> None:
    """A raw OCPP 1.6 charger at security profile 2 that does not verify the server certificate: it connects
    whatever certificate it is shown (and reconnects whenever dropped)."""
    lax = ssl.create_default_context()
    lax.check_hostname, lax.verify_mode = False, ssl.CERT_NONE
    auth = "Basic " + base64.b64encode(b"CP-LAX:lax-password-0000001").decode()
    while True:
        with contextlib.suppress(OSError, ConnectionClosed):
            async with connect(
                f"wss://127.0.0.1:{port}/ocpp/CP-LAX",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                ssl=lax,
                additional_headers={"Authorization": auth},
            ) as ws:
                await ws.send(
                    json.dumps(
                        [2, "1", "BootNotification", {"chargePointVendor": "L", "chargePointModel": "L"}]
                    )
                )
                now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                for connector in (0, 1):
                    status = {
                        "connectorId": connector,
                        "status": "Available",
                        "errorCode": "NoError",
                        "timestamp": now,
                    }
                    await ws.send(json.dumps([2, f"s{connector}", "StatusNotification", status]))
                async for text in ws:
                    frame = json.loads(text)
                    if frame[0] == 2:
                        await ws.send(json.dumps([3, frame[1], {"status": "Rejected"}]))
        await asyncio.sleep(0.05)


async def test_a_charger_that_accepts_an_unknown_ca_fails_tc_078(tmp_path: Path) -> None:
    port = free_port()
    cert, key, _ = write_server_pki(tmp_path, "127.0.0.1")
    setup = ChargerSetup(
        port=port,
        connect_timeout_s=30,
        call_timeout_s=5,
        tls=tls_context(cert, key),
        tls_files=(str(cert), str(key)),
    )
    report = Report("charger", "1.6", f"127.0.0.1:{port}")
    task = asyncio.create_task(lax_charger(port))
    try:
        await run_charger_suite(
            setup, select_cases(VERSIONS["1.6"].charger_cases(), "TC_078_CS"), report, quiet=True
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [(r.id, str(r.verdict), r.reason) for r in report.results] == [
        ("TC_078_CS", "failed", "the charger accepted a server certificate from an unknown CA and connected")
    ]
    assert report.exit_status() == 1


# The connection cases added with the public-catalogue check: the agent passes them at the profile each needs.
AT_PROFILE_2 = {"1.6": ("TC_084_CS", "TC_085_CS"), "2.0.1": ("TC_A_01_CS", "TC_A_06_CS", "TC_A_21_CS")}
ON_WS = {"1.6": ("TC_085_CS",), "2.0.1": ("TC_A_01_CS", "TC_A_20_CS")}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_agent_at_profile_2_passes_the_downgrade_basic_auth_tls_version_and_upgrade_cases(
    tmp_path: Path, version: str
) -> None:
    pki_dir = tmp_path / "pki"
    port, config = tls_agent(tmp_path, version, 2, pki_dir / "ca.pem")
    client_ca = issue("Charger CA", datetime.now(UTC), ca=True).write(tmp_path, "client-ca")[0]
    tls = ["--tls-self-signed", str(pki_dir), "--tls-ca", str(client_ca)]
    ids = AT_PROFILE_2[version]
    code, report = await run_cli(
        charger_args(port, config, "--version", version, "--cases", ",".join(ids), *tls)
    )
    assert report is not None
    assert {r.id: (str(r.verdict), r.reason) for r in report.results} == dict.fromkeys(ids, ("passed", ""))
    assert code == 0
    if version == "2.0.1":
        too_low = next(r for r in report.results if r.id == "TC_A_06_CS")
        assert any("offering only TLSv1_1" in t.text for t in too_low.trace)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_agent_on_ws_passes_the_basic_auth_and_no_root_cases(tmp_path: Path, version: str) -> None:
    port = free_port()
    config = tmp_path / "station.toml"
    config.write_text(
        AGENT_CONFIG.format(port=port, dir=tmp_path).replace(
            "[csms]\n", f'[csms]\nocpp_versions = ["{version}"]\n', 1
        ),
        encoding="utf-8",
    )
    ids = ON_WS[version]
    code, report = await run_cli(charger_args(port, config, "--version", version, "--cases", ",".join(ids)))
    assert report is not None
    assert {r.id: (str(r.verdict), r.reason) for r in report.results} == dict.fromkeys(ids, ("passed", ""))
    assert code == 0


# ---- negative controls: raw stations that break what the new cases check -------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


BOOT = {
    "ocpp1.6": ("BootNotification", {"chargePointVendor": "R", "chargePointModel": "R"}),
    "ocpp2.0.1": (
        "BootNotification",
        {"chargingStation": {"model": "R", "vendorName": "R"}, "reason": "PowerUp"},
    ),
}


def _statuses(subprotocol: str) -> list[tuple[str, dict[str, object]]]:
    if subprotocol == "ocpp1.6":
        return [
            (
                "StatusNotification",
                {"connectorId": c, "status": "Available", "errorCode": "NoError", "timestamp": _now()},
            )
            for c in (0, 1)
        ]
    return [
        (
            "StatusNotification",
            {"timestamp": _now(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        )
    ]


async def raw_station(
    url: str,
    subprotocol: str,
    answer: Callable[[str, dict[str, Any]], dict[str, Any]],
    *,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """A minimal station that boots, reports Available, answers every CALL with ``answer(action, payload)`` and
    reconnects whenever it is dropped (the faults are in ``answer``, ``tls`` and ``headers``)."""
    while True:
        with contextlib.suppress(OSError, ConnectionClosed, ssl.SSLError):
            async with connect(
                url,
                subprotocols=[subprotocol],  # type: ignore[list-item]
                ssl=tls,
                additional_headers=headers,
            ) as ws:
                for n, (action, payload) in enumerate([BOOT[subprotocol], *_statuses(subprotocol)]):
                    await ws.send(json.dumps([2, f"r{n}", action, payload]))
                async for text in ws:
                    frame = json.loads(text)
                    if frame[0] == 2:
                        await ws.send(json.dumps([3, frame[1], answer(frame[2], frame[3])]))
        await asyncio.sleep(0.05)


def yes_man_16(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """1.6: at SecurityProfile 2, and Accepted for every ChangeConfiguration (also a downgrade)."""
    if action == "GetConfiguration":
        return {"configurationKey": [{"key": "SecurityProfile", "readonly": False, "value": "2"}]}
    return {"status": "Accepted"}


def yes_man_201(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """2.0.1: at SecurityProfile 2, and Accepted for every SetNetworkProfile (also to 3 without a certificate)."""
    if action == "GetVariables":
        return {
            "getVariableResult": [
                {**d, "attributeStatus": "Accepted", "attributeValue": "2"}
                for d in payload["getVariableData"]
            ]
        }
    return {"status": "Accepted"}


def lax_tls(ca: Path, *, lowest: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    """A client context trusting ``ca``, down to ``lowest`` (below 1.2 only at OpenSSL security level 0)."""
    context = ssl.create_default_context(cafile=str(ca))
    if lowest < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = lowest
    return context


async def run_against(
    tmp_path: Path,
    version: str,
    ids: str,
    station: Callable[[int, Path], Coroutine[Any, Any, None]],
    *,
    on_tls: bool,
) -> dict[str, tuple[str, str]]:
    """Run ``ids`` against ``station(port, ca)`` (on wss:// with a throwaway CA when ``on_tls``)."""
    port = free_port()
    setup = ChargerSetup(port=port, connect_timeout_s=30, call_timeout_s=5)
    setup.subprotocol, setup.schema_version = VERSIONS[version].subprotocol, VERSIONS[version].schema_version
    ca = tmp_path / "none"
    if on_tls:
        cert, key, ca = write_server_pki(tmp_path, "127.0.0.1")
        setup.tls, setup.tls_files = tls_context(cert, key), (str(cert), str(key))
    report = Report("charger", version, f"127.0.0.1:{port}")
    task = asyncio.create_task(station(port, ca))
    try:
        await run_charger_suite(
            setup, select_cases(VERSIONS[version].charger_cases(), ids), report, quiet=True
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not report.setup_error
    return {r.id: (str(r.verdict), r.reason) for r in report.results}


async def test_a_charger_accepting_a_downgrade_fails_tc_084(tmp_path: Path) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"CP-YES:yes-password-00000001").decode()}

    async def station(port: int, ca: Path) -> None:
        await raw_station(
            f"wss://127.0.0.1:{port}/ocpp/CP-YES", "ocpp1.6", yes_man_16, tls=lax_tls(ca), headers=auth
        )

    verdicts = await run_against(tmp_path, "1.6", "TC_084_CS", station, on_tls=True)
    assert verdicts == {
        "TC_084_CS": ("failed", "ChangeConfiguration.conf status is 'Accepted', expected Rejected")
    }


async def test_a_charger_without_basic_auth_fails_tc_085(tmp_path: Path) -> None:
    async def station(port: int, ca: Path) -> None:
        await raw_station(f"ws://127.0.0.1:{port}/ocpp/CP-NOAUTH", "ocpp1.6", yes_man_16)

    verdicts = await run_against(tmp_path, "1.6", "TC_085_CS", station, on_tls=False)
    assert verdicts["TC_085_CS"][0] == "failed"
    assert "no HTTP Basic Authorization for user 'CP-NOAUTH'" in verdicts["TC_085_CS"][1]


async def test_a_station_connecting_over_tls_1_1_fails_tc_a_06(tmp_path: Path) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"CS-OLD:old-password-00000001").decode()}

    async def station(port: int, ca: Path) -> None:
        old = lax_tls(ca, lowest=ssl.TLSVersion.TLSv1_1)
        await raw_station(
            f"wss://127.0.0.1:{port}/ocpp/CS-OLD", "ocpp2.0.1", yes_man_201, tls=old, headers=auth
        )

    verdicts = await run_against(tmp_path, "2.0.1", "TC_A_06_CS", station, on_tls=True)
    assert verdicts == {
        "TC_A_06_CS": ("failed", "the station connected with TLSv1.1 although TLS 1.2 or above is required")
    }


async def test_a_station_upgrading_without_a_certificate_fails_tc_a_21(tmp_path: Path) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"CS-YES:yes-password-00000001").decode()}

    async def station(port: int, ca: Path) -> None:
        await raw_station(
            f"wss://127.0.0.1:{port}/ocpp/CS-YES", "ocpp2.0.1", yes_man_201, tls=lax_tls(ca), headers=auth
        )

    verdicts = await run_against(tmp_path, "2.0.1", "TC_A_21_CS", station, on_tls=True)
    assert verdicts == {
        "TC_A_21_CS": ("failed", "SetNetworkProfileResponse status is 'Accepted', expected Rejected")
    }


def yes_man_201_at_profile_1(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """2.0.1 at SecurityProfile 1 with no certificates, Accepting every SetNetworkProfile (also to 2 without a
    CSMS root)."""
    if action == "GetVariables":
        return {
            "getVariableResult": [
                {**d, "attributeStatus": "Accepted", "attributeValue": "1"}
                for d in payload["getVariableData"]
            ]
        }
    if action == "GetInstalledCertificateIds":
        return {"status": "NotFound"}
    return {"status": "Accepted"}


async def test_a_station_without_basic_auth_accepting_any_upgrade_fails_tc_a_01_and_tc_a_20(
    tmp_path: Path,
) -> None:
    async def station(port: int, ca: Path) -> None:
        await raw_station(f"ws://127.0.0.1:{port}/ocpp/CS-LAX", "ocpp2.0.1", yes_man_201_at_profile_1)

    verdicts = await run_against(tmp_path, "2.0.1", "TC_A_01_CS,TC_A_20_CS", station, on_tls=False)
    assert verdicts["TC_A_01_CS"][0] == "failed"
    assert "no HTTP Basic Authorization for user 'CS-LAX'" in verdicts["TC_A_01_CS"][1]
    assert verdicts["TC_A_20_CS"] == (
        "failed",
        "SetNetworkProfileResponse status is 'Accepted', expected Rejected",
    )
