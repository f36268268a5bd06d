"""Commands, we are the Receiver (OCPI 2.2.1 §13): START_SESSION, STOP_SESSION, UNLOCK_CONNECTOR, RESERVE_NOW and
CANCEL_RESERVATION go to the charger through the neutral ChargerCommands port; the answer is immediate (CommandResponse) and the charger's
result is POSTed to the partner's response_url later (CommandResult) through the durable push queue."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from backend_stub.domain.commands import reservation_expiry_problem
from backend_stub.errors import CommandFailed
from backend_stub.ocpi import objects
from backend_stub.ocpi.client import CallFailed
from backend_stub.ocpi.protocol import MAX_URL_LENGTH, Status, fail, parse_time
from backend_stub.ocpi.service import Ocpi
from backend_stub.ocpi.tokens import check_token
from backend_stub.store import AuthStatus
from backend_stub.store.ocpi import Partner

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S: Final = 30  # what CommandResponse.timeout promises; the charger gets a little less
MAX_PENDING: Final = (
    200  # commands waiting for a charger or for their result to be posted: a flood is REJECTED
)
# OCPI 2.2.1 §13.4.1 CommandType
KNOWN: Final = frozenset(
    {"START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR", "RESERVE_NOW", "CANCEL_RESERVATION"}
)
MAX_ID_TAG_LENGTH: Final = 20  # OCPP 1.6 idTag is CiString20


def _response(result: str, message: str = "") -> dict[str, Any]:
    """A CommandResponse (OCPI 2.2.1 §13.3.1)."""
    body: dict[str, Any] = {"result": result, "timeout": COMMAND_TIMEOUT_S}
    if message:
        body["message"] = [{"language": "en", "text": message[:512]}]
    return body


def _str(body: dict[str, Any], name: str, max_len: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        fail(Status.INVALID_PARAMETERS, f"{name} must be a string of 1-{max_len} characters")
    return value


class Commands:
    """Runs partners' commands; the asynchronous results are kept by reference until posted."""

    def __init__(self, ocpi: Ocpi) -> None:
        """Command through ``ocpi.central.commands``."""
        self.ocpi = ocpi
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Cancel the results still pending."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _charger_evse(self, body: dict[str, Any], *, evse_required: bool) -> tuple[str, int | None]:
        """(charger, evse) of location_id / evse_uid; 2003 (HTTP 404) if we publish no such location or EVSE."""
        location_id = _str(body, "location_id", objects.MAX_ID_LENGTH)
        charger = self.ocpi.store.charger(location_id)
        if charger is None or not objects.publishable(charger):
            fail(Status.UNKNOWN_LOCATION, "unknown location", 404)
        uid = body.get("evse_uid")
        if uid is None and not evse_required:
            return location_id, None
        uid = _str(body, "evse_uid", objects.MAX_ID_LENGTH)
        prefix = f"{location_id}*"
        number = uid.removeprefix(prefix)
        if not uid.startswith(prefix) or not number.isdigit() or len(number) > 3:
            fail(Status.UNKNOWN_LOCATION, "unknown EVSE", 404)
        return location_id, int(number)

    def handle(self, partner: Partner, command: str, body: Any) -> dict[str, Any]:
        """Check a command, start it in the background and give the immediate CommandResponse."""
        if command not in KNOWN:
            fail(Status.CLIENT_ERROR, f"unknown command {command[:40]!r}", 404)
        if not isinstance(body, dict):
            fail(Status.INVALID_PARAMETERS, "a command is a JSON object")
        response_url = _str(body, "response_url", MAX_URL_LENGTH)
        if not response_url.startswith(("http://", "https://")):
            fail(Status.INVALID_PARAMETERS, "response_url must be an http(s) URL")
        try:
            # Checked before the charger is commanded: a result we may not post is not worth a command.
            self.ocpi.client.check(response_url)
        except CallFailed as exc:
            return _response("REJECTED", str(exc))
        if len(self._tasks) >= MAX_PENDING:
            return _response("REJECTED", "too many commands in progress")
        ports = self.ocpi.central.commands
        if command == "START_SESSION":
            cp_id, evse = self._charger_evse(body, evse_required=False)
            key = self._partner_token(partner, body)
            if len(key[2]) > MAX_ID_TAG_LENGTH:
                return _response("REJECTED", "the token uid is longer than a charger's idTag")
            if not ports.is_connected(cp_id):
                return _response("REJECTED", "the charger is offline")
            # The eMSP authorized its driver by sending the command (OCPI 2.2.1 §13.2): keep the token and that
            # answer, so the charger's StartTransaction with it is accepted.
            self.ocpi.tokens.remember(partner, key, body["token"], AuthStatus.ACCEPTED)
            call = ports.remote_start(cp_id, evse, key[2], timeout_s=COMMAND_TIMEOUT_S - 5)
        elif command == "STOP_SESSION":
            session_id = _str(body, "session_id", 36)
            owned = self.ocpi.store.ocpi_partner_transactions(partner.id)
            if not session_id.isdigit() or int(session_id) not in owned:
                return _response("UNKNOWN_SESSION")
            tx = self.ocpi.store.transaction(int(session_id))
            if not tx.active:
                return _response("UNKNOWN_SESSION", "the session has ended")
            call = ports.remote_stop(tx.cp_id, tx.id, timeout_s=COMMAND_TIMEOUT_S - 5)
        elif command == "RESERVE_NOW":
            # OCPI 2.2.1 §13.3.5 ReserveNow: the same reservation_id again replaces the reservation, as the same
            # reservationId does on the charger (OCPP 1.6 §5.14), so it keeps its charger-side id.
            reservation_id = _str(body, "reservation_id", 36)
            expiry = parse_time(body.get("expiry_date", ""), "expiry_date")
            cp_id, evse = self._charger_evse(body, evse_required=False)
            key = self._partner_token(partner, body)
            now = self.ocpi.clock()
            problem = reservation_expiry_problem(expiry, now)
            if problem is not None:
                return _response("REJECTED", f"expiry_date: {problem}")
            if len(key[2]) > MAX_ID_TAG_LENGTH:
                return _response("REJECTED", "the token uid is longer than a charger's idTag")
            if not ports.is_connected(cp_id):
                return _response("REJECTED", "the charger is offline")
            ocpp_id = self.ocpi.store.ocpi_reservation(partner.id, reservation_id, cp_id, now)
            if ocpp_id is None:
                return _response("REJECTED", "too many reservations")
            # The driver arriving with the token is the eMSP's: accepted like a START_SESSION's token.
            self.ocpi.tokens.remember(partner, key, body["token"], AuthStatus.ACCEPTED)
            call = ports.reserve_now(cp_id, ocpp_id, evse, key[2], expiry, timeout_s=COMMAND_TIMEOUT_S - 5)
        elif command == "CANCEL_RESERVATION":
            # OCPI 2.2.1 §13.3.1 CancelReservation: only the partner's own reservation_id is found.
            reservation_id = _str(body, "reservation_id", 36)
            found = self.ocpi.store.ocpi_find_reservation(partner.id, reservation_id)
            if found is None:
                return _response("REJECTED", "unknown reservation")
            if not ports.is_connected(found[1]):
                return _response("REJECTED", "the charger is offline")
            call = self._cancel(
                partner,
                reservation_id,
                ports.cancel_reservation(found[1], found[0], timeout_s=COMMAND_TIMEOUT_S - 5),
            )
        else:
            cp_id, evse = self._charger_evse(body, evse_required=True)
            assert evse is not None
            if body.get("connector_id") != "1":
                fail(Status.UNKNOWN_LOCATION, "unknown connector", 404)
            if not ports.is_connected(cp_id):
                return _response("REJECTED", "the charger is offline")
            call = ports.unlock(cp_id, evse, timeout_s=COMMAND_TIMEOUT_S - 5)
        task = asyncio.get_running_loop().create_task(self._result(partner, response_url, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _response("ACCEPTED")

    def _partner_token(self, partner: Partner, body: dict[str, Any]) -> tuple[str, str, str, str]:
        """The key of the command's Token; 2001 if malformed, 403 if it is not one of the partner's parties."""
        token = body.get("token")
        if not isinstance(token, dict):
            fail(Status.INVALID_PARAMETERS, "token must be a Token object")
        key = (
            str(token.get("country_code", "")).upper(),
            str(token.get("party_id", "")).upper(),
            str(token.get("uid", "")),
            str(token.get("type", "")),
        )
        check_token(token, key)
        if not any((r.country_code, r.party_id) == key[:2] for r in partner.roles):
            fail(Status.CLIENT_ERROR, "the token is not one of this partner's", 403)
        return key

    async def _cancel(self, partner: Partner, reservation_id: str, call: Any) -> Any:
        """The charger's answer to CancelReservation; an accepted cancel forgets the reservation."""
        reply = await call
        if reply.accepted:
            self.ocpi.store.ocpi_forget_reservation(partner.id, reservation_id)
        return reply

    async def _result(self, partner: Partner, response_url: str, call: Any) -> None:
        """Wait for the charger, then queue the CommandResult (OCPI 2.2.1 §13.3.2) for the partner (durable)."""
        try:
            reply = await call
            result = "ACCEPTED" if reply.accepted else "REJECTED"
        except CommandFailed as exc:
            result = "TIMEOUT" if exc.code == CommandFailed.TIMEOUT else "FAILED"
        except Exception:
            log.exception("OCPI command to a charger failed")
            result = "FAILED"
        self.ocpi.command_result(partner, response_url, result)
