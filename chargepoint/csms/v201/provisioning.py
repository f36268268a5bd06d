"""B. Provisioning: the device model over GetVariables/SetVariables/GetBaseReport, and Reset (OCPP 2.0.1 Part 2
§B05-B08, B11-B12). BootNotification itself is in ``base.py`` and the shared session."""

from __future__ import annotations

import logging
from typing import Any

import ocpp.exceptions
from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.device_model import VARIABLES, Mutability, Variable, VariableRef, components
from chargepoint.core.settings import SPECS
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base
from chargepoint.errors import ChargePointError, CsmsRejected, CsmsUnavailable

log = logging.getLogger(__name__)

# NotifyReport parts: reportData entries per message (B07.FR.?: a report may be split; seqNo counts the parts).
REPORT_ITEMS_PER_MESSAGE = 16
# The report bases the station can answer (B07, B08); SummaryInventory is NotSupported.
REPORT_BASES = frozenset({"ConfigurationInventory", "FullInventory"})
# ReportingValueSize (DeviceDataCtrlr): attributeValue / VariableAttribute.value are at most 2500 characters.
MAX_VALUE_CHARS = 2500
_COMPONENTS = frozenset(ref.component for ref in VARIABLES)
# Variables the 2.0.1 device model names with an instance (Part 2 Appendix 3), also found without it.
INSTANCES = {VariableRef("SmartChargingCtrlr", "Entries"): "ChargingProfiles"}
# Variables whose Actual value is a count the station keeps, and whose setting is the count's maxLimit.
_COUNTED = frozenset({"max_charging_profiles_installed"})


def _variable_of(component: Any, variable: Any) -> tuple[Variable | None, str | None]:
    """The device-model variable a request names, or why there is none (UnknownComponent/UnknownVariable).

    The station has one instance of each component and variable: a named instance, EVSE or connector is not one of
    them."""
    name = component.get("name") if isinstance(component, dict) else None
    if name not in _COMPONENTS or component.get("instance") is not None or component.get("evse") is not None:
        return None, "UnknownComponent"
    var_name = variable.get("name") if isinstance(variable, dict) else None
    found = VARIABLES.get(VariableRef(str(name), str(var_name)))
    if found is None or variable.get("instance") not in (None, INSTANCES.get(found.ref)):
        return None, "UnknownVariable"
    return found, None


