"""Compiled JSON-schema checks of OCPP payloads: a fast "valid" for the common case, never a weaker verdict.

Shared by the agent (``chargepoint.csms.rpc``: every CALL it sends, every CALL and answer it receives) and the
bundled central system (``backend_stub.ocpp.server``). The `ocpp` package validates with jsonschema's
Draft4Validator, which walks the schema at every message: about 75 us for a 2.0.1 TransactionEvent here, the
largest share of the central system's CPU per message (`benchmarks/csms.py`, py-spy), and ~145 us for an OCPP 1.6
MeterValues of three samples, the largest single share of a fleet charger's CPU per CALL
(`benchmarks/cpu_profile.py`). fastjsonschema compiles each schema once into straight Python code (about 8 us for
the same message). Only its "valid" is used: a payload it refuses goes on to the package's validator, which alone
decides, so every CallError keeps the package's code and text. The compiled check is made to judge exactly like
the package's validator: Draft 4 semantics whatever ``$schema`` a file names (the package ignores it, and under
draft 6 a float such as 1.0 would pass as an integer), no ``format`` assertion and no defaults written into the
payload (the package does neither), and schemas with ``multipleOf`` are left to the package (it reads OCPP 1.6
charging schedules with Decimal floats). `tests/unit/test_ocpp_schemas.py` checks the agreement on every schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
from ocpp import messages as ocpp_messages
from ocpp.messages import Call, CallResult

CALL = 2
CALLRESULT = 3

DRAFT4 = "http://json-schema.org/draft-04/schema#"
_SCHEMAS = Path(ocpp_messages.__file__).parent

SchemaCheck = Callable[[Any], object]

# (schema version, schema name) -> its compiled check, or None when the package's validator must judge. Keys are
# schema files that exist (a few hundred at most): an action no schema file has is never remembered.
_compiled: dict[tuple[str, str], SchemaCheck | None] = {}

# The package's public check (`validate_payload`) is a coroutine that hands the work to a thread pool unless this
# is off. Its callers here are synchronous (routing a frame, checking a REST body) and the work is CPU-bound
# anyway: a thread per check only adds a hop (DESIGN.md: synchronous validation saves ~25 % CPU).
ocpp_messages.ASYNC_VALIDATION = False


def schema_name(message_type_id: int, action: str, schema_version: str) -> str:
    """The schema file's name (without .json) the `ocpp` package validates this message with."""
    if message_type_id == CALLRESULT:
        return action + "Response"
    return action + "Request" if schema_version != "1.6" else action


def _uses(node: Any, keyword: str) -> bool:
    """Whether ``keyword`` appears as a key anywhere in a schema."""
    if isinstance(node, dict):
        return keyword in node or any(_uses(value, keyword) for value in node.values())
    if isinstance(node, list):
        return any(_uses(value, keyword) for value in node)
    return False


def compile_schema(schema: dict[str, Any]) -> SchemaCheck | None:
    """A check judging like the package's Draft4Validator, raising on an invalid payload; None to leave it to it."""
    if _uses(schema, "multipleOf"):
        return None
    draft4 = {**schema, "$schema": DRAFT4}
    check: SchemaCheck = fastjsonschema.compile(
        draft4, use_default=False, use_formats=False, detailed_exceptions=False
    )
    return check


def fast_check(message_type_id: int, action: str, schema_version: str) -> SchemaCheck | None:
    """The compiled check of a message's schema, None if it has no schema file or needs the package's validator."""
    if not action.isalnum():  # a schema file name: no path separators or dots from anyone
        return None
    name = schema_name(message_type_id, action, schema_version)
    key = (schema_version, name)
    try:
        return _compiled[key]
    except KeyError:
        pass
    path = _SCHEMAS / f"v{schema_version.replace('.', '')}" / "schemas" / f"{name}.json"
    if not path.is_file():
        return None
    check = compile_schema(json.loads(path.read_text(encoding="utf-8-sig")))
    _compiled[key] = check
    return check


def surely_valid(message_type_id: int, action: str, payload: Any, schema_version: str) -> bool:
    """True if the payload is valid against its schema; False means "ask the package's validator"."""
    check = fast_check(message_type_id, action, schema_version)
    if check is None:
        return False
    try:
        check(payload)
    except Exception:  # a JsonSchemaException, or anything odd: the package's validator decides
        return False
    return True


def validate(message: Call | CallResult, schema_version: str) -> None:
    """The package's public `validate_payload`, run to its end in this thread; raises its OCPPError (or
    SchemaMissingError) exactly as it does."""
    check = ocpp_messages.validate_payload(message, schema_version)
    try:
        check.send(None)
    except StopIteration:
        return
    check.close()  # it awaited a thread: someone turned ASYNC_VALIDATION back on
    raise RuntimeError("ocpp.messages.ASYNC_VALIDATION is on: the check would leave this thread")
