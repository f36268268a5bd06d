"""What every OCPP 2.0.1 functional block of the adapter shares: the session (``csms/rpc.py``), the version's
vocabulary, the EVSE addressing and the 2.0.1 shapes of tokens and meter values."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ocpp.v201.enums import Action

from chargepoint.core.device_model import Mutability, Variable
from chargepoint.core.model import UNITS, IdTagInfo, Measurand, Sample
from chargepoint.csms.rpc import (
    MessageTypeNotSupportedError,
    OcppSession,
    RpcFrameworkError,
    StatusReport,
)
from chargepoint.csms.times import ocpp_time, parse_time
from chargepoint.csms.v201 import mapping

if TYPE_CHECKING:
    from chargepoint.csms.session import SessionDeps

# Fields that count or address something and so are never negative (OCPP 2.0.1 Part 2 §2: evseId, connectorId,
# ids of requests and profiles, seqNo, stack levels, periods, list versions).
_NON_NEGATIVE = frozenset(
    {
        "evseId",
        "connectorId",
        "id",
        "requestId",
        "remoteStartId",
        "reservationId",
        "seqNo",
        "stackLevel",
        "startPeriod",
        "duration",
        "numberPhases",
        "versionNumber",
        "chargingProfileId",
    }
)
# OCPP 2.0.1 §2 IdTokenType.idToken: identifierString, at most 36 characters.
MAX_ID_TOKEN_CHARS = 36
# Token types remembered from the CSMS (RequestStartTransaction), so the token is sent back as it was given.
MAX_REMEMBERED_TOKENS = 64


def meter_value(sample: Sample) -> dict[str, Any] | None:
    """A core sample as an OCPP 2.0.1 MeterValueType (None when it holds no value: sampledValue needs one)."""
    values = []
    for v in sample.values:
        entry: dict[str, Any] = {
            "value": v.value,
            "context": mapping.CONTEXT[sample.context],
            "measurand": mapping.MEASURAND[v.measurand],
            "unitOfMeasure": {"unit": UNITS[v.measurand]},
        }
        if v.phase:
            entry["phase"] = v.phase
        if v.measurand is Measurand.SOC:
            entry["location"] = "EV"
        values.append(entry)
    if not values:
        return None
    return {"timestamp": ocpp_time(sample.timestamp), "sampledValue": values}


def meter_values(samples: tuple[Sample, ...]) -> list[dict[str, Any]]:
    """The samples that hold values, as MeterValueType."""
    return [mv for mv in map(meter_value, samples) if mv is not None]


def register_value(energy_wh: int, at: datetime, context: str) -> dict[str, Any]:
    """The energy register alone, as one MeterValueType (E01: the meter at the start, E06: at the end)."""
    return {
        "timestamp": ocpp_time(at),
        "sampledValue": [
            {
                "value": energy_wh,
                "context": context,
                "measurand": Measurand.ENERGY_ACTIVE_IMPORT_REGISTER.value,
                "unitOfMeasure": {"unit": "Wh"},
            }
        ],
    }


def id_token_info(data: Any) -> IdTagInfo:
    """An OCPP 2.0.1 IdTokenInfoType (camelCase) as the core's IdTagInfo; anything unreadable is Invalid."""
    if not isinstance(data, dict):
        return IdTagInfo(mapping.AUTH_STATUS_IN["Invalid"])
    status = mapping.AUTH_STATUS_IN.get(str(data.get("status")), mapping.AUTH_STATUS_IN["Invalid"])
    expires = None
    expiry = data.get("cacheExpiryDateTime")
    if isinstance(expiry, str):
        try:
            expires = parse_time(expiry)
        except ValueError:
            expires = None
    group = data.get("groupIdToken")
    parent = group.get("idToken") if isinstance(group, dict) else None
    return IdTagInfo(status, expires, parent if isinstance(parent, str) else None)


@functools.lru_cache(maxsize=64)
def _layout(
    addresses: tuple[tuple[int, int, int], ...],
) -> tuple[Mapping[int, tuple[int, int]], Mapping[tuple[int, int], int]]:
    """(evseId, connectorId) by connector id and back, from (connector id, evseId, connectorId) triples; one
    read-only pair per layout (a fleet's chargers share one layout: two dicts each were ~0.5 KB per charger)."""
    address = {cid: (evse_id, local) for cid, evse_id, local in addresses}
    return MappingProxyType(address), MappingProxyType({addr: cid for cid, addr in address.items()})


