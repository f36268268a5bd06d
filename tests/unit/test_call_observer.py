"""The CALL observer (fleet metrics): every CALL is reported once with its action, latency and outcome."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from chargepoint.core.settings import Settings
from chargepoint.csms.session import SessionDeps
from chargepoint.csms.v16.adapter import V16Session
from chargepoint.errors import CsmsRejected, CsmsUnavailable


class _Connection:
    def __init__(self) -> None:
        self.sent: list[list[Any]] = []
        self.frame = asyncio.Event()

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))
        self.frame.set()


def _session(seen: list[tuple[str, float, str | None]]) -> tuple[V16Session, _Connection]:
    counter = iter(range(1, 1000))
    link = SimpleNamespace(
        identity=SimpleNamespace(id="CP-1"),
        csms_config=SimpleNamespace(response_timeout_s=5.0),
        message_timeout_s=lambda: 5.0,
        ids=lambda: f"id-{next(counter)}",
        touch=lambda: None,
        call_observer=lambda action, latency_s, error: seen.append((action, latency_s, error)),
    )
    conn = _Connection()
    # Settings: a CALL is checked against BytesPerMessage before it is sent.
    deps = SessionDeps(link, station=None, store=None, settings=Settings(), security=None)  # type: ignore[arg-type]
    return V16Session(deps, conn), conn


async def _answer(session: V16Session, conn: _Connection, frame: list[Any]) -> None:
    await conn.frame.wait()
    conn.frame.clear()
    await session.route_message(json.dumps([frame[0], conn.sent[-1][1], *frame[1:]]))


async def test_result_call_error_and_timeout_are_each_observed_once() -> None:
    seen: list[tuple[str, float, str | None]] = []
    session, conn = _session(seen)

    answer = asyncio.create_task(_answer(session, conn, [3, {"currentTime": "2024-05-01T10:00:00Z"}]))
    assert await session.request("Heartbeat", {}) == {"currentTime": "2024-05-01T10:00:00Z"}
    await answer

    answer = asyncio.create_task(_answer(session, conn, [4, "InternalError", "boom", {}]))
    with pytest.raises(CsmsRejected):
        await session.request("Heartbeat", {})
    await answer

    with pytest.raises(CsmsUnavailable):
        await session.request("Heartbeat", {}, timeout_s=0.05)

    assert [(action, error) for action, _, error in seen] == [
        ("Heartbeat", None),
        ("Heartbeat", "InternalError"),
        ("Heartbeat", "Timeout"),
    ]
    assert all(latency >= 0 for _, latency, _ in seen) and seen[2][1] >= 0.05
    # Answers are matched by request(), not a response queue; and a session has no instance dict (a fleet holds
    # thousands of them).
    assert not hasattr(session, "_response_queue") and not hasattr(session, "__dict__")
