"""Making the CALLs the station sends fit in BytesPerMessage (OCPP 2.0.1 DeviceDataCtrlr.BytesPerMessage; the same
setting bounds a 1.6 station's frames).

A frame over the central system's limit is refused by dropping the link (many servers stop at 64 KiB), and a queued
message would then be sent again after every reconnect: a poison message. So a list that can grow (meter values,
report entries, events, profiles) is cut into several CALLs where the protocol allows several (MeterValues,
NotifyReport with seqNo/tbc, NotifyEvent with seqNo/tbc, ReportChargingProfiles with tbc), and trimmed, oldest
first, where one message must carry it (StopTransaction, TransactionEvent, whose seqNo counts one per queued
message). Pure functions of sizes: the session (``csms/rpc.py``) knows the limit and sends.

Characters are bytes: the ``ocpp`` package writes frames with ``json.dumps``'s default ``ensure_ascii``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chargepoint.errors import MessageTooLarge

log = logging.getLogger(__name__)

# Room a CALL frame takes beyond its action name and payload: [2,"<uniqueId, at most 36 characters>","",].
CALL_ENVELOPE_CHARS = 64


def json_chars(value: Any) -> int:
    """The length of ``value`` as compact JSON, as the ``ocpp`` package writes a frame (ASCII: one byte each)."""
    return len(json.dumps(value, separators=(",", ":")))


def payload_room(limit: int, action: str) -> int:
    """The characters of payload JSON a CALL of ``action`` may hold within a frame limit of ``limit`` bytes."""
    return limit - CALL_ENVELOPE_CHARS - len(action)


@dataclass(frozen=True, slots=True)
class Split:
    """A list cut into runs that each fit, and how many of its entries fit in no run (left out)."""

    parts: list[list[Any]]
    left_out: int


def _runs(budget: int, entries: list[Any], max_items: int | None) -> Split:
    """``entries`` in order, cut into runs whose JSON list is at most ``budget`` characters and at most
    ``max_items`` long; an entry that alone is over the budget is left out."""
    parts: list[list[Any]] = []
    run: list[Any] = []
    size = 2  # the brackets
    left_out = 0
    for entry in entries:
        chars = json_chars(entry)
        if 2 + chars > budget:
            left_out += 1
            continue
        if run and (size + 1 + chars > budget or (max_items is not None and len(run) >= max_items)):
            parts.append(run)
            run, size = [], 2
        size += chars + (1 if run else 0)  # and the comma before it
        run.append(entry)
    if run:
        parts.append(run)
    return Split(parts, left_out)


def _budget(room: int, base: dict[str, Any], key: str) -> int:
    """The characters left for the list ``key`` (brackets included) in ``base`` within ``room``."""
    return room - (json_chars({**base, key: []}) - 2)


def split_entries(
    room: int, base: dict[str, Any], key: str, entries: list[Any], *, max_items: int | None = None
) -> Split:
    """``entries`` cut in order into runs such that ``{**base, key: run}`` is at most ``room`` characters and a run
    holds at most ``max_items``. ``base`` holds the other fields at their widest (the last seqNo, tbc false)."""
    return _runs(_budget(room, base, key), entries, max_items)


def split_meter_values(room: int, base: dict[str, Any], key: str, values: list[dict[str, Any]]) -> Split:
    """MeterValues cut into runs that each fit in ``{**base, key: run}``; a MeterValue too big alone becomes several
    with its timestamp, each with a run of its sampledValues (OCPP 1.6 §7.17 / 2.0.1 MeterValueType: the values
    of one element were sampled at its timestamp; nothing forbids two elements with the same one). Nothing that
    fits is lost; only a single sampledValue over the limit is left out."""
    budget = _budget(room, base, key)
    pieces: list[dict[str, Any]] = []
    left_out = 0
    for value in values:
        if 2 + json_chars(value) <= budget:
            pieces.append(value)
            continue
        shell = {k: v for k, v in value.items() if k != "sampledValue"}
        inner = budget - 2 - (json_chars({**shell, "sampledValue": []}) - 2)
        runs = _runs(inner, value["sampledValue"], None)
        pieces += [{**shell, "sampledValue": run} for run in runs.parts]
        left_out += runs.left_out
    split = _runs(budget, pieces, None)
    return Split(split.parts, left_out + split.left_out)


def trim_meter_values(room: int, payload: dict[str, Any], key: str, *, keep: int = 0) -> tuple[int, int]:
    """Make ``payload`` at most ``room`` characters by dropping the oldest MeterValues of ``payload[key]`` (after the
    first ``keep``), then, if the newest alone is still too big, its last sampledValues (its timestamp stays, and
    the register, configured first, goes last). The key goes when nothing is left of it. For a message that must
    carry its values in one CALL; returns (MeterValues dropped, sampledValues dropped)."""
    size = json_chars(payload)
    entries: list[dict[str, Any]] = payload[key]
    dropped = trimmed = 0
    while size > room and len(entries) > keep + 1:
        size -= json_chars(entries.pop(keep)) + 1  # and its comma
        dropped += 1
    if size > room and len(entries) > keep:
        values: list[Any] = entries[-1]["sampledValue"]
        while size > room and len(values) > 1:
            size -= json_chars(values.pop()) + 1
            trimmed += 1
        if size > room:
            entries.pop()
            dropped += 1
    if not entries:
        del payload[key]
    return dropped, trimmed


Request = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def send_meter_values(
    request: Request, limit: int, action: str, payload: dict[str, Any], key: str = "meterValue"
) -> int:
    """Send a MeterValues ``payload`` as one CALL, or as several that each fit in ``limit`` bytes, in order (OCPP
    1.6 §4.7 / 2.0.1 J01: a station may send its samples in several MeterValues); returns the number of CALLs.
    Raises MessageTooLarge when not one value fits (the outbox keeps such a message as a dead letter).

    The whole message is tried first: ``request`` measures the frame it sends anyway (measuring it here too cost
    ~5% of a MeterValues CALL's CPU), and refuses it unsent when it is over the limit."""
    try:
        await request(action, payload)
        return 1
    except MessageTooLarge as exc:
        size = exc.size
    base = {k: v for k, v in payload.items() if k != key}
    split = split_meter_values(payload_room(limit, action), base, key, payload[key])
    if not split.parts:
        raise MessageTooLarge(action, size, limit)
    if split.left_out:
        # Only a single sampledValue bigger than a whole frame: nothing a CSMS could take.
        log.warning(
            "%s: %d sampled values left out, each alone over BytesPerMessage (%d)",
            action,
            split.left_out,
            limit,
        )
    log.info(
        "%s of %d bytes sent as %d CALLs to fit in BytesPerMessage (%d)",
        action,
        size,
        len(split.parts),
        limit,
    )
    for part in split.parts:
        await request(action, {**base, key: part})
    return len(split.parts)
