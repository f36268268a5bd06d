"""B. Provisioning, the reports: GetBaseReport and GetReport answered with NotifyReport parts (OCPP 2.0.1 Part 2
§B07, B08), and the availability of the station, each EVSE and each connector as device-model variables
(AvailabilityState, Available, Problem), told by NotifyEvent when they change (G01.FR.?/N07: a Core station
reports its components' state changes as events, next to StatusNotification).

The settings' variables come from ``core/device_model.py``; the availability variables are computed from the
station's status each time (read-only, not persistent: they are what the station is, not what it was told)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ocpp.exceptions
from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.device_model import DataType, Mutability, Variable, VariableRef, components
from chargepoint.core.model import ConnectorState
from chargepoint.csms.fitting import split_entries
from chargepoint.csms.times import ocpp_time
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base
from chargepoint.errors import CsmsRejected, CsmsUnavailable

log = logging.getLogger(__name__)

# NotifyReport parts: at most this many reportData entries (B07.FR.?: a report may be split; seqNo counts the
# parts; fewer if DeviceDataCtrlr.ItemsPerMessage says so), and the whole CALL at most BytesPerMessage.
REPORT_ITEMS_PER_MESSAGE = 16
# Room left in a frame for its envelope: [3,"<36-char id>",{"getVariableResult":[...]}].
ENVELOPE_CHARS = 200
# The widest values of a part's other fields, to size the parts before they are numbered (request ids, seqNo and
# eventId are int32 in the 2.0.1 schemas; a timestamp is always as wide as this one).
_WIDEST_INT = 2**31 - 1
_WIDEST_TIME = "2026-01-01T00:00:00.000Z"
# The report bases the station answers (B07): the enum has no other; anything else is a FormatViolation.
REPORT_BASES = frozenset({"ConfigurationInventory", "FullInventory", "SummaryInventory"})
_AVAILABILITY_VALUES = ",".join(mapping.CONNECTOR_STATUS.values())
# ReportingValueSize (DeviceDataCtrlr): attributeValue / VariableAttribute.value are at most 2500 characters.
MAX_VALUE_CHARS = 2500
# Variables the 2.0.1 device model names with an instance (Part 2 Appendix 3), also found without it.
INSTANCES = {VariableRef("SmartChargingCtrlr", "Entries"): "ChargingProfiles"}
# Variables the device model names once per message (DeviceDataCtrlr ItemsPerMessage / BytesPerMessage instance
# GetReport, GetVariables, SetVariables; B06.FR.05): the station has one limit for every message, so each
# instance answers with it (a CSMS sizing its GetVariables asks for that instance).
PER_MESSAGE_INSTANCES = {
    VariableRef("DeviceDataCtrlr", name): frozenset({"GetReport", "GetVariables", "SetVariables"})
    for name in ("ItemsPerMessage", "BytesPerMessage")
}
# Variables whose Actual value is a count the station keeps, and whose setting is the count's maxLimit.
_COUNTED = frozenset({"max_charging_profiles_installed"})
# ComponentCriterionEnumType: each is a boolean variable of that name a component may have (B08.FR.?).
CRITERIA = ("Active", "Available", "Enabled", "Problem")


@dataclass(frozen=True, slots=True)
class StatusVariable:
    """One computed availability variable of the station, an EVSE or a connector."""

    component: dict[str, Any]  # ComponentType: name, and evse {id, connectorId} for an EVSE or a connector
    name: str  # AvailabilityState, Available or Problem
    value: str
    data_type: str  # DataEnumType

    @property
    def key(self) -> tuple[str, int | None, int | None, str]:
        """Where it is, for comparing successive snapshots."""
        evse = self.component.get("evse", {})
        return self.component["name"], evse.get("id"), evse.get("connectorId"), self.name


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _component_matches(wanted: dict[str, Any], component: dict[str, Any]) -> bool:
    """A ComponentType in a GetReport names ``component``: the same name and no instance (the station has none);
    an evse in the request must match, its absence matches every EVSE (B08, TC_B_56)."""
    if wanted.get("name") != component["name"] or wanted.get("instance") is not None:
        return False
    want_evse = wanted.get("evse")
    if want_evse is None:
        return True
    have = component.get("evse")
    if have is None or want_evse.get("id") != have.get("id"):
        return False
    return want_evse.get("connector_id", want_evse.get("connectorId")) in (None, have.get("connectorId"))


def _variable_matches(wanted: dict[str, Any] | None, name: str, instance: str | None = None) -> bool:
    """A VariableType in a GetReport names this variable: no variable names all; an instance must be its own."""
    return wanted is None or (wanted.get("name") == name and wanted.get("instance") in (None, instance))


class Reports(V201Base):
    """GetBaseReport, GetReport and NotifyEvent."""

    __slots__ = ("_event_id", "_event_task", "_told_status")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The availability variables as last told (a change is an event); what the station is at connect is the
        # baseline: StatusNotification at boot tells it.
        self._told_status = {v.key: v.value for v in self.status_variables()}
        self._event_id = 0
        self._event_task: asyncio.Task[Any] | None = None

    # what the reports contain
    def status_variables(self) -> list[StatusVariable]:
        """AvailabilityState, Available and Problem of the station, each EVSE and each connector, as of now."""
        out: list[StatusVariable] = []
        by_evse: dict[int, list[str]] = {}
        faulted_any = False
        for cid, (evse_id, connector_id) in sorted(self.address.items()):
            state = self.station.status(cid).state
            status = mapping.CONNECTOR_STATUS[self.station.connectors[cid].reported_status]
            faulted = state is ConnectorState.FAULTED
            faulted_any |= faulted
            by_evse.setdefault(evse_id, []).append(status)
            component = {"name": "Connector", "evse": {"id": evse_id, "connectorId": connector_id}}
            out += self._availability(component, status, faulted)
        for evse_id, statuses in sorted(by_evse.items()):
            # An EVSE is as its connectors are; one in use makes it Occupied (OCPP 2.0.1 Part 1 §3.1.2).
            if len(set(statuses)) == 1:
                status = statuses[0]
            else:
                status = "Occupied" if "Occupied" in statuses else "Available"
            out += self._availability({"name": "EVSE", "evse": {"id": evse_id}}, status, status == "Faulted")
        station = self.station.status(0).state
        station_status = "Available" if station is ConnectorState.AVAILABLE else "Unavailable"
        out += self._availability({"name": "ChargingStation"}, station_status, faulted_any)
        return out

    @staticmethod
    def _availability(component: dict[str, Any], status: str, problem: bool) -> list[StatusVariable]:
        return [
            StatusVariable(component, "AvailabilityState", status, "OptionList"),
            StatusVariable(
                component, "Available", _flag(status not in ("Unavailable", "Faulted")), "boolean"
            ),
            StatusVariable(component, "Problem", _flag(problem), "boolean"),
        ]

    def _status_report_data(self, variable: StatusVariable) -> dict[str, Any]:
        characteristics: dict[str, Any] = {"dataType": variable.data_type, "supportsMonitoring": False}
        if variable.data_type == "OptionList":
            characteristics["valuesList"] = _AVAILABILITY_VALUES
        return {
            "component": variable.component,
            "variable": {"name": variable.name},
            "variableAttribute": [
                {
                    "type": "Actual",
                    "value": variable.value,
                    "mutability": "ReadOnly",
                    "persistent": False,
                    "constant": False,
                }
            ],
            "variableCharacteristics": characteristics,
        }

    def _settings_report(self, writable_only: bool = False) -> Iterable[Variable]:
        for variables in components().values():
            for variable in variables:
                if not (writable_only and self.mutability(variable) is Mutability.READ_ONLY):
                    yield variable

    def base_report(self, report_base: str) -> list[dict[str, Any]]:
        """ReportDataType of a report base (B07): FullInventory every variable, ConfigurationInventory the
        writable settings, SummaryInventory the availability and problems of the station, EVSEs and connectors."""
        if report_base == "SummaryInventory":
            return [self._status_report_data(v) for v in self.status_variables()]
        settings = self._settings_report(writable_only=report_base == "ConfigurationInventory")
        out = [self.report_data(v) for v in settings]
        if report_base == "FullInventory":
            out += [self._status_report_data(v) for v in self.status_variables()]
        return out

    def custom_report(
        self, criteria: list[str] | None, component_variables: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        """ReportDataType of what a GetReport asks for (B08): the variables of the components that meet every
        criterion (a boolean variable of the criterion's name that is true) and that the componentVariable list
        names (all of them without one)."""
        entries: list[
            tuple[dict[str, Any], str, str, dict[str, Any]]
        ] = []  # component, variable, value, data
        for variable in self._settings_report():
            component = {"name": variable.ref.component}
            value = (
                self.variable_value(variable)
                if self.mutability(variable) is not Mutability.WRITE_ONLY
                else ""
            )
            entries.append((component, variable.ref.variable, value, self.report_data(variable)))
        for status in self.status_variables():
            entries.append((status.component, status.name, status.value, self._status_report_data(status)))
        values: dict[tuple[str, str], dict[str, str]] = {}
        for component, name, value, _ in entries:
            values.setdefault(_component_key(component), {})[name] = value
        out = []
        for component, name, _value, data in entries:
            own = values[_component_key(component)]
            if criteria and not all(own.get(c) == "true" for c in criteria):
                continue
            instance = data["variable"].get("instance")
            if component_variables is not None and not any(
                _component_matches(cv["component"], component)
                and _variable_matches(cv.get("variable"), name, instance)
                for cv in component_variables
            ):
                continue
            out.append(data)
        return out

    def variable_value(self, variable: Variable) -> str:
        """A variable's Actual value as text (what the station is, for the read-only ones it reports)."""
        if variable.setting == "number_of_connectors":
            return str(len(self.station.connectors))
        if variable.setting == "max_charging_profiles_installed":
            return str(len(self.station.profiles))  # SmartChargingCtrlr.Entries: the profiles installed now
        if variable.setting == "charging_schedule_allowed_charging_rate_unit":
            return mapping.RATE_UNITS  # SmartChargingCtrlr.RateUnit: "A,W" (1.6 says "Current,Power")
        live = self.live_value(variable.setting)  # a block's own (LocalAuthListCtrlr.Entries, .Storage)
        if live is not None:
            return live
        return self.settings.text(variable.setting)[:MAX_VALUE_CHARS]

    def report_data(self, variable: Variable) -> dict[str, Any]:
        """A setting's variable as ReportDataType: its Actual attribute, mutability and characteristics."""
        mutability = self.mutability(variable)
        attribute: dict[str, Any] = {
            "type": "Actual",
            "mutability": mapping.MUTABILITY[mutability],
            "persistent": variable.persistent,
            "constant": variable.mutability is Mutability.READ_ONLY,  # SecurityProfile changes, by A05
        }
        if mutability is not Mutability.WRITE_ONLY:
            attribute["value"] = self.variable_value(variable)
        characteristics: dict[str, Any] = {
            "dataType": mapping.DATA_TYPE[variable.data_type],
            "supportsMonitoring": False,
        }
        if variable.data_type is DataType.INTEGER:
            if variable.min_value is not None:
                characteristics["minLimit"] = variable.min_value
            if variable.max_value is not None:
                characteristics["maxLimit"] = variable.max_value
        if variable.setting in _COUNTED or self.live_value(variable.setting) is not None:
            characteristics["maxLimit"] = self.settings.get_int(variable.setting)  # the most it may hold
        elif variable.data_type is DataType.MEMBER_LIST:
            characteristics["valuesList"] = ",".join(variable.members or mapping.MEASURAND.values())
        name: dict[str, str] = {"name": variable.ref.variable}
        if variable.ref in INSTANCES:
            name["instance"] = INSTANCES[variable.ref]
        return {
            "component": {"name": variable.ref.component},
            "variable": name,
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }

    # the CALLs
    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        """GetBaseReport (B07): Accepted, then the report follows in NotifyReport parts."""
        if report_base not in REPORT_BASES:
            return call_result.GetBaseReport(status="NotSupported")
        if not self.base_report(report_base):
            return call_result.GetBaseReport(status="EmptyResultSet")
        if not self.can_follow_up():
            return call_result.GetBaseReport(status="Rejected")  # reports still being sent: not one more
        return call_result.GetBaseReport(status="Accepted")

    @after(Action.get_base_report)
    def after_get_base_report(self, request_id: int, report_base: str, **_: Any) -> None:
        """Send the report after the answer, in a task kept by reference."""
        if report_base in REPORT_BASES and self.can_follow_up():
            report = self.base_report(report_base)
            if report:
                self.follow_up(self._send_report_parts(request_id, report), "notify-report")

    @on(Action.get_report)
    def on_get_report(
        self,
        request_id: int,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        """GetReport (B08): Accepted if anything matches (EmptyResultSet if nothing does, B08.FR.?), then the
        report follows in NotifyReport parts."""
        limit = self.settings.get_int("get_configuration_max_keys")
        if component_variable is not None and len(component_variable) > limit:
            # B08.FR.?: ItemsPerMessage (GetReport) bounds the componentVariable list.
            raise ocpp.exceptions.OccurrenceConstraintViolationError(
                details={"cause": f"at most {limit} componentVariable per request"}
            )
        if not self.custom_report(component_criteria, component_variable):
            return call_result.GetReport(status="EmptyResultSet")
        if not self.can_follow_up():
            return call_result.GetReport(status="Rejected")
        return call_result.GetReport(status="Accepted")

    @after(Action.get_report)
    def after_get_report(
        self,
        request_id: int,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> None:
        """Send the custom report after the answer."""
        if component_variable is not None and len(component_variable) > self.settings.get_int(
            "get_configuration_max_keys"
        ):
            return
        report = self.custom_report(component_criteria, component_variable)
        if report and self.can_follow_up():
            self.follow_up(self._send_report_parts(request_id, report), "notify-report")

    def report_parts(self, report: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The report cut into NotifyReport parts of at most REPORT_ITEMS_PER_MESSAGE entries (or ItemsPerMessage,
        if smaller) whose CALL fits in BytesPerMessage. An entry too big for a CALL of its own is left out (logged):
        the rest of the report still goes, numbered without a gap."""
        base = {"requestId": _WIDEST_INT, "generatedAt": _WIDEST_TIME, "seqNo": _WIDEST_INT, "tbc": False}
        items = min(REPORT_ITEMS_PER_MESSAGE, max(1, self.settings.get_int("get_configuration_max_keys")))
        split = split_entries(self.room("NotifyReport"), base, "reportData", report, max_items=items)
        if split.left_out:
            log.warning("NotifyReport: %d entries left out, each alone over BytesPerMessage", split.left_out)
        return split.parts

    async def _send_report_parts(self, request_id: int, report: list[dict[str, Any]]) -> None:
        """NotifyReport (B07.FR.?): the parts numbered by seqNo from 0, tbc on every part but the last."""
        generated_at = ocpp_time(self.now())
        parts = self.report_parts(report)
        for seq_no, part in enumerate(parts):
            payload = {
                "requestId": request_id,
                "generatedAt": generated_at,
                "seqNo": seq_no,
                "tbc": seq_no < len(parts) - 1,
                "reportData": part,
            }
            try:
                await self.request("NotifyReport", payload)
            except (CsmsRejected, CsmsUnavailable) as exc:
                log.warning("NotifyReport %s part %s not delivered: %s", request_id, seq_no, exc)
                return

    # NotifyEvent
    def status_changed(self, cid: int) -> None:
        """Report a status change; a changed availability variable also goes out as NotifyEvent."""
        super().status_changed(cid)
        if self._event_task is None or self._event_task.done():
            # One sender at a time: a flood of changes is coalesced into the next snapshot, never a task each.
            self._event_task = self._spawn(self._send_events(), "notify-event")

    async def _send_events(self) -> None:
        """NotifyEvent (trigger Delta, HardWiredNotification) for each availability variable that changed since
        it was last told, until nothing is left to tell."""
        while True:
            await asyncio.sleep(0)  # let the change that woke this settle (one state change moves several)
            if self.boot_status != "Accepted":
                return  # before the boot is accepted only BootNotification may go; StatusNotification follows
            changed = [v for v in self.status_variables() if self._told_status.get(v.key) != v.value]
            for variable in changed:
                self._told_status[variable.key] = variable.value
            # Problems and the loss or return of availability (Faulted, Unavailable); a connector going Occupied
            # and back with each session is StatusNotification's alone (an event each would double the traffic).
            told = {
                (v.component["name"], json.dumps(v.component.get("evse")))
                for v in changed
                if v.name == "Available"
            }
            changed = [
                v
                for v in changed
                if v.name != "AvailabilityState"
                or (v.component["name"], json.dumps(v.component.get("evse"))) in told
            ]
            if not changed:
                return
            now = ocpp_time(self.now())
            data = []
            for variable in changed:
                self._event_id = (self._event_id + 1) % 2**31
                data.append(
                    {
                        "eventId": self._event_id,
                        "timestamp": now,
                        "trigger": "Delta",
                        "actualValue": variable.value,
                        "component": variable.component,
                        "variable": {"name": variable.name},
                        "eventNotificationType": "HardWiredNotification",
                    }
                )
            try:
                await self._notify_events(now, data)
            except (CsmsRejected, CsmsUnavailable) as exc:
                log.warning("NotifyEvent not delivered: %s", exc)
                return

    async def _notify_events(self, generated_at: str, data: list[dict[str, Any]]) -> None:
        """NotifyEvent (N07): the events in parts that each fit in BytesPerMessage (a station with many EVSEs moves
        three variables of each on one fault), numbered by seqNo from 0, tbc on every part but the last."""
        base = {"generatedAt": generated_at, "tbc": False, "seqNo": _WIDEST_INT}
        split = split_entries(self.room("NotifyEvent"), base, "eventData", data)
        if split.left_out:
            log.warning("NotifyEvent: %d events left out, each alone over BytesPerMessage", split.left_out)
        for seq_no, part in enumerate(split.parts):
            payload: dict[str, Any] = {"generatedAt": generated_at, "seqNo": seq_no, "eventData": part}
            if seq_no < len(split.parts) - 1:
                payload["tbc"] = True
            await self.request("NotifyEvent", payload)


def _component_key(component: dict[str, Any]) -> tuple[str, str]:
    return component["name"], json.dumps(component.get("evse"), sort_keys=True)
