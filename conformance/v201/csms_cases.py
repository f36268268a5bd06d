"""OCPP 2.0.1 central-system cases (TC_X_NN_CSMS of the OCTT 2.0.1 catalogue), plus this project's stricter checks.

Each case is data (id, title, functional block, setup needs) and small step functions of a `CsmsContext`; the
simulated station's messages are in `conformance.v201.station`. Verdict rules: every answer schema-valid (the
context), idTokenInfo right for the token's kind (an unknown, blocked or expired idToken is never Accepted; a
TransactionEventResponse carries idTokenInfo whenever the request had an idToken), a wrong password gets 401,
Pending is respected (SecurityError), currentTime and the heartbeat interval, transaction ids and seqNo.
Steps where the CSMS must act use the trigger (REST or tzi-OCTT webhook profile); without one they are inconclusive.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import secrets
import ssl
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from ocpp.messages import Call
from websockets.exceptions import ConnectionClosed

from conformance.csms_runner import (
    CallError,
    CsmsContext,
    HandshakeRefused,
    RawCharger,
    check_status,
    ocpp_time,
    variable_key,
)
from conformance.csms_runner import get_variables_answer as get_variables_answer_from
from conformance.csms_steps import (
    StepFn,
    cs_sends,
    no_credentials,
    offered,
    others_password,
    subprotocol_negotiation,
    unknown_charger,
    upgrade_steps,
    username_mismatch,
    wrong_password,
)
from conformance.model import Case, Fail, Inconclusive, NotApplicable, Step
from conformance.pki import (
    certificate_hash_data,
    check_signed_chain,
    issue,
    make_ca,
    make_csr,
    pem_of,
    self_signed_pem,
)
from conformance.v201.csms_judges import REPORTED_HASHES, deletes_a_reported_certificate
from conformance.v201.station import (
    Tx,
    authorize,
    boot,
    connect_and_boot,
    current_tx,
    heartbeat,
    id_token,
    meter_value,
    status,
    tx_event,
)

__all__ = ["CASES"]

S = Step[CsmsContext]
CASES: list[Case[CsmsContext]] = []

SECURITY, PROVISIONING, AUTHORIZATION, TRANSACTIONS, REMOTE, AVAILABILITY, METER = (
    "A Security",
    "B Provisioning",
    "C Authorization",
    "E Transactions",
    "F RemoteControl",
    "G Availability",
    "J MeterValues",
)
FIRMWARE, CERTIFICATES, DIAGNOSTICS, DATA = (
    "L FirmwareManagement",
    "M CertificateManagement",
    "N Diagnostics",
    "P DataTransfer",
)
# Conditional blocks: not applicable unless --profiles names them (default: all offered).
PROFILE_OF_BLOCK = {
    FIRMWARE: "FirmwareManagement",
    CERTIFICATES: "CertificateManagement",
    DIAGNOSTICS: "Diagnostics",
    DATA: "DataTransfer",
}
ACCEPTED = frozenset({"id_tag_accepted"})
TRIG = frozenset({"trigger"})
TRIG_ACCEPTED = frozenset({"id_tag_accepted", "trigger"})
REMOTE_START_ID = 4711


def case(
    id: str,
    title: str,
    block: str,
    *steps: tuple[str, StepFn],
    needs: frozenset[str] = ACCEPTED,
    timeout_s: float = 60.0,
    catalogue: bool = True,
) -> None:
    """Add a case; every case starts from nothing and opens its own connections."""
    profile = PROFILE_OF_BLOCK.get(block)
    if profile is not None:
        steps = (offered(profile), *steps)
    CASES.append(
        Case(id, title, block, tuple(S(t, f) for t, f in steps), needs, timeout_s, catalogue=catalogue)
    )


def strict(id: str, title: str, block: str, *steps: tuple[str, StepFn], needs: frozenset[str]) -> None:
    """A check the OCTT catalogue does not have (ids OCS_X_NN_CSMS), run like any case."""
    case(id, title, block, *steps, needs=needs, catalogue=False)


# ------------------------------------------------------------------------------------------------ step builders


async def _boot(ctx: CsmsContext) -> None:
    await connect_and_boot(ctx)


BOOT = ("connect, BootNotification Accepted, StatusNotification Available", _boot)


def st(connector_status: str, evse: int = 1, connector: int = 1) -> tuple[str, StepFn]:
    """A step: StatusNotification."""

    async def run(ctx: CsmsContext) -> None:
        await status(ctx, connector_status, evse, connector)

    return (f"StatusNotification EVSE {evse} connector {connector} {connector_status}", run)


def ev(event_type: str, trigger: str, **kw: Any) -> tuple[str, StepFn]:
    """A step: TransactionEvent of the case's transaction (keyword arguments as `tx_event`)."""

    async def run(ctx: CsmsContext) -> None:
        await tx_event(ctx, event_type, trigger, **kw)

    extras = [f"{k}={v}" for k, v in kw.items() if k in ("state", "token_kind", "stopped")]
    return (f"TransactionEvent {event_type} {trigger}" + (f" ({', '.join(extras)})" if extras else ""), run)


def auth(kind: str) -> tuple[str, StepFn]:
    """A step: Authorize a ``kind`` idToken; its status must fit the kind."""

    async def run(ctx: CsmsContext) -> None:
        await authorize(ctx, kind)

    return (f"Authorize the {kind} idToken", run)


def new_transaction() -> tuple[str, StepFn]:
    """A step: the next TransactionEvents belong to a new transaction (seqNo from 0 again)."""

    async def run(ctx: CsmsContext) -> None:
        ctx.vars["tx201"] = Tx.new()

    return ("a new transaction (new transactionId, seqNo 0)", run)


def call(
    action: str, payload: dict[str, Any] | Callable[[CsmsContext], dict[str, Any]]
) -> tuple[str, StepFn]:
    """A step: the station sends ``action``; the answer must be schema-valid."""

    async def run(ctx: CsmsContext) -> None:
        ctx.vars[f"answer:{action}"] = await ctx.call(action, payload(ctx) if callable(payload) else payload)

    return (f"{action}", run)


def reconnect(reason: str) -> tuple[str, StepFn]:
    """A step: the station restarts (connection closed), connects and boots with ``reason``."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.main().close()
        conn = await ctx.open()
        await boot(ctx, conn, reason=reason)
        await status(ctx, "Available", conn=conn)

    return (f"station restarts, BootNotification reason {reason}", run)


BEGIN, PERIODIC, END, CLOCK = "Transaction.Begin", "Sample.Periodic", "Transaction.End", "Sample.Clock"
PLUG_START = [
    st("Occupied"),
    ev("Started", "CablePluggedIn", state="EVConnected", meter=(1000, BEGIN)),
]
AUTH_CHARGE = [
    auth("accepted"),
    ev("Updated", "Authorized", token_kind="accepted"),
    ev("Updated", "ChargingStateChanged", state="Charging", meter=(1500, PERIODIC)),
]
SESSION = [*PLUG_START, *AUTH_CHARGE]
STOP_LOCAL = [
    ev(
        "Ended",
        "StopAuthorized",
        token_kind="accepted",
        stopped="Local",
        state="EVConnected",
        meter=(5000, END),
    ),
    st("Available"),
]


def tx_id(ctx: CsmsContext) -> dict[str, Any]:
    """A payload naming the case's transaction."""
    return {"transactionId": current_tx(ctx).id}


def remote_start(ctx: CsmsContext) -> dict[str, Any]:
    """RequestStartTransaction as the trigger asks for it (F01/F02)."""
    return {
        "idToken": id_token(ctx.tag("accepted"), "Central"),
        "remoteStartId": REMOTE_START_ID,
        "evseId": 1,
    }


REMOTE_EVENT = {"token_kind": "accepted", "token_type": "Central", "remote_start_id": REMOTE_START_ID}


# ================================================================================================ A Security


async def valid_password(ctx: CsmsContext) -> None:
    await ctx.open()
    await boot(ctx)


case(
    "TC_A_01_CSMS",
    "Basic Authentication - Valid username/password combination",
    SECURITY,
    ("the right password connects and boots", valid_password),
    needs=frozenset({"password"}),
)
case(
    "TC_A_02_CSMS",
    "Basic Authentication - Username does not equal ChargingStationId",
    SECURITY,
    ("Basic auth as another user gets HTTP 401", username_mismatch),
    needs=frozenset({"password"}),
)
case(
    "TC_A_03_CSMS",
    "Basic Authentication - Invalid password",
    SECURITY,
    ("a wrong password gets HTTP 401", wrong_password),
    needs=frozenset({"password"}),
)


