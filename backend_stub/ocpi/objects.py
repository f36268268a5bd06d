"""OCPI 2.2.1 objects built from the domain's records: Location (one per charger), Tariff, Session and CDR."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from backend_stub.domain.tariffs import currency_exponent
from backend_stub.ocpi.config import OcpiConfig
from backend_stub.ocpi.protocol import format_time, money
from backend_stub.store import Charger, ChargerStatus, ConnectorStatus, CsmsStore, Transaction

MAX_ID_LENGTH: Final = 36  # OCPI 2.2.1 Location.id / EVSE.uid / Session.id are CiString(36)
# The neutral connector status (OCPP 1.6 ChargePointStatus or 2.0.1 ConnectorStatusEnumType, as stored) ->
# OCPI 2.2.1 §8.4.22 Status. A connector in use in any phase of a session is CHARGING ("in use").
EVSE_STATUS: Final[dict[str, str]] = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Occupied": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}
# The whole charger (connector 0) unavailable or faulted overrides each EVSE's own status.
CHARGER_OVERRIDE: Final[dict[str, str]] = {"Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER"}


def evse_uid(cp_id: str, evse: int) -> str:
    """The OCPI EVSE uid of a charger's EVSE (unique on our platform)."""
    return f"{cp_id}*{evse}"


def publishable(charger: Charger) -> bool:
    """Whether a charger is published: accepted, and its id fits OCPI's 36 characters with the EVSE suffix."""
    return charger.status is ChargerStatus.ACCEPTED and len(charger.id) <= MAX_ID_LENGTH - 4


def _clamped(at: datetime, now: datetime) -> datetime:
    """A charger's timestamp, never after now (a charger's clock may be anywhere)."""
    return min(at, now)


def _evse(
    config: OcpiConfig,
    cp_id: str,
    c: ConnectorStatus,
    tariff_id: str | None,
    override: str | None,
    now: datetime,
) -> dict[str, Any]:
    updated = format_time(_clamped(c.timestamp, now))
    connector: dict[str, Any] = {
        "id": "1",
        "standard": config.connector_standard,
        "format": config.connector_format,
        "power_type": config.power_type,
        "max_voltage": config.max_voltage_v,
        "max_amperage": config.max_current_a,
        "last_updated": updated,
    }
    if tariff_id is not None:
        connector["tariff_ids"] = [tariff_id]
    return {
        "uid": evse_uid(cp_id, c.connector_id),
        "status": override or EVSE_STATUS.get(c.status, "UNKNOWN"),
        "connectors": [connector],
        "last_updated": updated,
    }


def location(
    store: CsmsStore,
    config: OcpiConfig,
    charger: Charger,
    now: datetime,
    known: tuple[list[ConnectorStatus], str | None] | None = None,
) -> dict[str, Any]:
    """The OCPI Location of one charger (OCPI 2.2.1 §8.3.1), its EVSEs from the reported connectors.

    ``known``: the charger's connectors and tariff id already read (a full list is built from one query).
    """
    connectors, tariff_id = (
        known if known is not None else (store.connectors(charger.id), store.tariff_for(charger.id))
    )
    whole = next((c for c in connectors if c.connector_id == 0), None)
    override = CHARGER_OVERRIDE.get(whole.status) if whole is not None else None
    evses = [_evse(config, charger.id, c, tariff_id, override, now) for c in connectors if c.connector_id > 0]
    updated = max([_clamped(c.timestamp, now) for c in connectors] + [charger.created_at])
    return {
        "country_code": config.country_code,
        "party_id": config.party_id,
        "id": charger.id,
        "publish": True,
        "name": charger.id,
        "address": config.address,
        "city": config.city,
        **({"postal_code": config.postal_code} if config.postal_code else {}),
        "country": config.country,
        "coordinates": {"latitude": config.latitude, "longitude": config.longitude},
        "evses": evses,
        "time_zone": config.time_zone,
        "last_updated": format_time(updated),
    }


def locations(store: CsmsStore, config: OcpiConfig, now: datetime) -> list[dict[str, Any]]:
    """Every published charger's Location, read with three queries whatever their number."""
    by_charger: dict[str, list[ConnectorStatus]] = {}
    for c in store.all_connectors():
        by_charger.setdefault(c.cp_id, []).append(c)
    default = store.default_tariff_id()
    return [
        location(store, config, charger, now, (by_charger.get(charger.id, []), charger.tariff_id or default))
        for charger in store.chargers()
        if publishable(charger)
    ]


def tariff(config: OcpiConfig, tariff_id: str, ocpi_json: str, updated: datetime) -> dict[str, Any]:
    """A stored tariff as the OCPI Tariff object (OCPI 2.2.1 §11.3.1) of our party."""
    body = json.loads(ocpi_json, parse_float=Decimal)
    return {
        **{k: v for k, v in body.items() if k not in ("country_code", "party_id", "id", "last_updated")},
        "country_code": config.country_code,
        "party_id": config.party_id,
        "id": tariff_id,
        "last_updated": format_time(updated),
    }