class Provisioning(V201Base):
    """Device model and reset."""

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

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        """GetVariables (B06): each requested Actual value, or why there is none."""
        limit = self.settings.get_int("get_configuration_max_keys")
        if len(get_variable_data) > limit:
            # B06.FR.?: ItemsPerMessageGetVariables bounds a request.
            raise ocpp.exceptions.OccurrenceConstraintViolationError(
                details={"cause": f"at most {limit} getVariableData per request"}
            )
        results = []
        for data in get_variable_data:
            attribute = data.get("attribute_type", "Actual")
            result: dict[str, Any] = {
                "attribute_type": attribute,
                "component": data["component"],
                "variable": data["variable"],
            }
            variable, unknown = _variable_of(data["component"], data["variable"])
            if variable is None:
                result["attribute_status"] = unknown
            elif attribute != "Actual":
                result["attribute_status"] = "NotSupportedAttributeType"  # B06.FR.?: only Actual is kept
            elif variable.mutability is Mutability.WRITE_ONLY:
                result["attribute_status"] = "Rejected"  # B06.FR.?: a write-only value is never read back
            else:
                result["attribute_status"] = "Accepted"
                result["attribute_value"] = self.variable_value(variable)
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        """SetVariables (B05): each value validated against the variable's type and bounds, then stored."""
        limit = self.settings.get_int("get_configuration_max_keys")
        if len(set_variable_data) > limit:
            raise ocpp.exceptions.OccurrenceConstraintViolationError(
                details={"cause": f"at most {limit} setVariableData per request"}
            )
        results = []
        for data in set_variable_data:
            attribute = data.get("attribute_type", "Actual")
            result: dict[str, Any] = {
                "attribute_type": attribute,
                "component": data["component"],
                "variable": data["variable"],
            }
            variable, unknown = _variable_of(data["component"], data["variable"])
            if variable is None:
                result["attribute_status"] = unknown
            elif attribute != "Actual":
                result["attribute_status"] = "NotSupportedAttributeType"
            elif variable.mutability is Mutability.READ_ONLY:
                # B05.FR.?: a read-only variable is not changed.
                result["attribute_status"] = "Rejected"
                result["attribute_status_info"] = {"reason_code": "ReadOnly"}
            else:
                result.update(self._set(variable, data["attribute_value"]))
            results.append(result)
        return call_result.SetVariables(set_variable_result=results)

    def _set(self, variable: Variable, text: str) -> dict[str, Any]:
        try:
            reboot = self.settings.set_text(variable.setting, text)
        except (PermissionError, ValueError) as exc:
            log.info("SetVariables %s.%s=%.40r rejected: %s", *_names(variable), text, exc)
            # B05.FR.?: a value the variable cannot take (type, range, member list) is Rejected.
            return {"attribute_status": "Rejected", "attribute_status_info": {"reason_code": "InvalidValue"}}
        except (ChargePointError, OSError):
            log.exception("SetVariables %s.%s could not be stored", *_names(variable))
            return {"attribute_status": "Rejected", "attribute_status_info": {"reason_code": "InternalError"}}
        return {"attribute_status": "RebootRequired" if reboot else "Accepted"}

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        """GetBaseReport (B07, B08): Accepted, then the report follows in NotifyReport parts."""
        if report_base not in REPORT_BASES:
            return call_result.GetBaseReport(status="NotSupported")
        if not self._report(report_base):
            return call_result.GetBaseReport(status="EmptyResultSet")
        if not self.can_follow_up():
            return call_result.GetBaseReport(status="Rejected")  # reports still being sent: not one more
        return call_result.GetBaseReport(status="Accepted")

    @after(Action.get_base_report)
    def after_get_base_report(self, request_id: int, report_base: str, **_: Any) -> None:
        """Send the report after the answer, in a task kept by reference."""
        if report_base in REPORT_BASES and self.can_follow_up():
            self.follow_up(self._send_report_parts(request_id, self._report(report_base)), "notify-report")

    def _report(self, report_base: str) -> list[dict[str, Any]]:
        """ReportDataType of every variable in the report base (ConfigurationInventory: the writable ones)."""
        out = []
        for variables in components().values():
            for variable in variables:
                if report_base == "ConfigurationInventory" and variable.mutability is Mutability.READ_ONLY:
                    continue
                out.append(self._report_data(variable))
        return out

    def _report_data(self, variable: Variable) -> dict[str, Any]:
        attribute: dict[str, Any] = {
            "type": "Actual",
            "mutability": mapping.MUTABILITY[variable.mutability],
            "persistent": variable.persistent,
            "constant": variable.mutability is Mutability.READ_ONLY,
        }
        if variable.mutability is not Mutability.WRITE_ONLY:
            attribute["value"] = self.variable_value(variable)
        characteristics: dict[str, Any] = {
            "dataType": mapping.DATA_TYPE[variable.data_type],
            "supportsMonitoring": False,
        }
        if variable.data_type.value == "integer":
            if variable.min_value is not None:
                characteristics["minLimit"] = variable.min_value
            if variable.max_value is not None:
                characteristics["maxLimit"] = variable.max_value
        if variable.setting in _COUNTED or self.live_value(variable.setting) is not None:
            characteristics["maxLimit"] = self.settings.get_int(variable.setting)  # the most it may hold
        elif variable.data_type.value == "member_list":
            characteristics["valuesList"] = ",".join(mapping.MEASURAND.values())
        name: dict[str, str] = {"name": variable.ref.variable}
        if variable.ref in INSTANCES:
            name["instance"] = INSTANCES[variable.ref]
        return {
            "component": {"name": variable.ref.component},
            "variable": name,
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }

    async def _send_report_parts(self, request_id: int, report: list[dict[str, Any]]) -> None:
        """NotifyReport (B07.FR.?): the parts numbered by seqNo from 0, tbc on every part but the last."""
        generated_at = self.now()
        parts = [
            report[i : i + REPORT_ITEMS_PER_MESSAGE] for i in range(0, len(report), REPORT_ITEMS_PER_MESSAGE)
        ]
        for seq_no, part in enumerate(parts):
            payload = {
                "requestId": request_id,
                "generatedAt": generated_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "seqNo": seq_no,
                "tbc": seq_no < len(parts) - 1,
                "reportData": part,
            }
            try:
                await self.request("NotifyReport", payload)
            except (CsmsRejected, CsmsUnavailable) as exc:
                log.warning("NotifyReport %s part %s not delivered: %s", request_id, seq_no, exc)
                return

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        """Reset (B11, B12) of the station or of one EVSE: OnIdle waits for the transaction(s) to end
        (Scheduled), Immediate ends them; an unknown EVSE is Rejected."""
        cid = None if evse_id is None else self.cid_of(evse_id, None)
        if evse_id is not None and cid is None:
            return call_result.Reset(status="Rejected")
        result = self.station.reset_answer(mapping.RESET_IN[type], cid)
        return call_result.Reset(status=mapping.RESET_RESULT[result])

    @after(Action.reset)
    def after_reset(self, type: str, evse_id: int | None = None, **_: Any) -> None:
        """Carry out the reset after the answer went out; a scheduled one waits in the station (stored), so it
        outlives this connection."""
        cid = None if evse_id is None else self.cid_of(evse_id, None)
        if evse_id is not None and cid is None:
            return
        self.station.reset(mapping.RESET_IN[type], cid)


def _names(variable: Variable) -> tuple[str, str]:
    return variable.ref.component, variable.ref.variable


assert set(SPECS) == {v.setting for v in VARIABLES.values()}  # every setting is reachable by SetVariables
