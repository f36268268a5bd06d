"""What the firmware and diagnostics blocks share: the bounds on a CSMS's retries and dates, and the retry loop.

The central system chooses ``retries``, ``retryInterval`` and the dates (OCPP 1.6 §5.9 GetDiagnostics, §5.19
UpdateFirmware); a hostile or broken one sends 2^31 retries, an interval of a year, or the year 9999. They are
clamped here, once, so neither block can be kept busy for ever or overflow a date computation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from chargepoint.core.events import FileEvent
from chargepoint.core.storage import FileJobStorage
from chargepoint.errors import StorageError, TransferError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RETRIES = (
    10  # attempts after the first; OCPP leaves the bound to the charger ("if absent, the CP decides")
)
DEFAULT_RETRIES = 2
MAX_RETRY_INTERVAL_S = 3600
DEFAULT_RETRY_INTERVAL_S = 60
MAX_SCHEDULE_AHEAD = timedelta(days=30)  # a retrieveDate further ahead is taken as this far ahead
# A date this close ahead is "now": a central system's clock and ours are never closer than that (a retrieveDate
# of the CSMS's now arrived a few ms "early" and the update was reported DownloadScheduled first).
NOW_TOLERANCE = timedelta(seconds=1)


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


def shown(url: str, limit: int = 80) -> str:
    """A location as it may be logged or reported: without its user and password (an FTP URL carries them)."""
    return repr(_USERINFO.sub(r"\1***@", url)[:limit])


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a transfer is tried: 1 + ``retries`` attempts, ``interval_s`` apart."""

    retries: int
    interval_s: int

    @classmethod
    def of(cls, retries: int | None, interval_s: int | None) -> RetryPolicy:
        """The CSMS's values within our bounds (absent: our defaults; negative counts as 0)."""
        r = DEFAULT_RETRIES if retries is None else min(max(retries, 0), MAX_RETRIES)
        i = DEFAULT_RETRY_INTERVAL_S if interval_s is None else min(max(interval_s, 0), MAX_RETRY_INTERVAL_S)
        return cls(r, i)

    @property
    def attempts(self) -> int:
        """Attempts in all."""
        return 1 + self.retries


def scheduled_at(requested: datetime | None, now: datetime) -> datetime:
    """When to start a job the CSMS asked for at ``requested``: not before now, not after MAX_SCHEDULE_AHEAD."""
    if requested is None or requested < now + NOW_TOLERANCE:
        return now
    return min(requested, now + MAX_SCHEDULE_AHEAD)


def delay_s(until: datetime, now: datetime) -> float:
    """Seconds from ``now`` to ``until`` (0 if past)."""
    return max(0.0, (until - now).total_seconds())


async def with_retries(
    action: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    done_attempts: int = 0,
    before_attempt: Callable[[int], Awaitable[None]] | None = None,
    what: str = "transfer",
) -> T:
    """Run ``action`` until it succeeds or the policy's attempts are used up (``done_attempts`` of them were used
    before a restart); ``before_attempt(n)`` runs before attempt n (1-based, e.g. to persist it). The last
    TransferError propagates."""
    attempt = done_attempts
    while True:
        attempt += 1
        if attempt > policy.attempts:
            raise TransferError(f"{what}: no attempts left ({policy.attempts} used)")
        if before_attempt is not None:
            await before_attempt(attempt)
        try:
            return await action()
        except TransferError as exc:
            if attempt >= policy.attempts:
                raise
            log.warning(
                "%s attempt %s/%s failed (%s); retrying in %s s",
                what,
                attempt,
                policy.attempts,
                exc,
                policy.interval_s,
            )
        await asyncio.sleep(policy.interval_s)


class Job(Protocol):
    """A persisted job: an immutable record with a ``state`` (an Enum member) and a JSON form."""

    @property
    def state(self) -> Any:
        """Where the job stands."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for the store."""
        ...


J = TypeVar("J", bound=Job)


class JobKeeper(Generic[J]):
    """One job of a kind at a time: its state machine (``transitions``; a ``final`` state ends it), its record in
    the store with the status event of each change (one atomic write), and its background task."""

    def __init__(
        self,
        store: FileJobStorage,
        kind: str,
        *,
        transitions: Mapping[Any, frozenset[Any]],
        final: frozenset[Any],
        decode: Callable[[dict[str, Any]], J],
        event: Callable[[J, Any], FileEvent],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.kind = kind
        self.transitions = transitions
        self.final = final
        self._decode = decode
        self._event = event  # the status event of a job entering a state
        self._wake = wake  # something was queued in the outbox
        self.job: J | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self) -> J | None:
        """The persisted job after a (re)start, now the current one; an unreadable record is logged and dropped."""
        try:
            data = self.store.file_job(self.kind)
            job = self._decode(data) if data is not None else None
        except (KeyError, ValueError, TypeError, StorageError):
            log.exception("persisted %s job unreadable; dropped", self.kind)
            self.store.put_file_job(self.kind, None)
            return None
        if job is not None and job.state in self.final:  # ended but not yet removed: nothing left to do
            self.store.put_file_job(self.kind, None)
            job = None
        self.job = job
        return job

    def begin(self, job: J, run: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Make ``job`` the current one, persist it, and run ``run`` in the background (kept by reference)."""
        self.job = job
        self.store.put_file_job(self.kind, job.to_json())
        if run is not None:
            self.run(run)

    def run(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run the current job's work in the background."""
        self._task = asyncio.get_running_loop().create_task(run(), name=f"{self.kind}-job")
        self._task.add_done_callback(self._crashed)

    def set(self, state: Any, **changes: Any) -> J:
        """Move the job on, persist it (removed once final) and queue its status event if the state changed."""
        job = self.job
        assert job is not None, f"no {self.kind} job"
        changed = state is not job.state
        if changed and state not in self.transitions.get(job.state, frozenset()):
            raise ValueError(f"{self.kind} job cannot go from {job.state.value} to {state.value}")
        event = self._event(job, state) if changed else None
        job = dataclasses.replace(job, state=state, **changes)  # type: ignore[type-var]
        self.job = None if state in self.final else job
        self.store.put_file_job(self.kind, None if state in self.final else job.to_json(), event)
        if event is not None:
            self._wake()
        return job

    def drop(self) -> None:
        """Forget the current job and cancel its work (its record is replaced by the next ``begin``)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.job = None

    def halt(self) -> list[asyncio.Task[None]]:
        """The background task, for the station to cancel and await; the persisted job goes on (or is reported)
        at the next start."""
        task, self._task = self._task, None
        return [task] if task is not None else []

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s job crashed", self.kind, exc_info=task.exception())