async def tls_boot(ctx: CsmsContext) -> None:
    """A wss:// connection verified against --tls-ca, TLS 1.2 or later (A00.FR.3xx), connects and boots."""
    await ctx.open()
    transport = ctx.main().ws.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    version = ssl_object.version() if ssl_object is not None else None
    if version not in ("TLSv1.2", "TLSv1.3"):
        raise Fail(f"TLS version {version}: OCPP 2.0.1 A00.FR.304 asks for TLS 1.2 or later")
    await boot(ctx)


case(
    "TC_A_04_CSMS",
    "TLS - server-side certificate - Valid certificate",
    SECURITY,
    ("wss:// with the CA's verification, boot", tls_boot),
    needs=frozenset({"tls"}),
)


async def tls_too_low_refused(ctx: CsmsContext) -> None:
    """A00.FR.304 (TLS 1.2 or above): a handshake offering only TLS 1.1 is not completed by the CSMS. The next
    step shows the CSMS is reachable, so a refusal here is the CSMS's doing."""
    parts = urlsplit(ctx.setup.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE  # only the version is under test here
    try:
        client.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL offers TLS 1.1 only at security level 0
        with warnings.catch_warnings():  # offering a deprecated version is the point of the case
            warnings.simplefilter("ignore", DeprecationWarning)
            client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ssl.SSLError, ValueError) as exc:
        raise NotApplicable(f"this OpenSSL cannot offer TLS 1.1 ({exc}); the case needs it") from None
    ctx.event(f"TLS handshake with {host}:{port} offering only TLSv1.1")
    try:
        async with asyncio.timeout(ctx.scaled(ctx.setup.call_timeout_s)):
            _, writer = await asyncio.open_connection(host, port, ssl=client, server_hostname=host)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        ctx.event(f"not completed: {exc!r}"[:200])
        return
    tls = writer.get_extra_info("ssl_object")
    version = tls.version() if isinstance(tls, ssl.SSLObject) else "?"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    raise Fail(f"the CSMS completed a {version} handshake; OCPP 2.0.1 A00.FR.304 asks for TLS 1.2 or above")


async def unknown_client_certificate_refused(ctx: CsmsContext) -> None:
    """A00.FR.407: a client certificate for the charger id signed by a CA the CSMS does not know is refused (the
    TLS handshake fails, or the upgrade gets an HTTP error); no WebSocket is opened."""
    ca_key, ca = make_ca("Conformance runner unknown CA")
    key, cert = issue(ca_key, ca, common_name=ctx.setup.charger_id)
    assert key is not None
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp) / "client.pem", Path(tmp) / "client.key"
        cert_file.write_text(pem_of(cert))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = (
            False,
            ssl.CERT_NONE,
        )  # the client certificate is under test
        client.load_cert_chain(cert_file, key_file)
    configured, ctx.setup.ssl_context = ctx.setup.ssl_context, client
    ctx.event("presenting a client certificate from an unknown CA")
    try:
        ws = await ctx.handshake(ctx.setup.charger_id, None)
    except (Fail, HandshakeRefused, ConnectionClosed, OSError) as exc:
        ctx.event(f"refused: {getattr(exc, 'reason', exc)!s}"[:200])
        return
    finally:
        ctx.setup.ssl_context = configured
    await ws.close()
    raise Fail("the CSMS opened a WebSocket for a client certificate from an unknown CA (A00.FR.407)")


case(
    "TC_A_06_CSMS",
    "TLS - server-side certificate - TLS version too low",
    SECURITY,
    ("a TLS 1.1-only handshake is not completed", tls_too_low_refused),
    ("wss:// with TLS 1.2 or later, boot", tls_boot),
    needs=frozenset({"tls"}),
)
case(
    "TC_A_07_CSMS",
    "TLS - Client-side certificate - valid certificate",
    SECURITY,
    ("wss:// with the client certificate (--tls-cert), boot", tls_boot),
    needs=frozenset({"tls", "client_certificate"}),
)
case(
    "TC_A_08_CSMS",
    "TLS - Client-side certificate - Invalid certificate",
    SECURITY,
    ("a client certificate from an unknown CA is refused", unknown_client_certificate_refused),
    ("then the valid one (--tls-cert) connects and boots", tls_boot),
    needs=frozenset({"tls", "client_certificate"}),
)


UPGRADE_SLOT = 1  # the configurationSlot of the new NetworkConnectionProfile (TC_A_19_CSMS)


async def _boot_available(ctx: CsmsContext, conn: RawCharger) -> None:
    """BootNotification Accepted, EVSE 1 connector 1 Available (OCTT reusable state Booted)."""
    await boot(ctx, conn)
    await status(ctx, "Available", conn=conn)


def upgrade_profile_payload(ctx: CsmsContext) -> dict[str, Any]:
    """SetNetworkProfile of a slot one security profile above the upgrade charger's, at the higher profile's
    endpoint, OCPP20 over JSON (OCTT TC_A_19_CSMS step 1)."""
    higher = ctx.setup.upgrade_profiles[1]
    return {
        "configurationSlot": UPGRADE_SLOT,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": ctx.setup.upgrade_endpoint(higher)[0],
            "messageTimeout": 30,
            "securityProfile": higher,
            "ocppInterface": "Wired0",
        },
    }


def raises_profile_by_one(ctx: CsmsContext, received: dict[str, Any]) -> None:
    """OCTT TC_A_19_CSMS step 1: connectionData has securityProfile one above the current, ocppTransport JSON and
    ocppVersion OCPP20 (A05.FR.04: a profile slot at the current profile or above)."""
    data = received.get("connectionData") or {}
    higher = ctx.setup.upgrade_profiles[1]
    wrong = {
        k: data.get(k)
        for k, v in (("securityProfile", higher), ("ocppTransport", "JSON"), ("ocppVersion", "OCPP20"))
        if data.get(k) != v
    }
    if wrong:
        raise Fail(
            f"SetNetworkProfileRequest connectionData {wrong}: the upgrade needs securityProfile {higher}, JSON, "
            "OCPP20 (A05)"
        )


UPGRADE_PRIORITY = {
    "attributeValue": str(UPGRADE_SLOT),
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "NetworkConfigurationPriority"},
}
UPGRADE_FIRST, UPGRADE_LAST = upgrade_steps(_boot_available, "OCPP 2.0.1 A05: no lower security profile")
case(
    "TC_A_19_CSMS",
    "Upgrade Charging Station Security Profile - Accepted",
    SECURITY,
    UPGRADE_FIRST,
    cs_sends(
        "SetNetworkProfile", upgrade_profile_payload, {"status": "Accepted"}, judge=raises_profile_by_one
    ),
    cs_sends(
        "SetVariables",
        {"setVariableData": [UPGRADE_PRIORITY]},
        {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": UPGRADE_PRIORITY["component"],
                    "variable": UPGRADE_PRIORITY["variable"],
                }
            ]
        },
    ),
    cs_sends("Reset", {"type": "Immediate"}, {"status": "Accepted"}),
    *UPGRADE_LAST,
    needs=frozenset({"upgrade_charger", "trigger"}),
    timeout_s=90,
)


def new_password_payload(ctx: CsmsContext) -> dict[str, Any]:
    """SetVariables of SecurityCtrlr.BasicAuthPassword to a fresh password (A01; 16 to 40 characters)."""
    password = str(ctx.vars.setdefault("new_password", "conf-" + secrets.token_hex(10)))
    return {
        "setVariableData": [
            {
                "attributeValue": password,
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
            }
        ]
    }


def set_variable_result(status: str, component: str, variable: str) -> dict[str, Any]:
    """One SetVariableResultType."""
    return {"attributeStatus": status, "component": {"name": component}, "variable": {"name": variable}}


async def new_password_works(ctx: CsmsContext) -> None:
    """A01: after the station accepted the new password it reconnects with it; the old one gets 401."""
    await ctx.check_password_change(str(ctx.vars["new_password"]), True, "OCPP 2.0.1 A01")


async def restore_password(ctx: CsmsContext) -> None:
    """Cleanup: give the station its configured password back (the CSMS is triggered again)."""
    payload = {
        "setVariableData": [
            {
                "attributeValue": ctx.setup.password or "",
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
            }
        ]
    }
    answer = {"setVariableResult": [set_variable_result("Accepted", "SecurityCtrlr", "BasicAuthPassword")]}
    await ctx.restore_password(lambda c, conn: boot(c, conn), "SetVariables", payload, answer)


