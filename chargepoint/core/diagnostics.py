"""Diagnostics and logs (OCPP 1.6 §5.9 GetDiagnostics, §6.13 DiagnosticsStatusNotification; Security whitepaper
ed. 2 GetLog / LogStatusNotification): one upload machinery for all three kinds.

An archive of the logs within [start, stop], the configuration with its secrets redacted and a store summary is
built off the event loop, then uploaded with the central system's retries (bounded in ``file_jobs``). One upload at
a time: a new request cancels the one in progress (GetLog answers AcceptedCanceled). Persisted, so an upload
interrupted by a restart is reported as failed rather than forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoint.core.events import UploadStatusChanged
from chargepoint.core.file_jobs import RetryPolicy, with_retries
from chargepoint.core.model import UpdateResult, UploadKind, UploadStatus
from chargepoint.core.storage import FileJobStorage
from chargepoint.errors import StorageError, TransferError
from chargepoint.ports import Clock, FilePort, safe_now

log = logging.getLogger(__name__)

U = UploadStatus
KIND = "upload"

TRANSITIONS: dict[UploadStatus, frozenset[UploadStatus]] = {
    U.IDLE: frozenset({U.UPLOADING, U.UPLOAD_FAILED}),
    U.UPLOADING: frozenset({U.UPLOADED, U.UPLOAD_FAILED}),
}
FINAL = frozenset({U.UPLOADED, U.UPLOAD_FAILED})
_PREFIX = {
    UploadKind.DIAGNOSTICS: "diagnostics",
    UploadKind.DIAGNOSTICS_LOG: "diagnostics-log",
    UploadKind.SECURITY_LOG: "security-log",
}


@dataclass(frozen=True, slots=True)
class UploadJob:
    """An upload in progress, as persisted."""

    kind: UploadKind
    location: str
    file_name: str
    policy: RetryPolicy
    start: datetime | None = None
    stop: datetime | None = None
    request_id: int | None = None
    state: UploadStatus = U.IDLE
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for the store."""
        return {
            "kind": self.kind.value,
            "location": self.location,
            "file_name": self.file_name,
            "retries": self.policy.retries,
            "retry_interval_s": self.policy.interval_s,
            "start": self.start.isoformat() if self.start else None,
            "stop": self.stop.isoformat() if self.stop else None,
            "request_id": self.request_id,
            "state": self.state.value,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadJob:
        """Inverse of ``to_json``; KeyError/ValueError/TypeError if it is not one."""
        return cls(
            UploadKind(data["kind"]),
            str(data["location"]),
            str(data["file_name"]),
            RetryPolicy(int(data["retries"]), int(data["retry_interval_s"])),
            datetime.fromisoformat(data["start"]) if data.get("start") else None,
            datetime.fromisoformat(data["stop"]) if data.get("stop") else None,
            data.get("request_id"),
            UploadStatus(data["state"]),
            int(data["attempts"]),
        )


class DiagnosticsBlock:
    """Builds and uploads diagnostics archives and logs, one at a time."""

    def __init__(
        self,
        store: FileJobStorage,
        clock: Clock,
        files: FilePort,
        *,
        station_id: str,
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.files = files
        self.station_id = station_id
        self._wake = wake
        self.job: UploadJob | None = None
        self._task: asyncio.Task[None] | None = None

    def request(
        self,
        kind: UploadKind,
        location: str,
        *,
        start: datetime | None = None,
        stop: datetime | None = None,
        retries: int | None = None,
        retry_interval_s: int | None = None,
        request_id: int | None = None,
    ) -> tuple[UpdateResult, str]:
        """Accept an upload (canceling the one in progress) and start it; the answer and the file's name.

        An unsupported scheme is accepted too and reported UploadFailed at once (GetDiagnostics has no way to
        refuse); GetLog's adapter refuses it before asking."""
        canceled = self.cancel()
        now = safe_now(self.clock)
        name = f"{_PREFIX[kind]}-{self.station_id}-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
        job = UploadJob(
            kind, location, name, RetryPolicy.of(retries, retry_interval_s), start, stop, request_id
        )
        self.job = job
        self.store.put_file_job(KIND, job.to_json())
        self._task = asyncio.get_running_loop().create_task(self._run(), name="upload")
        self._task.add_done_callback(_log_crash)
        return (UpdateResult.ACCEPTED_CANCELED if canceled else UpdateResult.ACCEPTED), name

    def status_now(self, kind: UploadKind) -> tuple[UploadStatus, int | None]:
        """The status of an upload of ``kind`` for a triggered notification (Idle when none runs)."""
        job = self.job
        if job is None or job.kind is not kind:
            return U.IDLE, None
        return (U.UPLOADING if job.state is U.UPLOADING else U.IDLE), job.request_id

    def cancel(self) -> bool:
        """Drop the upload in progress, if any; True if there was one."""
        if self.job is None:
            return False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.files.discard(self.job.file_name)
        self.job = None
        return True

    def resume(self) -> None:
        """After a (re)start: an upload the restart interrupted is reported failed (its archive is gone)."""
        try:
            data = self.store.file_job(KIND)
            job = UploadJob.from_json(data) if data is not None else None
        except (KeyError, ValueError, TypeError, StorageError):
            log.exception("persisted upload job unreadable; dropped")
            self.store.put_file_job(KIND, None)
            return
        if job is None:
            return
        self.job = job
        log.warning("the %s upload was interrupted by a restart; reporting it failed", job.kind.value)
        if job.state is U.IDLE:
            self._set(U.UPLOADING)  # the notification sequence stays Uploading -> UploadFailed
        self._set(U.UPLOAD_FAILED)

    async def stop(self) -> None:
        """Stop the background work."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _set(self, state: UploadStatus, **changes: Any) -> None:
        """Move the job on, persist it (removed once final) and queue its status if it changed."""
        job = self.job
        assert job is not None
        if state is not job.state and state not in TRANSITIONS.get(job.state, frozenset()):
            raise ValueError(f"upload cannot go from {job.state.value} to {state.value}")
        event = UploadStatusChanged(job.kind, state, job.request_id) if state is not job.state else None
        job = dataclasses.replace(job, state=state, **changes)
        self.job = None if state in FINAL else job
        self.store.put_file_job(KIND, None if state in FINAL else job.to_json(), event)
        if event is not None:
            self._wake()

    async def _run(self) -> None:
        job = self.job
        assert job is not None
        self._set(U.UPLOADING)
        if not self.files.supports(job.location):
            log.warning("upload location %.80r has an unsupported scheme", job.location)
            self._set(U.UPLOAD_FAILED)
            return
        try:
            path = await self.files.build_archive(job.kind.value, job.file_name, job.start, job.stop)
        except TransferError as exc:
            log.error("cannot build the %s archive: %s", job.kind.value, exc)
            self._set(U.UPLOAD_FAILED)
            return

        async def attempt(n: int) -> None:
            self._set(U.UPLOADING, attempts=n)

        try:
            await with_retries(
                lambda: self.files.upload(path, job.location, job.file_name),
                job.policy,
                before_attempt=attempt,
                what=f"{job.kind.value} upload",
            )
        except TransferError as exc:
            log.error("%s upload failed: %s", job.kind.value, exc)
            self._set(U.UPLOAD_FAILED)
        else:
            self._set(U.UPLOADED)
        finally:
            self.files.discard(job.file_name)


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("upload task crashed", exc_info=task.exception())
