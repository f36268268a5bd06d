"""Operator actions on a charger that are more than one command: a device-model report, a password rotation."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from backend_stub.domain.chargers import Chargers
from backend_stub.domain.commands import ChargerCommands, CommandReply, ReportKind

log = logging.getLogger(__name__)


def new_password() -> str:
    """A fresh charger password: 40 hex digits (20 random bytes).

    Fits both versions' rules: OCPP 2.0.1 SecurityCtrlr.BasicAuthPassword is a passwordString of 16..40 characters,
    OCPP 1.6 AuthorizationKey 16..20 bytes written as hex digits (1.6 security whitepaper, security profile 1).
    """
    return secrets.token_hex(20)


class ChargerOperations:
    """Operator actions that combine a command with what the central system keeps about the charger."""

    def __init__(
        self,
        chargers: Chargers,
        commands: ChargerCommands,
        password_factory: Callable[[], str] = new_password,
    ) -> None:
        """Act through ``commands``; keep results in ``chargers``; new passwords come from ``password_factory``."""
        self.chargers = chargers
        self.commands = commands
        self.password_factory = password_factory

    async def request_report(self, cp_id: str, kind: ReportKind) -> CommandReply:
        """Ask for the charger's device model; variables that come back in the answer (1.6) are kept at once,
        2.0.1 ones arrive in NotifyReport and are kept by its handler."""
        reply, variables = await self.commands.base_report(cp_id, kind)
        if variables:
            self.chargers.device_model_report(cp_id, variables)
        return reply

    async def rotate_password(self, cp_id: str) -> CommandReply:
        """Give the charger a new HTTP Basic password; the charger's answer.

        The stored password changes only once the charger has Accepted it: each version's handlers watch answered
        CALLs (`on_call_answered`: 1.6 AuthorizationKey, 2.0.1 SecurityCtrlr.BasicAuthPassword), whoever sent
        them, so a rotation here and one through the raw command endpoint follow the same rule. Rejected,
        RebootRequired or no answer keep the old one, which the charger still uses.
        """
        reply = await self.commands.set_basic_auth_password(cp_id, self.password_factory())
        log.info(
            "charger %s answered %r to a new password",
            cp_id,
            reply.status or "(no status)",
            extra={"cp_id": cp_id},
        )
        return reply