async def old_password_still_works(ctx: CsmsContext) -> None:
    """A01: a station that Rejected the new password keeps the old one; the CSMS must still admit it."""
    await ctx.check_password_change(str(ctx.vars["new_password"]), False, "OCPP 2.0.1 A01")


CASES.append(
    Case(
        "TC_A_09_CSMS",
        "Update Charging Station Password for HTTP Basic Authentication - Accepted",
        SECURITY,
        (
            S(*BOOT),
            S(
                *cs_sends(
                    "SetVariables",
                    new_password_payload,
                    {
                        "setVariableResult": [
                            set_variable_result("Accepted", "SecurityCtrlr", "BasicAuthPassword")
                        ]
                    },
                )
            ),
            S("reconnect with the new password: admitted; the old one: 401", new_password_works),
        ),
        frozenset({"password", "trigger"}),
        cleanup=(S("change the password back", restore_password),),
    )
)
case(
    "TC_A_10_CSMS",
    "Update Charging Station Password for HTTP Basic Authentication - Rejected",
    SECURITY,
    BOOT,
    cs_sends(
        "SetVariables",
        new_password_payload,
        {"setVariableResult": [set_variable_result("Rejected", "SecurityCtrlr", "BasicAuthPassword")]},
    ),
    ("reconnect with the old password: admitted; the rejected one: refused", old_password_still_works),
    needs=frozenset({"password", "trigger"}),
)

# ================================================================================================ B Provisioning


case(
    "TC_B_01_CSMS",
    "Cold Boot Charging Station - Accepted",
    PROVISIONING,
    BOOT,
    ("Heartbeat: currentTime close to ours (interval honoured with --heartbeat-wait-max)", heartbeat),
    needs=frozenset(),
)


async def pending_boot(ctx: CsmsContext) -> None:
    """The pending station boots: Pending (B02)."""
    conn = await ctx.open("pending")
    await boot(ctx, conn, expect="Pending")


async def pending_refused(ctx: CsmsContext, action: str, payload: dict[str, Any]) -> None:
    """B02.FR.09/B03.FR.07: a Pending station's CALL (not triggered) gets CALLERROR SecurityError."""
    conn = ctx.conns[-1]
    try:
        answer = await conn.call(action, payload)
    except CallError as exc:
        if exc.code != "SecurityError":
            raise Fail(
                f"a Pending station's {action} got CALLERROR {exc.code}, expected SecurityError (B02.FR.09)"
            ) from None
        return
    raise Fail(
        f"a Pending station's {action} was served: {answer} (OCPP 2.0.1 B02.FR.09: CALLERROR SecurityError)"
    )