class V201Base(OcppSession):
    """The OCPP 2.0.1 session's common ground; each functional block is a subclass of it."""

    __slots__ = ("_token_types", "address", "connector_at")
    _ocpp_version = "2.0.1"
    subprotocol = "ocpp2.0.1"
    ACTIONS = frozenset(a.value for a in Action)
    # ERROR_SPELLING stays empty: OCPP-J 2.0.1 §4.2.3 spells every code as the ``ocpp`` package does
    # (FormatViolation, OccurrenceConstraintViolation; 1.6 spelled them FormationViolation, OccurenceConstraint...).
    NON_NEGATIVE = _NON_NEGATIVE
    NOT_A_MESSAGE = RpcFrameworkError
    UNKNOWN_MESSAGE_TYPE = MessageTypeNotSupportedError
    # OCPP-J 2.0.1 §4.2.3: a message of an unknown MessageTypeId is answered with MessageTypeNotSupported.
    ANSWER_UNKNOWN_MESSAGE_TYPES = True

    def __init__(self, deps: SessionDeps, connection: Any) -> None:
        super().__init__(deps, connection)
        # (evseId, connectorId) of each station-wide connector id, and back (OCPP 2.0.1 Part 1 §3.1.2): read-only
        # maps shared by every session of the same layout.
        self.address, self.connector_at = _layout(
            tuple(
                (conn.id, evse.evse_id, local)
                for evse in deps.station.evses.values()
                for local, conn in evse.connectors.items()
            )
        )
        self._token_types: dict[str, str] = {}

    def live_value(self, setting: str) -> str | None:
        """A read-only variable whose Actual value is what the station holds now rather than its setting (the
        setting is then the variable's maxLimit); None for the others. A block that has one overrides this."""
        return None

    def mutability(self, variable: Variable) -> Mutability:
        """A variable's mutability as OCPP 2.0.1 has it (``mapping.MUTABILITY_OVERRIDE``)."""
        return mapping.MUTABILITY_OVERRIDE.get(variable.setting, variable.mutability)

    def write_variable(self, variable: Variable, text: str) -> dict[str, Any] | None:
        """A functional block's own SetVariables of ``variable`` (its SetVariableResult fields), or None when the
        value is a plain setting (stored by Provisioning)."""
        return None

    def now(self) -> datetime:
        """The time for generatedAt stamps."""
        return datetime.now(UTC)

    def id_token(self, tag: str, token_type: str | None = None) -> dict[str, str]:
        """An idTag as IdTokenType: of the type given (persisted with a remote start's event), else the type the
        CSMS last gave it on this connection, else a card of the station's reader."""
        return {
            "idToken": tag[:MAX_ID_TOKEN_CHARS],
            "type": token_type or self._token_types.get(tag, mapping.READER_TOKEN_TYPE),
        }

    def remember_token(self, tag: str, token_type: str) -> None:
        """Keep a token's type for the later events of its transaction on this connection."""
        if len(self._token_types) >= MAX_REMEMBERED_TOKENS:
            self._token_types.pop(next(iter(self._token_types)))
        self._token_types[tag] = token_type

    def cid_of(self, evse_id: int, connector_id: int | None) -> int | None:
        """The station-wide connector at (evse, connector); connector None: the EVSE's first. None if unknown."""
        evse = self.station.evses.get(evse_id)
        if evse is None:
            return None
        local = min(evse.connectors) if connector_id is None else connector_id
        return self.connector_at.get((evse_id, local))

    # the session's version-specific parts
    def _boot_payload(self, *, triggered: bool = False) -> dict[str, Any]:
        """BootNotificationRequest (B01): the station's identity and why it booted."""
        ident = self.link.identity
        station: dict[str, Any] = {"model": ident.model[:20], "vendorName": ident.vendor[:50]}
        if ident.firmware_version:
            station["firmwareVersion"] = ident.firmware_version[:50]
        if ident.serial_number:
            station["serialNumber"] = ident.serial_number[:25]
        # B01.FR.?: the reason of the last restart, stored before it (RemoteReset, ScheduledReset, FirmwareUpdate).
        reason = "Triggered" if triggered else mapping.BOOT_REASON[self.station.boot_reason]
        return {"chargingStation": station, "reason": reason}

    def _status_report(self, cid: int, seq: int) -> StatusReport | None:
        """StatusNotificationRequest (G01) per (evseId, connectorId); the station as a whole has none."""
        address = self.address.get(cid)
        if address is None:
            return None
        status = self.station.status(cid)
        connector_status = mapping.CONNECTOR_STATUS[self.station.connectors[cid].reported_status]
        payload = {
            "timestamp": ocpp_time(status.timestamp),
            "connectorStatus": connector_status,
            "evseId": address[0],
            "connectorId": address[1],
        }
        return StatusReport(cid, (connector_status,), payload, asyncio.get_running_loop().time(), seq)