def _token(tx: Transaction, owner: tuple[str, str, str]) -> dict[str, Any]:
    """The CdrToken (OCPI 2.2.1 §13.4.3) of the session's idTag, owned by ``owner`` (country_code, party_id, _)."""
    return {
        "country_code": owner[0],
        "party_id": owner[1],
        "uid": tx.id_tag,
        "type": "RFID",
        "contract_id": tx.id_tag,
    }


def _price(excl_minor: int, incl_minor: int, digits: int) -> dict[str, Decimal]:
    return {"excl_vat": money(excl_minor, digits), "incl_vat": money(incl_minor, digits)}


def session(
    config: OcpiConfig,
    store: CsmsStore,
    tx: Transaction,
    owner: tuple[str, str, str],
    cost: tuple[int, int] | None,
    now: datetime,
) -> dict[str, Any]:
    """The OCPI Session of ``tx`` (OCPI 2.2.1 §9.3.1); ``cost`` (excl, incl VAT, minor units) so far or final."""
    currency = store.currency()
    body: dict[str, Any] = {
        "country_code": config.country_code,
        "party_id": config.party_id,
        "id": str(tx.id),
        "start_date_time": format_time(tx.started_at),
        "kwh": Decimal(tx.energy_wh).scaleb(-3),
        "cdr_token": _token(tx, owner),
        "auth_method": owner[2],
        "location_id": tx.cp_id,
        "evse_uid": evse_uid(tx.cp_id, tx.connector_id),
        "connector_id": "1",
        "currency": currency,
        "status": "ACTIVE" if tx.active else "COMPLETED",
        "last_updated": format_time(now),
    }
    if tx.stopped_at is not None:
        body["end_date_time"] = format_time(max(tx.stopped_at, tx.started_at))
    if cost is not None:
        body["total_cost"] = _price(*cost, currency_exponent(currency))
    return body


def charged(tx: Transaction) -> tuple[int, int]:
    """(excl, incl VAT) minor units the central system charged for a stopped session (its own CDR's split)."""
    incl = tx.cost_minor or 0
    stored = json.loads(tx.cdr_json) if tx.cdr_json else {}
    total = stored.get("total_cost_minor") or {}
    excl = total.get("excl_vat", incl)
    # A capped or waived session was charged less than its tariff cost: never report more excl. VAT than charged.
    return min(int(excl), incl), incl


def cdr(
    config: OcpiConfig,
    store: CsmsStore,
    tx: Transaction,
    owner: tuple[str, str, str],
) -> dict[str, Any]:
    """The OCPI CDR of a stopped session (OCPI 2.2.1 §10.3.1), its totals the central system's own charge."""
    assert tx.stopped_at is not None
    currency = store.currency()
    digits = currency_exponent(currency)
    stored = json.loads(tx.cdr_json, parse_float=Decimal) if tx.cdr_json else {}
    end = max(tx.stopped_at, tx.started_at)
    periods = [
        {
            "start_date_time": format_time(datetime.fromisoformat(p["start_date_time"]).astimezone(UTC)),
            "dimensions": [{"type": d["type"], "volume": Decimal(d["volume"])} for d in p["dimensions"]],
            **({"tariff_id": stored["tariff_id"]} if "tariff_id" in stored else {}),
        }
        for p in stored.get("charging_periods", [])
    ]
    if not periods:  # OCPI requires at least one period: the whole session's energy
        periods = [
            {
                "start_date_time": format_time(tx.started_at),
                "dimensions": [{"type": "ENERGY", "volume": Decimal(tx.energy_wh).scaleb(-3)}],
            }
        ]
    uid = evse_uid(tx.cp_id, tx.connector_id)
    total_time_h = Decimal((end - tx.started_at).total_seconds()) / Decimal(3600)
    return {
        "country_code": config.country_code,
        "party_id": config.party_id,
        "id": str(tx.id),
        "start_date_time": format_time(tx.started_at),
        "end_date_time": format_time(end),
        "session_id": str(tx.id),
        "cdr_token": _token(tx, owner),
        "auth_method": owner[2],
        "cdr_location": {
            "id": tx.cp_id,
            "address": config.address,
            "city": config.city,
            **({"postal_code": config.postal_code} if config.postal_code else {}),
            "country": config.country,
            "coordinates": {"latitude": config.latitude, "longitude": config.longitude},
            "evse_uid": uid,
            "evse_id": uid,
            "connector_id": "1",
            "connector_standard": config.connector_standard,
            "connector_format": config.connector_format,
            "connector_power_type": config.power_type,
        },
        "currency": currency,
        "charging_periods": periods,
        "total_cost": _price(*charged(tx), digits),
        "total_energy": Decimal(tx.energy_wh).scaleb(-3),
        "total_time": total_time_h.quantize(Decimal("0.000001")),
        "last_updated": format_time(end),
    }