async def pending_status(ctx: CsmsContext) -> None:
    await pending_refused(
        ctx,
        "StatusNotification",
        {"timestamp": ocpp_time(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    )


async def pending_transaction(ctx: CsmsContext) -> None:
    """A Pending station's TransactionEvent with an accepted idToken must not open an accepted transaction."""
    payload = {
        "eventType": "Started",
        "timestamp": ocpp_time(),
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": Tx.new().id},
        "idToken": id_token(ctx.tag("accepted")),
        "evse": {"id": 1, "connectorId": 1},
    }
    conn = ctx.conns[-1]
    try:
        answer = await conn.call("TransactionEvent", payload)
    except CallError:
        return
    if answer.get("idTokenInfo", {}).get("status") == "Accepted":
        raise Fail("a Pending station's transaction was Accepted (OCPP 2.0.1 B02.FR.09: not before Accepted)")


async def pending_again(ctx: CsmsContext) -> None:
    """B02: a Pending station boots again after the interval; the answer is a schema-valid registration status."""
    await boot(ctx, ctx.conns[-1], expect="Pending")


case(
    "TC_B_02_CSMS",
    "Cold Boot Charging Station - Pending",
    PROVISIONING,
    ("pending station: BootNotification answered Pending", pending_boot),
    ("BootNotification again: still Pending", pending_again),
    needs=frozenset({"pending_charger"}),
)


case(
    "TC_B_30_CSMS",
    "Cold Boot Charging Station - Pending/Rejected - SecurityError",
    PROVISIONING,
    ("pending station: BootNotification answered Pending", pending_boot),
    ("StatusNotification while Pending: CALLERROR SecurityError", pending_status),
    needs=frozenset({"pending_charger"}),
)


async def pending_trigger_boot(ctx: CsmsContext) -> None:
    """B_31: the CSMS sends TriggerMessage(BootNotification) to the Pending station; it boots again (Triggered)."""
    conn = ctx.conns[-1]
    await ctx.csms_sends(
        "TriggerMessage", {"requestedMessage": "BootNotification"}, {"status": "Accepted"}, conn=conn
    )
    answer = await ctx.call(
        "BootNotification",
        {
            "reason": "Triggered",
            "chargingStation": {"model": "Virtual-2.0.1", "vendorName": "OpenChargeConf"},
        },
        conn,
    )
    if answer["status"] not in ("Pending", "Accepted"):
        raise Fail(f"a triggered BootNotification of the pending station got {answer['status']}")


case(
    "TC_B_31_CSMS",
    "Cold Boot Charging Station - Pending/Rejected - TriggerMessage",
    PROVISIONING,
    ("pending station: BootNotification answered Pending", pending_boot),
    ("CSMS sends TriggerMessage BootNotification; the station boots (Triggered)", pending_trigger_boot),
    needs=frozenset({"pending_charger", "trigger"}),
)


def component_variable(component: str, variable: str) -> dict[str, Any]:
    """A GetVariableDataType."""
    return {"component": {"name": component}, "variable": {"name": variable}}


def get_variable_result(component: str, variable: str, value: str) -> dict[str, Any]:
    """One Accepted GetVariableResultType."""
    return {"attributeStatus": "Accepted", "attributeValue": value, **component_variable(component, variable)}


GET_ONE = [component_variable("OCPPCommCtrlr", "HeartbeatInterval")]
GET_MANY = [
    component_variable("OCPPCommCtrlr", "HeartbeatInterval"),
    component_variable("AuthCtrlr", "AuthorizeRemoteStart"),
    component_variable("TxCtrlr", "EVConnectionTimeOut"),
]
VALUES = {"HeartbeatInterval": "60", "AuthorizeRemoteStart": "false", "EVConnectionTimeOut": "60"}


def get_variables_answer(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "getVariableResult": [
            get_variable_result(d["component"]["name"], d["variable"]["name"], VALUES[d["variable"]["name"]])
            for d in data
        ]
    }


case(
    "TC_B_06_CSMS",
    "Get Variables - single value",
    PROVISIONING,
    BOOT,
    cs_sends("GetVariables", {"getVariableData": GET_ONE}, get_variables_answer(GET_ONE)),
    needs=TRIG,
)
case(
    "TC_B_07_CSMS",
    "Get Variables - multiple values",
    PROVISIONING,
    BOOT,
    cs_sends("GetVariables", {"getVariableData": GET_MANY}, get_variables_answer(GET_MANY)),
    needs=TRIG,
)
# TC_B_08_CSMS (B06.FR.05): the station takes 4 GetVariableData a request; five variables go as 4 + 1.
B08_ITEMS = 4
B08_VALUES: dict[tuple[str, str, str | None], str] = {
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"): "4",
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): str(B08_ITEMS),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetReport"): "4096",
    ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"): "4096",
    ("AuthCtrlr", "AuthorizeRemoteStart", None): "true",
}


def _variable_data(key: tuple[str, str, str | None]) -> dict[str, Any]:
    variable: dict[str, Any] = {"name": key[1]}
    if key[2] is not None:
        variable["instance"] = key[2]
    return {"component": {"name": key[0]}, "variable": variable}


async def get_variables_within_items(ctx: CsmsContext) -> None:
    """The CSMS is asked for five variables; every GetVariablesRequest it sends has at most ItemsPerMessage
    (GetVariables) = 4 entries (B06.FR.05), and between them they ask for all five (answered as they come, a read
    of the station's limits included)."""
    conn = ctx.main()
    trigger = ctx.setup.trigger
    if trigger is None or not trigger.available("GetVariables"):
        raise Inconclusive(
            "needs the central system to send GetVariables: give --trigger FILE or --interactive"
        )
    wanted = set(B08_VALUES)
    asked = {"getVariableData": [_variable_data(k) for k in B08_VALUES]}
    seen: set[tuple[Any, Any, Any]] = set()
    sizes: list[int] = []
    expected = conn.expect("GetVariables")
    fired = asyncio.create_task(trigger.fire("GetVariables", asked, conn.cp_id))
    try:
        async with asyncio.timeout(ctx.scaled(ctx.setup.trigger_wait_s)):
            while not wanted <= seen:
                await asyncio.wait([expected, fired], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                if not expected.done():
                    exc = fired.exception()
                    if exc is not None:
                        raise Inconclusive(f"the trigger for GetVariables failed: {exc}")
                    raise Fail(
                        f"the central system answered the trigger having asked for {len(seen)} of the 5 variables"
                    )
                unique_id, received = expected.result()
                await ctx.check_schema(
                    Call(unique_id, "GetVariables", copy.deepcopy(received)), "GetVariablesRequest"
                )
                data = received["getVariableData"]
                sizes.append(len(data))
                if len(data) > B08_ITEMS:
                    await conn.send(
                        [4, unique_id, "OccurrenceConstraintViolation", "over ItemsPerMessage", {}]
                    )
                    raise Fail(
                        f"a GetVariablesRequest with {len(data)} GetVariableData; the station reported "
                        f"ItemsPerMessage[GetVariables] = {B08_ITEMS} (B06.FR.05)"
                    )
                seen |= {variable_key(d) for d in data}
                expected = conn.expect(
                    "GetVariables"
                )  # before answering: the next request may follow at once
                await conn.send([3, unique_id, get_variables_answer_from(received, B08_VALUES)])
    except TimeoutError:
        raise Fail(
            f"after requests of {sizes} variables the central system had not asked for all 5"
        ) from None
    finally:
        conn.forget("GetVariables")
        if not fired.done():
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(ctx.scaled(ctx.setup.call_timeout_s)):
                    await asyncio.shield(fired)
        fired.cancel()
        await asyncio.gather(fired, return_exceptions=True)
    if seen - wanted:
        raise Fail(
            f"the central system asked for variables it was not asked for: {sorted(map(str, seen - wanted))}"
        )
    ctx.event(f"GetVariablesRequests of {sizes} variables")


case(
    "TC_B_08_CSMS",
    "Get Variables - limit to maximum number of values",
    PROVISIONING,
    BOOT,
    *(
        (
            f"configuration: the CSMS reads DeviceDataCtrlr.{name}[GetVariables] = {B08_VALUES[key]}",
            cs_sends(
                "GetVariables",
                {"getVariableData": [_variable_data(key)]},
                get_variables_answer_from({"getVariableData": [_variable_data(key)]}, B08_VALUES),
            )[1],
        )
        for name in ("ItemsPerMessage", "BytesPerMessage")
        for key in [("DeviceDataCtrlr", name, "GetVariables")]
    ),
    ("CSMS asked for 5 variables sends GetVariablesRequests of at most 4", get_variables_within_items),
    needs=TRIG,
)


SET_ONE = [{"attributeValue": "120", **component_variable("OCPPCommCtrlr", "HeartbeatInterval")}]
SET_MANY = [
    *SET_ONE,
    {"attributeValue": "90", **component_variable("TxCtrlr", "EVConnectionTimeOut")},
]


def set_variables_answer(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "setVariableResult": [
            set_variable_result("Accepted", d["component"]["name"], d["variable"]["name"]) for d in data
        ]
    }


case(
    "TC_B_09_CSMS",
    "Set Variables - single value",
    PROVISIONING,
    BOOT,
    cs_sends("SetVariables", {"setVariableData": SET_ONE}, set_variables_answer(SET_ONE)),
    needs=TRIG,
)
case(
    "TC_B_10_CSMS",
    "Set Variables - multiple values",
    PROVISIONING,
    BOOT,
    cs_sends("SetVariables", {"setVariableData": SET_MANY}, set_variables_answer(SET_MANY)),
    needs=TRIG,
)


def notify_report(request_id: int) -> tuple[str, StepFn]:
    """A step: the station reports (NotifyReport, one chunk, tbc false) for ``request_id`` (B07.FR.xx)."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.call(
            "NotifyReport",
            {
                "requestId": request_id,
                "generatedAt": ocpp_time(),
                "seqNo": 0,
                "tbc": False,
                "reportData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "variableAttribute": [{"type": "Actual", "value": "60", "mutability": "ReadWrite"}],
                        "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
                    }
                ],
            },
        )

    return (f"NotifyReport requestId {request_id}", run)


for number, base in ((12, "ConfigurationInventory"), (13, "FullInventory"), (14, "SummaryInventory")):
    case(
        f"TC_B_{number}_CSMS",
        f"Get Base Report - {base}",
        PROVISIONING,
        BOOT,
        cs_sends("GetBaseReport", {"requestId": 100 + number, "reportBase": base}, {"status": "Accepted"}),
        notify_report(100 + number),
        needs=TRIG,
    )
case(
    "TC_B_18_CSMS",
    "Get Custom Report - with componentCriteria and component/variables",
    PROVISIONING,
    BOOT,
    cs_sends(
        "GetReport",
        {
            "requestId": 118,
            "componentCriteria": ["Available"],
            "componentVariable": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ],
        },
        {"status": "Accepted"},
    ),
    notify_report(118),
    needs=TRIG,
)

# B11/B12 Reset: the station and single EVSEs, idle and with a transaction.
case(
    "TC_B_20_CSMS",
    "Reset Charging Station - Without ongoing transaction - OnIdle",
    PROVISIONING,
    BOOT,
    cs_sends("Reset", {"type": "OnIdle"}, {"status": "Accepted"}),
    reconnect("RemoteReset"),
    needs=TRIG,
)
case(
    "TC_B_21_CSMS",
    "Reset Charging Station - With Ongoing Transaction - OnIdle",
    PROVISIONING,
    BOOT,
    *SESSION,
    cs_sends("Reset", {"type": "OnIdle"}, {"status": "Scheduled"}),
    *STOP_LOCAL,
    reconnect("RemoteReset"),
    needs=TRIG_ACCEPTED,
)
IMMEDIATE_END = ev("Ended", "ResetCommand", stopped="ImmediateReset", state="EVConnected", meter=(4000, END))
case(
    "TC_B_22_CSMS",
    "Reset Charging Station - With Ongoing Transaction - Immediate",
    PROVISIONING,
    BOOT,
    *SESSION,
    cs_sends("Reset", {"type": "Immediate"}, {"status": "Accepted"}),
    IMMEDIATE_END,
    reconnect("RemoteReset"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_B_25_CSMS",
    "Reset EVSE - Without ongoing transaction",
    PROVISIONING,
    BOOT,
    cs_sends("Reset", {"type": "OnIdle", "evseId": 1}, {"status": "Accepted"}),
    st("Unavailable"),
    st("Available"),
    needs=TRIG,
)
case(
    "TC_B_26_CSMS",
    "Reset EVSE - With Ongoing Transaction - OnIdle",
    PROVISIONING,
    BOOT,
    *SESSION,
    cs_sends("Reset", {"type": "OnIdle", "evseId": 1}, {"status": "Scheduled"}),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_B_27_CSMS",
    "Reset EVSE - With Ongoing Transaction - Immediate",
    PROVISIONING,
    BOOT,
    *SESSION,
    cs_sends("Reset", {"type": "Immediate", "evseId": 1}, {"status": "Accepted"}),
    IMMEDIATE_END,
    st("Available"),
    needs=TRIG_ACCEPTED,
)
NETWORK_PROFILE = {
    "configurationSlot": 1,
    "connectionData": {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example.invalid/ocpp",
        "messageTimeout": 30,
        "securityProfile": 2,
        "ocppInterface": "Wired0",
    },
}
case(
    "TC_B_42_CSMS",
    "Set new NetworkConnectionProfile - Accepted",
    PROVISIONING,
    BOOT,
    cs_sends("SetNetworkProfile", NETWORK_PROFILE, {"status": "Accepted"}),
    needs=TRIG,
)
case(
    "TC_B_44_CSMS",
    "Set new NetworkConnectionProfile - Failed",
    PROVISIONING,
    BOOT,
    cs_sends("SetNetworkProfile", NETWORK_PROFILE, {"status": "Failed"}),
    ("Heartbeat: the link stays up", heartbeat),
    needs=TRIG,
)
case(
    "TC_B_58_CSMS",
    "WebSocket Subprotocol validation",
    PROVISIONING,
    ("subprotocol negotiation", subprotocol_negotiation),
    needs=frozenset(),
)

# ================================================================================================ C Authorization

for number, kind in ((2, "invalid"), (6, "blocked"), (7, "expired")):
    title = {"invalid": "Invalid/Unknown", "blocked": "Blocked", "expired": "Expired"}[kind]
    case(
        f"TC_C_{number:02d}_CSMS",
        f"Local start transaction - Authorization {title}",
        AUTHORIZATION,
        BOOT,
        auth(kind),
        needs=frozenset({f"id_tag_{kind}"}),
    )
case(
    "TC_C_08_CSMS",
    "Authorization through authorization cache - Accepted",
    AUTHORIZATION,
    BOOT,
    *PLUG_START,
    ev("Updated", "Authorized", token_kind="accepted", state="Charging"),
    *STOP_LOCAL,
)
DEAUTHORIZED_END = ev("Ended", "Deauthorized", stopped="DeAuthorized", state="EVConnected", meter=(1000, END))
case(
    "TC_C_20_CSMS",
    "Authorization through authorization cache - Invalid",
    AUTHORIZATION,
    BOOT,
    *PLUG_START,
    ev("Updated", "Authorized", token_kind="invalid"),
    DEAUTHORIZED_END,
    needs=frozenset({"id_tag_invalid"}),
)
case(
    "TC_C_37_CSMS",
    "Clear Authorization Data in Authorization Cache - Accepted",
    AUTHORIZATION,
    BOOT,
    cs_sends("ClearCache", {}, {"status": "Accepted"}),
    needs=TRIG,
)
case(
    "TC_C_38_CSMS",
    "Clear Authorization Data in Authorization Cache - Rejected",
    AUTHORIZATION,
    BOOT,
    cs_sends("ClearCache", {}, {"status": "Rejected"}),
    ("Heartbeat: the link stays up", heartbeat),
    needs=TRIG,
)

# ================================================================================================ E Transactions

AUTH_FIRST_START = [
    auth("accepted"),
    ev("Started", "Authorized", token_kind="accepted", state="Idle"),
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="EVConnected"),
]
case(
    "TC_E_01_CSMS",
    "Start transaction options - PowerPathClosed",
    TRANSACTIONS,
    BOOT,
    st("Occupied"),
    auth("accepted"),
    ev("Started", "ChargingStateChanged", token_kind="accepted", state="SuspendedEVSE", meter=(1000, BEGIN)),
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
)
case(
    "TC_E_02_CSMS",
    "Start transaction options - EnergyTransfer",
    TRANSACTIONS,
    BOOT,
    st("Occupied"),
    auth("accepted"),
    ev("Started", "ChargingStateChanged", token_kind="accepted", state="Charging", meter=(1000, BEGIN)),
    *STOP_LOCAL,
)
case(
    "TC_E_03_CSMS",
    "Local start transaction - Cable plugin first - Success",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    *STOP_LOCAL,
)
case(
    "TC_E_04_CSMS",
    "Local start transaction - Authorization first - Success",
    TRANSACTIONS,
    BOOT,
    *AUTH_FIRST_START,
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
)
case(
    "TC_E_07_CSMS",
    "Stop transaction options - PowerPathClosed - Local stop",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    ev("Updated", "StopAuthorized", token_kind="accepted", state="EVConnected"),
    ev("Ended", "ChargingStateChanged", stopped="Local", state="EVConnected", meter=(5000, END)),
    st("Available"),
)
case(
    "TC_E_08_CSMS",
    "Stop transaction options - EnergyTransfer stopped - StopAuthorized",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    ev(
        "Ended",
        "StopAuthorized",
        token_kind="accepted",
        stopped="Local",
        state="SuspendedEVSE",
        meter=(5000, END),
    ),
    st("Available"),
)
case(
    "TC_E_09_CSMS",
    "Start transaction options - EVConnected",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    *STOP_LOCAL,
)
case(
    "TC_E_10_CSMS",
    "Start transaction options - Authorized - Local",
    TRANSACTIONS,
    BOOT,
    *AUTH_FIRST_START,
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
)
case(
    "TC_E_11_CSMS",
    "Start transaction options - DataSigned",
    TRANSACTIONS,
    BOOT,
    st("Occupied"),
    auth("accepted"),
    ev(
        "Started",
        "SignedDataReceived",
        token_kind="accepted",
        state="EVConnected",
        meter=(1000, BEGIN),
        signed=True,
    ),
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
)
case(
    "TC_E_12_CSMS",
    "Start transaction options - ParkingBayOccupied",
    TRANSACTIONS,
    BOOT,
    ev("Started", "EVDetected", state="Idle"),
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="EVConnected"),
    *AUTH_CHARGE,
    *STOP_LOCAL,
)
EV_GONE_END = [
    ev("Ended", "EVCommunicationLost", stopped="EVDisconnected", state="Idle", meter=(5000, END)),
    st("Available"),
]
case(
    "TC_E_14_CSMS",
    "Stop transaction options - EVDisconnected - Charging Station side",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    *EV_GONE_END,
)
case(
    "TC_E_15_CSMS",
    "Stop transaction options - StopAuthorized - Local",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    *STOP_LOCAL,
)
case(
    "TC_E_16_CSMS",
    "Stop transaction options - Deauthorized - Invalid idToken",
    TRANSACTIONS,
    BOOT,
    *PLUG_START,
    ev("Updated", "Authorized", token_kind="invalid", state="EVConnected"),
    DEAUTHORIZED_END,
    st("Available"),
    needs=frozenset({"id_tag_invalid"}),
)
case(
    "TC_E_17_CSMS",
    "Stop transaction options - Deauthorized - EV side disconnect",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    *EV_GONE_END,
)
case(
    "TC_E_19_CSMS",
    "Stop transaction options - ParkingBayUnoccupied",
    TRANSACTIONS,
    BOOT,
    ev("Started", "EVDetected", state="Idle"),
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="EVConnected"),
    *AUTH_CHARGE,
    ev("Updated", "EVCommunicationLost", state="Idle"),
    st("Available"),
    ev("Ended", "EVDeparted", stopped="EVDisconnected", meter=(5000, END)),
)
case(
    "TC_E_20_CSMS",
    "Stop transaction options - EVDisconnected - EV side (IEC 61851-1)",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    ev("Updated", "ChargingStateChanged", state="SuspendedEV"),
    *EV_GONE_END,
)
case(
    "TC_E_21_CSMS",
    "Stop transaction options - StopAuthorized - Remote",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    cs_sends("RequestStopTransaction", tx_id, {"status": "Accepted"}),
    ev("Ended", "RemoteStop", stopped="Remote", state="EVConnected", meter=(5000, END)),
    st("Available"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_E_22_CSMS",
    "Stop transaction options - EnergyTransfer stopped - SuspendedEV",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    ev("Updated", "ChargingStateChanged", state="SuspendedEV"),
    *STOP_LOCAL,
)
case(
    "TC_E_26_CSMS",
    "Disconnect cable on EV-side - Suspend transaction",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    ev("Updated", "EVCommunicationLost", state="Idle"),
    ev("Updated", "CablePluggedIn", state="EVConnected"),
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
)
for number, title, before_end, with_id, queue in (
    (29, "Transaction with id ongoing - with message in queue", True, True, True),
    (30, "Transaction with id ongoing - without message in queue", True, True, False),
    (31, "Transaction with id ended - with message in queue", False, True, True),
    (33, "Without transactionId - with message in queue", True, False, True),
    (34, "Without transactionId - without message in queue", True, False, False),
):
    answer: dict[str, Any] = {"messagesInQueue": queue}
    if with_id:
        answer["ongoingIndicator"] = before_end
    ask = cs_sends("GetTransactionStatus", tx_id if with_id else {}, answer)
    steps = [*SESSION, ask, *STOP_LOCAL] if before_end else [*SESSION, *STOP_LOCAL, ask]
    case(
        f"TC_E_{number}_CSMS",
        f"Check Transaction status - {title}",
        TRANSACTIONS,
        BOOT,
        *steps,
        needs=TRIG_ACCEPTED,
    )
case(
    "TC_E_38_CSMS",
    "Local start transaction - EV not ready",
    TRANSACTIONS,
    BOOT,
    *PLUG_START,
    auth("accepted"),
    ev("Updated", "Authorized", token_kind="accepted", state="SuspendedEV"),
    *STOP_LOCAL,
)
case(
    "TC_E_39_CSMS",
    "Stop transaction options - Deauthorized - timeout",
    TRANSACTIONS,
    BOOT,
    auth("accepted"),
    ev("Started", "Authorized", token_kind="accepted", state="Idle"),
    ev("Ended", "EVConnectTimeout", stopped="Timeout", state="Idle"),
)
case(
    "TC_E_53_CSMS",
    "Reset Sequence Number - CSMS accepting seqNo = 0 at start of transaction",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    *STOP_LOCAL,
    new_transaction(),
    *SESSION,
    *STOP_LOCAL,
)

# ================================================================================================ F Remote control

case(
    "TC_F_01_CSMS",
    "Remote start transaction - Cable plugin first",
    REMOTE,
    BOOT,
    *PLUG_START,
    cs_sends("RequestStartTransaction", remote_start, {"status": "Accepted"}),
    ev("Updated", "RemoteStart", state="Charging", **REMOTE_EVENT),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
REMOTE_FIRST = [
    cs_sends("RequestStartTransaction", remote_start, {"status": "Accepted"}),
    ev("Started", "RemoteStart", state="Idle", **REMOTE_EVENT),
]
case(
    "TC_F_02_CSMS",
    "Remote start transaction - Remote start first - AuthorizeRemoteStart is true",
    REMOTE,
    BOOT,
    cs_sends("RequestStartTransaction", remote_start, {"status": "Accepted"}),
    auth("accepted"),
    ev("Started", "RemoteStart", state="Idle", **REMOTE_EVENT),
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="EVConnected"),
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_F_03_CSMS",
    "Remote start transaction - Remote start first - AuthorizeRemoteStart is false",
    REMOTE,
    BOOT,
    *REMOTE_FIRST,
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="EVConnected"),
    ev("Updated", "ChargingStateChanged", state="Charging"),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_F_04_CSMS",
    "Remote start transaction - Remote start first - Cable plugin timeout",
    REMOTE,
    BOOT,
    *REMOTE_FIRST,
    ev("Ended", "EVConnectTimeout", stopped="Timeout", state="Idle"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_F_06_CSMS",
    "Remote unlock Connector - Without ongoing transaction - Accepted",
    REMOTE,
    BOOT,
    cs_sends("UnlockConnector", {"evseId": 1, "connectorId": 1}, {"status": "Unlocked"}),
    needs=TRIG,
)


def triggered(message: str, evse: bool = True) -> tuple[str, StepFn]:
    """A step: the CSMS sends TriggerMessage(``message``); the station accepts."""
    payload: dict[str, Any] = {"requestedMessage": message}
    if evse:
        payload["evse"] = {"id": 1}
    return cs_sends("TriggerMessage", payload, {"status": "Accepted"})


TRIGGERED_METER = call("MeterValues", lambda c: {"evseId": 1, "meterValue": [meter_value(1200, "Trigger")]})
case(
    "TC_F_11_CSMS",
    "Trigger message - MeterValues - Specific EVSE",
    REMOTE,
    BOOT,
    triggered("MeterValues"),
    TRIGGERED_METER,
    needs=TRIG,
)
case(
    "TC_F_12_CSMS",
    "Trigger message - MeterValues - All EVSE",
    REMOTE,
    BOOT,
    triggered("MeterValues", evse=False),
    TRIGGERED_METER,
    needs=TRIG,
)
TRIGGERED_TX = ev("Updated", "Trigger", state="Charging", meter=(2500, "Trigger"))
case(
    "TC_F_13_CSMS",
    "Trigger message - TransactionEvent - Specific EVSE",
    REMOTE,
    BOOT,
    *SESSION,
    triggered("TransactionEvent"),
    TRIGGERED_TX,
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_F_14_CSMS",
    "Trigger message - TransactionEvent - All EVSE",
    REMOTE,
    BOOT,
    *SESSION,
    triggered("TransactionEvent", evse=False),
    TRIGGERED_TX,
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_F_15_CSMS",
    "Trigger message - LogStatusNotification - Idle",
    REMOTE,
    BOOT,
    triggered("LogStatusNotification", evse=False),
    call("LogStatusNotification", {"status": "Idle"}),
    needs=TRIG,
)
case(
    "TC_F_18_CSMS",
    "Trigger message - FirmwareStatusNotification - Idle",
    REMOTE,
    BOOT,
    triggered("FirmwareStatusNotification", evse=False),
    call("FirmwareStatusNotification", {"status": "Idle"}),
    needs=TRIG,
)
case(
    "TC_F_20_CSMS",
    "Trigger message - Heartbeat",
    REMOTE,
    BOOT,
    triggered("Heartbeat", evse=False),
    ("Heartbeat", heartbeat),
    needs=TRIG,
)
case(
    "TC_F_23_CSMS",
    "Trigger message - StatusNotification - Specific EVSE - Available",
    REMOTE,
    BOOT,
    cs_sends(
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        {"status": "Accepted"},
    ),
    st("Available"),
    needs=TRIG,
)
case(
    "TC_F_24_CSMS",
    "Trigger message - StatusNotification - Specific EVSE - Occupied",
    REMOTE,
    BOOT,
    st("Occupied"),
    cs_sends(
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        {"status": "Accepted"},
    ),
    st("Occupied"),
    needs=TRIG,
)
case(
    "TC_F_27_CSMS",
    "Trigger message - NotImplemented",
    REMOTE,
    BOOT,
    cs_sends(
        "TriggerMessage",
        {"requestedMessage": "PublishFirmwareStatusNotification"},
        {"status": "NotImplemented"},
    ),
    ("Heartbeat: the link stays up", heartbeat),
    needs=TRIG,
)

# ================================================================================================ G Availability


def availability(status_: str, evse: dict[str, int] | None) -> dict[str, Any]:
    """A ChangeAvailabilityRequest payload."""
    payload: dict[str, Any] = {"operationalStatus": status_}
    if evse is not None:
        payload["evse"] = evse
    return payload


for number, target, evse_ in (
    (3, "EVSE", {"id": 1}),
    (5, "Charging Station", None),
    (7, "Connector", {"id": 1, "connectorId": 1}),
):
    case(
        f"TC_G_{number:02d}_CSMS",
        f"Change Availability {target} - Operative to inoperative",
        AVAILABILITY,
        BOOT,
        cs_sends("ChangeAvailability", availability("Inoperative", evse_), {"status": "Accepted"}),
        st("Unavailable"),
        needs=TRIG,
    )
    case(
        f"TC_G_{number + 1:02d}_CSMS",
        f"Change Availability {target} - Inoperative to operative",
        AVAILABILITY,
        BOOT,
        cs_sends("ChangeAvailability", availability("Inoperative", evse_), {"status": "Accepted"}),
        st("Unavailable"),
        cs_sends("ChangeAvailability", availability("Operative", evse_), {"status": "Accepted"}),
        st("Available"),
        needs=TRIG,
    )
for number, target, evse_ in (
    (11, "EVSE", {"id": 1}),
    (14, "Charging Station", None),
    (17, "Connector", {"id": 1, "connectorId": 1}),
):
    case(
        f"TC_G_{number}_CSMS",
        f"Change Availability {target} - With ongoing transaction",
        AVAILABILITY,
        BOOT,
        *SESSION,
        cs_sends("ChangeAvailability", availability("Inoperative", evse_), {"status": "Scheduled"}),
        STOP_LOCAL[0],
        st("Unavailable"),
        needs=TRIG_ACCEPTED,
    )
case(
    "TC_G_20_CSMS",
    "Connector status Notification - Lock Failure",
    AVAILABILITY,
    BOOT,
    call(
        "NotifyEvent",
        lambda c: {
            "generatedAt": ocpp_time(),
            "seqNo": 0,
            "eventData": [
                {
                    "eventId": 1,
                    "timestamp": ocpp_time(),
                    "trigger": "Delta",
                    "actualValue": "true",
                    "eventNotificationType": "HardWiredNotification",
                    "component": {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1, "connectorId": 1}},
                    "variable": {"name": "Problem"},
                }
            ],
        },
    ),
    st("Faulted"),
    needs=frozenset(),
)

# ================================================================================================ J Meter values

case(
    "TC_J_01_CSMS",
    "Clock-aligned Meter Values - No transaction ongoing",
    METER,
    BOOT,
    call("MeterValues", lambda c: {"evseId": 1, "meterValue": [meter_value(1000, CLOCK)]}),
    needs=frozenset(),
)
case(
    "TC_J_02_CSMS",
    "Clock-aligned Meter Values - Transaction ongoing",
    METER,
    BOOT,
    *SESSION,
    ev("Updated", "MeterValueClock", meter=(2000, CLOCK)),
    *STOP_LOCAL,
)
case(
    "TC_J_03_CSMS",
    "Clock-aligned Meter Values - EventType Ended",
    METER,
    BOOT,
    *SESSION,
    ev("Ended", "StopAuthorized", token_kind="accepted", stopped="Local", meter=(5000, CLOCK)),
    st("Available"),
)
case(
    "TC_J_04_CSMS",
    "Clock-aligned Meter Values - Signed",
    METER,
    BOOT,
    *SESSION,
    ev("Updated", "MeterValueClock", meter=(2000, CLOCK), signed=True),
    *STOP_LOCAL,
)
case(
    "TC_J_07_CSMS",
    "Sampled Meter Values - EventType Started - EVSE known",
    METER,
    BOOT,
    *SESSION,
    *STOP_LOCAL,
)
case(
    "TC_J_08_CSMS",
    "Sampled Meter Values - Context Transaction.Begin - EVSE not known",
    METER,
    BOOT,
    auth("accepted"),
    ev("Started", "Authorized", token_kind="accepted", state="Idle", with_evse=False, meter=(1000, BEGIN)),
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="Charging"),
    *STOP_LOCAL,
)
case(
    "TC_J_09_CSMS",
    "Sampled Meter Values - EventType Updated",
    METER,
    BOOT,
    *SESSION,
    ev("Updated", "MeterValuePeriodic", meter=(2500, PERIODIC)),
    *STOP_LOCAL,
)
case(
    "TC_J_10_CSMS",
    "Sampled Meter Values - EventType Ended",
    METER,
    BOOT,
    *SESSION,
    *STOP_LOCAL,
)
case(
    "TC_J_11_CSMS",
    "Sampled Meter Values - Signed",
    METER,
    BOOT,
    *SESSION,
    ev("Updated", "MeterValuePeriodic", meter=(2500, PERIODIC), signed=True),
    *STOP_LOCAL,
)

# ================================================================================================ conditional blocks
# The blocks the bundled central system implements beyond Core: firmware (L), certificates (M), logs and
# events (N), data transfer and custom data (P). Local lists (D), reservations (H), tariffs (I) and smart
# charging (K) are not in it (only as raw commands), so their cases are not in this catalogue yet.


def firmware_statuses(*statuses: str, request_id: int) -> tuple[str, StepFn]:
    """A step: FirmwareStatusNotification with each status in turn (L01)."""

    async def run(ctx: CsmsContext) -> None:
        for status_ in statuses:
            await ctx.call("FirmwareStatusNotification", {"status": status_, "requestId": request_id})

    return (f"FirmwareStatusNotification {', '.join(statuses)}", run)


def update_firmware(request_id: int) -> Callable[[CsmsContext], dict[str, Any]]:
    """UpdateFirmwareRequest as the trigger asks for it (L01: signed firmware)."""

    def payload(ctx: CsmsContext) -> dict[str, Any]:
        return {
            "requestId": request_id,
            "firmware": {
                "location": "https://127.0.0.1/firmware/conformance.bin",
                "retrieveDateTime": "2026-01-01T00:00:00Z",
                "signingCertificate": str(
                    ctx.vars.setdefault("pem", self_signed_pem("OpenChargeConf Firmware"))
                ),
                "signature": base64.b64encode(b"conformance-signature").decode(),
            },
        }

    return payload


def security_event(kind: str) -> tuple[str, StepFn]:
    """A step: SecurityEventNotification (A04)."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.call(
            "SecurityEventNotification", {"type": kind, "timestamp": ocpp_time(), "techInfo": "conformance"}
        )

    return (f"SecurityEventNotification {kind}", run)


case(
    "TC_L_01_CSMS",
    "Secure Firmware Update - Installation successful",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware(1), {"status": "Accepted"}),
    firmware_statuses(
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", request_id=1
    ),
    reconnect("FirmwareUpdate"),
    firmware_statuses("Installed", request_id=1),
    needs=TRIG,
)
case(
    "TC_L_06_CSMS",
    "Secure Firmware Update - InvalidSignature",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware(6), {"status": "Accepted"}),
    firmware_statuses("Downloading", "Downloaded", "InvalidSignature", request_id=6),
    security_event("InvalidFirmwareSignature"),
    needs=TRIG,
)
case(
    "TC_L_07_CSMS",
    "Secure Firmware Update - DownloadFailed",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware(7), {"status": "Accepted"}),
    firmware_statuses("Downloading", "DownloadFailed", request_id=7),
    needs=TRIG,
)
case(
    "TC_L_09_CSMS",
    "Secure Firmware Update - InstallationFailed",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware(9), {"status": "Accepted"}),
    firmware_statuses(
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallationFailed", request_id=9
    ),
    needs=TRIG,
)


