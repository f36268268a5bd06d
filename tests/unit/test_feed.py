"""A push driver's events for one connector (``Feed``): handled in order, one at a time, in a task only while
events wait; a crashing handler faults the connector and the next event is handled; handling ended by a
cancellation (even before it ran) faults the connector and ends the feed for good."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from chargepoint.core.blocks.context import Feed, StationContext, StationTiming
from chargepoint.core.model import ConnectorState, ErrorCode
from chargepoint.core.settings import Settings
from chargepoint.ports import ConnectorPorts
from chargepoint.store import Store
from hardware.sim import SimMeter, SimPlug, SimRelay


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


def _ctx(tmp_path: Path) -> tuple[StationContext, Store]:
    relay, plug = SimRelay(), SimPlug()
    ports = {1: ConnectorPorts(relay, SimMeter(relay, plug), plug)}
    store = Store(tmp_path / "agent.db")
    return StationContext(ports, store, Settings(), Clock(), StationTiming()), store


async def test_events_are_handled_in_order_one_at_a_time_and_a_crash_is_a_fault(tmp_path: Path) -> None:
    ctx, store = _ctx(tmp_path)
    handled: list[str] = []
    running = 0

    async def handle(cid: int, event: str) -> None:
        nonlocal running
        running += 1
        assert running == 1, "two events handled at once"
        await asyncio.sleep(0)
        running -= 1
        if event == "bad":
            raise KeyError(event)
        handled.append(event)

    try:
        feed: Feed[str] = Feed(ctx, 1, "plug", handle)
        assert not ctx.tasks  # nothing waits: no task
        for event in ("a", "bad", "b"):
            feed(event)
        assert len(ctx.tasks) == 1  # one task for the three
        for _ in range(20):
            await asyncio.sleep(0)
        assert handled == ["a", "b"] and not ctx.tasks and feed.alive
        assert ErrorCode.INTERNAL_ERROR in ctx.connectors[1].faults
        assert ctx.connectors[1].state is ConnectorState.FAULTED
    finally:
        store.close()


async def test_handling_cancelled_before_it_ran_faults_and_ends_the_feed(tmp_path: Path) -> None:
    ctx, store = _ctx(tmp_path)
    handled: list[bool] = []

    async def handle(cid: int, event: bool) -> None:
        handled.append(event)

    try:
        feed: Feed[bool] = Feed(ctx, 1, "plug", handle)
        feed(True)
        next(iter(ctx.tasks)).cancel()  # a bug elsewhere, before the handling even started
        for _ in range(20):
            await asyncio.sleep(0)
        assert not feed.alive and not ctx.alive() and handled == []
        assert ctx.connectors[1].faults[ErrorCode.INTERNAL_ERROR] == "plug loop ended: CancelledError"
        feed(False)  # no longer trusted: nothing is handled
        for _ in range(5):
            await asyncio.sleep(0)
        assert handled == [] and not ctx.tasks
    finally:
        store.close()
