"""The scripted test central system: the OCPP-J server with knobs a test turns (never the production server).

`python -m backend_stub serve` without ``--db`` runs it: it accepts every charger and card unless told otherwise,
in OCPP 1.6 and 2.0.1 alike (the same knobs steer both).
"""

from __future__ import annotations

import hmac
import itertools
from collections import deque
from http import HTTPStatus
from typing import Any

from aiohttp import web

from backend_stub.ocpp.handshake import HandshakeCredentials, HandshakeRecord, handshake_credentials
from backend_stub.ocpp.server import (
    NO_REPLY,
    OCPP16,
    OCPP201,
    CallErrorReply,
    CentralSystem,
    Frame,
    Handler,
    HandlerResult,
    utc_now_iso,
)

__all__ = ["NO_REPLY", "CallErrorReply", "Frame", "HandlerResult", "ScriptedCentralSystem", "utc_now_iso"]


class ScriptedCentralSystem(CentralSystem):
    """A central system for tests and demos: default answers to every charger-initiated action (OCPP 1.6 and
    2.0.1), steered by plain attributes."""

    HANDSHAKES_KEPT = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Take the server's arguments; answer every charger-initiated 1.6 and 2.0.1 action by default."""
        super().__init__(*args, **kwargs)
        # Behaviour knobs for tests and the demo.
        self.passwords: dict[str, str] = {}  # charger id -> the HTTP Basic password it must send
        self.id_tags: dict[str, str] = {}  # idTag -> authorization status; others get default_auth_status
        self.default_auth_status = "Accepted"
        self.heartbeat_interval = 300
        self.refuse_connections = False  # answer every handshake 503
        # A charger whose verified client certificate names it needs no password (security profile 3), also when
        # `passwords` has one for it (a charger upgraded from profile 2 keeps its old password).
        self.certificate_replaces_password = False
        # Every handshake to a charger path (the last `HANDSHAKES_KEPT`), also refused ones: what it presented, with
        # the password reduced to its length and character set (the checks need no more, and a test server that
        # records password guesses must not keep them).
        self.handshakes: deque[HandshakeRecord] = deque(maxlen=self.HANDSHAKES_KEPT)
        self.handshake_observers.append(
            lambda credentials: self.handshakes.append(HandshakeRecord.of(credentials))
        )
        self._transaction_ids = itertools.count(1)
        self.handlers_by_subprotocol[OCPP16.subprotocol] = scripted_v16_handlers(self)
        self.handlers_by_subprotocol[OCPP201.subprotocol] = scripted_v201_handlers(self)

    def authorization_status(self, token: str) -> str:
        """The status a card (1.6 idTag, 2.0.1 idToken) is answered with: its `id_tags` entry or the default."""
        return self.id_tags.get(token, self.default_auth_status)

    def boot_answer(self) -> dict[str, Any]:
        """BootNotification.conf/Response: accepted, with the server's time and `heartbeat_interval`."""
        return {"status": "Accepted", "currentTime": utc_now_iso(), "interval": self.heartbeat_interval}

    def transaction_ids(self, *, start: int = 1, step: int = 1) -> None:
        """Hand out transaction ids start, start + step, ... (workers sharing a port give distinct ones)."""
        self._transaction_ids = itertools.count(start, step)

    def next_transaction_id(self) -> int:
        """Return a new transaction id (1, 2, 3, ... per server)."""
        return next(self._transaction_ids)

    async def _refusal(self, request: web.Request, cp_id: str | None) -> web.Response | None:
        """Refuse every handshake while `refuse_connections` is set; else check it like the server does."""
        if cp_id is not None and self.refuse_connections:
            credentials = handshake_credentials(request, cp_id)
            for observer in self.handshake_observers:
                observer(credentials)
            return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE, text="Connections are refused\n")
        return await super()._refusal(request, cp_id)

    def credentials_refused(self, credentials: HandshakeCredentials) -> bool:
        """A charger listed in `passwords` must send that password (HTTP Basic), unless its client certificate
        identifies it and `certificate_replaces_password` is set; others need none."""
        expected = self.passwords.get(credentials.cp_id)
        if expected is None or (self.certificate_replaces_password and credentials.certificate_identifies):
            return False
        password = credentials.password
        return password is None or not hmac.compare_digest(
            password.encode(errors="surrogateescape"), expected.encode(errors="surrogateescape")
        )