def install(kind: str) -> Callable[[CsmsContext], dict[str, Any]]:
    def payload(ctx: CsmsContext) -> dict[str, Any]:
        return {
            "certificateType": kind,
            "certificate": str(ctx.vars.setdefault("pem", self_signed_pem("OCC Root"))),
        }

    return payload


def installed_chain(kind: str) -> Callable[[CsmsContext], dict[str, Any]]:
    """What the station answers to GetInstalledCertificateIds: one certificate of ``kind``."""

    def answer(ctx: CsmsContext) -> dict[str, Any]:
        pem = str(ctx.vars.setdefault("pem", self_signed_pem("OCC Root")))
        ctx.vars[REPORTED_HASHES] = [certificate_hash_data(pem)]
        return {
            "status": "Accepted",
            "certificateHashDataChain": [
                {"certificateType": kind, "certificateHashData": certificate_hash_data(pem)}
            ],
        }

    return answer


def cs_sends_answering(
    action: str, payload: dict[str, Any], answer: Callable[[CsmsContext], dict[str, Any]]
) -> tuple[str, StepFn]:
    """Like `cs_sends`, with an answer computed from the case's state."""

    async def run(ctx: CsmsContext) -> None:
        ctx.vars[action] = await ctx.csms_sends(action, payload, answer(ctx))

    return (f"central system sends {action}; the station answers", run)


