"""OCPP 2.0.1 blocks A (Security), M (certificates) and B09/B10 (network profiles) of the agent, against the bundled
central system's real 2.0.1 side on 127.0.0.1 (with its CA for SignCertificate). Test names follow the OCA
OCTT 2.0.1 charging-station cases (TC_A_nn_CS, TC_B_nn_CS) where one fits; the rest name the use case."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backend_stub.app import Csms
from backend_stub.domain.ca import CertificateAuthority
from backend_stub.ocpp.server import CallErrorReply, tls_context
from chargepoint.core.storage import CertificateUse
from tests.integration.conftest import RunningAgent, until
from tests.integration.test_csms_ca import profile3_server_tls
from tests.integration.v201_support import (
    CP,
    StartAgent,
    calls,
    mark,
    running_csms,
    start_agent,
    wait_call,
)
from tests.pki import issue

__all__ = ["start_agent"]

PASSWORD = "first-password-1234"
PROFILE_1 = {"security_profile": 1, "password": PASSWORD}


@pytest.fixture
async def csms(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[Csms]:
    """The bundled central system with its CA (it signs CSRs), CP-1 registered with a Basic-auth password."""
    async with running_csms(tmp_path / "csms.db", password=PASSWORD, ca=ca) as app:
        yield app


def var(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}, **extra}


async def set_value(csms: Csms, component: str, variable: str, value: str) -> dict[str, Any]:
    answer = await csms.server.call(
        CP, "SetVariables", {"setVariableData": [var(component, variable, attributeValue=value)]}
    )
    result: dict[str, Any] = answer["setVariableResult"][0]
    return result


async def get_value(csms: Csms, component: str, variable: str) -> dict[str, Any]:
    answer = await csms.server.call(CP, "GetVariables", {"getVariableData": [var(component, variable)]})
    result: dict[str, Any] = answer["getVariableResult"][0]
    return result


def link_of(a: RunningAgent) -> Any:
    link = a.agent.link
    assert link is not None
    return link


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def connection_data(url: str, *, profile: int = 1, **extra: Any) -> dict[str, Any]:
    """A NetworkConnectionProfileType."""
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": 30,
        "securityProfile": profile,
        "ocppInterface": "Wired0",
        **extra,
    }


async def security_events(csms: Csms, kind: str, after: int = 0) -> list[dict[str, Any]]:
    """The SecurityEventNotifications of ``kind`` the CSMS got (waiting for the first)."""
    await wait_call(csms, "SecurityEventNotification", after=after, where=lambda p: p["type"] == kind)
    return [p for p in calls(csms, "SecurityEventNotification", after) if p["type"] == kind]


# A00/A01: Basic authentication and the password ------------------------------------------------------------------


async def test_tc_a_01_cs_basic_auth_with_the_configured_password(
    csms: Csms, start_agent: StartAgent
) -> None:
    """Security profile 1 over 2.0.1: the CSMS admits the station's Basic-auth credentials and boots it."""
    a = await start_agent(csms=PROFILE_1)
    assert csms.server.subprotocol(CP) == "ocpp2.0.1"
    assert link_of(a).connecting_profile() == 1


async def test_tc_a_09_cs_update_basic_auth_password_then_reconnect_with_it(
    csms: Csms, start_agent: StartAgent
) -> None:
    """A01: the CSMS rotates the password by SetVariables BasicAuthPassword; the station answers Accepted,
    reconnects with the new one (which the CSMS now holds), reports ReconfigurationOfSecurityParameters, and never
    reads the password back (write-only)."""
    a = await start_agent(csms=PROFILE_1)
    after = mark(csms)
    reply = await csms.central.operations.rotate_password(CP)
    assert reply.status == "Accepted"
    new = a.station.settings.text("authorization_key")
    assert new != PASSWORD and csms.store.verify_password(CP, new)
    await until(lambda: link_of(a).connections == 2 and link_of(a).online, 10, "no reconnect")
    await security_events(csms, "ReconfigurationOfSecurityParameters", after)
    hidden = await get_value(csms, "SecurityCtrlr", "BasicAuthPassword")
    assert hidden["attributeStatus"] == "Rejected" and "attributeValue" not in hidden
    # ... nor in a full report.
    await csms.server.call(CP, "GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"})
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: not p.get("tbc"))
    assert new not in json.dumps(calls(csms, "NotifyReport", after))


