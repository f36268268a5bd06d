"""The bundled central system's OCPP 2.0.1 side against real 2.0.1 clients (the `ocpp` package over websockets)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.exceptions import SecurityError
from ocpp.routing import on
from ocpp.v201 import ChargePoint as V201ChargePoint
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from backend_stub.app import Csms
from backend_stub.ocpp.server import OCPP201
from backend_stub.store import CsmsStore, SecurityEventKind
from tests.integration.test_csms import TARIFF, RawCharger
from tests.integration.test_csms_edge import _basic, _handshake

T0 = "2026-11-22T10:00:00Z"
T5 = "2026-11-22T10:05:00Z"
ADMIN_TOKEN = "test-admin-token-for-v201"


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    store = CsmsStore(tmp_path / "csms.db")
    store.put_tariff("T1", json.dumps(TARIFF))
    store.set_default_tariff_id("T1")
    app = Csms(store, heartbeat_interval_s=60, admin_token=ADMIN_TOKEN)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        store.close()


HASH_201 = {
    "hash_algorithm": "SHA256",
    "issuer_name_hash": "a1",
    "issuer_key_hash": "b2",
    "serial_number": "c3",
}


class Station(V201ChargePoint):
    """A 2.0.1 charging station from the `ocpp` package; CallErrors raise (suppress=False)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.set_variables_status = "Accepted"

    async def ask(self, payload: Any) -> Any:
        return await self.call(payload, suppress=False)

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, **kw: Any) -> Any:
        self.commands.append(("RequestStartTransaction", {"id_token": id_token, **kw}))
        return call_result.RequestStartTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str) -> Any:
        self.commands.append(("RequestStopTransaction", {"transaction_id": transaction_id}))
        return call_result.RequestStopTransaction(status="Accepted")

    @on(Action.reset)
    def on_reset(self, type: str, **kw: Any) -> Any:
        self.commands.append(("Reset", {"type": type}))
        return call_result.Reset(status="Accepted")

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str) -> Any:
        self.commands.append(("InstallCertificate", {"certificate_type": certificate_type}))
        return call_result.InstallCertificate(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    def on_get_installed(self, **kw: Any) -> Any:
        self.commands.append(("GetInstalledCertificateIds", kw))
        return call_result.GetInstalledCertificateIds(
            status="Accepted",
            certificate_hash_data_chain=[
                {"certificate_type": "CSMSRootCertificate", "certificate_hash_data": HASH_201}
            ],
        )

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any]) -> Any:
        self.commands.append(("DeleteCertificate", certificate_hash_data))
        return call_result.DeleteCertificate(status="Accepted")

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]]) -> Any:
        self.commands.append(("SetVariables", {"set_variable_data": set_variable_data}))
        return call_result.SetVariables(
            set_variable_result=[
                {
                    "attribute_status": self.set_variables_status,
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in set_variable_data
            ]
        )

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **kw: Any) -> Any:
        self.commands.append(("CertificateSigned", kw))
        return call_result.CertificateSigned(status="Accepted")


class Running:
    """A connected Station with its receive loop running."""

    def __init__(self, ws: ClientConnection, cp_id: str) -> None:
        self.ws = ws
        self.cp = Station(cp_id, ws)
        self.task = asyncio.create_task(self.cp.start())

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ws.close()


async def station(csms: Csms, cp_id: str) -> Running:
    """Connect a registered 2.0.1 station and boot it."""
    ws = await connect(f"{csms.url}/{cp_id}", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    assert ws.subprotocol == "ocpp2.0.1"
    running = Running(ws, cp_id)
    boot = await running.cp.ask(
        call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
    )
    assert boot.status == "Accepted"
    return running


def energy(wh: float, context: str, at: str) -> list[dict[str, Any]]:
    """One meter value with the energy register (2.0.1 MeterValueType, default unit Wh)."""
    return [
        {
            "timestamp": at,
            "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register", "context": context}],
        }
    ]


def event(
    event_type: str, seq_no: int, tx: str, at: str, *, token: str | None = None, **extra: Any
) -> call.TransactionEvent:
    trigger = {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "StopAuthorized"}[
        event_type
    ]
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=at,
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info={"transaction_id": tx},
        id_token={"id_token": token, "type": "ISO14443"} if token else None,
        evse={"id": 1, "connector_id": 1} if event_type == "Started" else None,
        **extra,
    )