def delete_payload(ctx: CsmsContext) -> dict[str, Any]:
    return {
        "certificateHashData": certificate_hash_data(
            str(ctx.vars.setdefault("pem", self_signed_pem("OCC Root")))
        )
    }


for number, kind, result in (
    (1, "CSMSRootCertificate", "Accepted"),
    (2, "ManufacturerRootCertificate", "Accepted"),
    (5, "CSMSRootCertificate", "Failed"),
):
    case(
        f"TC_M_{number:02d}_CSMS",
        "Install CA certificate - " + (kind if result == "Accepted" else "Failed"),
        CERTIFICATES,
        BOOT,
        cs_sends("InstallCertificate", install(kind), {"status": result}),
        needs=TRIG,
    )
for number, kind in ((12, "CSMSRootCertificate"), (13, "ManufacturerRootCertificate")):
    case(
        f"TC_M_{number}_CSMS",
        f"Retrieve certificates from Charging Station - {kind}",
        CERTIFICATES,
        BOOT,
        cs_sends_answering("GetInstalledCertificateIds", {"certificateType": [kind]}, installed_chain(kind)),
        needs=TRIG,
    )
case(
    "TC_M_19_CSMS",
    "Retrieve certificates from Charging Station - No matching certificate found",
    CERTIFICATES,
    BOOT,
    cs_sends(
        "GetInstalledCertificateIds", {"certificateType": ["V2GRootCertificate"]}, {"status": "NotFound"}
    ),
    needs=TRIG,
)
for number, result in ((20, "Accepted"), (21, "Failed")):
    case(
        f"TC_M_{number}_CSMS",
        "Delete a certificate from a Charging Station - " + ("Success" if result == "Accepted" else "Failed"),
        CERTIFICATES,
        BOOT,
        cs_sends_answering(
            "GetInstalledCertificateIds",
            {"certificateType": ["CSMSRootCertificate"]},
            installed_chain("CSMSRootCertificate"),
        ),
        cs_sends(
            "DeleteCertificate", delete_payload, {"status": result}, judge=deletes_a_reported_certificate
        ),
        needs=TRIG,
    )

