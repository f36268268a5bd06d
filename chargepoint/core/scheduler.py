"""Timers and flags for periodic duties without a sleeping task each: one scheduler per event loop.

A charger has a handful of periodic duties (Heartbeat, clock-aligned and periodic meter samples) that spend nearly
all their life waiting. A sleeping task per duty costs a task, its coroutine frame, a timeout and a future (~1.5 KB
each); a fleet of 10,000 agents in one process pays that 50,000 times. Here a duty is a callback on a shared
heap, backed by a single ``loop.call_at`` handle for the earliest entry, and its async work runs in a task only
while it runs. A process with one agent has one client of its scheduler: the same code path as a fleet.

``Flag`` stands in for ``asyncio.Event`` where an object lives as long as an agent: an Event allocates its waiter
deque up front (~0.8 KB), a Flag allocates a list only while someone waits. ``Mutex`` does the same for
``asyncio.Lock``, which keeps its waiter deque once contended.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import types
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")


class Flag:
    """An ``asyncio.Event`` with the same contract (set, clear, is_set, wait), holding no waiter list when idle."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """True once set, until cleared."""
        return self._set

    def set(self) -> None:
        """Set it and wake every waiter."""
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Unset it (waiters already woken stay woken, as with an Event)."""
        self._set = False

    async def wait(self) -> Literal[True]:
        """Return once it is set (at once if it is)."""
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
                if not self._waiters:
                    self._waiters = None


class Mutex:
    """An ``asyncio.Lock`` (``async with``, acquire, release, locked; first come, first served) that holds no waiter
    deque once it has been contended: an asyncio.Lock keeps one (~0.8 KB) for the rest of its life."""

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def locked(self) -> bool:
        """True while held."""
        return self._locked

    async def acquire(self) -> Literal[True]:
        """Take it, waiting behind the earlier callers if it is held."""
        if not self._locked:
            self._locked = True
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as the caller was cancelled: pass it on
            elif self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        return True  # release() handed it over: it stayed locked for us

    def release(self) -> None:
        """Hand it to the longest waiter, or unlock it."""
        if not self._locked:
            raise RuntimeError("Mutex is not acquired")
        waiters = self._waiters
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                if not waiters:
                    self._waiters = None
                return
        self._waiters = None
        self._locked = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Handle(Protocol):
    """What ``call_at`` returns: something that can be cancelled."""

    def cancel(self) -> None:
        """Do not call it."""


class TimeBase(Protocol):
    """The part of an event loop a scheduler uses (a fake clock in tests)."""

    def time(self) -> float:
        """Monotonic seconds."""
        ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Handle:
        """Call ``callback`` at ``when``."""
        ...


