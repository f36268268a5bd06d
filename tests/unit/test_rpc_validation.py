"""The session's schema check (compiled checks first, the ``ocpp`` package's public ``validate_payload`` for the
rest) gives the package's verdicts: the same OCPPError class and cause for an invalid payload, nothing for a valid
one, and the package's Decimal reading of OCPP 1.6 charging schedules."""

from __future__ import annotations

import copy
import decimal
from typing import Any

import pytest
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, validate_payload

from chargepoint.csms.rpc import _validated

METER_VALUES: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 7,
    "meterValue": [
        {
            "timestamp": "2026-12-07T07:00:00Z",
            "sampledValue": [{"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}],
        }
    ],
}
TRANSACTION_EVENT: dict[str, Any] = {
    "eventType": "Updated",
    "timestamp": "2026-12-07T07:00:00Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 3,
    "transactionInfo": {"transactionId": "tx-1"},
    "meterValue": [{"timestamp": "2026-12-07T07:00:00Z", "sampledValue": [{"value": 1234.5}]}],
}


def _with(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return changed


CASES: list[tuple[str, type[Call] | type[CallResult], str, dict[str, Any]]] = [
    ("1.6", Call, "Heartbeat", {}),
    ("1.6", Call, "Heartbeat", {"extra": 1}),
    ("1.6", CallResult, "Heartbeat", {"currentTime": "2026-12-07T07:00:00Z"}),
    ("1.6", CallResult, "Heartbeat", {}),
    ("1.6", CallResult, "Heartbeat", {"currentTime": 5}),
    ("1.6", Call, "MeterValues", METER_VALUES),
    ("1.6", Call, "MeterValues", _with(METER_VALUES, ("connectorId",), "one")),
    ("1.6", Call, "MeterValues", _with(METER_VALUES, ("meterValue", 0, "sampledValue", 0, "unit"), "Parsec")),
    ("1.6", Call, "MeterValues", _with(METER_VALUES, ("meterValue", 0, "timestamp"), KeyError)),
    ("1.6", Call, "MeterValues", _with(METER_VALUES, ("connectorId",), True)),
    ("1.6", Call, "Authorize", {"idTag": "X" * 21}),
    ("1.6", CallResult, "StartTransaction", {"transactionId": 1.5, "idTagInfo": {"status": "Accepted"}}),
    ("2.0.1", Call, "TransactionEvent", TRANSACTION_EVENT),
    ("2.0.1", Call, "TransactionEvent", _with(TRANSACTION_EVENT, ("seqNo",), 1.0)),
    (
        "2.0.1",
        Call,
        "TransactionEvent",
        _with(TRANSACTION_EVENT, ("transactionInfo", "transactionId"), "x" * 37),
    ),
    ("2.0.1", Call, "TransactionEvent", _with(TRANSACTION_EVENT, ("eventType",), "Paused")),
    ("2.0.1", CallResult, "Heartbeat", {"currentTime": "2026-12-07T07:00:00Z"}),
    ("2.0.1", CallResult, "BootNotification", {"currentTime": "2026-12-07T07:00:00Z", "interval": 60}),
]


def _message(kind: type[Call] | type[CallResult], action: str, payload: dict[str, Any]) -> Call | CallResult:
    if kind is Call:
        return Call("1", action, copy.deepcopy(payload))
    return CallResult("1", copy.deepcopy(payload), action)


async def _verdict(check: Any, message: Call | CallResult, version: str) -> tuple[str, str] | None:
    try:
        checked = check(message, version)
        if checked is not None:
            await checked  # the package's public validate_payload is a coroutine
    except OCPPError as exc:
        return type(exc).__name__, str(exc.details.get("cause"))
    return None


@pytest.mark.parametrize(("version", "kind", "action", "payload"), CASES)
async def test_the_session_judges_like_the_packages_validator(
    version: str, kind: type[Call] | type[CallResult], action: str, payload: dict[str, Any]
) -> None:
    ours = await _verdict(_validated, _message(kind, action, payload), version)
    package = await _verdict(validate_payload, _message(kind, action, payload), version)
    assert ours == package


async def test_valid_and_invalid_cases_are_both_in_the_table() -> None:
    verdicts = [await _verdict(_validated, _message(k, a, p), v) for v, k, a, p in CASES]
    assert any(v is None for v in verdicts) and any(v is not None for v in verdicts)


async def test_a_16_charging_schedule_is_read_with_decimals_as_the_package_does() -> None:
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
        },
    }
    call = Call("1", "RemoteStartTransaction", {"idTag": "T", "connectorId": 1, "chargingProfile": profile})
    _validated(call, "1.6")
    limit = call.payload["chargingProfile"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    assert isinstance(limit, decimal.Decimal)
    bad = copy.deepcopy(call.payload)
    bad["chargingProfile"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 21.45
    with pytest.raises(OCPPError):
        _validated(Call("2", "RemoteStartTransaction", bad), "1.6")