async def test_both_versions_are_negotiated_on_one_port(csms: Csms) -> None:
    csms.store.add_charger("CP16")
    csms.store.add_charger("CP201")
    async with connect(f"{csms.url}/CP16", subprotocols=["ocpp1.6"]) as ws16:  # type: ignore[list-item]
        assert ws16.subprotocol == "ocpp1.6"
        answer = await RawCharger(ws16).call(
            "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        assert answer[2]["status"] == "Accepted"
        running = await station(csms, "CP201")
        try:
            beat = await running.cp.ask(call.Heartbeat())
            assert beat.current_time
            status = await running.cp.ask(
                call.StatusNotification(timestamp=T0, connector_status="Available", evse_id=1, connector_id=1)
            )
            assert status is not None
        finally:
            await running.close()
    charger = csms.store.charger("CP201")
    assert charger is not None and charger.vendor == "V" and charger.model == "M"


async def test_a_station_that_is_not_accepted_gets_security_error(tmp_path: Path) -> None:
    store = CsmsStore(tmp_path / "csms.db")
    app = Csms(store, admit_unknown=True)
    await app.start()
    try:
        async with connect(f"{app.url}/CP-NEW", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            raw = RawCharger(ws)
            boot = await raw.call(
                "BootNotification",
                {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
            )
            assert boot[0] == 3 and boot[2]["status"] == "Pending"
            refused = await raw.call("Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}})
            assert refused[0] == 4 and refused[2] == "SecurityError"
    finally:
        await app.stop()
        store.close()


async def test_authorize_personal_prepaid_and_unknown_cards(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A")
    user = store.add_user("Ada")
    store.add_card("PERSONAL1", user_id=user.id, mode="personal")
    store.add_card("PREPAID1", user_id=user.id, mode="prepaid")
    store.add_card("EMPTY1", user_id=user.id, mode="prepaid")
    store.set_min_balance_minor(100)
    store.topup("PREPAID1", 5_000, "topup-1")
    running = await station(csms, "CP-A")
    try:

        async def status(token: str) -> str:
            answer = await running.cp.ask(call.Authorize(id_token={"id_token": token, "type": "ISO14443"}))
            return str(answer.id_token_info["status"])

        assert await status("PERSONAL1") == "Accepted"
        assert await status("PREPAID1") == "Accepted"
        assert await status("EMPTY1") == "Blocked"  # below the minimum balance, as in 1.6
        assert await status("NOBODY") == "Invalid"
    finally:
        await running.close()


async def test_a_transaction_event_session_is_billed_like_the_same_16_session(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP16")
    store.add_charger("CP201")
    user = store.add_user("Ada")
    store.add_card("CARD16", user_id=user.id, mode="prepaid")
    store.add_card("CARD201", user_id=user.id, mode="prepaid")
    store.topup("CARD16", 5_000, "t16")
    store.topup("CARD201", 5_000, "t201")
    async with connect(f"{csms.url}/CP16", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        raw = RawCharger(ws)
        await raw.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        start = await raw.call(
            "StartTransaction", {"connectorId": 1, "idTag": "CARD16", "meterStart": 1000, "timestamp": T0}
        )
        await raw.call(
            "StopTransaction",
            {"transactionId": start[2]["transactionId"], "meterStop": 1010, "timestamp": T5},
        )
    running = await station(csms, "CP201")
    try:
        started = await running.cp.ask(
            event(
                "Started", 0, "tx-a", T0, token="CARD201", meter_value=energy(1000, "Transaction.Begin", T0)
            )
        )
        assert started.id_token_info["status"] == "Accepted"
        await running.cp.ask(
            event(
                "Updated", 1, "tx-a", "2026-11-22T10:02:00Z", meter_value=energy(1004, "Sample.Periodic", T0)
            )
        )
        ended = event("Ended", 2, "tx-a", T5, meter_value=energy(1010, "Transaction.End", T5))
        await running.cp.ask(ended)
        await running.cp.ask(ended)  # a repeated Ended (a lost answer) is acknowledged, not charged again
    finally:
        await running.close()
    by_card = {t.id_tag: t for t in store.recent_transactions()}
    tx16, tx201 = by_card["CARD16"], by_card["CARD201"]
    assert tx201.station_tx_id == "tx-a" and tx201.energy_wh == tx16.energy_wh == 10
    assert tx201.cost_minor == tx16.cost_minor == 100  # 10 Wh x 100 EUR/kWh
    assert [e.amount_minor for e in store.entries("CARD201") if e.kind == "charge"] == [-100]
    assert store.balance("CARD201") == store.balance("CARD16") == 4_900
    assert len(store.meter_values(tx201.id)) == 3
    assert store.security_events(kind=SecurityEventKind.SEQUENCE_GAP) == []
    assert store.verify_balances() == []
    # The mixed site: both sessions in one database, the daily statistics add up.
    stats = [
        s
        for cp in ("CP16", "CP201")
        for s in store.daily_stats(cp, tx16.started_at.date(), tx16.started_at.date(), csms.central.site_tz)
    ]
    assert sum(s.energy_wh for s in stats) == 20
    assert sum(s.sessions for s in stats) == 2


async def test_a_seq_no_gap_is_recorded_and_another_chargers_transaction_acts_on_nothing(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-1")
    store.add_charger("CP-2")
    user = store.add_user("Ada")
    store.add_card("CARD1", user_id=user.id, mode="personal")
    one = await station(csms, "CP-1")
    two = await station(csms, "CP-2")
    try:
        await one.cp.ask(
            event(
                "Started", 0, "shared-id", T0, token="CARD1", meter_value=energy(0, "Transaction.Begin", T0)
            )
        )
        await one.cp.ask(event("Updated", 3, "shared-id", T5, meter_value=energy(5, "Sample.Periodic", T5)))
        gaps = store.security_events(cp_id="CP-1", kind=SecurityEventKind.SEQUENCE_GAP)
        assert len(gaps) == 1 and "2 message(s) missing" in gaps[0].detail
        # CP-2 names CP-1's station transaction id: nothing is stored, stopped or charged, and it is recorded.
        answer = await two.cp.ask(
            event("Ended", 1, "shared-id", T5, meter_value=energy(99_999, "Transaction.End", T5))
        )
        assert answer.id_token_info is None
        foreign = store.security_events(cp_id="CP-2", kind=SecurityEventKind.FOREIGN_TRANSACTION)
        assert len(foreign) == 1 and "shared-id" in foreign[0].detail
        tx = store.recent_transactions(cp_id="CP-1")[0]
        assert tx.active and tx.last_meter_wh == 5
        assert store.recent_transactions(cp_id="CP-2") == []
    finally:
        await one.close()
        await two.close()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        # A far-future timestamp, a seqNo beyond 32 bits, a missing required field, a wrong type.
        ({"timestamp": "9999-12-31T23:59:59Z"}, "PropertyConstraintViolation"),
        ({"seqNo": 2**70}, "PropertyConstraintViolation"),
        ({"seqNo": None}, "TypeConstraintViolation"),
        ({"eventType": "Bogus"}, "PropertyConstraintViolation"),
    ],
)
async def test_hostile_transaction_events_get_201_call_errors_and_the_link_stays_up(
    csms: Csms, payload: dict[str, Any], code: str
) -> None:
    csms.store.add_charger("CP-H")
    base = {
        "eventType": "Started",
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "tx-h"},
    }
    async with connect(f"{csms.url}/CP-H", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        raw = RawCharger(ws)
        await raw.call(
            "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
        )
        answer = await raw.call("TransactionEvent", {**base, **payload})
        assert answer[0] == 4 and answer[2] in OCPP201.error_codes
        assert answer[2] == code or (code == "PropertyConstraintViolation" and answer[2] == "FormatViolation")
        beat = await raw.call("Heartbeat", {})
        assert beat[0] == 3
    assert csms.store.recent_transactions(cp_id="CP-H") == []


async def test_nan_samples_and_deep_json_keep_the_link_up(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-N")
    user = store.add_user("Ada")
    store.add_card("CARD1", user_id=user.id, mode="personal")
    async with connect(f"{csms.url}/CP-N", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        raw = RawCharger(ws)
        await raw.call(
            "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
        )
        # NaN and a huge integer are JSON Python parses; each sample is skipped alone and recorded.
        await ws.send(
            '[2,"nan","TransactionEvent",{"eventType":"Started","timestamp":"' + T0 + '","triggerReason":'
            '"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx-n"},"evse":{"id":1},'
            '"idToken":{"idToken":"CARD1","type":"ISO14443"},"meterValue":[{"timestamp":"' + T0 + '",'
            '"sampledValue":[{"value":NaN},{"value":1' + "0" * 400 + '},{"value":7}]}]}]'
        )
        answer = json.loads(await ws.recv())
        assert answer[0] == 3 and answer[2]["idTokenInfo"]["status"] == "Accepted"
        await ws.send('[2,"deep","Heartbeat",' + "[" * 5000 + "]" * 5000 + "]")
        deep = json.loads(await ws.recv())
        assert deep[:3] == [4, "deep", "FormatViolation"]
        beat = await raw.call("Heartbeat", {})
        assert beat[0] == 3
    tx = store.recent_transactions(cp_id="CP-N")[0]
    assert [s.value for s in store.meter_values(tx.id)] == [7]
    assert store.security_events(cp_id="CP-N", kind=SecurityEventKind.BAD_SAMPLE)


async def test_commands_reach_a_201_station_through_the_port_and_the_raw_endpoint(csms: Csms) -> None:
    csms.store.add_charger("CP-C")
    running = await station(csms, "CP-C")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{csms.http_url}/api/chargers/CP-C/commands"
    try:
        # The neutral port, as the QR payment flow and the dashboard use it.
        reply = await csms.central.commands.remote_start("CP-C", 1, "QR0123")
        assert reply.accepted
        reset = await csms.central.commands.reset("CP-C", "Soft")
        assert reset.accepted
        async with aiohttp.ClientSession(headers=headers) as http:
            raw = {"idToken": {"idToken": "CARD9", "type": "ISO14443"}, "remoteStartId": 7, "evseId": 2}
            async with http.post(f"{url}/RequestStartTransaction", json=raw) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["reply"]["status"] == "Accepted"
            # Checked against the charger's version: a 1.6 action is unknown, a payload off the schema is bad.
            async with http.post(f"{url}/RemoteStartTransaction", json={"idTag": "X"}) as response:
                assert response.status == 404
            async with http.post(f"{url}/RequestStartTransaction", json={"idToken": "X"}) as response:
                assert response.status == 400
    finally:
        await running.close()
    assert running.cp.commands == [
        ("RequestStartTransaction", {"id_token": {"id_token": "QR0123", "type": "Central"}, "evse_id": 1}),
        ("Reset", {"type": "OnIdle"}),
        ("RequestStartTransaction", {"id_token": {"id_token": "CARD9", "type": "ISO14443"}, "evse_id": 2}),
    ]


async def test_the_prepaid_cut_off_sends_request_stop_transaction(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-P")
    user = store.add_user("Grace")
    store.add_card("PREPAID1", user_id=user.id, mode="prepaid")
    store.topup("PREPAID1", 150, "topup-1")  # 1.50 EUR = 15 Wh at 100 EUR/kWh
    running = await station(csms, "CP-P")
    try:
        await running.cp.ask(
            event("Started", 0, "tx-p", T0, token="PREPAID1", meter_value=energy(0, "Transaction.Begin", T0))
        )
        await running.cp.ask(event("Updated", 1, "tx-p", T5, meter_value=energy(20, "Sample.Periodic", T5)))
        async with asyncio.timeout(5):
            while ("RequestStopTransaction", {"transaction_id": "tx-p"}) not in running.cp.commands:
                await asyncio.sleep(0.01)
    finally:
        await running.close()


async def test_notify_report_keeps_the_device_model_and_notifications_are_answered(csms: Csms) -> None:
    csms.store.add_charger("CP-R")
    running = await station(csms, "CP-R")
    report = [
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
            "variable_attribute": [{"type": "Actual", "value": "60"}],
        },
        {
            "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
            "variable": {"name": "AvailabilityState"},
            "variable_attribute": [{"value": "Available"}],
        },
    ]
    try:
        await running.cp.ask(
            call.NotifyReport(request_id=1, generated_at=T0, seq_no=0, tbc=True, report_data=report)
        )
        again = [{**report[0], "variable_attribute": [{"type": "Actual", "value": "30"}]}]
        await running.cp.ask(call.NotifyReport(request_id=1, generated_at=T0, seq_no=1, report_data=again))
        await running.cp.ask(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=T0))
        await running.cp.ask(call.FirmwareStatusNotification(status="Downloading"))
        await running.cp.ask(call.LogStatusNotification(status="Uploading"))
        await running.cp.ask(
            call.ReservationStatusUpdate(reservation_id=1, reservation_update_status="Expired")
        )
        signed = await running.cp.ask(call.SignCertificate(csr="-----BEGIN CERTIFICATE REQUEST-----"))
        assert signed.status == "Rejected"  # no certificate authority yet
    finally:
        await running.close()
    model = {(v.component, v.evse, v.connector, v.variable): v.value for v in csms.store.device_model("CP-R")}
    assert model == {
        ("OCPPCommCtrlr", None, None, "HeartbeatInterval"): "30",
        ("Connector", 1, 1, "AvailabilityState"): "Available",
    }
    charger = csms.store.charger("CP-R")
    assert charger is not None and charger.firmware_status == "Downloading"


async def test_certificate_commands_reach_a_201_station_in_its_own_shapes(csms: Csms) -> None:
    # The port's certificate commands, sent to a 2.0.1 station, use the 2.0.1 payloads (schema-checked by the
    # station's `ocpp` package on arrival and by the server on the answer).
    from backend_stub.domain.commands import CertificateHash

    csms.store.add_charger("CP-K")
    running = await station(csms, "CP-K")
    commands = csms.central.commands
    try:
        assert (await commands.install_certificate("CP-K", "csms_root", "PEM")).accepted
        reply, hashes = await commands.installed_certificates("CP-K", "csms_root")
        assert reply.accepted and hashes == [CertificateHash("SHA256", "a1", "b2", "c3")]
        assert (await commands.delete_certificate("CP-K", hashes[0])).accepted
        assert (await commands.certificate_signed("CP-K", "CHAIN")).accepted
    finally:
        await running.close()
    assert running.cp.commands == [
        ("InstallCertificate", {"certificate_type": "CSMSRootCertificate"}),
        ("GetInstalledCertificateIds", {"certificate_type": ["CSMSRootCertificate"]}),
        ("DeleteCertificate", HASH_201),
        ("CertificateSigned", {"certificate_type": "ChargingStationCertificate"}),
    ]


async def test_a_transaction_started_without_id_token_is_billed_once_authorized(csms: Csms) -> None:
    """E02/E03: Started (EVConnected, no idToken) at 1000 Wh, Updated (no idToken) at 1004 Wh, then Updated with the
    idToken, Ended at 1010 Wh: the card pays for all 10 Wh from the start, with no seqNo gap recorded. A transaction
    that ends without any idToken is billed to nobody and is no security event."""
    store = csms.store
    store.add_charger("CP-U")
    user = store.add_user("Ada")
    store.add_card("CARDU", user_id=user.id, mode="prepaid")
    store.topup("CARDU", 5_000, "tu")
    running = await station(csms, "CP-U")
    try:
        started = await running.cp.ask(
            event("Started", 0, "tx-u", T0, meter_value=energy(1000, "Transaction.Begin", T0))
        )
        assert started.id_token_info is None  # nothing to say about a token it did not send
        assert store.active_transactions("CP-U") == []  # nobody to bill yet
        await running.cp.ask(event("Updated", 1, "tx-u", "2026-11-22T10:01:00Z"))
        authorized = await running.cp.ask(event("Updated", 2, "tx-u", "2026-11-22T10:02:00Z", token="CARDU"))
        assert authorized.id_token_info["status"] == "Accepted"
        await running.cp.ask(event("Ended", 3, "tx-u", T5, meter_value=energy(1010, "Transaction.End", T5)))
        # Another transaction that never gets an idToken.
        await running.cp.ask(
            event("Started", 0, "tx-n", T0, meter_value=energy(2000, "Transaction.Begin", T0))
        )
        await running.cp.ask(event("Ended", 1, "tx-n", T5, meter_value=energy(2050, "Transaction.End", T5)))
    finally:
        await running.close()
    (tx,) = store.recent_transactions(cp_id="CP-U")
    assert (tx.id_tag, tx.station_tx_id, tx.meter_start_wh, tx.energy_wh) == ("CARDU", "tx-u", 1000, 10)
    assert tx.started_at.isoformat() == "2026-11-22T10:00:00+00:00"
    assert tx.cost_minor == 100
    assert store.balance("CARDU") == 4_900
    assert store.security_events(cp_id="CP-U") == []
    assert (
        store.unauthorized_start("CP-U", "tx-n") is None and store.unauthorized_start("CP-U", "tx-u") is None
    )


async def test_a_36_character_emaid_authorizes_and_is_billed(csms: Csms) -> None:
    """A 2.0.1 idToken longer than 1.6's 20 characters (an eMAID, up to 36): a card like any other."""
    emaid = "DE-ABC-C123456789012345678901-X"  # 31 characters
    store = csms.store
    store.add_charger("CP-E")
    store.add_card(emaid, user_id=None, mode="personal")
    running = await station(csms, "CP-E")
    try:
        auth = await running.cp.ask(call.Authorize(id_token={"id_token": emaid, "type": "eMAID"}))
        assert auth.id_token_info["status"] == "Accepted"
        await running.cp.ask(
            event("Started", 0, "tx-e", T0, token=emaid, meter_value=energy(0, "Transaction.Begin", T0))
        )
        await running.cp.ask(event("Ended", 1, "tx-e", T5, meter_value=energy(2000, "Transaction.End", T5)))
    finally:
        await running.close()
    (tx,) = store.recent_transactions(cp_id="CP-E")
    assert (tx.id_tag, tx.energy_wh, tx.cost_minor) == (emaid, 2000, 20_000)


@pytest.mark.parametrize("answer", ["Accepted", "Rejected"])
async def test_basic_auth_password_rotation_by_set_variables(
    csms: Csms, answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """OCPP 2.0.1 A01: SetVariables SecurityCtrlr.BasicAuthPassword; once the station accepts, the new password
    is its password (the old one gets 401); a Rejected change keeps the old one. The frame log shows the
    SetVariables, but never the password in it."""
    caplog.set_level(logging.DEBUG, logger="backend_stub.ocpp.server")
    old, new = "old-password-0123456789", "new-password-0123456789"
    csms.store.add_charger("CP-P", old)
    ws = await connect(
        f"{csms.url}/CP-P",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=_basic("CP-P", old),
    )
    running = Running(ws, "CP-P")
    running.cp.set_variables_status = answer
    try:
        boot = await running.cp.ask(
            call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
        )
        assert boot.status == "Accepted"
        data = {
            "attributeValue": new,
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
        }
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http,
            http.post(
                f"{csms.http_url}/api/chargers/CP-P/commands/SetVariables", json={"setVariableData": [data]}
            ) as response,
        ):
            assert response.status == 200, await response.text()
    finally:
        await running.close()
    url = f"{csms.url}/CP-P"
    admitted, refused = (new, old) if answer == "Accepted" else (old, new)
    assert (await _handshake(url, _basic("CP-P", admitted)))[0] == 101
    assert (await _handshake(url, _basic("CP-P", refused)))[0] == 401
    frames = [r.getMessage() for r in caplog.records if r.name == "backend_stub.ocpp.server"]
    assert any("SetVariables" in f and "BasicAuthPassword" in f for f in frames), frames
    assert not any(new in f for f in frames)


async def test_a_station_blocked_by_the_operator_is_refused_on_its_next_message(csms: Csms) -> None:
    """The registry status read before every message is remembered; blocking (PATCH status rejected through the
    REST API) takes effect on the very next message, and accepting it again on the one after."""
    store = csms.store
    store.add_charger("CP-B")
    user = store.add_user("Ada")
    store.add_card("CARD1", user_id=user.id, mode="personal")
    running = await station(csms, "CP-B")
    api = f"{csms.http_url}/api/chargers/CP-B"
    T1 = "2026-11-22T10:01:00Z"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
            await running.cp.ask(
                event("Started", 0, "tx-b", T0, token="CARD1", meter_value=energy(0, "Transaction.Begin", T0))
            )
            await running.cp.ask(
                event("Updated", 1, "tx-b", T1, meter_value=energy(5, "Sample.Periodic", T1))
            )
            async with http.patch(api, json={"status": "rejected"}) as response:
                assert response.status == 200
            blocked = event("Updated", 2, "tx-b", T5, meter_value=energy(50, "Sample.Periodic", T5))
            with pytest.raises(SecurityError):
                await running.cp.ask(blocked)
            tx = store.recent_transactions(cp_id="CP-B")[0]
            assert tx.last_meter_wh == 5  # nothing of the refused message was stored
            assert store.security_events(cp_id="CP-B", kind=SecurityEventKind.NOT_ACCEPTED)
            async with http.patch(api, json={"status": "accepted"}) as response:
                assert response.status == 200
            await running.cp.ask(blocked)
            assert store.recent_transactions(cp_id="CP-B")[0].last_meter_wh == 50
    finally:
        await running.close()