class Timer:
    """One scheduled callback; ``cancel()`` before it fires and it never does."""

    __slots__ = ("callback", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback: Callable[[], object] | None = callback

    def cancel(self) -> None:
        """Do not fire (its heap entry is dropped when reached, or when cancelled entries pile up)."""
        self.callback = None

    @property
    def cancelled(self) -> bool:
        """True once cancelled or fired."""
        return self.callback is None


class Scheduler:
    """A heap of timers behind one loop handle; callbacks run on the loop, in time order, a crash logged."""

    def __init__(self, base: TimeBase) -> None:
        self._base = base
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._handle: Handle | None = None
        self._armed_at = 0.0
        self._cancelled = 0
        self._firing = False

    def __len__(self) -> int:
        """Live timers."""
        return len(self._heap) - self._cancelled

    def time(self) -> float:
        """The scheduler's (the loop's) monotonic time."""
        return self._base.time()

    def call_later(self, delay_s: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` after ``delay_s`` seconds (at once for a delay <= 0, on the next turn)."""
        return self.call_at(self._base.time() + max(0.0, delay_s), callback)

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` at loop time ``when``."""
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        if not self._firing and (self._handle is None or when < self._armed_at):
            self._arm()  # (while firing, _fire arms once at its end: not a loop handle per timer planned meanwhile)
        return timer

    def cancel(self, timer: Timer) -> None:
        """Cancel ``timer``; a heap mostly of cancelled entries is rebuilt (a flood of reschedules stays bounded)."""
        if timer.cancelled:
            return
        timer.cancel()
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap = [e for e in self._heap if not e[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
            self._cancelled = max(0, self._cancelled - 1)
        if self._heap:
            self._armed_at = self._heap[0][0]
            self._handle = self._base.call_at(self._armed_at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        # The loop calls a handle up to its clock resolution early: whatever was due at the armed instant runs.
        now = max(self._base.time(), self._armed_at)
        self._firing = True
        try:
            # self._heap each time: a callback's cancels may rebuild it (``cancel``).
            while (heap := self._heap) and heap[0][0] <= now:
                timer = heapq.heappop(heap)[2]
                callback = timer.callback
                if callback is None:
                    self._cancelled = max(0, self._cancelled - 1)
                    continue
                timer.callback = None
                try:
                    callback()
                except Exception:
                    log.exception("scheduled callback %r crashed", callback)
        finally:
            self._firing = False
            self._arm()


_SCHEDULERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Scheduler] = weakref.WeakKeyDictionary()


def loop_scheduler() -> Scheduler:
    """The running loop's scheduler, shared by every agent of the process."""
    loop = asyncio.get_running_loop()
    scheduler = _SCHEDULERS.get(loop)
    if scheduler is None:
        # Through a weak proxy: a scheduler holding its loop would keep the loop's entry (and the loop) alive forever.
        scheduler = _SCHEDULERS[loop] = Scheduler(cast(TimeBase, weakref.proxy(loop)))
    return scheduler


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Drive ``coro`` on from where an inline step left it (having yielded ``yielded``), as ``await coro`` would."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task (a cancellation): into the work, where it waits
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


async def _continue(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    await _resume(coro, yielded)


async def _reraise(exc: BaseException) -> None:
    raise exc


class Duty(Generic[T]):
    """A periodic duty on a scheduler: ``plan()`` gives the seconds until the next run and what that run gets
    (None: nothing due until ``reschedule()``); ``action(arg)`` returns the work to run then, or None if there is
    none after all. The work runs in a task made by ``spawn`` only while it runs; the next run is planned after it.

    ``inline``: the work is first stepped in the scheduler's callback; only work that has to wait (or ends by an
    exception) goes on in a task, so a run that never waits costs no task. Only for work that needs no task of its
    own (no ``asyncio.timeout``, no ``current_task`` before its first wait): a meter poll of simulated twins.
    """

    __slots__ = (
        "_action",
        "_arg",
        "_context",
        "_inline",
        "_name",
        "_plan",
        "_scheduler",
        "_spawn",
        "_stepping",
        "_stopped",
        "_task",
        "_timer",
    )

    def __init__(
        self,
        scheduler: Scheduler,
        plan: Callable[[], tuple[float, T] | None],
        action: Callable[[T], Coroutine[Any, Any, None] | None],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[Any]],
        name: str,
        *,
        inline: bool = False,
    ) -> None:
        self._scheduler = scheduler
        self._inline = inline
        self._plan = plan
        self._action = action
        self._spawn = spawn
        self._name = name
        self._timer: Timer | None = None
        self._arg: T | None = None  # what the planned run gets (kept here: no closure per planned run)
        # Its runs happen in the context it was made in (a fleet names each agent's log lines by a context
        # variable), not in that of whichever agent armed the shared scheduler's loop handle.
        self._context = contextvars.copy_context()
        self._task: asyncio.Task[Any] | None = None
        self._stepping = False  # an inline step is under way (a run, as far as planning goes)
        self._stopped = True

    @property
    def running(self) -> bool:
        """True while its work runs."""
        return self._task is not None or self._stepping

    @property
    def name(self) -> str:
        """The name of its runs' tasks."""
        return self._name

    @property
    def alive(self) -> bool:
        """True while it has a run planned or under way (False once stopped, crashed, or planned nothing)."""
        return not self._stopped and (self.running or self.due_at is not None)

    @property
    def due_at(self) -> float | None:
        """The scheduler time of the next run, if one is planned."""
        timer = self._timer
        return None if timer is None or timer.cancelled else timer.when

    def start(self, *, at_once: bool = False) -> None:
        """Plan the first run (``at_once``: on the next turn of the loop, with what ``plan()`` gives it)."""
        self._stopped = False
        if not at_once:
            self.reschedule()
            return
        planned = self._plan()
        if planned is not None:
            self._arg = planned[1]
            self._timer = self._scheduler.call_later(0.0, self._fire)

    def reschedule(self) -> None:
        """Plan again (a setting it depends on changed); a run under way plans the next one when it ends."""
        if self._stopped:
            return
        if self._timer is not None:
            self._scheduler.cancel(self._timer)
            self._timer = None
        if self._task is not None or self._stepping:
            return
        planned = self._plan()
        if planned is None:
            return
        delay_s, self._arg = planned
        self._timer = self._scheduler.call_later(delay_s, self._fire)

    def stop(self) -> asyncio.Task[Any] | None:
        """No more runs; returns the run under way, if any (the caller cancels or awaits it)."""
        self._stopped = True
        if self._timer is not None:
            self._scheduler.cancel(self._timer)
            self._timer = None
        return self._task

    def _fire(self) -> None:
        self._context.run(self._run_planned)

    def _run_planned(self) -> None:
        self._timer = None
        arg, self._arg = cast(T, self._arg), None
        if self._stopped:
            return
        work = self._action(arg)
        if work is None:
            self.reschedule()
            return
        if self._inline:
            # In a copy of the duty's context, as a task would run it (the task that goes on with it copies it).
            context = contextvars.copy_context()
            self._stepping = True
            try:
                yielded = context.run(work.send, None)
            except StopIteration:
                self._stepping = False
                self.reschedule()  # done without waiting: no task at all
                return
            except BaseException as exc:  # the task ends as the work did: crashed, cancelled or interrupted
                work = _reraise(exc)
            else:
                work = _continue(work, yielded)
            self._stepping = False
            task = context.run(self._spawn, work, self._name)
        else:
            task = self._spawn(work, self._name)
        self._task = task
        task.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task[Any]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            return  # the spawner logs it; a crashed duty is not planned again (as a crashed loop ended before)
        self.reschedule()
