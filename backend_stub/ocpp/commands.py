"""What every version's ChargerCommands implementation shares: sending CALLs, raw-command checks, dispatch."""

from __future__ import annotations

import copy
import uuid
from typing import Any, ClassVar

from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, _validate_payload

from backend_stub.domain.commands import (
    CertificateHash,
    CertificateKind,
    ChargerCommands,
    CommandReply,
    Lockout,
    ResetKind,
)
from backend_stub.errors import CommandFailed, InvalidCommand, NotConnected
from backend_stub.ocpp.server import CallErrorReply, CentralSystem, OcppVersion


def hash_data(certificate: CertificateHash) -> dict[str, str]:
    """A certificate's CertificateHashDataType (the same fields in OCPP 1.6 security whitepaper and 2.0.1)."""
    return {
        "hashAlgorithm": certificate.hash_algorithm,
        "issuerNameHash": certificate.issuer_name_hash,
        "issuerKeyHash": certificate.issuer_key_hash,
        "serialNumber": certificate.serial_number,
    }


def hash_from(data: Any) -> CertificateHash | None:
    """A CertificateHashDataType from a charger's answer, or None if it is not one (the answer is a peer's)."""
    if not isinstance(data, dict):
        return None
    fields = (data.get(k) for k in ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber"))
    values = [v for v in fields if isinstance(v, str)]
    return CertificateHash(*values) if len(values) == 4 else None


class OcppCommands:
    """The version-independent half of a ChargerCommands implementation: CALLs through the server."""

    VERSION: ClassVar[OcppVersion]
    ACTIONS: ClassVar[frozenset[str]]  # the actions a central system sends in this version
    REQUEST_SUFFIX: ClassVar[str] = ".req"  # how the version names a request message (1.6 ".req")
    CERTIFICATE_TYPES: ClassVar[dict[CertificateKind, str]]  # the port's certificate kinds in this version

    async def install_certificate(
        self, charger: str, kind: CertificateKind, pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """InstallCertificate (OCPP 1.6 security whitepaper §3.3.5, 2.0.1 M05: the same fields)."""
        payload = {"certificateType": self.CERTIFICATE_TYPES[kind], "certificate": pem}
        return await self._command(charger, "InstallCertificate", payload, timeout_s)

    async def delete_certificate(
        self, charger: str, certificate: CertificateHash, *, timeout_s: float | None = None
    ) -> CommandReply:
        """DeleteCertificate (OCPP 1.6 security whitepaper §3.3.6, 2.0.1 M04: the same fields)."""
        payload = {"certificateHashData": hash_data(certificate)}
        return await self._command(charger, "DeleteCertificate", payload, timeout_s)

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


class CommandsByVersion:
    """The ChargerCommands port for a mixed site: each command goes out in the charger's negotiated version."""

    def __init__(self, server: CentralSystem, implementations: dict[str, ChargerCommands]) -> None:
        """``implementations`` keyed by subprotocol; the first one answers for chargers not connected."""
        self.server = server
        self.implementations = implementations
        self._default = next(iter(implementations.values()))

    def _for(self, charger: str) -> ChargerCommands:
        """The implementation of ``charger``'s live connection (the default one if it is not connected)."""
        return self.implementations.get(self.server.subprotocol(charger) or "", self._default)

    def connected(self) -> set[str]:
        """Ids of the chargers connected right now."""
        return self.server.connected

    def is_connected(self, charger: str) -> bool:
        """Whether ``charger`` is connected right now."""
        return charger in self.server.connected

    def auth_lockout(self, charger: str) -> Lockout | None:
        """Failed password attempts of ``charger`` and its lock-out."""
        return self.server.auth_throttle.status(charger)

    async def remote_start(
        self, charger: str, evse: int | None, token: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Start a session for ``token`` in the charger's version."""
        return await self._for(charger).remote_start(charger, evse, token, timeout_s=timeout_s)

    async def remote_stop(
        self, charger: str, transaction: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Stop ``transaction`` in the charger's version."""
        return await self._for(charger).remote_stop(charger, transaction, timeout_s=timeout_s)

    async def reset(self, charger: str, kind: ResetKind, *, timeout_s: float | None = None) -> CommandReply:
        """Reboot the charger."""
        return await self._for(charger).reset(charger, kind, timeout_s=timeout_s)

    async def unlock(self, charger: str, evse: int, *, timeout_s: float | None = None) -> CommandReply:
        """Unlock the connector of ``evse``."""
        return await self._for(charger).unlock(charger, evse, timeout_s=timeout_s)

    async def get_diagnostics(
        self, charger: str, location: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Have the charger upload its diagnostics to ``location``."""
        return await self._for(charger).get_diagnostics(charger, location, timeout_s=timeout_s)

    async def change_configuration(
        self, charger: str, key: str, value: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Set one configuration key (device-model variable)."""
        return await self._for(charger).change_configuration(charger, key, value, timeout_s=timeout_s)

    async def trigger(
        self, charger: str, message: str, evse: int | None = None, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Have the charger send ``message`` now."""
        return await self._for(charger).trigger(charger, message, evse, timeout_s=timeout_s)

    async def certificate_signed(
        self, charger: str, chain_pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Send the signed certificate chain in the charger's version."""
        return await self._for(charger).certificate_signed(charger, chain_pem, timeout_s=timeout_s)

    async def install_certificate(
        self, charger: str, kind: CertificateKind, pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Install a root certificate in the charger's version."""
        return await self._for(charger).install_certificate(charger, kind, pem, timeout_s=timeout_s)

    async def delete_certificate(
        self, charger: str, certificate: CertificateHash, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Delete an installed certificate in the charger's version."""
        return await self._for(charger).delete_certificate(charger, certificate, timeout_s=timeout_s)

    async def installed_certificates(
        self, charger: str, kind: CertificateKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[CertificateHash]]:
        """The installed certificates of one kind, in the charger's version."""
        return await self._for(charger).installed_certificates(charger, kind, timeout_s=timeout_s)

    def raw_actions(self) -> frozenset[str]:
        """The actions `send` takes in any version."""
        return frozenset().union(*(impl.raw_actions() for impl in self.implementations.values()))

    def check_raw(self, charger: str, action: str, payload: dict[str, Any] | None) -> None:
        """Check against the connected charger's version; a charger not connected against any version's."""
        if self.server.subprotocol(charger) is not None:
            self._for(charger).check_raw(charger, action, payload)
            return
        errors: list[InvalidCommand] = []
        for impl in self.implementations.values():
            try:
                impl.check_raw(charger, action, payload)
            except InvalidCommand as exc:
                errors.append(exc)
            else:
                return
        raise min(errors, key=lambda e: e.unknown)  # an invalid payload says more than an unknown action

    async def send(
        self, charger: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a raw CALL in the charger's version."""
        return await self._for(charger).send(charger, action, payload, timeout_s=timeout_s)
