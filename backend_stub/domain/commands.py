"""The ChargerCommands port: commands to chargers, version-neutral; `backend_stub.ocpp` implements it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

from backend_stub.errors import CommandFailed

__all__ = [
    "CertificateHash",
    "CertificateKind",
    "ChargerCommands",
    "CommandFailed",
    "CommandReply",
    "Lockout",
    "ResetKind",
]

ResetKind: TypeAlias = Literal["Soft", "Hard"]


@dataclass(frozen=True)
class CommandReply:
    """A charger's answer to a command: its status (empty if the answer has none) and any other fields."""

    status: str
    fields: dict[str, Any]

    @property
    def accepted(self) -> bool:
        """Whether the charger accepted the command."""
        return self.status == "Accepted"


CertificateKind: TypeAlias = Literal["csms_root", "manufacturer_root"]


@dataclass(frozen=True)
class CertificateHash:
    """Identifies an installed certificate: hashes of its issuer's name and key, and its serial (hex)."""

    hash_algorithm: str  # SHA256, SHA384 or SHA512
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str


@dataclass(frozen=True)
class Lockout:
    """A charger id's (or address's) failed authentication attempts and the end of its lock-out."""

    failed_attempts: int
    locked_until: datetime | None  # None: not locked right now


class ChargerCommands(Protocol):
    """Commands to connected chargers; every method raises CommandFailed when no answer comes back."""

    def connected(self) -> set[str]:
        """Ids of the chargers connected right now."""

    def is_connected(self, charger: str) -> bool:
        """Whether ``charger`` is connected right now."""

    def auth_lockout(self, charger: str) -> Lockout | None:
        """Failed password attempts of ``charger`` and its lock-out, None if there are none."""

    async def remote_start(
        self, charger: str, evse: int | None, token: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Ask ``charger`` to start a session for ``token`` (on ``evse``, or one it chooses)."""

    async def remote_stop(
        self, charger: str, transaction: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Ask ``charger`` to stop ``transaction``."""

    async def reset(self, charger: str, kind: ResetKind, *, timeout_s: float | None = None) -> CommandReply:
        """Ask ``charger`` to reboot (Soft: after ending sessions, Hard: now)."""

    async def unlock(self, charger: str, evse: int, *, timeout_s: float | None = None) -> CommandReply:
        """Ask ``charger`` to unlock the connector of ``evse``."""

    async def get_diagnostics(
        self, charger: str, location: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Ask ``charger`` to upload its diagnostics (logs) to ``location``."""

    async def change_configuration(
        self, charger: str, key: str, value: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Set one configuration key (a device-model variable in versions that have one)."""

    async def trigger(
        self, charger: str, message: str, evse: int | None = None, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Ask ``charger`` to send ``message`` (e.g. StatusNotification) now."""

    async def certificate_signed(
        self, charger: str, chain_pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Give ``charger`` its signed client certificate (PEM chain, leaf first)."""

    async def install_certificate(
        self, charger: str, kind: CertificateKind, pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Install a root certificate of ``kind`` on ``charger``."""

    async def delete_certificate(
        self, charger: str, certificate: CertificateHash, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Delete an installed certificate from ``charger``."""

    async def installed_certificates(
        self, charger: str, kind: CertificateKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[CertificateHash]]:
        """The ids of the certificates of ``kind`` installed on ``charger``."""

    def raw_actions(self) -> frozenset[str]:
        """The actions `send` takes (the commands of the chargers' protocol)."""

    def check_raw(self, charger: str, action: str, payload: dict[str, Any] | None) -> None:
        """InvalidCommand unless ``action`` (and ``payload``, if given) is a request `send` may send."""

    async def send(
        self, charger: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a raw command (the REST raw-command endpoint) and return the charger's answer as it came."""
