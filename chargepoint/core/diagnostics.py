"""Diagnostics and logs (OCPP 1.6 §5.9 GetDiagnostics, §6.13 DiagnosticsStatusNotification; Security whitepaper
ed. 2 GetLog / LogStatusNotification): one upload machinery for all three kinds.

An archive of the logs within [start, stop], the configuration with its secrets redacted and a store summary is
built off the event loop, then uploaded with the central system's retries (bounded in ``file_jobs``). One upload at
a time: a new request cancels the one in progress (GetLog answers AcceptedCanceled). Persisted, so an upload
interrupted by a restart is reported as failed rather than forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoint.core.events import UploadStatusChanged
from chargepoint.core.file_jobs import JobKeeper, RetryPolicy, with_retries
from chargepoint.core.model import UpdateResult, UploadKind, UploadStatus
from chargepoint.core.storage import FileJobStorage
from chargepoint.errors import TransferError
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
        self.clock = clock
        self.files = files
        self.station_id = station_id
        self.jobs: JobKeeper[UploadJob] = JobKeeper(
            store,
            KIND,
            transitions=TRANSITIONS,
            final=FINAL,
            decode=UploadJob.from_json,
            event=lambda job, state: UploadStatusChanged(job.kind, state, job.request_id),
            wake=wake,
        )

    @property
    def job(self) -> UploadJob | None:
        """The upload in progress."""
        return self.jobs.job

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
        policy = RetryPolicy.of(retries, retry_interval_s)
        self.jobs.begin(UploadJob(kind, location, name, policy, start, stop, request_id), self._run)
        return (UpdateResult.ACCEPTED_CANCELED if canceled else UpdateResult.ACCEPTED), name

    def status_now(self, kind: UploadKind) -> tuple[UploadStatus, int | None]:
        """The status of an upload of ``kind`` for a triggered notification (Idle when none runs)."""
        job = self.job
        if job is None or job.kind is not kind:
            return U.IDLE, None
        return (U.UPLOADING if job.state is U.UPLOADING else U.IDLE), job.request_id

    def cancel(self) -> bool:
        """Drop the upload in progress, if any; True if there was one."""
        job = self.job
        if job is None:
            return False
        self.jobs.drop()
        self.files.discard(job.file_name)
        return True

    def resume(self) -> None:
        """After a (re)start: an upload the restart interrupted is reported failed (its archive is gone)."""
        job = self.jobs.load()
        if job is None:
            return
        log.warning("the %s upload was interrupted by a restart; reporting it failed", job.kind.value)
        if job.state is U.IDLE:
            self.jobs.set(U.UPLOADING)  # the notification sequence stays Uploading -> UploadFailed
        self.jobs.set(U.UPLOAD_FAILED)

    async def stop(self) -> None:
        """Stop the background work."""
        await self.jobs.stop()

    async def _run(self) -> None:
        job = self.job
        assert job is not None
        self.jobs.set(U.UPLOADING)
        if not self.files.supports(job.location):
            log.warning("upload location %.80r has an unsupported scheme", job.location)
            self.jobs.set(U.UPLOAD_FAILED)
            return
        try:
            path = await self.files.build_archive(job.kind.value, job.file_name, job.start, job.stop)
        except TransferError as exc:
            log.error("cannot build the %s archive: %s", job.kind.value, exc)
            self.jobs.set(U.UPLOAD_FAILED)
            return

        async def attempt(n: int) -> None:
            self.jobs.set(U.UPLOADING, attempts=n)

        try:
            await with_retries(
                lambda: self.files.upload(path, job.location, job.file_name),
                job.policy,
                before_attempt=attempt,
                what=f"{job.kind.value} upload",
            )
        except TransferError as exc:
            log.error("%s upload failed: %s", job.kind.value, exc)
            self.jobs.set(U.UPLOAD_FAILED)
        else:
            self.jobs.set(U.UPLOADED)
        finally:
            self.files.discard(job.file_name)