def scripted_v16_handlers(cs: ScriptedCentralSystem) -> dict[str, Handler]:
    """Default answers to every charge-point-initiated OCPP 1.6 action; they read `cs` settings per call."""

    def id_tag_info(id_tag: str) -> dict[str, Any]:
        return {"status": cs.authorization_status(id_tag)}

    def boot_notification(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return cs.boot_answer()

    def heartbeat(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"currentTime": utc_now_iso()}

    def authorize(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"idTagInfo": id_tag_info(payload["idTag"])}

    started: dict[tuple[Any, ...], int] = {}

    def start_transaction(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        # Idempotent: a charger that crashed after sending but before storing the answer sends the same
        # StartTransaction again; it gets the same transactionId, not a second transaction.
        key = (cp_id, payload["connectorId"], payload["idTag"], payload["timestamp"], payload["meterStart"])
        if key not in started:
            started[key] = cs.next_transaction_id()
        return {"transactionId": started[key], "idTagInfo": id_tag_info(payload["idTag"])}

    def stop_transaction(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"idTagInfo": {"status": "Accepted"}} if "idTag" in payload else {}

    def empty(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {}

    def data_transfer(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": "UnknownVendorId"}

    def sign_certificate(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": "Rejected"}

    return {
        "BootNotification": boot_notification,
        "Heartbeat": heartbeat,
        "Authorize": authorize,
        "StartTransaction": start_transaction,
        "StopTransaction": stop_transaction,
        "StatusNotification": empty,
        "MeterValues": empty,
        "DiagnosticsStatusNotification": empty,
        "FirmwareStatusNotification": empty,
        "DataTransfer": data_transfer,
        # Security whitepaper extensions (their schemas ship with the ocpp package).
        "SecurityEventNotification": empty,
        "LogStatusNotification": empty,
        "SignedFirmwareStatusNotification": empty,
        "SignCertificate": sign_certificate,
    }


def scripted_v201_handlers(cs: ScriptedCentralSystem) -> dict[str, Handler]:
    """Default answers to every charging-station-initiated OCPP 2.0.1 action, read from the same `cs` knobs as
    1.6 (an idToken is looked up in `id_tags` like an idTag); notifications are acknowledged with their empty
    response. The transaction ids are the station's own (2.0.1), so `transaction_ids` does not apply."""

    def token_info(payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": cs.authorization_status(payload["idToken"]["idToken"])}

    def boot_notification(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return cs.boot_answer()

    def heartbeat(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"currentTime": utc_now_iso()}

    def authorize(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"idTokenInfo": token_info(payload)}

    def transaction_event(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        # E01-E07: idTokenInfo answers an event that carries an idToken (the one that starts or stops it).
        return {"idTokenInfo": token_info(payload)} if "idToken" in payload else {}

    def empty(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {}

    def data_transfer(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": "UnknownVendorId"}

    def rejected(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": "Rejected"}

    def certificate_status(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": "Failed"}  # no OCSP responder here

    return {
        "BootNotification": boot_notification,
        "Heartbeat": heartbeat,
        "Authorize": authorize,
        "TransactionEvent": transaction_event,
        "StatusNotification": empty,
        "MeterValues": empty,
        "DataTransfer": data_transfer,
        "SignCertificate": rejected,
        "NotifyEVChargingNeeds": rejected,  # no ISO 15118 smart charging here
        "NotifyEVChargingSchedule": rejected,
        "GetCertificateStatus": certificate_status,
        **dict.fromkeys(
            (
                "FirmwareStatusNotification",
                "LogStatusNotification",
                "SecurityEventNotification",
                "NotifyReport",
                "NotifyEvent",
                "NotifyMonitoringReport",
                "NotifyCustomerInformation",
                "NotifyDisplayMessages",
                "NotifyChargingLimit",
                "ClearedChargingLimit",
                "ReportChargingProfiles",
                "ReservationStatusUpdate",
                "PublishFirmwareStatusNotification",
            ),
            empty,
        ),
    }
