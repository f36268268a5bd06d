"""What every charger-initiated CALL passes before its handler, in both versions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any

from backend_stub.domain.central import Central
from backend_stub.ocpp.server import CallErrorReply, Handler, HandlerResult
from backend_stub.store import InvalidInput


def _refused(exc: InvalidInput) -> CallErrorReply:
    """A store refusal of a value as the CallError both versions spell alike."""
    return CallErrorReply("PropertyConstraintViolation", str(exc)[:200])


def admitted(central: Central, action: str, handler: Handler) -> Handler:
    """``handler`` answering only Accepted chargers (but BootNotification), with store refusals as CallErrors.

    OCPP 1.6 §4.2.1 and 2.0.1 B02.FR.09/B03.FR.02: a Pending charger SHALL NOT send requests unless triggered, a
    Rejected one no message at all until its retry interval ends. A CallError, not a refusal inside a response: a
    StartTransaction.conf must carry a transactionId, so answering it would mean creating a transaction, and an
    Authorize answer would tell a stranger what a card is worth. SecurityError says why and gives nothing away.
    A coroutine handler's refusal is translated when it is awaited, like a plain handler's when it is called.
    """

    async def awaited(result: Awaitable[HandlerResult]) -> HandlerResult:
        try:
            return await result
        except InvalidInput as exc:
            raise _refused(exc) from None

    def guarded(cp_id: str, payload: dict[str, Any]) -> HandlerResult | Awaitable[HandlerResult]:
        if action != "BootNotification" and not central.chargers.refuse_unless_accepted(cp_id, action):
            raise CallErrorReply("SecurityError", f"{action} is refused until BootNotification is Accepted")
        try:
            result = handler(cp_id, payload)
        except InvalidInput as exc:
            raise _refused(exc) from None
        return awaited(result) if inspect.isawaitable(result) else result

    return guarded
