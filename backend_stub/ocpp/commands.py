"""What every version's ChargerCommands implementation shares: sending CALLs, raw-command checks, dispatch."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.exceptions import OCPPError
from ocpp.messages import Call

from backend_stub.domain.commands import (
    AvailabilityKind,
    CertificateHash,
    CertificateKind,
    ChargerCommands,
    ChargingProfile,
    CommandReply,
    LocalListEntry,
    Lockout,
    ProfilePurpose,
    ReportKind,
    ResetKind,
    VariableRef,
    VariableResult,
)
from backend_stub.errors import CommandFailed, InvalidCommand, NotConnected
from backend_stub.ocpp.limits import parse_limit, versions_for
from backend_stub.ocpp.server import CallErrorReply, CentralSystem, OcppVersion
from backend_stub.store import DeviceVariable
from chargepoint.csms.schemas import validate

MAX_ANSWER_ITEMS = 1000  # at most this many entries of a list in a charger's answer are looked at
MAX_ANSWER_TEXT = 2500  # 2.0.1 attributeValue / 1.6 configuration value: string[0..2500] resp. [0..500]


def dicts_in(value: Any, limit: int = MAX_ANSWER_ITEMS) -> list[dict[str, Any]]:
    """The JSON objects of a list in a charger's answer (anything else is dropped; the answer is a peer's)."""
    if not isinstance(value, list):
        return []
    return [v for v in value[:limit] if isinstance(v, dict)]


def text_in(value: Any, limit: int = MAX_ANSWER_TEXT) -> str | None:
    """A string from a charger's answer, None if it is not one or is longer than ``limit``."""
    return value if isinstance(value, str) and len(value) <= limit else None


