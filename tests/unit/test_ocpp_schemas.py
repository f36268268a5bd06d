"""The compiled schema checks (chargepoint.csms.schemas) judge exactly like the `ocpp` package's validator.

Differential: for every OCPP 1.6 and 2.0.1 schema the package ships, a minimal and a full valid payload are built
from the schema, then mutated at every position (each JSON type in place of the value, bounds crossed, a property
added or a required one removed); the compiled check and the package's Draft4Validator must agree on each one.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocpp.messages
import pytest
from jsonschema import Draft4Validator
from ocpp.exceptions import FormatViolationError, ProtocolError, TypeConstraintViolationError
from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.messages import Call, CallResult

from chargepoint.csms.schemas import CALL, CALLRESULT, compile_schema, fast_check, surely_valid
from chargepoint.csms.schemas import validate as schemas_validate
from loadtests.protocol import validate as load_validate

SCHEMAS = Path(ocpp.messages.__file__).parent
FILES = sorted((SCHEMAS / "v16" / "schemas").glob("*.json")) + sorted(
    (SCHEMAS / "v201" / "schemas").glob("*.json")
)


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


def example(node: dict[str, Any], root: dict[str, Any], full: bool) -> Any:
    """A payload valid against ``node``: only the required properties, or (``full``) all of them."""
    node = resolve(node, root)
    if "enum" in node:
        return node["enum"][-1]
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        keys = list(properties) if full else node.get("required", [])
        return {key: example(properties[key], root, full) for key in keys}
    if kind == "array":
        count = max(node.get("minItems", 0), 1 if full else 0)
        return [example(node["items"], root, full) for _ in range(count)]
    if kind == "string":
        if node.get("format") == "date-time":
            return "2026-12-07T01:00:00Z"
        return "x" * max(1, node.get("minLength", 0))
    if kind == "integer":
        return int(node.get("minimum", 0))
    if kind == "number":
        return node.get("minimum", 0.5)
    if kind == "boolean":
        return True
    return "anything"


REPLACEMENTS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.0,
    0.5,
    2**40,
    math.nan,
    "",
    "x",
    [],
    {},
    [1],
    {"a": 1},
]


def mutations(value: Any, node: dict[str, Any], root: dict[str, Any]) -> Iterator[Any]:
    """Values to put where ``value`` (valid against ``node``) was: other types, crossed bounds, changed keys."""
    node = resolve(node, root)
    yield from REPLACEMENTS
    if "maxLength" in node:
        yield "y" * node["maxLength"]
        yield "y" * (node["maxLength"] + 1)
    for bound, step in (("minimum", -1), ("maximum", 1)):
        if bound in node:
            yield node[bound]
            yield node[bound] + step
            yield node[bound] + step / 2
    if "enum" in node:
        yield node["enum"][0] + "x" if isinstance(node["enum"][0], str) else None
    if isinstance(value, dict):
        yield {**value, "unexpectedProperty": 1}
        for key in value:
            yield {k: v for k, v in value.items() if k != key}
    if isinstance(value, list) and value:
        yield value * (node.get("maxItems", 2) + 1)


def variants(value: Any, node: dict[str, Any], root: dict[str, Any]) -> Iterator[Any]:
    """``value`` mutated at this position and, recursively, at every position inside it."""
    yield from mutations(value, node, root)
    node = resolve(node, root)
    if isinstance(value, dict):
        for key, child in value.items():
            child_node = node.get("properties", {}).get(key, {})
            for changed in variants(child, child_node, root):
                yield {**value, key: changed}
    elif isinstance(value, list) and value and "items" in node:
        for changed in variants(value[0], node["items"], root):
            yield [changed, *copy.deepcopy(value[1:])]


def test_every_shipped_schema_is_found() -> None:
    assert len(FILES) > 200


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_compiled_check_agrees_with_the_package_validator(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8-sig"))
    check = compile_schema(schema)
    if check is None:
        assert "multipleOf" in json.dumps(schema)  # left to the package on purpose
        return
    reference = Draft4Validator(schema)
    payloads = [example(schema, schema, full) for full in (False, True)]
    for payload in payloads:
        assert reference.is_valid(payload), payload  # the generator itself is right
    checked = 0
    for payload in payloads:
        for candidate in variants(payload, schema, schema):
            try:
                check(candidate)
                fast = True
            except Exception:
                fast = False
            assert fast == reference.is_valid(candidate), (path.stem, candidate)
            checked += 1
    assert checked > len(REPLACEMENTS)


def test_the_compiled_check_writes_no_defaults_into_the_payload() -> None:
    payload = {
        "eventType": "Updated",
        "timestamp": "2026-12-07T01:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "t"},
        "meterValue": [{"timestamp": "2026-12-07T01:00:00Z", "sampledValue": [{"value": 1}]}],
    }
    before = copy.deepcopy(payload)
    assert surely_valid(CALL, "TransactionEvent", payload, "2.0.1")
    assert payload == before  # the schema's defaults (measurand, context, location) are not filled in


def test_draft_4_integers_whatever_the_schema_file_says() -> None:
    # 2.0.1 schema files name draft 6, under which 1.0 is an integer; the package validates as Draft 4.
    assert not surely_valid(CALL, "Heartbeat", {"unexpected": 1}, "2.0.1")
    assert surely_valid(CALLRESULT, "Heartbeat", {"currentTime": "2026-12-07T01:00:00Z"}, "2.0.1")
    assert not surely_valid(
        CALL,
        "StatusNotification",
        {"timestamp": "t", "connectorStatus": "Available", "evseId": 1.0, "connectorId": 1},
        "2.0.1",
    )


def test_no_schema_and_odd_action_names_are_left_to_the_package() -> None:
    assert fast_check(CALL, "NoSuchAction", "2.0.1") is None
    assert fast_check(CALL, "../v16/schemas/Heartbeat", "2.0.1") is None
    assert not surely_valid(CALL, "NoSuchAction", {}, "2.0.1")
    assert fast_check(CALL, "SetChargingProfile", "1.6") is None  # multipleOf: Decimal floats in the package


# ---- the package's public check, run in the caller's thread --------------------------------------------------


@pytest.mark.parametrize("validate", [schemas_validate, load_validate], ids=["backend_stub", "loadtests"])
@pytest.mark.parametrize(
    ("message", "version", "error"),
    [
        (Call("1", "Heartbeat", {}), "1.6", None),
        (
            Call("1", "BootNotification", {"chargePointVendor": 5, "chargePointModel": "M"}),
            "1.6",
            TypeConstraintViolationError,
        ),
        (Call("1", "Heartbeat", {"extra": 1}), "2.0.1", FormatViolationError),
        (Call("1", "BootNotification", {"reason": "PowerUp"}), "2.0.1", ProtocolError),
        (CallResult("1", {"status": "Maybe"}, "Reset"), "2.0.1", FormatViolationError),
        (Call("1", "NoSuchAction", {}), "2.0.1", SchemaMissingError),
    ],
    ids=["valid", "type", "extra-property", "required", "enum", "no-schema"],
)
async def test_validate_raises_the_public_checks_errors_in_this_thread_also_inside_an_event_loop(
    validate: Any, message: Call | CallResult, version: str, error: type[Exception] | None
) -> None:
    """The public `validate_payload` is a coroutine; the synchronous callers (frame routing, REST checks, Locust
    greenlets) run it to its end in place, inside a running loop too, with the package's own error classes."""
    if error is None:
        validate(message, version)
    else:
        with pytest.raises(error):
            validate(message, version)
    assert not ocpp.messages.ASYNC_VALIDATION