case(
    "TC_N_21_CSMS",
    "Alert Event - HardWiredMonitor",
    DIAGNOSTICS,
    BOOT,
    call(
        "NotifyEvent",
        lambda c: {
            "generatedAt": ocpp_time(),
            "seqNo": 0,
            "tbc": False,
            "eventData": [
                {
                    "eventId": 21,
                    "timestamp": ocpp_time(),
                    "trigger": "Alerting",
                    "actualValue": "true",
                    "eventNotificationType": "HardWiredMonitor",
                    "component": {"name": "ChargingStation"},
                    "variable": {"name": "Problem"},
                }
            ],
        },
    ),
    needs=frozenset(),
)
case(
    "TC_N_25_CSMS",
    "Retrieve Log Information - Diagnostics Log - Success",
    DIAGNOSTICS,
    BOOT,
    cs_sends(
        "GetLog",
        {"logType": "DiagnosticsLog", "requestId": 25, "log": {"remoteLocation": "ftp://127.0.0.1/logs"}},
        {"status": "Accepted", "filename": "diagnostics.log"},
    ),
    call("LogStatusNotification", {"status": "Uploading", "requestId": 25}),
    call("LogStatusNotification", {"status": "Uploaded", "requestId": 25}),
    needs=TRIG,
)


async def unknown_vendor(ctx: CsmsContext) -> None:
    """P01: a DataTransfer of a vendor the CSMS does not know is not Accepted."""
    answer = await ctx.call(
        "DataTransfer", {"vendorId": "org.openchargeconf.unknown", "messageId": "Nothing"}
    )
    check_status(
        answer["status"],
        ("UnknownVendorId", "UnknownMessageId", "Rejected"),
        "DataTransferResponse of an unknown vendorId",
        "OCPP 2.0.1 P01.FR.06",
    )


