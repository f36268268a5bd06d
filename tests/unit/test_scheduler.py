"""The shared scheduler of periodic duties, driven by a fake clock: every duty fires at the right instants, is
planned again when its setting changes, and stops; Flag keeps asyncio.Event's contract."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import heapq
import itertools
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargepoint.core.blocks.context import StationContext, StationTiming
from chargepoint.core.blocks.faults import Faults
from chargepoint.core.blocks.metering import Metering
from chargepoint.core.model import ErrorCode
from chargepoint.core.scheduler import Duty, Flag, Mutex, Scheduler, loop_scheduler
from chargepoint.core.settings import Settings
from chargepoint.ports import ConnectorPorts, MeterReading
from chargepoint.store import Store
from hardware.sim import SimPlug, SimRelay

T0 = datetime(2026, 3, 1, 8, 59, 50, tzinfo=UTC)  # fake time 0


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTime:
    """A loop's time and call_at, advanced by hand; also a wall clock (``now``) at T0 + time()."""

    def __init__(self) -> None:
        self.t = 0.0
        self._handles: list[tuple[float, int, FakeHandle, Callable[[], object]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeHandle:
        handle = FakeHandle()
        heapq.heappush(self._handles, (when, next(self._seq), handle, callback))
        return handle

    @property
    def armed(self) -> int:
        return sum(not h.cancelled for _, _, h, _ in self._handles)

    def advance(self, to: float) -> None:
        """Run every handle due up to ``to``, each at its own instant."""
        while self._handles and self._handles[0][0] <= to:
            when, _, handle, callback = heapq.heappop(self._handles)
            self.t = max(self.t, when)
            if not handle.cancelled:
                callback()
        self.t = to

    async def run_until(self, to: float, step: float = 1.0) -> None:
        """Advance in steps (the first one zero: what is due now runs now), letting spawned tasks run between them."""
        self.advance(self.t)
        for _ in range(5):
            await asyncio.sleep(0)
        while self.t < to:
            self.advance(min(to, self.t + step))
            for _ in range(5):
                await asyncio.sleep(0)


def test_timers_fire_in_time_order_at_their_instants_through_one_loop_handle() -> None:
    fake = FakeTime()
    sched = Scheduler(fake)
    fired: list[tuple[str, float]] = []
    for name, when in (("c", 5.0), ("a", 1.0), ("b", 3.0), ("a2", 1.0)):
        sched.call_at(when, lambda name=name: fired.append((name, fake.time())))
    assert fake.armed == 1  # one loop handle for the whole heap
    fake.advance(2.0)
    assert fired == [("a", 1.0), ("a2", 1.0)]
    later = sched.call_later(0.5, lambda: fired.append(("d", fake.time())))  # 2.5, before b
    fake.advance(10.0)
    assert fired[2:] == [("d", 2.5), ("b", 3.0), ("c", 5.0)]
    assert later.cancelled and len(sched) == 0 and fake.armed == 0


def test_a_cancelled_timer_never_fires_and_a_flood_of_cancels_stays_bounded() -> None:
    fake = FakeTime()
    sched = Scheduler(fake)
    fired: list[int] = []
    timers = [sched.call_at(100.0 + i, lambda i=i: fired.append(i)) for i in range(1000)]
    for timer in timers[:-1]:
        sched.cancel(timer)
    assert len(sched) == 1
    assert len(sched._heap) < 200  # rebuilt, not 1,000 dead entries waiting for their time
    fake.advance(2000.0)
    assert fired == [999]


def test_a_crashing_callback_is_logged_and_the_others_still_fire(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    sched = Scheduler(fake)
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("bug")

    sched.call_at(1.0, boom)
    sched.call_at(1.0, lambda: fired.append("after"))
    fake.advance(1.0)
    assert fired == ["after"] and "crashed" in caplog.text


async def test_a_heartbeat_like_duty_fires_each_interval_after_the_last_traffic_and_follows_a_new_interval() -> (
    None
):
    fake = FakeTime()
    sched = Scheduler(fake)
    interval = [60]
    last_traffic = [0.0]
    beats: list[float] = []

    def plan() -> tuple[float, None] | None:
        if interval[0] <= 0:
            return None
        return max(0.0, interval[0] - (fake.time() - last_traffic[0])), None

    async def beat() -> None:
        beats.append(fake.time())
        last_traffic[0] = fake.time()

    def work(_: None) -> Any:
        if fake.time() - last_traffic[0] < interval[0]:
            return None  # traffic since planned
        return beat()

    loop = asyncio.get_running_loop()
    duty: Duty[None] = Duty(sched, plan, work, lambda c, n: loop.create_task(c, name=n), "heartbeat")
    duty.start()
    await fake.run_until(130)
    assert beats == [60, 120]
    last_traffic[0] = 125.0  # a MeterValues exchange: the next beat moves to 185
    await fake.run_until(140)
    interval[0] = 30  # HeartbeatInterval changed at 140: due 30 s after the last traffic (155)
    duty.reschedule()
    await fake.run_until(200)
    assert beats == [60, 120, 155, 185]
    interval[0] = 0  # 0 turns heartbeats off until the next change
    duty.reschedule()
    await fake.run_until(400)
    assert beats == [60, 120, 155, 185] and duty.due_at is None
    interval[0] = 60
    duty.reschedule()
    await fake.run_until(459)
    assert beats[-1] == 400  # idle since 185: due at once
    assert duty.stop() is None
    await fake.run_until(1000)
    assert beats[-1] == 400 and len(sched) == 0


async def test_a_duty_runs_one_at_a_time_and_plans_the_next_run_when_the_work_ends() -> None:
    fake = FakeTime()
    sched = Scheduler(fake)
    started: list[float] = []
    release = asyncio.Event()

    async def slow() -> None:
        started.append(fake.time())
        await release.wait()

    loop = asyncio.get_running_loop()
    duty: Duty[None] = Duty(
        sched, lambda: (10.0, None), lambda _: slow(), lambda c, n: loop.create_task(c, name=n), "slow"
    )
    duty.start()
    await fake.run_until(35)
    assert started == [10] and duty.running and duty.due_at is None
    duty.reschedule()  # a setting changed while it runs: planned when the run ends, not twice
    release.set()
    await fake.run_until(36)
    assert not duty.running and duty.due_at == 45  # released at 35, next run 10 s later
    task = duty.stop()
    assert task is None and duty.due_at is None


async def test_an_inline_duty_needs_a_task_only_for_a_run_that_waits() -> None:
    """``inline``: a run that never waits is done in the scheduler's callback (no task); one that waits goes on in
    a task from where it waited, is cancelled where it waits, and one that crashes ends as a crashed task would
    (logged by the spawner, not planned again). The plan is the same as with a task per run."""
    fake = FakeTime()
    sched = Scheduler(fake)
    loop = asyncio.get_running_loop()
    spawned: list[asyncio.Task[Any]] = []
    ran: list[tuple[float, str]] = []
    gate: list[asyncio.Future[None]] = []
    mode = ["quick"]

    def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
        task = loop.create_task(coro, name=name)
        spawned.append(task)
        return task

    async def work() -> None:
        ran.append((fake.time(), WHO.get()))
        if mode[0] == "crash":
            raise KeyError("bug")
        if mode[0] == "wait":
            gate.append(loop.create_future())
            try:
                await gate[-1]
            except asyncio.CancelledError:
                ran.append((fake.time(), "cancelled"))
                raise
            ran.append((fake.time(), "resumed"))

    WHO.set("agent-1")
    duty: Duty[None] = Duty(sched, lambda: (10.0, None), lambda _: work(), spawn, "inline", inline=True)
    WHO.set("someone else")
    duty.start()
    await fake.run_until(25)
    assert ran == [(10, "agent-1"), (20, "agent-1")] and spawned == []  # no task for runs that never wait
    assert duty.due_at == 30 and not duty.running

    mode[0] = "wait"
    await fake.run_until(35)
    assert ran[-1] == (30, "agent-1") and len(spawned) == 1 and duty.running and duty.due_at is None
    duty.reschedule()  # while it runs: planned when the run ends, not twice
    gate[-1].set_result(None)
    await fake.run_until(36)
    assert ran[-1] == (35, "resumed") and spawned[0].done() and not duty.running and duty.due_at == 45

    await fake.run_until(46)
    assert ran[-1] == (45, "agent-1") and len(spawned) == 2
    task = duty.stop()
    assert task is spawned[1]
    task.cancel()
    await fake.run_until(47)
    assert ran[-1] == (46, "cancelled") and task.cancelled() and duty.due_at is None

    mode[0] = "crash"
    duty.start()
    await fake.run_until(60)
    assert ran[-1] == (57, "agent-1") and isinstance(spawned[2].exception(), KeyError)
    assert duty.due_at is None and not duty.alive  # a crashed duty is not planned again, as with a task


async def test_clock_aligned_samples_fire_on_the_boundaries_and_follow_a_new_interval() -> None:
    fake = FakeTime()
    sched = Scheduler(fake)
    store = Store(":memory:")
    settings = Settings({}, overrides={"clock_aligned_data_interval_s": 900})
    ctx = StationContext({}, store, settings, fake, StationTiming(scheduler=sched))
    taken: list[tuple[float, datetime]] = []

    class Taking(Metering):
        __slots__ = ()

        async def _take_aligned(self, due: datetime) -> None:
            taken.append((fake.time(), due))

    metering = Taking(ctx, faults=None)  # type: ignore[arg-type]  # no connector: no fault to raise
    try:
        await metering.start()
        await fake.run_until(2000)
        # T0 is 08:59:50: boundaries every 15 minutes counted from midnight, each taken at its instant.
        nine = T0.replace(hour=9, minute=0, second=0)
        assert taken == [
            (10.0, nine),
            (910.0, nine + timedelta(minutes=15)),
            (1810.0, nine + timedelta(minutes=30)),
        ]
        settings.set_text("clock_aligned_data_interval_s", "600")  # at 09:33:10: next boundary 09:40
        await fake.run_until(3100)
        assert [at for _, at in taken[3:]] == [nine + timedelta(minutes=40), nine + timedelta(minutes=50)]
        assert taken[3][0] == 2410.0
        settings.set_text("clock_aligned_data_interval_s", "0")  # off
        await fake.run_until(9000)
        assert len(taken) == 5
        assert metering.halt() == []
        settings.set_text("clock_aligned_data_interval_s", "60")  # halted: no listener, no duty
        await fake.run_until(9500)
        assert len(taken) == 5 and len(sched) == 0
    finally:
        store.close()


class CountingMeter:
    """A meter port that notes the fake time of each read."""

    def __init__(self, fake: FakeTime) -> None:
        self.fake = fake
        self.reads: list[float] = []

    async def read(self) -> MeterReading:
        self.reads.append(self.fake.time())
        return MeterReading(energy_wh=0.0, power_w=0.0)


class BuggyRelay(SimRelay):
    """A relay whose mirror-contact check, once ``broken``, fails with a bug rather than a RelayError."""

    __slots__ = ("broken",)

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    async def check(self) -> None:
        if self.broken:
            raise KeyError("driver bug")


class InstantCountingMeter(CountingMeter):
    """A CountingMeter that says its reads need no task (``chargepoint.ports.Instant``, as the twins do)."""

    instant = True


class CountingContext(StationContext):
    """A station context that counts the tasks it spawns."""

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        self.spawned = getattr(self, "spawned", 0) + 1
        return super().spawn(coro, name)


@pytest.mark.parametrize("instant", [False, True], ids=["task per poll", "inline polls"])
async def test_meter_polls_fire_at_once_then_every_poll_interval_and_a_crashed_poll_is_a_fault(
    instant: bool,
) -> None:
    """Each connector's meter poll is a duty on the shared scheduler: read at once, then meter_poll_s after each
    poll ends; a poll that crashes (a driver bug) faults its connector, and polling goes on. The same with a meter
    and relay that need no task: polled inline, no task per poll."""
    fake = FakeTime()
    sched = Scheduler(fake)
    store = Store(":memory:")
    meters = {cid: (InstantCountingMeter if instant else CountingMeter)(fake) for cid in (1, 2)}
    relays = {cid: BuggyRelay() for cid in meters}
    ports = {cid: ConnectorPorts(relays[cid], meter, SimPlug()) for cid, meter in meters.items()}
    ctx = CountingContext(ports, store, Settings(), fake, StationTiming(meter_poll_s=5.0, scheduler=sched))
    metering = Metering(ctx, Faults(ctx, smart_charging=None))  # type: ignore[arg-type]  # no limit to apply
    try:
        await metering.start()
        await fake.run_until(12)
        assert [m.reads for m in meters.values()] == [[0, 5, 10], [0, 5, 10]] and ctx.alive()
        assert getattr(ctx, "spawned", 0) == (0 if instant else 6)  # a task per poll, or none
        assert (
            len(sched) == 2
        )  # one timer per poll (clock-aligned samples are off): no task, no sleeping loop
        relays[2].broken = True
        await fake.run_until(21)
        assert [m.reads for m in meters.values()] == [[0, 5, 10, 15, 20]] * 2
        assert ErrorCode.INTERNAL_ERROR in ctx.connectors[2].faults and ctx.alive()
        assert not ctx.connectors[1].faults  # every read of both meters succeeded
        metering.halt()
        await fake.run_until(40)
        assert (
            meters[1].reads[-1] == 20 and not ctx.alive()
        )  # halted: no more polls, the watchdog would notice
    finally:
        store.close()


WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_a_duty_runs_in_the_context_it_was_made_in_whoever_armed_the_scheduler() -> None:
    """A fleet names each agent's log lines by a context variable: a duty's runs keep their agent's."""
    fake = FakeTime()
    sched = Scheduler(fake)
    seen: list[tuple[str, str]] = []
    loop = asyncio.get_running_loop()

    async def work(name: str) -> None:
        seen.append((name, WHO.get()))

    def make(name: str, delay_s: float) -> Duty[str]:
        WHO.set(name)
        return Duty(sched, lambda: (delay_s, name), work, lambda c, n: loop.create_task(c, name=n), name)

    duties = [contextvars.copy_context().run(make, name, d) for name, d in (("a", 5.0), ("b", 3.0))]
    WHO.set("armer")
    for duty in duties:
        duty.start()
    await fake.run_until(5.5)
    assert seen == [("b", "b"), ("a", "a")]
    for duty in duties:
        duty.stop()


async def test_mutex_keeps_the_lock_contract_without_a_waiter_list_when_idle() -> None:
    mutex = Mutex()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with mutex:
            order.append(name)
            await asyncio.sleep(0)

    await mutex.acquire()
    first, gone, second = (asyncio.ensure_future(hold(n)) for n in ("first", "gone", "second"))
    await asyncio.sleep(0)
    gone.cancel()  # a waiter that gives up is skipped
    await asyncio.sleep(0)
    assert mutex.locked() and order == []
    mutex.release()
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and gone.cancelled()
    assert not mutex.locked() and mutex._waiters is None

    # Handed over just as the new holder is cancelled: the lock passes on, not lost.
    await mutex.acquire()
    handed, after = asyncio.ensure_future(hold("handed")), asyncio.ensure_future(hold("after"))
    await asyncio.sleep(0)
    mutex.release()
    handed.cancel()
    await after
    assert order[-1] == "after" and handed.cancelled() and not mutex.locked()
    with pytest.raises(RuntimeError):
        mutex.release()


async def test_flag_keeps_the_event_contract() -> None:
    flag = Flag()
    assert not flag.is_set()
    first = asyncio.ensure_future(flag.wait())
    second = asyncio.ensure_future(flag.wait())
    cancelled = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()  # one waiter giving up does not wake or break the others
    await asyncio.sleep(0)
    assert not first.done() and not second.done()
    flag.set()
    flag.clear()  # cleared before the waiters ran: they still wake, as with an Event
    assert await first is True and await second is True
    assert not flag.is_set()
    flag.set()
    assert await flag.wait() is True and flag._waiters is None


def test_the_loop_scheduler_is_one_per_loop_and_does_not_keep_a_finished_loop_alive() -> None:
    fired: list[float] = []

    async def main() -> tuple[Scheduler, weakref.ref[asyncio.AbstractEventLoop]]:
        scheduler = loop_scheduler()
        assert loop_scheduler() is scheduler  # every agent of the process gets the same one
        scheduler.call_later(0.01, lambda: fired.append(scheduler.time()))
        await asyncio.sleep(0.05)
        return scheduler, weakref.ref(asyncio.get_running_loop())

    first, first_loop = asyncio.run(main())
    second, second_loop = asyncio.run(main())
    assert first is not second and len(fired) == 2
    del first, second
    gc.collect()
    assert first_loop() is None and second_loop() is None
