"""Helpers shared by the OCTT-style tests: reading the central system's log and driving common sessions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from backend_stub.ocpp.server import Frame
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.conftest import RunningAgent, until

CP = "CP-1"
CALL, CALLRESULT, CALLERROR = 2, 3, 4


def mark(cs: CentralSystem) -> int:
    """The current end of the CSMS log (use as ``after=``)."""
    return len(cs.log)


def index(cs: CentralSystem, frame: Frame) -> int:
    """Position of a frame in the CSMS log."""
    return next(i for i, f in enumerate(cs.log) if f is frame)


def parse_ts(text: str) -> datetime:
    """An OCPP timestamp as an aware datetime."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def answer_to(cs: CentralSystem, call: Frame, timeout: float = 5.0) -> Frame:
    """The CSMS's answer (CALLRESULT or CALLERROR) to a CALL the charger sent."""
    return await cs.wait_for(
        lambda f: (
            f.direction == "out"
            and f.message_type in (CALLRESULT, CALLERROR)
            and f.unique_id == call.unique_id
        ),
        timeout,
    )


async def reply_from_charger(
    cs: CentralSystem,
    unique_id: str,
    after: int = 0,
    timeout: float = 5.0,
) -> Frame:
    """The charger's answer (CALLRESULT or CALLERROR) to a frame the CSMS sent with ``unique_id``."""
    return await cs.wait_for(
        lambda f: (
            f.direction == "in" and f.message_type in (CALLRESULT, CALLERROR) and f.unique_id == unique_id
        ),
        timeout,
        after=after,
    )


def incoming_calls(cs: CentralSystem, after: int = 0, before: int | None = None) -> list[Frame]:
    """Every CALL the charger sent in ``log[after:before]``."""
    return [f for f in cs.log[after:before] if f.direction == "in" and f.message_type == CALL]


def statuses(cs: CentralSystem, cid: int, after: int = 0) -> list[str]:
    """The statuses the charger reported for connector ``cid`` since ``after``, in order."""
    return [
        f.payload["status"]
        for f in incoming_calls(cs, after)
        if f.action == "StatusNotification" and f.payload["connectorId"] == cid
    ]


async def wait_status(
    cs: CentralSystem,
    cid: int,
    status: str,
    *,
    after: int = 0,
    error_code: str | None = None,
    timeout: float = 5.0,
) -> Frame:
    """Wait for a StatusNotification of ``status`` (and ``error_code``, if given) for connector ``cid``."""
    return await cs.wait_for_call(
        "StatusNotification",
        after=after,
        timeout=timeout,
        where=lambda p: (
            p["connectorId"] == cid
            and p["status"] == status
            and (error_code is None or p["errorCode"] == error_code)
        ),
    )


async def start_session(
    a: RunningAgent, cs: CentralSystem, tag: str = "TAG1", cid: int = 1, *, after: int | None = None
) -> tuple[Frame, int]:
    """Plug in, present ``tag`` and wait until charging; returns the StartTransaction CALL and its transactionId."""
    after = mark(cs) if after is None else after
    a.plug(cid)
    await a.wait_state("PREPARING", cid)
    a.swipe(tag, cid)
    start = await cs.wait_for_call(
        "StartTransaction", after=after, where=lambda p: p["idTag"] == tag and p["connectorId"] == cid
    )
    tx_id = int((await answer_to(cs, start)).payload["transactionId"])
    await a.wait_state("CHARGING", cid)
    # The charger has adopted the CSMS's transactionId (a CSMS would not address it any earlier).
    await until(
        lambda: (
            (tx := a.station.connectors[cid].transaction) is not None
            and a.agent.store is not None
            and a.agent.store.csms_transaction_id(tx.local_id) == tx_id
        ),
        5,
        "transactionId never adopted",
    )
    return start, tx_id


async def go_offline(a: RunningAgent, cs: CentralSystem) -> None:
    """Cut the connection (like a network drop) and keep the CSMS refusing new ones."""
    cs.refuse_connections = True
    await cs.disconnect(CP)
    await until(lambda: a.agent.link is not None and not a.agent.link.online, 5, "agent still online")


async def go_online(a: RunningAgent, cs: CentralSystem) -> None:
    """Let the charger reconnect and wait until its boot is accepted again."""
    cs.refuse_connections = False
    await a.wait_booted()


async def outbox_empty(a: RunningAgent, timeout: float = 5.0) -> None:
    """Wait until the charger has delivered everything it queued."""
    await until(
        lambda: a.agent.store is not None and a.agent.store.outbox_size() == 0, timeout, "outbox not drained"
    )


async def quiet(seconds: float) -> None:
    """Let time pass to show that something does *not* happen."""
    await asyncio.sleep(seconds)


def drop_violations(cs: CentralSystem, *fragments: str) -> list[tuple[str, str, str]]:
    """Remove (and return) the recorded charger violations whose message contains one of ``fragments``."""
    dropped = [v for v in cs.violations if any(fr in v[2] for fr in fragments)]
    cs.violations[:] = [v for v in cs.violations if v not in dropped]
    return dropped


def payloads(frames: list[Frame]) -> list[dict[str, Any]]:
    """The payloads of some frames."""
    return [f.payload for f in frames]
