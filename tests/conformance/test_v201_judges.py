"""The 2.0.1 charger judges on recorded frames (no network): status transitions per (evseId, connectorId) by the
Part 2 §G01 table, and per transaction Started first, seqNo without a gap, an identical retransmission allowed,
exactly one Ended and nothing after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backend_stub.ocpp.framing import Frame
from conformance.v201.charger import V201ChargerContext

CP = "CP-J"


def judged(*calls: tuple[str, dict[str, Any]]) -> list[str]:
    """The problems the 2.0.1 judges find in these CALLs of the charger, in order."""
    ctx = V201ChargerContext(cp_id=CP)
    for n, (action, payload) in enumerate(calls):
        raw = json.dumps([2, str(n), action, payload])
        ctx.cs.log.append(Frame(datetime.now(UTC), CP, "in", 2, str(n), action, payload, raw))
    ctx.scan_statuses()
    return ctx.bad_transitions


def status(value: str, evse: int = 1) -> tuple[str, dict[str, Any]]:
    return "StatusNotification", {
        "timestamp": "t",
        "connectorStatus": value,
        "evseId": evse,
        "connectorId": 1,
    }


def event(kind: str, seq: int, tx: str = "T1", **extra: Any) -> tuple[str, dict[str, Any]]:
    payload = {"eventType": kind, "seqNo": seq, "transactionInfo": {"transactionId": tx}, **extra}
    return "TransactionEvent", payload


BOOT = ("BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}})


@pytest.mark.parametrize(
    ("calls", "problem"),
    [
        ([status("Available"), status("Occupied"), status("Available")], ""),
        ([status("Available"), status("Occupied"), status("Reserved")], "Occupied -> Reserved"),
        ([status("Unavailable"), status("Reserved")], "Unavailable -> Reserved"),
        ([status("Occupied"), status("Reserved", evse=2)], ""),  # another EVSE has its own history
        ([status("Occupied"), BOOT, status("Reserved")], ""),  # after a reboot the states start afresh
        ([event("Started", 0), event("Updated", 1), event("Ended", 2)], ""),
        ([event("Started", 0), event("Updated", 2)], "seqNo skips from 0 to 2"),
        ([event("Started", 0), event("Started", 0)], ""),  # a retransmission repeats the same event
        ([event("Started", 0), event("Updated", 0)], "seqNo 0 was already used"),
        ([event("Started", 0), event("Ended", 1), event("Ended", 2)], "after the transaction's Ended"),
        ([event("Started", 0), event("Ended", 1), event("Updated", 2)], "after the transaction's Ended"),
        ([event("Updated", 3)], "must be eventType Started"),
        ([event("Started", 0), event("Started", 1)], "a second Started"),
        ([event("Started", 0, "A"), event("Started", 0, "B"), event("Ended", 1, "A")], ""),
    ],
)
def test_the_201_judges(calls: list[tuple[str, dict[str, Any]]], problem: str) -> None:
    found = judged(*calls)
    if problem:
        assert len(found) == 1 and problem in found[0], found
    else:
        assert found == []