@pytest.mark.parametrize(
    "password",
    ["short-pw-123", "x" * 41, "sixteen chars ok", "pässword-1234567", "pass/word/123456", ""],
    ids=["too-short", "too-long", "space", "non-ascii", "slash", "empty"],
)
async def test_tc_a_10_cs_a_password_that_is_no_password_string_is_rejected(
    csms: Csms, start_agent: StartAgent, password: str
) -> None:
    """A01/A00.FR.205: 16-40 characters of letters, digits and *-_=:+|@. -- else Rejected, nothing changes, the
    link stays up on the old password."""
    a = await start_agent(csms=PROFILE_1)
    result = await set_value(csms, "SecurityCtrlr", "BasicAuthPassword", password)
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert a.station.settings.text("authorization_key") == ""
    assert link_of(a).connections == 1 and link_of(a).online


async def test_the_security_profile_is_read_only_to_set_variables(
    csms: Csms, start_agent: StartAgent
) -> None:
    """2.0.1 raises the security profile only through a network profile (A05): SetVariables SecurityProfile is
    Rejected (ReadOnly), while GetVariables reads it."""
    a = await start_agent(csms=PROFILE_1)
    result = await set_value(csms, "SecurityCtrlr", "SecurityProfile", "3")
    assert (result["attributeStatus"], result["attributeStatusInfo"]["reasonCode"]) == (
        "Rejected",
        "ReadOnly",
    )
    assert a.station.settings.get_int("security_profile") == 1
    assert (await get_value(csms, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "1"


async def test_a_set_variables_password_is_not_written_to_the_frame_log(
    csms: Csms, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    await start_agent(csms=PROFILE_1)
    caplog.set_level("DEBUG")
    assert (await set_value(csms, "SecurityCtrlr", "BasicAuthPassword", "Secret-Value-0123456"))[
        "attributeStatus"
    ] == "Accepted"
    agent_lines = [r.getMessage() for r in caplog.records if r.name.startswith("chargepoint")]
    assert any("BasicAuthPassword" in line for line in agent_lines)  # the frame was logged, redacted
    assert not any("Secret-Value-0123456" in line for line in agent_lines)


# M03-M05: CA certificates -----------------------------------------------------------------------------------------


async def test_m05_m03_m04_install_list_and_delete_root_certificates(
    csms: Csms, start_agent: StartAgent
) -> None:
    """InstallCertificate of each root type, GetInstalledCertificateIds by type and without one, DeleteCertificate;
    a second delete and an unknown hash are NotFound."""
    a = await start_agent(csms=PROFILE_1)
    now = datetime.now(UTC)
    roots = {kind: issue(f"{kind} CA", now, ca=True) for kind in ("CSMSRootCertificate", "MORootCertificate")}
    for kind, root in roots.items():
        answer = await csms.server.call(
            CP, "InstallCertificate", {"certificateType": kind, "certificate": root.pem}
        )
        assert answer == {"status": "Accepted"}
    store = a.agent.store
    assert store is not None and len(store.installed_certificates(CertificateUse.MO_ROOT)) == 1

    one = await csms.server.call(
        CP, "GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}
    )
    assert one["status"] == "Accepted"
    [chain] = one["certificateHashDataChain"]
    assert chain["certificateType"] == "CSMSRootCertificate"
    assert chain["certificateHashData"]["serialNumber"] == format(
        roots["CSMSRootCertificate"].certificate.serial_number, "x"
    )
    every = await csms.server.call(CP, "GetInstalledCertificateIds", {})
    assert sorted(c["certificateType"] for c in every["certificateHashDataChain"]) == sorted(roots)
    none = await csms.server.call(
        CP, "GetInstalledCertificateIds", {"certificateType": ["V2GCertificateChain", "V2GRootCertificate"]}
    )
    assert none == {"status": "NotFound"}

    hashes = chain["certificateHashData"]
    assert await csms.server.call(CP, "DeleteCertificate", {"certificateHashData": hashes}) == {
        "status": "Accepted"
    }
    assert await csms.server.call(CP, "DeleteCertificate", {"certificateHashData": hashes}) == {
        "status": "NotFound"
    }
    unknown = {**hashes, "serialNumber": "abcdef"}
    assert await csms.server.call(CP, "DeleteCertificate", {"certificateHashData": unknown}) == {
        "status": "NotFound"
    }
    left = await csms.server.call(
        CP, "GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}
    )
    assert left == {"status": "NotFound"}
    assert link_of(a).connections == 1


def _bad_certificates() -> dict[str, str]:
    now = datetime.now(UTC)
    ca = issue("CA", now, ca=True)
    chain = "".join(issue(f"CA {i}", now, ca=True).pem for i in range(6))
    return {
        "not-pem": "hello",
        "broken-pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "not-a-ca": issue("leaf", now, issuer=ca).pem,
        "expired": issue("old CA", now, ca=True, days=-1, not_before=datetime(2020, 1, 1, tzinfo=UTC)).pem,
        "cut-chain": chain[: len(chain) // 2],  # the last certificate cut in the middle
        "six-certificates": chain,  # a chain where one root is expected
    }


@pytest.mark.parametrize("name", list(_bad_certificates()))
async def test_m05_a_certificate_that_is_no_valid_root_is_rejected(
    csms: Csms, start_agent: StartAgent, name: str
) -> None:
    a = await start_agent(csms=PROFILE_1)
    pem = _bad_certificates()[name]
    assert len(pem) <= 5500  # within the schema: the station itself must refuse it
    answer = await csms.server.call(
        CP, "InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pem}
    )
    assert answer == {"status": "Rejected"}
    store = a.agent.store
    assert store is not None and store.installed_certificates(CertificateUse.CENTRAL_SYSTEM_ROOT) == []
    assert link_of(a).connections == 1 and link_of(a).online


async def test_m05_an_oversized_certificate_is_a_call_error_and_the_link_stays_up(
    csms: Csms, start_agent: StartAgent
) -> None:
    """InstallCertificate.certificate is at most 5500 characters: a longer one breaks the schema."""
    a = await start_agent(csms=PROFILE_1)
    pem = issue("CA", datetime.now(UTC), ca=True).pem * 12
    with pytest.raises(CallErrorReply) as error:
        await csms.server.call(
            CP, "InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pem}
        )
    assert error.value.code in (
        "FormatViolation",
        "TypeConstraintViolation",
        "PropertyConstraintViolation",
    )
    assert link_of(a).connections == 1 and link_of(a).online


# A02: the station's certificate -----------------------------------------------------------------------------------


async def test_tc_a_11_cs_update_station_certificate_by_request_of_the_csms(
    csms: Csms, start_agent: StartAgent, ca: CertificateAuthority
) -> None:
    """TriggerMessage SignChargingStationCertificate -> SignCertificate (ChargingStationCertificate, CSR for the
    station id) -> the CSMS's CA signs -> CertificateSigned Accepted, the chain installed for profile 3."""
    a = await start_agent(csms=PROFILE_1)
    install = {"certificateType": "CSMSRootCertificate", "certificate": ca.pem}
    assert (await csms.server.call(CP, "InstallCertificate", install))["status"] == "Accepted"
    after = mark(csms)
    trigger = await csms.server.call(
        CP, "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}
    )
    assert trigger == {"status": "Accepted"}
    sign = await wait_call(csms, "SignCertificate", after=after)
    assert sign.payload["certificateType"] == "ChargingStationCertificate"
    assert "BEGIN CERTIFICATE REQUEST" in sign.payload["csr"]
    store = a.agent.store
    assert store is not None
    await until(lambda: bool(store.installed_certificates(CertificateUse.CHARGE_POINT)), 10, "not installed")
    signed = [f for f in csms.server.log[after:] if f.direction == "out" and f.action == "CertificateSigned"]
    assert len(signed) == 1
    assert link_of(a).has_client_certificate()


@pytest.mark.parametrize(
    ("chain", "why"),
    [
        ("garbage", "not a PEM certificate"),
        ("x" * 10_000, "not a PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\n" + "A" * 9900 + "\n-----END CERTIFICATE-----\n", "unreadable"),
        ("six", "more than 5 certificates"),
        ("other-key", "not the key of our CSR"),
    ],
    ids=["garbage", "oversized", "broken-pem", "six-certificates", "other-key"],
)
async def test_tc_a_14_cs_an_invalid_station_certificate_is_rejected(
    csms: Csms, start_agent: StartAgent, ca: CertificateAuthority, chain: str, why: str
) -> None:
    """CertificateSigned with a chain that is not for our pending key (or not a chain at all): Rejected, nothing
    installed, and InvalidChargingStationCertificate (the 2.0.1 name of the event) reported with the reason."""
    a = await start_agent(csms=PROFILE_1)
    await link_of(a).certificates.new_csr()  # a key waits for its certificate (as after a SignCertificate)
    now = datetime.now(UTC)
    if chain == "six":  # a leaf and five CAs: deeper than a chain may be (at most 5 certificates)
        cas = [issue("CA 0", now, ca=True)]
        for i in range(1, 5):
            cas.append(issue(f"CA {i}", now, ca=True, issuer=cas[-1]))
        chain = issue(CP, now, issuer=cas[-1]).pem + "".join(c.pem for c in reversed(cas))
        chain += issue("CA 5", now, ca=True).pem
    elif chain == "other-key":  # right id, right CA, another key
        chain = issue(CP, now, issuer=issue("Test CSMS CA", now, ca=True)).pem
    assert len(chain) <= 10_000
    after = mark(csms)
    answer = await csms.server.call(CP, "CertificateSigned", {"certificateChain": chain})
    assert answer["status"] == "Rejected"
    store = a.agent.store
    assert store is not None and store.installed_certificates(CertificateUse.CHARGE_POINT) == []
    [event] = await security_events(csms, "InvalidChargingStationCertificate", after)
    assert why in event["techInfo"]
    assert link_of(a).online


async def test_a_v2g_certificate_is_rejected(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent(csms=PROFILE_1)
    await link_of(a).certificates.new_csr()
    pem = issue(CP, datetime.now(UTC)).pem
    answer = await csms.server.call(
        CP, "CertificateSigned", {"certificateChain": pem, "certificateType": "V2GCertificate"}
    )
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "UnsupportedType"


# B09/B10/A05: network connection profiles ------------------------------------------------------------------------


async def test_tc_b_42_cs_set_network_profile_accepted_and_kept_across_a_restart(
    csms: Csms, start_agent: StartAgent, tmp_path: Path
) -> None:
    a = await start_agent(csms=PROFILE_1)
    answer = await csms.server.call(
        CP, "SetNetworkProfile", {"configurationSlot": 1, "connectionData": connection_data(csms.url)}
    )
    assert answer == {"status": "Accepted"}
    profile = link_of(a).network.slot(1)
    assert profile is not None and (profile.url, profile.security_profile) == (csms.url, 1)
    assert (await get_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority"))["attributeValue"] == "0"
    await a.stop()
    b = await start_agent(csms=PROFILE_1)
    kept = link_of(b).network.slot(1)
    assert kept == profile


@pytest.mark.parametrize(
    ("slot", "data", "why"),
    [
        (0, {}, "configured"),
        (5, {}, "configurationSlot"),
        (1, {"securityProfile": 0}, "below the active"),
        (1, {"securityProfile": 2, "ocppCsmsUrl": "wss://127.0.0.1:1/x"}, "prerequisites"),
        (1, {"ocppVersion": "OCPP15"}, "not spoken"),
        (1, {"ocppTransport": "SOAP"}, "JSON"),
        (1, {"vpn": {"server": "v", "user": "u", "key": "k", "password": "p", "type": "IPSec"}}, "VPN"),
        (1, {"ocppCsmsUrl": "http://127.0.0.1/"}, "ws://"),
        (1, {"ocppCsmsUrl": "ws:///nohost"}, "ws://"),
        (1, {"ocppCsmsUrl": "ws://127.0.0.1:99999/"}, "usable"),
        (1, {"ocppCsmsUrl": "wss://127.0.0.1/", "securityProfile": 1}, "TLS"),
        (1, {"messageTimeout": 0}, "messageTimeout"),
        (1, {"messageTimeout": 2**31 - 1}, "messageTimeout"),
    ],
    ids=[
        "slot-0",
        "slot-5",
        "lower-profile",
        "no-csms-root",
        "ocpp15",
        "soap",
        "vpn",
        "http",
        "no-host",
        "bad-port",
        "wss-profile-1",
        "timeout-0",
        "timeout-huge",
    ],
)
async def test_tc_b_43_cs_set_network_profile_rejected(
    csms: Csms, start_agent: StartAgent, slot: int, data: dict[str, Any], why: str
) -> None:
    """B09.FR.01/FR.04, A05: an invalid profile, one below the active security profile, one whose prerequisites are
    missing, or a slot that is not ours: Rejected with the reason, nothing stored, the link up."""
    a = await start_agent(csms=PROFILE_1)
    request = {"configurationSlot": slot, "connectionData": {**connection_data(csms.url), **data}}
    answer = await csms.server.call(CP, "SetNetworkProfile", request)
    assert answer["status"] == "Rejected"
    assert why in answer["statusInfo"]["additionalInfo"]
    assert all(link_of(a).network.slot(n) is None for n in range(1, 5))
    assert link_of(a).connections == 1 and link_of(a).online


@pytest.mark.parametrize(
    ("priority", "reason"),
    [
        ("2,0", "holds no network profile"),
        ("1,1", "distinct"),
        ("", "comma"),
        ("0,1,2,3,4,5", "comma"),
        ("x", ""),
    ],
)
async def test_network_configuration_priority_naming_unknown_slots_is_rejected(
    csms: Csms, start_agent: StartAgent, priority: str, reason: str
) -> None:
    a = await start_agent(csms=PROFILE_1)
    data = {"configurationSlot": 1, "connectionData": connection_data(csms.url)}
    assert (await csms.server.call(CP, "SetNetworkProfile", data))["status"] == "Accepted"
    result = await set_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", priority)
    assert result["attributeStatus"] == "Rejected"
    assert reason in result["attributeStatusInfo"].get("additionalInfo", "")
    assert a.station.settings.text("network_configuration_priority") == "0"


async def test_tc_b_45_cs_migrate_to_a_new_network_profile(csms: Csms, start_agent: StartAgent) -> None:
    """B10: a new profile in slot 1, the priority 1,0, a reconnect: the station connects with slot 1 (and keeps it
    as the last good one across a restart)."""
    a = await start_agent(csms=PROFILE_1)
    data = {"configurationSlot": 1, "connectionData": connection_data(csms.url)}
    assert (await csms.server.call(CP, "SetNetworkProfile", data))["status"] == "Accepted"
    assert (await set_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0"))[
        "attributeStatus"
    ] == ("Accepted")
    link = link_of(a)
    assert link.network.current() == 1
    await link.reconnect()
    await until(lambda: link.connections == 2 and link.online, 10, "no reconnect with slot 1")
    assert link.network.last_good() == 1
    assert link.message_timeout_s() == 30  # the profile's messageTimeout (the configured one is 2 s)
    session = link.session
    assert session is not None and session._response_timeout == 30


async def test_tc_b_46_cs_a_new_profile_that_cannot_connect_falls_back_to_the_previous_one(
    csms: Csms, start_agent: StartAgent
) -> None:
    """B10/A05: slot 1 points where no CSMS listens; after NetworkProfileConnectionAttempts failures the station
    connects with the previous (configured) profile again, and boots."""
    a = await start_agent(csms=PROFILE_1, settings={"network_profile_connection_attempts": 2})
    dead = f"ws://127.0.0.1:{free_port()}"
    data = {"configurationSlot": 1, "connectionData": connection_data(dead)}
    assert (await csms.server.call(CP, "SetNetworkProfile", data))["status"] == "Accepted"
    assert (await set_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1"))[
        "attributeStatus"
    ] == ("Accepted")
    link = link_of(a)
    assert link.network.candidates() == [1, 0]  # the previous one after the listed ones
    reconnects = link.reconnects
    await link.reconnect()
    await until(lambda: link.connections == 2 and link.online, 20, "no fallback to the configured profile")
    assert link.reconnects - reconnects >= 3  # the closed session, then two refused attempts on slot 1
    assert link.network.current() == 0 and link.network.last_good() == 0
    assert csms.server.subprotocol(CP) == "ocpp2.0.1"


async def test_a05_priority_with_a_slot_below_the_active_profile_is_rejected(
    csms: Csms, start_agent: StartAgent
) -> None:
    """A05.FR.03: once the active security profile is 1, a slot of profile 0 may not be prioritised (and a
    SetNetworkProfile of profile 0 is refused in the first place)."""
    a = await start_agent(csms=PROFILE_1)
    store = a.agent.store
    assert store is not None
    # A slot of profile 0 stored earlier (before the station ran profile 1).
    stored = {"url": csms.url, "security_profile": 0, "message_timeout_s": 30, "ocpp_version": "2.0.1"}
    await asyncio.wrap_future(store.put("network_profile.2", json.dumps(stored)))
    result = await set_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,0")
    assert result["attributeStatus"] == "Rejected"
    assert "below the active" in result["attributeStatusInfo"]["additionalInfo"]
    assert 2 not in link_of(a).network.candidates()  # never used to connect either


async def test_tc_a_19_cs_upgrade_security_profile_through_a_network_profile(
    csms: Csms, start_agent: StartAgent, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A05 (and B10, to a second central system): on profile 1, the CSMS installs its root, sets a profile-2
    network profile (wss://, Basic auth) and puts it first; at the next connection the station speaks TLS with it,
    the active security profile becomes 2 (reported as ReconfigurationOfSecurityParameters), and a profile-1 slot
    can no longer be set."""
    secure_dir = tmp_path / "secure"
    secure_dir.mkdir()
    profile3_server_tls(secure_dir, ca)  # writes a server certificate for 127.0.0.1 from ``ca``
    tls = tls_context(secure_dir / "server.pem", secure_dir / "server.key")
    async with running_csms(secure_dir / "csms.db", password=PASSWORD, ca=ca, tls=tls) as secure:
        a = await start_agent(csms=PROFILE_1)
        link = link_of(a)
        root = {"certificateType": "CSMSRootCertificate", "certificate": ca.pem}
        assert (await csms.server.call(CP, "InstallCertificate", root))["status"] == "Accepted"
        assert secure.url.startswith("wss://")
        data = {"configurationSlot": 1, "connectionData": connection_data(secure.url, profile=2)}
        assert (await csms.server.call(CP, "SetNetworkProfile", data))["status"] == "Accepted"
        priority = await set_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")
        assert priority["attributeStatus"] == "Accepted"
        assert a.station.settings.get_int("security_profile") == 1  # not before it connected
        await link.reconnect()
        await secure.server.wait_for_call("StatusNotification", CP, 15)  # booted once already: no new boot
        await until(lambda: link.online and link.network.last_good() == 1, 10, "not online over TLS")
        assert link.url().startswith("wss://") and link.connecting_profile() == 2
        assert a.station.settings.get_int("security_profile") == 2
        await secure.server.wait_for_call(
            "SecurityEventNotification",
            CP,
            10,
            where=lambda p: (
                p["type"] == "ReconfigurationOfSecurityParameters" and "2" in p.get("techInfo", "")
            ),
        )
        assert secure.server.subprotocol(CP) == "ocpp2.0.1"
        # No way back: a profile-1 network profile is refused now (B09.FR.04).
        down = {"configurationSlot": 2, "connectionData": connection_data(csms.url, profile=1)}
        answer = await secure.server.call(CP, "SetNetworkProfile", down)
        assert answer["status"] == "Rejected"
        assert secure.server.violations == []