case(
    "TC_P_02_CSMS",
    "Data Transfer to the CSMS - Rejected / Unknown VendorId / Unknown MessageId",
    DATA,
    BOOT,
    ("DataTransfer of an unknown vendor: not Accepted", unknown_vendor),
    needs=frozenset(),
)
CUSTOM = {"customData": {"vendorId": "org.openchargeconf", "conformance": "P03"}}


async def custom_status(ctx: CsmsContext) -> None:
    await status(ctx, "Occupied", extra=CUSTOM)


case(
    "TC_P_03_CSMS",
    "CustomData - Receive custom data",
    DATA,
    BOOT,
    ("StatusNotification with customData", custom_status),
    ev("Started", "CablePluggedIn", state="EVConnected", extra=CUSTOM),
    auth("accepted"),
    ev("Updated", "Authorized", token_kind="accepted", state="Charging", extra=CUSTOM),
    *STOP_LOCAL,
)

# ================================================================================================ stricter checks

strict(
    "OCS_C_01_CSMS",
    "A random unknown idToken is not Accepted by Authorize",
    AUTHORIZATION,
    BOOT,
    auth("random"),
    needs=frozenset(),
)
for number, kind in ((2, "invalid"), (3, "blocked"), (4, "expired"), (5, "random")):
    strict(
        f"OCS_C_{number:02d}_CSMS",
        f"TransactionEvent Started with the {kind} idToken is not Accepted",
        AUTHORIZATION,
        BOOT,
        st("Occupied"),
        ev("Started", "Authorized", token_kind=kind, state="EVConnected", meter=(1000, BEGIN)),
        DEAUTHORIZED_END,
        needs=frozenset() if kind == "random" else frozenset({f"id_tag_{kind}"}),
    )
strict(
    "OCS_C_06_CSMS",
    "A transaction stopped by a blocked idToken is not confirmed Accepted",
    AUTHORIZATION,
    BOOT,
    *SESSION,
    ev("Ended", "StopAuthorized", token_kind="blocked", stopped="Local", meter=(5000, END)),
    needs=frozenset({"id_tag_accepted", "id_tag_blocked"}),
)
strict(
    "OCS_A_01_CSMS",
    "No credentials get HTTP 401",
    SECURITY,
    ("handshake without Authorization", no_credentials),
    needs=frozenset({"password"}),
)
strict(
    "OCS_A_02_CSMS",
    "Another station's password gets HTTP 401",
    SECURITY,
    ("second station id with the main station's password", others_password),
    needs=frozenset({"password", "second_charger"}),
)
strict(
    "OCS_A_03_CSMS",
    "An unknown station id is refused at the handshake",
    SECURITY,
    ("handshake as an unknown station", unknown_charger),
    needs=frozenset(),
)
strict(
    "OCS_B_01_CSMS",
    "A Pending station gets no accepted transaction",
    PROVISIONING,
    ("pending station: BootNotification answered Pending", pending_boot),
    ("TransactionEvent with the accepted idToken while Pending: not Accepted", pending_transaction),
    needs=frozenset({"pending_charger", "id_tag_accepted"}),
)


async def retransmit(ctx: CsmsContext) -> None:
    """The last TransactionEvent again, same seqNo (its answer was lost): answered, same idTokenInfo (E.FR.xx)."""
    payload = ctx.vars["last_tx_event"]
    first = ctx.vars["last_tx_answer"]
    try:
        again = await ctx.main().call("TransactionEvent", payload)
    except CallError as exc:
        raise Fail(
            f"a retransmitted TransactionEvent (seqNo {payload['seqNo']}) got {exc}: it must be answered"
        ) from None
    if again.get("idTokenInfo", {}).get("status") != first.get("idTokenInfo", {}).get("status"):
        raise Fail(
            f"a retransmitted TransactionEvent got idTokenInfo {again.get('idTokenInfo')}, "
            f"the first one {first.get('idTokenInfo')}"
        )


strict(
    "OCS_E_01_CSMS",
    "A retransmitted TransactionEvent (same seqNo) is answered like the first",
    TRANSACTIONS,
    BOOT,
    *SESSION,
    ("the Authorized event again with the same seqNo", retransmit),
    *STOP_LOCAL[:1],
    ("the Ended event again with the same seqNo", retransmit),
    needs=ACCEPTED,
)
strict(
    "OCS_E_02_CSMS",
    "A transaction with a seqNo gap (a lost event) is still answered and ended",
    TRANSACTIONS,
    BOOT,
    *PLUG_START,
    ("the next seqNo is lost (never sent)", lambda c: _skip_seq(c)),
    *AUTH_CHARGE,
    *STOP_LOCAL,
    needs=ACCEPTED,
)


async def _skip_seq(ctx: CsmsContext) -> None:
    current_tx(ctx).next_seq()


# ---- A02 station certificate renewal (TC_A_11/TC_A_14_CSMS); after security_event, which they use


def renew_station_certificate(station_accepts: bool) -> StepFn:
    """A02 (RenewChargingStationCertificate): SignCertificate with a fresh CSR for the station id and
    certificateType ChargingStationCertificate is Accepted (A02.FR.11), then a CertificateSignedRequest whose leaf
    certifies our key; the station answers Accepted, or Rejected (``station_accepts`` False, TC_A_14)."""

    async def run(ctx: CsmsContext) -> None:
        conn = ctx.main()
        key, csr = make_csr(conn.cp_id)
        signed = conn.expect("CertificateSigned")
        try:
            answer = await ctx.call(
                "SignCertificate", {"csr": csr, "certificateType": "ChargingStationCertificate"}
            )
            check_status(answer["status"], "Accepted", "SignCertificateResponse", "OCPP 2.0.1 A02.FR.11")
            try:
                async with asyncio.timeout(ctx.scaled(ctx.setup.trigger_wait_s)):
                    unique_id, payload = await signed
            except TimeoutError:
                raise Fail("no CertificateSignedRequest after an Accepted SignCertificate (A02)") from None
        finally:
            conn.forget("CertificateSigned")
        await ctx.check_schema(
            Call(unique_id, "CertificateSigned", dict(payload)), "CertificateSignedRequest"
        )
        problem = check_signed_chain(payload["certificateChain"], key, conn.cp_id)
        await conn.send(
            [3, unique_id, {"status": "Accepted" if station_accepts and not problem else "Rejected"}]
        )
        if problem:
            raise Fail(f"CertificateSignedRequest: {problem} (OCPP 2.0.1 A02)")
        kind = payload.get("certificateType")
        if kind not in (None, "ChargingStationCertificate"):
            raise Fail(
                f"CertificateSignedRequest certificateType {kind!r} for a ChargingStationCertificate CSR"
            )

    return run


SIGN_TRIGGER = cs_sends(
    "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}, {"status": "Accepted"}
)
case(
    "TC_A_11_CSMS",
    "Update Charging Station Certificate by request of CSMS - Success - Charging Station Certificate",
    SECURITY,
    BOOT,
    SIGN_TRIGGER,
    ("SignCertificate: Accepted; CertificateSigned certifies the CSR's key", renew_station_certificate(True)),
    needs=TRIG,
)
case(
    "TC_A_14_CSMS",
    "Update Charging Station Certificate by request of CSMS - Invalid certificate",
    SECURITY,
    BOOT,
    SIGN_TRIGGER,
    (
        "SignCertificate: Accepted; the station Rejects the CertificateSigned",
        renew_station_certificate(False),
    ),
    security_event("InvalidChargingStationCertificate"),
    needs=TRIG,
)


def _check_unique_ids() -> None:
    """Catalogue sanity: ids are unique (a duplicate would hide a case in the reports)."""
    ids = [c.id for c in CASES]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate case ids: {sorted(duplicates)}")


_check_unique_ids()
