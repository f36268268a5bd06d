"""OCPP 2.0.1 charging-station cases of block A, security (TC_A_NN_CS: the Basic Auth password A01, the station
certificate A02), block M, certificate management (TC_M_NN_CS: InstallCertificate M05,
GetInstalledCertificateIds M03, DeleteCertificate M04), and SetNetworkProfile (B09).

With the runner on wss:// (--tls-cert/--tls-key, --tls-ca for profile 3) TC_A_04 and TC_A_07 judge the station's
TLS handshake (`conformance.tls_checks`), TC_A_05 presents a certificate from an unknown CA, TC_A_06 offers only TLS 1.1 (OpenSSL
security level 0 for the window), TC_A_19 upgrades a station from profile 2 to 3 (with --tls-ca), TC_A_21 asks a
profile 2 station without a station certificate to go to 3 and TC_A_22 checks that a downgrade is Rejected (at 2 or
3). TC_A_01 (Basic auth) and TC_A_20 (an upgrade to 2 without a CSMS root) run on ws://. TC_A_08 is a CSMS case
only (no public charging station case has that id).

What the cases can see over ws:// they check: the station reconnects with a new password (and only with it), reports the
change as a security event and never reads the password back; a CSR names the station; a certificate for a key
the station never made is refused with a security event; an installed root is listed and a deleted one is not.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.x509.oid import NameOID

from conformance import pki
from conformance.model import Case, Fail, NotApplicable, Step
from conformance.tls_checks import (
    NO_TLS,
    basic_auth_valid,
    client_certificate_valid,
    invalid_server_certificate,
    latest_handshake,
    password_string,
    reconnect_handshake,
    server_certificate_valid,
    tls_version_too_low,
)
from conformance.v16.charger_cases import _same, delete_installed, security_event
from conformance.v201.charger_cases import Ctx, StepFn, check_frames, reboot_seen, to_idle

__all__ = ["CASES"]

SECURITY, CERTIFICATES, PROVISIONING = "A Security", "M CertificateManagement", "B Provisioning"
CASES: list[Case[Ctx]] = []
PASSWORD = ("SecurityCtrlr", "BasicAuthPassword")


def add(id: str, title: str, block: str, *steps: tuple[str, StepFn], timeout_s: float = 60.0) -> None:
    """A case: its steps, the frame check; the certificates it installed are deleted after it."""
    all_steps = (*steps, ("only valid frames, allowed status transitions, whole transactions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(Step[Ctx](t, f) for t, f in all_steps),
            timeout_s=timeout_s,
            cleanup=(
                Step[Ctx]("delete installed certificates", delete_installed),
                Step[Ctx]("back to idle", to_idle),
            ),
        )
    )


# ================================================================================================ A01 password


async def basic_auth_profile(ctx: Ctx) -> None:
    """Not applicable unless the station uses HTTP Basic authentication (SecurityCtrlr.SecurityProfile 1 or 2)."""
    profile = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if profile not in ("1", "2"):
        raise NotApplicable(f"the station uses SecurityProfile {profile}: Basic authentication needs 1 or 2")


async def set_password(ctx: Ctx, password: str) -> str | None:
    """SetVariables BasicAuthPassword: the attributeStatus."""
    data = {"component": {"name": PASSWORD[0]}, "variable": {"name": PASSWORD[1]}, "attributeValue": password}
    answer = await ctx.call("SetVariables", {"setVariableData": [data]})
    status = (answer.get("setVariableResult") or [{}])[0].get("attributeStatus")
    return str(status) if status is not None else None


async def new_password(ctx: Ctx) -> None:
    """A new password (40 characters of passwordString): Accepted; the station drops the link and comes back
    with it (our CSMS lets only the new one in), reports ReconfigurationOfSecurityParameters, and GetVariables
    does not read it back (A01.FR.?, write-only)."""
    await basic_auth_profile(ctx)
    password = secrets.token_hex(20)
    m = ctx.at()
    if (status := await set_password(ctx, password)) != "Accepted":
        raise Fail(f"SetVariablesResponse attributeStatus {status!r} for a valid BasicAuthPassword")
    ctx.cs.passwords[ctx.cp_id] = password  # from now on only the new password is let in
    try:
        await ctx.cs.wait_disconnected(ctx.cp_id, timeout=ctx.scaled(15))
    except TimeoutError:
        raise Fail("the station kept its connection after BasicAuthPassword changed (A01.FR.?)") from None
    await ctx.reconnected(30)
    await security_event(ctx, m, "ReconfigurationOfSecurityParameters")
    [result] = await ctx.get_variables(PASSWORD)
    if password in str(result):
        raise Fail("GetVariables reads BasicAuthPassword back (it is write-only)")


async def bad_password(ctx: Ctx) -> None:
    """A password of 12 characters (passwordString needs 16-40): Rejected, and the link stays up (A01.FR.?)."""
    await basic_auth_profile(ctx)
    if (status := await set_password(ctx, "short-pw-123")) != "Rejected":
        raise Fail(f"SetVariablesResponse attributeStatus {status!r} for a 12-character BasicAuthPassword")
    await ctx.quiet(2)
    if ctx.cp_id not in ctx.cs.connected:
        raise Fail("the station dropped its connection after a Rejected BasicAuthPassword")


add(
    "TC_A_04_CS",
    "TLS - server-side certificate - Valid certificate",
    SECURITY,
    ("reconnect over TLS 1.2+, Basic auth or a client certificate", server_certificate_valid),
)
add(
    "TC_A_05_CS",
    "TLS - server-side certificate - Invalid certificate",
    SECURITY,
    (
        "unknown-CA server certificate refused, then SecurityEventNotification",
        invalid_server_certificate("InvalidCsmsCertificate"),
    ),
    timeout_s=90,
)
add(
    "TC_A_07_CS",
    "TLS - Client-side certificate - valid certificate",
    SECURITY,
    ("reconnect with a client certificate issued to the station", client_certificate_valid),
)
add(
    "TC_A_09_CS",
    "Update Charging Station Password for HTTP Basic Authentication - Accepted",
    SECURITY,
    ("BasicAuthPassword: reconnect with it, security event", new_password),
)
add(
    "TC_A_10_CS",
    "Update Charging Station Password for HTTP Basic Authentication - Rejected",
    SECURITY,
    ("a too short BasicAuthPassword: Rejected, still connected", bad_password),
)


# ================================================================================================ A02 certificate


async def install(ctx: Ctx, kind: str, pem: str, expected: str = "Accepted") -> None:
    """InstallCertificate of ``pem`` as ``kind``: ``expected``; an Accepted one is deleted after the case."""
    await ctx.expect_answer(
        "InstallCertificate", {"certificateType": kind, "certificate": pem}, "status", expected
    )
    if expected == "Accepted":
        ctx.vars.setdefault("installed", []).append(pki.certificate_hash_data(pem))


async def installed(ctx: Ctx, kind: str) -> list[dict[str, Any]]:
    """GetInstalledCertificateIds of ``kind``: the certificateHashData listed (none when NotFound); each listed
    entry of the type asked (M03.FR.?)."""
    answer = await ctx.expect_answer(
        "GetInstalledCertificateIds", {"certificateType": [kind]}, "status", "Accepted", "NotFound"
    )
    chains: list[dict[str, Any]] = answer.get("certificateHashDataChain", [])
    if answer["status"] == "NotFound" and chains:
        raise Fail("GetInstalledCertificateIdsResponse is NotFound but lists certificates")
    if wrong := [c.get("certificateType") for c in chains if c.get("certificateType") != kind]:
        raise Fail(f"GetInstalledCertificateIds {kind} lists certificates of type {wrong}")
    return [c["certificateHashData"] for c in chains]


async def station_certificate(ctx: Ctx) -> None:
    """TriggerMessage SignChargingStationCertificate: SignCertificate with a CSR naming the station (our CSMS
    Accepts it); CertificateSigned with a chain to an installed CSMS root: Accepted (A02)."""
    ca_key, ca = pki.make_ca("Conformance CSMS Root")
    await install(ctx, "CSMSRootCertificate", pki.pem_of(ca))
    ctx.vars["sign"] = "Accepted"
    m = ctx.at()
    await ctx.expect_answer(
        "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}, "status", "Accepted"
    )
    request = await ctx.wait_call("SignCertificate", m, timeout_s=20, what="SignCertificateRequest")
    if request.payload.get("certificateType", "ChargingStationCertificate") != "ChargingStationCertificate":
        raise Fail(f"SignCertificateRequest certificateType {request.payload.get('certificateType')!r}")
    try:
        _, leaf = pki.issue(ca_key, ca, csr_pem=str(request.payload.get("csr", "")))
    except ValueError as exc:
        raise Fail(f"SignCertificateRequest csr is not a usable PEM CSR: {exc}") from None
    names = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [ctx.cp_id]:
        raise Fail(f"the CSR's commonName is {names}, expected the station's id {ctx.cp_id!r} (A02.FR.?)")
    chain = pki.pem_of(leaf) + pki.pem_of(ca)
    ctx.trust_signing_ca(pki.pem_of(ca))
    await ctx.expect_answer("CertificateSigned", {"certificateChain": chain}, "status", "Accepted")


async def foreign_certificate(ctx: Ctx) -> None:
    """CertificateSigned with a certificate for a key the station never made: Rejected, and
    SecurityEventNotification InvalidChargingStationCertificate (A02.FR.?)."""
    ca_key, ca = pki.make_ca("Conformance unknown CA")
    _, leaf = pki.issue(ca_key, ca, common_name=ctx.cp_id)
    m = ctx.at()
    chain = pki.pem_of(leaf) + pki.pem_of(ca)
    await ctx.expect_answer("CertificateSigned", {"certificateChain": chain}, "status", "Rejected")
    await security_event(ctx, m, "InvalidChargingStationCertificate")


add(
    "TC_A_11_CS",
    "Update Charging Station Certificate by request of CSMS - Success - Charging Station Certificate",
    SECURITY,
    ("SignCertificate, CertificateSigned: Accepted", station_certificate),
)
add(
    "TC_A_14_CS",
    "Update Charging Station Certificate by request of CSMS - Invalid certificate",
    SECURITY,
    ("CertificateSigned for a foreign key: Rejected, security event", foreign_certificate),
)


# ================================================================================================ M certificates


def install_root(kind: str) -> StepFn:
    """InstallCertificate of a new root of ``kind``: Accepted, and GetInstalledCertificateIds lists it (M05)."""

    async def run(ctx: Ctx) -> None:
        pem = pki.self_signed_pem(f"Conformance {kind}")
        await install(ctx, kind, pem)
        if not any(_same(h, pki.certificate_hash_data(pem)) for h in await installed(ctx, kind)):
            raise Fail(f"GetInstalledCertificateIds {kind} does not list the certificate just installed")

    return run


async def invalid_root(ctx: Ctx) -> None:
    """InstallCertificate of text that is no certificate: Rejected (M05.FR.?), and nothing new is listed."""
    before = await installed(ctx, "ManufacturerRootCertificate")
    bad = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    await install(ctx, "ManufacturerRootCertificate", bad, "Rejected")
    if len(await installed(ctx, "ManufacturerRootCertificate")) != len(before):
        raise Fail("a Rejected certificate is listed by GetInstalledCertificateIds")


async def delete_root(ctx: Ctx) -> None:
    """Install a ManufacturerRootCertificate, delete it by its hash data: Accepted, and no longer listed (M04)."""
    kind = "ManufacturerRootCertificate"
    pem = pki.self_signed_pem("Conformance deletable root")
    await install(ctx, kind, pem)
    hash_data = pki.certificate_hash_data(pem)
    await ctx.expect_answer("DeleteCertificate", {"certificateHashData": hash_data}, "status", "Accepted")
    if any(_same(h, hash_data) for h in await installed(ctx, kind)):
        raise Fail("GetInstalledCertificateIds still lists the certificate DeleteCertificate Accepted")


async def delete_unknown(ctx: Ctx) -> None:
    """DeleteCertificate of a certificate the station never had: NotFound (M04.FR.?)."""
    hash_data = pki.certificate_hash_data(pki.self_signed_pem("Conformance never installed"))
    await ctx.expect_answer("DeleteCertificate", {"certificateHashData": hash_data}, "status", "NotFound")


async def none_of_type(ctx: Ctx) -> None:
    """GetInstalledCertificateIds of a type the station holds none of (MORootCertificate: no ISO 15118 here):
    NotFound and no list (M03.FR.?); not applicable if it holds some."""
    answer = await ctx.expect_answer(
        "GetInstalledCertificateIds",
        {"certificateType": ["MORootCertificate"]},
        "status",
        "Accepted",
        "NotFound",
    )
    if answer["status"] == "Accepted":
        raise NotApplicable("the station holds MORootCertificates")
    if answer.get("certificateHashDataChain"):
        raise Fail("GetInstalledCertificateIdsResponse NotFound with a certificateHashDataChain")


add(
    "TC_M_01_CS",
    "Install CA certificate - CSMSRootCertificate",
    CERTIFICATES,
    ("InstallCertificate CSMSRootCertificate: listed", install_root("CSMSRootCertificate")),
)
add(
    "TC_M_02_CS",
    "Install CA certificate - ManufacturerRootCertificate",
    CERTIFICATES,
    ("InstallCertificate ManufacturerRootCertificate: listed", install_root("ManufacturerRootCertificate")),
)
add(
    "TC_M_07_CS",
    "Install CA certificate - Rejected - Certificate invalid",
    CERTIFICATES,
    ("InstallCertificate of no certificate: Rejected", invalid_root),
)
add(
    "TC_M_19_CS",
    "Retrieve certificates - No matching certificate found",
    CERTIFICATES,
    ("GetInstalledCertificateIds MORootCertificate: NotFound", none_of_type),
)
add(
    "TC_M_20_CS",
    "Delete a certificate - Success",
    CERTIFICATES,
    ("install, DeleteCertificate: Accepted, no longer listed", delete_root),
)
add(
    "TC_M_22_CS",
    "Delete a certificate - No matching certificate found",
    CERTIFICATES,
    ("DeleteCertificate of an unknown certificate: NotFound", delete_unknown),
)


# ================================================================================================ B09 network profile


async def network_profile_rejected(ctx: Ctx) -> None:
    """SetNetworkProfile of a slot NetworkConfigurationPriority cannot name (99) with a URL that is no ws(s)://
    URL: Rejected (B09.FR.?), and the station stays connected."""
    profile = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "gopher://127.0.0.1:1/ocpp",
        "messageTimeout": 30,
        "securityProfile": 1,
        "ocppInterface": "Wired0",
    }
    await ctx.expect_answer(
        "SetNetworkProfile", {"configurationSlot": 99, "connectionData": profile}, "status", "Rejected"
    )
    await ctx.quiet(1)
    if ctx.cp_id not in ctx.cs.connected:
        raise Fail("the station dropped its connection after a Rejected SetNetworkProfile")


def _network_profile(ctx: Ctx, security_profile: int) -> dict[str, Any]:
    """A NetworkConnectionProfileType pointing at this runner with ``security_profile``."""
    scheme = "wss" if security_profile >= 2 else "ws"
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": f"{scheme}://{ctx.setup.host}:{ctx.setup.port}/ocpp",
        "messageTimeout": 30,
        "securityProfile": security_profile,
        "ocppInterface": "Wired0",
    }


async def upgrade_accepted(ctx: Ctx) -> None:
    """A05: SetNetworkProfile of a slot with security profile 3 (the station is at 2) Accepted,
    NetworkConfigurationPriority naming it first Accepted, Reset OnIdle: the station boots again, connects with a
    client certificate issued to it, and SecurityCtrlr.SecurityProfile reads 3."""
    if ctx.setup.tls is None or not ctx.setup.tls_client_ca:
        raise NotApplicable(
            "the upgrade to security profile 3 needs the runner on wss:// with --tls-ca (client certificates)"
        )
    active = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if active != "2":
        raise NotApplicable(f"the station uses SecurityProfile {active}: the upgrade case starts at 2")
    await ctx.expect_answer(
        "SetNetworkProfile",
        {"configurationSlot": 1, "connectionData": _network_profile(ctx, 3)},
        "status",
        "Accepted",
    )
    await ctx.set_variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "1")
    # No way back (A05.FR.?): the old order names a slot below the new active profile, so it is not set back.
    ctx.restore.pop("OCPPCommCtrlr/NetworkConfigurationPriority", None)
    ctx.cs.handshakes.clear()
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Accepted")
    await reboot_seen(ctx, m, "RemoteReset")
    shown = latest_handshake(ctx)
    if ctx.cp_id not in shown.certificate_names:
        raise Fail(
            "after the upgrade the station connected without a client certificate issued to it "
            f"(names: {sorted(shown.certificate_names) or 'none'})"
        )
    after = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if after != "3":
        raise Fail(f"SecurityCtrlr.SecurityProfile reads {after} after the upgrade to 3")


async def downgrade_rejected(ctx: Ctx) -> None:
    """A05.FR.?: SetNetworkProfile with a security profile below the active one is Rejected; the station stays
    connected at its profile."""
    active = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if active not in ("2", "3"):
        raise NotApplicable(
            f"the station uses SecurityProfile {active}: a downgrade needs profile 2 or 3 (the runner on wss://)"
        )
    profile = _network_profile(ctx, int(active) - 1)
    await ctx.expect_answer(
        "SetNetworkProfile", {"configurationSlot": 1, "connectionData": profile}, "status", "Rejected"
    )
    await ctx.quiet(1)
    if ctx.cp_id not in ctx.cs.connected:
        raise Fail("the station dropped its connection after a Rejected SetNetworkProfile")
    after = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if after != active:
        raise Fail(f"SecurityProfile reads {after} after the Rejected downgrade (was {active})")


add(
    "TC_A_19_CS",
    "Upgrade Charging Station Security Profile - Accepted",
    SECURITY,
    ("SetNetworkProfile 3, priority, Reset: reconnect with a client certificate", upgrade_accepted),
    timeout_s=90,
)
add(
    "TC_A_22_CS",
    "Upgrade Charging Station Security Profile - Downgrade security profile - Rejected",
    SECURITY,
    ("SetNetworkProfile one profile lower: Rejected, profile kept", downgrade_rejected),
)
add(
    "TC_B_43_CS",
    "Set new NetworkConnectionProfile - Rejected",
    PROVISIONING,
    ("SetNetworkProfile of an unusable profile: Rejected", network_profile_rejected),
)


async def still_connected(ctx: Ctx, what: str) -> None:
    """The station keeps its connection after ``what``."""
    await ctx.quiet(1)
    if ctx.cp_id not in ctx.cs.connected:
        raise Fail(f"the station dropped its connection after {what}")


async def upgrade_without_root(ctx: Ctx) -> None:
    """OCTT TC_A_20 (A05): a station at security profile 1 without a CSMSRootCertificate Rejects a
    SetNetworkProfile with security profile 2 (it could not verify the CSMS)."""
    if ctx.setup.tls is not None:
        raise NotApplicable(
            "the station connects over TLS, so it trusts a CSMS root: the case needs a profile 1 station on ws://"
        )
    active = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if active != "1":
        raise NotApplicable(f"the station uses SecurityProfile {active}: the case starts at 1")
    if await installed(ctx, "CSMSRootCertificate"):
        raise NotApplicable("the station has a CSMSRootCertificate installed (the case needs one without)")
    await ctx.expect_answer(
        "SetNetworkProfile",
        {"configurationSlot": 1, "connectionData": _network_profile(ctx, 2)},
        "status",
        "Rejected",
    )
    await still_connected(ctx, "the Rejected SetNetworkProfile")


async def upgrade_without_station_certificate(ctx: Ctx) -> None:
    """OCTT TC_A_21 (A05.FR.03): a station at security profile 2 without a ChargingStationCertificate Rejects a
    SetNetworkProfile with security profile 3. The OCTT prerequisite (no station certificate) is the operator's:
    a profile 2 station presents none, so the runner cannot see whether it holds one."""
    if ctx.setup.tls is None:
        raise NotApplicable(NO_TLS)
    active = await ctx.get_variable("SecurityCtrlr", "SecurityProfile")
    if active != "2":
        raise NotApplicable(f"the station uses SecurityProfile {active}: the case starts at 2")
    shown = await reconnect_handshake(ctx)
    if shown.certificate_names:
        raise NotApplicable("the station presented a client certificate: it has a ChargingStationCertificate")
    await ctx.expect_answer(
        "SetNetworkProfile",
        {"configurationSlot": 1, "connectionData": _network_profile(ctx, 3)},
        "status",
        "Rejected",
    )
    await still_connected(ctx, "the Rejected SetNetworkProfile")


add(
    "TC_A_01_CS",
    "Basic Authentication - Valid username/password combination",
    SECURITY,
    ("SecurityProfile 1 or 2", basic_auth_profile),
    ("reconnect with HTTP Basic <stationId>:<passwordString of 16-40>", basic_auth_valid(password_string)),
)
add(
    "TC_A_06_CS",
    "TLS - server-side certificate - TLS version too low",
    SECURITY,
    ("only TLS 1.1 offered: no connection; TLS 1.2+ again: reconnect", tls_version_too_low),
    timeout_s=90,
)
add(
    "TC_A_20_CS",
    "Upgrade Charging Station Security Profile - No valid CSMSRootCertificate installed",
    SECURITY,
    ("SetNetworkProfile 2 without a CSMS root: Rejected", upgrade_without_root),
)
add(
    "TC_A_21_CS",
    "Upgrade Charging Station Security Profile - No valid ChargingStationCertificate installed",
    SECURITY,
    ("SetNetworkProfile 3 without a station certificate: Rejected", upgrade_without_station_certificate),
)