def iso(at: datetime) -> str:
    """An aware datetime as OCPP dateTime text (UTC, "Z")."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


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

    async def cancel_reservation(
        self, charger: str, reservation_id: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """CancelReservation (OCPP 1.6 §5.1, 2.0.1 H02: the same field)."""
        return await self._command(charger, "CancelReservation", {"reservationId": reservation_id}, timeout_s)

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
            validate(Call(str(uuid.uuid4()), action, copy.deepcopy(payload)), version)
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

    # ---- the charger's message limits (``backend_stub.ocpp.limits``) --------------------------------------------

    async def limits(
        self, charger: str, names: Sequence[str], timeout_s: float | None = None
    ) -> dict[str, int | None]:
        """The charger's limits ``names``: known since its last boot, or asked for once (``_read_limits``)."""
        known = self.server.limits(charger)
        if any(name not in known for name in names):
            # Concurrent commands: the first reads them, the others wait and find them known.
            async with self.server.limits_lock(charger):
                missing = [name for name in names if name not in known]
                learned = await self._read_limits(charger, missing, timeout_s) if missing else {}
                # None is kept too: a charger that does not say is not asked again until it reboots; a value
                # learned on the way (from the answer to the query itself) is not overwritten by a None.
                for name in missing:
                    value = learned.get(name)
                    if value is not None or known.get(name) is None:
                        known[name] = value
        return {name: known.get(name) for name in names}

    async def _read_limits(
        self, charger: str, names: list[str], timeout_s: float | None
    ) -> dict[str, int | None]:
        """Ask the charger for the limits ``names`` (its version's query); what it does not say is None."""
        raise NotImplementedError

    def learn_limit(self, charger: str, name: str, value: object) -> None:
        """Keep a limit the charger reported (in an answer or a report) on its live connection."""
        try:
            self.server.limits(charger)[name] = parse_limit(value)
        except NotConnected:
            pass  # gone since it answered: the next connection learns it again

    async def _send_list_parts(
        self,
        charger: str,
        action: str,
        version: int,
        full: bool,
        parts: list[list[dict[str, Any]]],
        payload_of: Callable[[int, bool, list[dict[str, Any]]], dict[str, Any]],
        timeout_s: float | None,
    ) -> CommandReply:
        """Send a local list in ``parts``: the first as asked (Full or Differential), the rest Differential, with
        rising versions that end at ``version`` (``limits.versions_for``); stops at the first part not Accepted.

        ``payload_of(version, full, entries)`` builds one message. A single part is sent and answered as is; the
        answer to several says how many went out (fields ``parts``, ``sent`` and the ``versions`` used).
        """
        if len(parts) == 1:
            return await self._command(charger, action, payload_of(version, full, parts[0]), timeout_s)
        first = versions_for(len(parts), version, action)
        reply = CommandReply("", {})
        for n, part in enumerate(parts):
            reply = await self._command(
                charger, action, payload_of(first + n, full and n == 0, part), timeout_s
            )
            if not reply.accepted:
                break
        sent = n + 1
        return CommandReply(
            reply.status,
            {**reply.fields, "parts": len(parts), "sent": sent, "versions": [first, first + sent - 1]},
        )


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

    async def get_variables(
        self, charger: str, refs: list[VariableRef], *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[VariableResult]]:
        """Read variables in the charger's version."""
        return await self._for(charger).get_variables(charger, refs, timeout_s=timeout_s)

    async def base_report(
        self, charger: str, kind: ReportKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[DeviceVariable] | None]:
        """Ask for the device model in the charger's version."""
        return await self._for(charger).base_report(charger, kind, timeout_s=timeout_s)

    async def set_basic_auth_password(
        self, charger: str, password: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Set the charger's HTTP Basic password in its version."""
        return await self._for(charger).set_basic_auth_password(charger, password, timeout_s=timeout_s)

    async def change_availability(
        self, charger: str, evse: int | None, kind: AvailabilityKind, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Change availability in the charger's version."""
        return await self._for(charger).change_availability(charger, evse, kind, timeout_s=timeout_s)

    async def set_charging_profile(
        self, charger: str, evse: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Install a charging profile in the charger's version."""
        return await self._for(charger).set_charging_profile(charger, evse, profile, timeout_s=timeout_s)

    async def clear_charging_profile(
        self,
        charger: str,
        profile_id: int | None,
        evse: int | None,
        purpose: ProfilePurpose | None,
        *,
        stack_level: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """Clear charging profiles in the charger's version."""
        return await self._for(charger).clear_charging_profile(
            charger, profile_id, evse, purpose, stack_level=stack_level, timeout_s=timeout_s
        )

    async def composite_schedule(
        self,
        charger: str,
        evse: int,
        duration_s: int,
        unit: Literal["A", "W"] | None,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """The composite schedule in the charger's version."""
        return await self._for(charger).composite_schedule(
            charger, evse, duration_s, unit, timeout_s=timeout_s
        )

    async def update_firmware(
        self, charger: str, location: str, retrieve_at: datetime, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Update the firmware in the charger's version."""
        return await self._for(charger).update_firmware(charger, location, retrieve_at, timeout_s=timeout_s)

    async def send_local_list(
        self,
        charger: str,
        version: int,
        entries: list[LocalListEntry],
        full: bool,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """Send the local authorization list in the charger's version."""
        return await self._for(charger).send_local_list(charger, version, entries, full, timeout_s=timeout_s)

    async def reserve_now(
        self,
        charger: str,
        reservation_id: int,
        evse: int | None,
        token: str,
        expires_at: datetime,
        *,
        connector_type: str | None = None,
        group_token: str | None = None,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """Reserve in the charger's version."""
        return await self._for(charger).reserve_now(
            charger,
            reservation_id,
            evse,
            token,
            expires_at,
            connector_type=connector_type,
            group_token=group_token,
            timeout_s=timeout_s,
        )

    async def cancel_reservation(
        self, charger: str, reservation_id: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Cancel a reservation in the charger's version."""
        return await self._for(charger).cancel_reservation(charger, reservation_id, timeout_s=timeout_s)

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
