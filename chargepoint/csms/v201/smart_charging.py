"""K. Smart charging: SetChargingProfile, GetChargingProfiles -> ReportChargingProfiles, ClearChargingProfile and
GetCompositeSchedule (OCPP 2.0.1 Part 2 §K01, K08-K10), a thin adapter over the same limit engine as 1.6
(``core/smart_charging.py``, ``core/blocks/smart_charging.py``).

The station has one connector per EVSE, so an EVSE's profiles are its connector's; evseId 0 is the station as a
whole (ChargingStationMaxProfile, or a TxDefaultProfile for every EVSE). Only the CSMS sets profiles here, so every
profile's chargingLimitSource is CSO."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.smart_charging import (
    ChargingProfile,
    CompositeSchedule,
    ProfilePurpose,
    ProfileResult,
    matches_clear,
)
from chargepoint.csms.fitting import split_entries
from chargepoint.csms.schedules import periods_json, schedule_of
from chargepoint.csms.times import ocpp_time, parse_time
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base
from chargepoint.errors import CsmsRejected, CsmsUnavailable

log = logging.getLogger(__name__)

# ReportChargingProfiles: the profiles of one EVSE per message (K09.FR.?), at most this many in one.
PROFILES_PER_REPORT = 8
# The only source of a profile here: the CSMS (ChargingLimitSourceEnumType).
LIMIT_SOURCE = "CSO"
# What reading a profile the core cannot hold raises (a missing field, a purpose, unit or time it has no word for).
UNPARSABLE = (KeyError, ValueError, TypeError, OverflowError)


def charging_profile_of(data: dict[str, Any], cid: int) -> ChargingProfile:
    """An OCPP 2.0.1 ChargingProfileType (snake_case keys, as the ``ocpp`` package routes it) as the core's, on
    connector ``cid`` (0: the station). Raises KeyError/ValueError/TypeError for what the core cannot hold: a
    purpose the CSMS may not set, more than one schedule (offers for ISO 15118 are not supported here)."""
    schedules = data["charging_schedule"]
    if len(schedules) != 1:
        raise ValueError(f"{len(schedules)} chargingSchedules; this station takes exactly one")
    sched = schedules[0]
    purpose = mapping.PROFILE_PURPOSE_IN[data["charging_profile_purpose"]]
    valid_from, valid_to = data.get("valid_from"), data.get("valid_to")
    recurrency = data.get("recurrency_kind")
    transaction_id = data.get("transaction_id")
    return ChargingProfile(
        id=int(data["id"]),
        stack_level=int(data["stack_level"]),
        purpose=purpose,
        kind=mapping.PROFILE_KIND_IN[data["charging_profile_kind"]],
        connector_id=cid,
        recurrency=mapping.RECURRENCY_IN[recurrency] if recurrency else None,
        valid_from=parse_time(valid_from) if valid_from else None,
        valid_to=parse_time(valid_to) if valid_to else None,
        # K01.FR.?: transactionId belongs to a TxProfile only; the station's own id, so it is compared as given.
        transaction_id=str(transaction_id)
        if transaction_id is not None and purpose is ProfilePurpose.TX
        else None,
        schedule=schedule_of(sched, mapping.RATE_UNIT_IN[sched["charging_rate_unit"]], int(sched["id"])),
    )


def profile_json(p: ChargingProfile) -> dict[str, Any]:
    """A core profile as an OCPP 2.0.1 ChargingProfileType (camelCase), for ReportChargingProfiles."""
    s = p.schedule
    schedule: dict[str, Any] = {
        "id": s.id if s.id is not None else p.id,
        "chargingRateUnit": mapping.RATE_UNIT[s.unit],
        "chargingSchedulePeriod": periods_json(s.periods),
    }
    if s.start is not None:
        schedule["startSchedule"] = ocpp_time(s.start)
    if s.duration_s is not None:
        schedule["duration"] = s.duration_s
    if s.min_rate is not None:
        schedule["minChargingRate"] = s.min_rate
    out: dict[str, Any] = {
        "id": p.id,
        "stackLevel": p.stack_level,
        "chargingProfilePurpose": mapping.PROFILE_PURPOSE[p.purpose],
        "chargingProfileKind": mapping.PROFILE_KIND[p.kind],
        "chargingSchedule": [schedule],
    }
    if p.recurrency is not None:
        out["recurrencyKind"] = mapping.RECURRENCY[p.recurrency]
    if p.valid_from is not None:
        out["validFrom"] = ocpp_time(p.valid_from)
    if p.valid_to is not None:
        out["validTo"] = ocpp_time(p.valid_to)
    if p.transaction_id is not None:
        out["transactionId"] = p.transaction_id
    return out


def composite_json(evse_id: int, schedule: CompositeSchedule) -> dict[str, Any]:
    """A core composite schedule as CompositeScheduleType (snake_case: the ``ocpp`` package camel-cases it)."""
    return {
        "evse_id": evse_id,
        "duration": schedule.duration_s,
        "schedule_start": ocpp_time(schedule.start),
        "charging_rate_unit": mapping.RATE_UNIT[schedule.unit],
        "charging_schedule_period": periods_json(schedule.periods),  # camelCase keys pass through as they are
    }


def _refused(reason: str) -> dict[str, str]:
    """StatusInfoType saying why (reasonCode, at most 20 characters)."""
    return {"reason_code": reason}


class SmartChargingHandlers(V201Base):
    """Charging profiles set, reported, cleared and composed by the CSMS."""

    __slots__ = ()

    def profile_cid(self, evse_id: Any) -> int | None:
        """The connector of EVSE ``evse_id`` (0: the station as a whole); None for an EVSE the station lacks."""
        if evse_id == 0:
            return 0
        return self.cid_of(evse_id, None) if isinstance(evse_id, int) else None

    def evse_of(self, cid: int) -> int:
        """The evseId of connector ``cid`` (0: the station)."""
        return 0 if cid == 0 else self.address[cid][0]

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        """SetChargingProfile (K01): Rejected for an unknown EVSE, a TxProfile without its running transaction
        (K01.FR.09), a ChargingStationMaxProfile off EVSE 0 or a TxProfile on it, a unit, stack level, period
        count or time the station does not take, and beyond SmartChargingCtrlr.Entries profiles."""
        if not self.settings.get_bool("smart_charging_enabled"):
            return call_result.SetChargingProfile(status="Rejected", status_info=_refused("NotEnabled"))
        cid = self.profile_cid(evse_id)
        if cid is None:
            return call_result.SetChargingProfile(status="Rejected", status_info=_refused("UnknownEVSE"))
        try:
            profile = charging_profile_of(charging_profile, cid)
        except UNPARSABLE as exc:
            log.info("SetChargingProfile with an unusable profile: %s", exc)
            return call_result.SetChargingProfile(status="Rejected", status_info=_refused("InvalidProfile"))
        result = self.station.set_charging_profile(cid, profile)
        if result is not ProfileResult.ACCEPTED:
            return call_result.SetChargingProfile(
                status=mapping.PROFILE_RESULT[result], status_info=_refused("InvalidProfile")
            )
        return call_result.SetChargingProfile(status="Accepted")

    def _selected(self, evse_id: int | None, criterion: dict[str, Any]) -> list[ChargingProfile]:
        """The installed profiles a GetChargingProfiles request selects (K09): by EVSE (0: the station's own),
        purpose, stack level, ids and source, every given criterion at once."""
        sources = criterion.get("charging_limit_source")
        if sources is not None and LIMIT_SOURCE not in sources:
            return []
        cid = None
        if evse_id is not None:
            cid = self.profile_cid(evse_id)
            if cid is None:
                return []
        purpose_name = criterion.get("charging_profile_purpose")
        purpose = mapping.PROFILE_PURPOSE_IN.get(purpose_name) if purpose_name is not None else None
        if purpose_name is not None and purpose is None:
            return []  # ChargingStationExternalConstraints: none here
        ids = criterion.get("charging_profile_id")
        chosen = [
            p
            for p in self.station.profiles
            if matches_clear(p, None, cid, purpose, criterion.get("stack_level"))
            and (ids is None or p.id in ids)
        ]
        return sorted(chosen, key=lambda p: (p.connector_id, p.id))

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(
        self, request_id: int, charging_profile: dict[str, Any], evse_id: int | None = None, **_: Any
    ) -> Any:
        """GetChargingProfiles (K09): Accepted and the profiles follow in ReportChargingProfiles, or NoProfiles."""
        if not self._selected(evse_id, charging_profile):
            return call_result.GetChargingProfiles(status="NoProfiles")
        if not self.can_follow_up():
            # Reports still being sent: not one more (2.0.1 has no Rejected here; the reason says why).
            return call_result.GetChargingProfiles(status="NoProfiles", status_info=_refused("Busy"))
        return call_result.GetChargingProfiles(status="Accepted")

    @after(Action.get_charging_profiles)
    def after_get_charging_profiles(
        self, request_id: int, charging_profile: dict[str, Any], evse_id: int | None = None, **_: Any
    ) -> None:
        """Send the report after the answer, in a task kept by reference."""
        selected = self._selected(evse_id, charging_profile)
        if selected and self.can_follow_up():
            self.follow_up(self._report_profiles(request_id, selected), "report-charging-profiles")

    async def _report_profiles(self, request_id: int, profiles: list[ChargingProfile]) -> None:
        """ReportChargingProfiles (K09.FR.?): one EVSE per message, at most PROFILES_PER_REPORT profiles and
        BytesPerMessage each, tbc on every message but the last. A profile too big for a message of its own (a
        long schedule under a small limit) is left out, logged."""
        groups: list[tuple[int, list[dict[str, Any]]]] = []
        for p in profiles:
            if groups and groups[-1][0] == p.connector_id:
                groups[-1][1].append(profile_json(p))
            else:
                groups.append((p.connector_id, [profile_json(p)]))
        room = self.room("ReportChargingProfiles")
        parts: list[tuple[int, list[dict[str, Any]]]] = []
        for cid, group in groups:
            base = {"requestId": request_id, "chargingLimitSource": LIMIT_SOURCE, "evseId": self.evse_of(cid)}
            split = split_entries(
                room, {**base, "tbc": False}, "chargingProfile", group, max_items=PROFILES_PER_REPORT
            )
            if split.left_out:
                log.warning(
                    "ReportChargingProfiles: %d profiles left out, each alone over BytesPerMessage",
                    split.left_out,
                )
            parts += [(cid, part) for part in split.parts]
        for n, (cid, part) in enumerate(parts):
            payload = {
                "requestId": request_id,
                "chargingLimitSource": LIMIT_SOURCE,
                "evseId": self.evse_of(cid),
                "chargingProfile": part,
                "tbc": n < len(parts) - 1,
            }
            try:
                await self.request("ReportChargingProfiles", payload)
            except (CsmsRejected, CsmsUnavailable) as exc:
                log.warning("ReportChargingProfiles %s part %s not delivered: %s", request_id, n, exc)
                return

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """ClearChargingProfile (K10): by id, or by EVSE, purpose and stack level (no criteria: all); Unknown when
        nothing matched."""
        criteria = charging_profile_criteria or {}
        cid = None
        if criteria.get("evse_id") is not None:
            cid = self.profile_cid(criteria["evse_id"])
            if cid is None:
                return call_result.ClearChargingProfile(status="Unknown")
        purpose_name = criteria.get("charging_profile_purpose")
        purpose = mapping.PROFILE_PURPOSE_IN.get(purpose_name) if purpose_name is not None else None
        if purpose_name is not None and purpose is None and charging_profile_id is None:
            return call_result.ClearChargingProfile(status="Unknown")  # ExternalConstraints: not the CSMS's
        result = self.station.clear_charging_profiles(
            charging_profile_id, cid, purpose, criteria.get("stack_level")
        )
        return call_result.ClearChargingProfile(status=mapping.CLEAR_RESULT[result])

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """GetCompositeSchedule (K08): the limits of an EVSE (0: the station) from now for ``duration`` s;
        Rejected for an unknown EVSE or a duration beyond what a schedule can hold."""
        cid = self.profile_cid(evse_id)
        if cid is None:
            return call_result.GetCompositeSchedule(status="Rejected", status_info=_refused("UnknownEVSE"))
        unit = mapping.RATE_UNIT_IN[charging_rate_unit] if charging_rate_unit else None
        schedule = self.station.composite_schedule(cid, duration, unit)
        if schedule is None:
            return call_result.GetCompositeSchedule(status="Rejected", status_info=_refused("InvalidValue"))
        return call_result.GetCompositeSchedule(status="Accepted", schedule=composite_json(evse_id, schedule))
