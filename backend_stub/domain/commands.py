"""The ChargerCommands port: commands to chargers, version-neutral; `backend_stub.ocpp` implements it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol, TypeAlias

from backend_stub.errors import CommandFailed
from backend_stub.store import DeviceVariable

__all__ = [
    "MAX_RESERVATION",
    "AvailabilityKind",
    "CertificateHash",
    "CertificateKind",
    "ChargerCommands",
    "ChargingProfile",
    "CommandFailed",
    "CommandReply",
    "LocalListEntry",
    "Lockout",
    "ProfilePurpose",
    "ReportKind",
    "ResetKind",
    "VariableRef",
    "VariableResult",
    "reservation_expiry_problem",
]

ResetKind: TypeAlias = Literal["Soft", "Hard"]
AvailabilityKind: TypeAlias = Literal["Operative", "Inoperative"]
# OCPP 2.0.1 ReportBaseEnumType; in 1.6 every kind is the whole configuration (GetConfiguration without keys).
ReportKind: TypeAlias = Literal["ConfigurationInventory", "FullInventory", "SummaryInventory"]
# The neutral purposes are the 2.0.1 names; 1.6 calls the first one ChargePointMaxProfile (§7.14).
ProfilePurpose: TypeAlias = Literal["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"]

# A reservation holds an EVSE for one driver: one ending later would keep the charger from everyone for days (the
# charger keeps it until expiryDate, OCPP 1.6 §5.13 / 2.0.1 H01). Operators (REST) and roaming partners (OCPI
# RESERVE_NOW) share the bound.
MAX_RESERVATION: Final = timedelta(hours=24)


def reservation_expiry_problem(expires_at: datetime, now: datetime) -> str | None:
    """Why a reservation made ``now`` cannot end at ``expires_at`` (both timezone-aware), or None when it can."""
    if expires_at <= now:
        return "the reservation would already have expired"
    if expires_at - now > MAX_RESERVATION:
        return (
            f"a reservation may last at most {MAX_RESERVATION} (until {(now + MAX_RESERVATION).isoformat()})"
        )
    return None


@dataclass(frozen=True)
class VariableRef:
    """A device-model variable (2.0.1) or, in 1.6, the configuration key named ``variable`` (no component)."""

    component: str
    variable: str
    evse: int | None = None
    instance: str | None = (
        None  # 2.0.1 VariableType.instance (e.g. DeviceDataCtrlr.ItemsPerMessage[GetVariables])
    )


@dataclass(frozen=True)
class VariableResult:
    """A charger's answer for one variable: its status (Accepted, UnknownVariable, ...) and value if read."""

    ref: VariableRef
    status: str
    value: str | None = None


@dataclass(frozen=True)
class ChargingProfile:
    """A charging profile: limits in ``unit`` (A or W) from each period's start (seconds after the schedule's)."""

    profile_id: int
    stack_level: int
    purpose: ProfilePurpose
    kind: Literal["Absolute", "Recurring", "Relative"]
    unit: Literal["A", "W"]
    periods: tuple[tuple[int, float], ...]  # (start period in s, limit)
    transaction: int | None = None  # our transaction id, for a TxProfile
    # Or the charger's own transactionId (OCPP 2.0.1, string[0..36]) as it reported it: sent as is, the charger
    # rejects one it does not run (K01.FR.09).
    charger_transaction: str | None = None
    recurrency: Literal["Daily", "Weekly"] | None = None
    starts_at: datetime | None = None


@dataclass(frozen=True)
class LocalListEntry:
    """A local authorization list entry: a token and its status; status None removes it (Differential update)."""

    token: str
    status: str | None


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

    async def get_variables(
        self, charger: str, refs: list[VariableRef], *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[VariableResult]]:
        """Read variables (2.0.1 GetVariables; 1.6 GetConfiguration of the keys named like the variables)."""

    async def base_report(
        self, charger: str, kind: ReportKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[DeviceVariable] | None]:
        """Ask for the device model: 2.0.1 GetBaseReport (NotifyReport follows; None here), 1.6 GetConfiguration
        (the keys come back in the answer, as variables of component "OCPP16")."""

    async def set_basic_auth_password(
        self, charger: str, password: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Give ``charger`` a new HTTP Basic password (2.0.1 SecurityCtrlr.BasicAuthPassword, 1.6
        AuthorizationKey); the reply's status is the charger's."""

    async def change_availability(
        self, charger: str, evse: int | None, kind: AvailabilityKind, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Make ``evse`` (None: the whole charger) Operative or Inoperative."""

    async def set_charging_profile(
        self, charger: str, evse: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Install a charging profile on ``evse`` (0: the whole charger)."""

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
        """Clear the profiles matching the given criteria (none given: all)."""

    async def composite_schedule(
        self,
        charger: str,
        evse: int,
        duration_s: int,
        unit: Literal["A", "W"] | None,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """The charger's composite schedule for ``evse`` over the next ``duration_s`` seconds."""

    async def update_firmware(
        self, charger: str, location: str, retrieve_at: datetime, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Have the charger download and install the firmware at ``location`` from ``retrieve_at``."""

    async def send_local_list(
        self,
        charger: str,
        version: int,
        entries: list[LocalListEntry],
        full: bool,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """Replace (``full``) or update the charger's local authorization list to ``version``."""

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
        """Reserve ``evse`` (None: any) for ``token`` until ``expires_at``; OCPP 2.0.1 may also name a connector
        type and a group token (H01); a version without them fails with NOT_IN_VERSION."""

    async def cancel_reservation(
        self, charger: str, reservation_id: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """Cancel a reservation."""

    def raw_actions(self) -> frozenset[str]:
        """The actions `send` takes (the commands of the chargers' protocol)."""

    def check_raw(self, charger: str, action: str, payload: dict[str, Any] | None) -> None:
        """InvalidCommand unless ``action`` (and ``payload``, if given) is a request `send` may send."""

    async def send(
        self, charger: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a raw command (the REST raw-command endpoint) and return the charger's answer as it came."""
