"""OCPP-J framing (OCPP-J 1.6 §4, OCPP-J 2.0.1 §4): message type ids, frames, parsing and serialization."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from backend_stub.errors import CentralError

CALL = 2
CALLRESULT = 3
CALLERROR = 4

MAX_UNIQUE_ID_LENGTH = 36  # OCPP-J 1.6 section 4.1.4

Direction: TypeAlias = Literal["in", "out"]


class CallErrorReply(CentralError):
    """A CALLERROR: raised by handlers to answer with one, and by `CentralSystem.call` on receiving one."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        """Keep the error code, description and details of the CALLERROR."""
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details: dict[str, Any] = details if details is not None else {}


@dataclass(frozen=True)
class Frame:
    """One OCPP-J frame seen on a charger connection, in either direction."""

    ts: datetime
    cp_id: str
    direction: Direction
    message_type: int | None
    unique_id: str | None
    action: str | None
    payload: Any
    raw: str

    def to_json(self) -> dict[str, Any]:
        """Return the frame as a JSON-ready dict (one line of the JSONL log)."""
        return {
            "event": "frame",
            "ts": self.ts.isoformat(),
            "cp_id": self.cp_id,
            "direction": self.direction,
            "message_type": self.message_type,
            "unique_id": self.unique_id,
            "action": self.action,
            "payload": self.payload,
            "raw": self.raw,
        }


REDACTED = "***"


def redacted(frame: Frame) -> Frame:
    """The frame as logs may keep it: a charger's new password (1.6 ChangeConfiguration AuthorizationKey, 2.0.1
    SetVariables SecurityCtrlr.BasicAuthPassword) replaced by ``REDACTED``; every other frame as it is."""
    payload = frame.payload
    if frame.message_type != CALL or not isinstance(payload, dict):
        return frame
    if frame.action == "ChangeConfiguration" and payload.get("key") == "AuthorizationKey":
        payload = {**payload, "value": REDACTED}
    elif frame.action == "SetVariables" and isinstance(payload.get("setVariableData"), list):
        data = payload["setVariableData"]
        hidden = [
            {**d, "attributeValue": REDACTED}
            if isinstance(d, dict)
            and isinstance(d.get("variable"), dict)
            and d["variable"].get("name") == "BasicAuthPassword"
            else d
            for d in data
        ]
        if hidden == data:
            return frame
        payload = {**payload, "setVariableData": hidden}
    else:
        return frame
    raw = json.dumps([2, frame.unique_id, frame.action, payload], separators=(",", ":"))
    return dataclasses.replace(frame, payload=payload, raw=raw)


def utc_now_iso() -> str:
    """Return the current UTC time as ISO 8601 with millisecond precision and a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------------------
# Frame parsing
# --------------------------------------------------------------------------------------------------------------

# At most 9 digits: int() of a longer digit run may raise ValueError (Python's int-string limit).
SNIFF_ID = re.compile(r'^\s*\[\s*(\d{1,9})\s*,\s*"([^"\\]{1,100})"')


@dataclass
class Parsed:
    """What could be read from one incoming frame, and what is wrong with it."""

    message_type: int | None = None
    unique_id: str | None = None
    action: str | None = None
    payload: Any = None
    problem: str | None = None  # None: the frame is well-formed

    @property
    def reply_to(self) -> str | None:
        """The uniqueId to answer a malformed frame with a CALLERROR, if it may be a CALL and has one."""
        if self.message_type in (CALLRESULT, CALLERROR):
            return None
        return self.unique_id


# No OCPP 1.6 or 2.0.1 message nests deeper than about ten levels (frame array included). Anything deeper is
# refused before it reaches schema validation, the frame log or json.dumps, which all recurse per level.
MAX_JSON_DEPTH = 32


def too_deep(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests more than ``limit`` arrays/objects deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_frame(text: str) -> Parsed:
    """Parse an OCPP-J frame, reading as much as possible even from a malformed one."""
    problem = "frame is not valid JSON"
    try:
        msg = json.loads(text)
        # Fewer brackets than the limit cannot nest deeper than it: most frames skip the walk.
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and too_deep(msg, MAX_JSON_DEPTH):
            problem = f"frame nests deeper than {MAX_JSON_DEPTH} levels"
            raise RecursionError(problem)
    except (ValueError, RecursionError) as exc:
        # json.loads recurses once per nesting level: a deep enough frame raises RecursionError. That is a
        # malformed frame like any other (OCPP-J 1.6 §4.2.3 FormationViolation), never a dropped connection.
        if isinstance(exc, RecursionError):
            problem = f"frame nests deeper than {MAX_JSON_DEPTH} levels"
        sniffed = SNIFF_ID.match(text)
        parsed = Parsed(problem=problem)
        if sniffed:
            parsed.message_type, parsed.unique_id = int(sniffed[1]), sniffed[2]
        return parsed
    if not isinstance(msg, list):
        return Parsed(payload=msg, problem=f"frame is a JSON {type(msg).__name__}, not an array")
    parsed = Parsed()
    if msg and type(msg[0]) is int:
        parsed.message_type = msg[0]
    if len(msg) > 1 and isinstance(msg[1], str):
        parsed.unique_id = msg[1]
    expected = {CALL: 4, CALLRESULT: 3, CALLERROR: 5}
    if parsed.message_type is None:
        parsed.problem = "frame does not start with an integer MessageTypeId"
    elif parsed.message_type not in expected:
        parsed.problem = f"unknown MessageTypeId {parsed.message_type}"
    elif len(msg) != expected[parsed.message_type]:
        parsed.problem = (
            f"MessageTypeId {parsed.message_type} frame has {len(msg)} elements, "
            f"expected {expected[parsed.message_type]}"
        )
    elif parsed.unique_id is None:
        parsed.problem = "UniqueId is not a string"
    elif len(parsed.unique_id) > MAX_UNIQUE_ID_LENGTH:
        parsed.problem = f"UniqueId is longer than {MAX_UNIQUE_ID_LENGTH} characters"
    if parsed.message_type == CALL and len(msg) == 4:
        parsed.action = msg[2] if isinstance(msg[2], str) else None
        parsed.payload = msg[3]
        if parsed.problem is None and parsed.action is None:
            parsed.problem = "Action is not a string"
    elif parsed.message_type == CALLRESULT and len(msg) == 3:
        parsed.payload = msg[2]
    elif parsed.message_type == CALLERROR and len(msg) == 5:
        parsed.payload = {"errorCode": msg[2], "errorDescription": msg[3], "errorDetails": msg[4]}
        if parsed.problem is None and not (
            isinstance(msg[2], str) and isinstance(msg[3], str) and isinstance(msg[4], dict)
        ):
            parsed.problem = "CALLERROR fields have wrong types"
    if (
        parsed.problem is None
        and parsed.message_type in (CALL, CALLRESULT)
        and not isinstance(parsed.payload, dict)
    ):
        parsed.problem = "payload is not a JSON object"
    return parsed


def dumps(msg: list[Any]) -> str:
    """Serialize an OCPP-J frame compactly."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)
