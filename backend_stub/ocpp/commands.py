"""What every version's ChargerCommands implementation shares: sending CALLs, raw-command checks, dispatch."""

from __future__ import annotations

import copy
import uuid
from typing import Any, ClassVar

from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, _validate_payload

from backend_stub.domain.commands import CommandReply, Lockout
from backend_stub.errors import CommandFailed, InvalidCommand, NotConnected
from backend_stub.ocpp.server import CallErrorReply, CentralSystem, OcppVersion


class OcppCommands:
    """The version-independent half of a ChargerCommands implementation: CALLs through the server."""

    VERSION: ClassVar[OcppVersion]
    ACTIONS: ClassVar[frozenset[str]]  # the actions a central system sends in this version
    REQUEST_SUFFIX: ClassVar[str] = ".req"  # how the version names a request message (1.6 ".req")

    def __init__(self, server: CentralSystem) -> None:
        """Send through ``server``."""
        self.server = server

    def connected(self) -> set[str]:
        """Ids of the chargers connected right now."""
        return self.server.connected

    def is_connected(self, charger: str) -> bool:
        """Whether ``charger`` is connected right now."""
        return charger in self.server.connected

    def auth_lockout(self, charger: str) -> Lockout | None:
        """Failed password attempts of ``charger`` and its lock-out."""
        return self.server.auth_throttle.status(charger)

    def raw_actions(self) -> frozenset[str]:
        """The actions `send` takes."""
        return self.ACTIONS

    def check_raw(self, charger: str, action: str, payload: dict[str, Any] | None) -> None:
        """InvalidCommand unless ``action`` is an action a central system sends in this version and ``payload``
        (if given) a schema-valid request of it."""
        version = self.VERSION.schema_version
        if action not in self.ACTIONS:
            raise InvalidCommand(
                f"{action[:64]!r} is not an OCPP {version} action a central system sends", unknown=True
            )
        if payload is None:
            return
        # Validated on a copy: the validator may rewrite floats as Decimals in place.
        try:
            _validate_payload(Call(str(uuid.uuid4()), action, copy.deepcopy(payload)), version)
        except SchemaMissingError:
            raise InvalidCommand(f"no OCPP {version} schema for {action}", unknown=True) from None
        except OCPPError as exc:
            cause = exc.details.get("cause") if isinstance(exc.details, dict) else None
            raise InvalidCommand(
                f"payload is not a valid OCPP {version} {action}{self.REQUEST_SUFFIX}: {cause or exc.description}"
            ) from None

    async def send(
        self, charger: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a raw CALL; the CALLRESULT payload as it came."""
        try:
            return await self.server.call(charger, action, payload, timeout=timeout_s)
        except NotConnected:
            raise
        except CallErrorReply as exc:
            raise CommandFailed(exc.code, exc.description, exc.details) from None
        except TimeoutError:
            raise CommandFailed(
                CommandFailed.TIMEOUT, f"charger {charger!r} did not answer {action} in time"
            ) from None
        except ConnectionError:
            raise CommandFailed(
                CommandFailed.DISCONNECTED, f"charger {charger!r} disconnected before answering {action}"
            ) from None

    async def _command(
        self, charger: str, action: str, payload: dict[str, Any], timeout_s: float | None
    ) -> CommandReply:
        reply = await self.send(charger, action, payload, timeout_s=timeout_s)
        return CommandReply(str(reply.get("status", "")), {k: v for k, v in reply.items() if k != "status"})
