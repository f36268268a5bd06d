"""B. Provisioning: the device model over GetVariables/SetVariables, and Reset (OCPP 2.0.1 Part 2 §B05, B06,
B11-B12). The reports (GetBaseReport, GetReport) are in ``reports.py``; BootNotification is in ``base.py`` and the
shared session."""

from __future__ import annotations

import logging
from typing import Any

import ocpp.exceptions
from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.device_model import VARIABLES, Mutability, Variable, VariableRef
from chargepoint.core.settings import SPECS
from chargepoint.csms.fitting import json_chars
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.reports import (
    ENVELOPE_CHARS,
    INSTANCES,
    MAX_VALUE_CHARS,
    PER_MESSAGE_INSTANCES,
    Reports,
)
from chargepoint.errors import ChargePointError

log = logging.getLogger(__name__)

_COMPONENTS = frozenset(ref.component for ref in VARIABLES)


def _variable_of(component: Any, variable: Any) -> tuple[Variable | None, str | None]:
    """The device-model variable a request names, or why there is none (UnknownComponent/UnknownVariable).

    The station has one instance of each component and variable: a named instance, EVSE or connector is not one of
    them."""
    name = component.get("name") if isinstance(component, dict) else None
    if name not in _COMPONENTS or component.get("instance") is not None or component.get("evse") is not None:
        return None, "UnknownComponent"
    var_name = variable.get("name") if isinstance(variable, dict) else None
    found = VARIABLES.get(VariableRef(str(name), str(var_name)))
    if found is None:
        return None, "UnknownVariable"
    instance = variable.get("instance")
    if instance not in (None, INSTANCES.get(found.ref)) and instance not in PER_MESSAGE_INSTANCES.get(
        found.ref, ()
    ):
        return None, "UnknownVariable"
    return found, None


class Provisioning(Reports):
    """Device model and reset (the reports in ``reports.py``)."""

    __slots__ = ()

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        """GetVariables (B06): each requested Actual value, or why there is none."""
        results = []
        for data in self._bounded(get_variable_data, "getVariableData"):
            result, variable = self._addressed(data)
            if variable is None:
                pass
            elif self.mutability(variable) is Mutability.WRITE_ONLY:
                result["attribute_status"] = "Rejected"  # B06.FR.?: a write-only value is never read back
            else:
                result["attribute_status"] = "Accepted"
                result["attribute_value"] = self.variable_value(variable)[:MAX_VALUE_CHARS]
            results.append(result)
        self._fit(results)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        """SetVariables (B05): each value validated against the variable's type and bounds, then stored."""
        results = []
        for data in self._bounded(set_variable_data, "setVariableData"):
            result, variable = self._addressed(data)
            if variable is None:
                pass
            elif self.mutability(variable) is Mutability.READ_ONLY:
                # B05.FR.?: a read-only variable is not changed.
                result["attribute_status"] = "Rejected"
                result["attribute_status_info"] = {"reason_code": "ReadOnly"}
            else:
                result.update(self._set(variable, data["attribute_value"]))
            results.append(result)
        return call_result.SetVariables(set_variable_result=results)

    def _bounded(self, items: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
        """The request's items; more than ItemsPerMessage (B05/B06.FR.?) is OccurrenceConstraintViolation."""
        limit = self.settings.get_int("get_configuration_max_keys")
        if len(items) > limit:
            raise ocpp.exceptions.OccurrenceConstraintViolationError(
                details={"cause": f"at most {limit} {what} per request"}
            )
        return items

    def _fit(self, results: list[dict[str, Any]]) -> None:
        """Make a GetVariables answer fit one frame of BytesPerMessage (the CSMS's frame limit, 64 KiB for many
        servers: a frame over it drops the link): the last values that do not fit are Rejected with reason
        TooLargeElement, so every item still has its result (B06.FR.01) and the CSMS asks again for fewer."""
        room = self.settings.get_int("bytes_per_message") - ENVELOPE_CHARS
        # Each with its comma; the snake_case keys here are never shorter than the camelCase ones sent.
        sizes = [json_chars(r) + 1 for r in results]
        for i in range(len(results) - 1, -1, -1):
            if sum(sizes) <= room:
                return
            if "attribute_value" in results[i]:
                del results[i]["attribute_value"]
                results[i]["attribute_status"] = "Rejected"
                results[i]["attribute_status_info"] = {"reason_code": "TooLargeElement"}
                sizes[i] = json_chars(results[i]) + 1

    @staticmethod
    def _addressed(data: dict[str, Any]) -> tuple[dict[str, Any], Variable | None]:
        """The result of one Get/SetVariableData as far as its address goes, and its variable: None when the
        result already says why not (unknown component or variable, an attribute other than Actual, B05/B06)."""
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
            result["attribute_status"] = "NotSupportedAttributeType"  # only Actual is kept
            variable = None
        return result, variable

    def _set(self, variable: Variable, text: str) -> dict[str, Any]:
        own = self.write_variable(variable, text)
        if own is not None:
            return own
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
