"""A charger's own message limits, and requests cut to fit them.

A charger says how much one CALL may carry. OCPP 2.0.1: DeviceDataCtrlr.ItemsPerMessage and BytesPerMessage, instance
GetVariables (B06.FR.05: the CSMS SHALL NOT send more GetVariableData than ItemsPerMessageGetVariables), and
LocalAuthListCtrlr.ItemsPerMessage and BytesPerMessage for one SendLocalList (D01). OCPP 1.6: SendLocalListMaxLength
(one SendLocalList.req) and LocalAuthListMaxLength (the whole list), §9.4 LocalAuthListManagement keys, and
GetConfigurationMaxKeys (one GetConfiguration.req, §9.1). A frame over
them is refused (a CALLERROR, a Failed status) or drops the link, so a larger request goes out in parts.

Each limit is learned once per connection and boot (the server's ``limits``: cleared at BootNotification): from a
report or an answer that carried it, else from one query before the first request that could exceed it. None means
the charger did not say: the request goes out whole, as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from backend_stub.errors import CommandFailed
from backend_stub.ocpp.framing import dumps

# Names of the limits in the server's per-connection table (both versions use the ones they have).
GET_VARIABLES_ITEMS: Final = "GetVariables.items"
GET_VARIABLES_BYTES: Final = "GetVariables.bytes"
LOCAL_LIST_ITEMS: Final = "SendLocalList.items"
LOCAL_LIST_BYTES: Final = "SendLocalList.bytes"
LOCAL_LIST_ENTRIES: Final = "LocalList.entries"  # the whole list (1.6 LocalAuthListMaxLength)
GET_CONFIGURATION_KEYS: Final = "GetConfiguration.keys"  # 1.6 GetConfigurationMaxKeys

MAX_LIMIT: Final = 2**31 - 1  # OCPP integers are 32-bit
UNIQUE_ID_CHARS: Final = 36  # the server's message ids are uuid4 text

T = TypeVar("T")


def parse_limit(value: object) -> int | None:
    """A limit a charger reported (a decimal integer text in [1, 2^31-1]), None for anything else: a peer's text."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_LIMIT else None


def frame_bytes(action: str, payload: dict[str, Any]) -> int:
    """The UTF-8 size of ``payload`` sent as a CALL of ``action`` (the whole OCPP-J frame, as the server sends it)."""
    return len(dumps([2, "0" * UNIQUE_ID_CHARS, action, payload]).encode())


def split(
    action: str,
    payload: dict[str, Any],
    key: str,
    items: Sequence[T],
    max_items: int | None,
    max_bytes: int | None,
) -> list[list[T]]:
    """``items`` in consecutive parts, each at most ``max_items`` long and small enough that ``payload`` with the
    part under ``key`` is a CALL of at most ``max_bytes``; None bounds nothing. At least one (maybe empty) part.

    CommandFailed TOO_LARGE names the first item that does not fit a message on its own.
    """
    if not items:
        return [[]]
    base = frame_bytes(action, {**payload, key: []})
    parts: list[list[T]] = []
    current: list[T] = []
    size = base
    for n, item in enumerate(items):
        item_bytes = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
        if max_bytes is not None and base + item_bytes > max_bytes:
            raise CommandFailed(
                CommandFailed.TOO_LARGE,
                f"item {n} of the {action} alone makes a {base + item_bytes}-byte message; the charger takes at "
                f"most {max_bytes} bytes",
            )
        full_by_count = max_items is not None and len(current) >= max_items
        full_by_size = max_bytes is not None and size + 1 + item_bytes > max_bytes
        if current and (full_by_count or full_by_size):
            parts.append(current)
            current, size = [], base
        size += item_bytes + (1 if current else 0)  # a comma before every item but the first
        current.append(item)
    parts.append(current)
    return parts


def versions_for(parts: int, version: int, action: str) -> int:
    """The version of the first of ``parts`` list updates that end at ``version``, rising by one per part.

    A list too long for one message goes as a Full update and then Differential updates (2.0.1 D01, 1.6 §5.15): each
    update must raise the version (a Differential update not newer than the list is VersionMismatch), and the last
    one carries the version asked for, so the charger ends where a single message would have left it. Versions are
    at least 1 (2.0.1 D01.FR.18); CommandFailed TOO_LARGE when ``version`` leaves no room for that many parts.
    """
    first = version - parts + 1
    if first < 1:
        raise CommandFailed(
            CommandFailed.TOO_LARGE,
            f"the list needs {parts} {action} messages at the charger's limits, versions {first}..{version}: give "
            f"a version of at least {parts}",
        )
    return first
