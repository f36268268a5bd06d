"""The diagnostics block: GetDiagnostics and GetLog uploads, one at a time, over the rules of
``core/diagnostics.py`` (OCPP 1.6 §5.9; Security whitepaper ed. 2 GetLog); the FilePort does the I/O."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.diagnostics import FILE_PREFIX, FINAL, KIND, TRANSITIONS, U, UploadJob
from chargepoint.core.events import UploadStatusChanged
from chargepoint.core.file_jobs import JobKeeper, RetryPolicy, shown, with_retries
from chargepoint.core.model import UpdateResult, UploadKind, UploadStatus
from chargepoint.errors import TransferError
from chargepoint.ports import FilePort

log = logging.getLogger(__name__)


def _status_event(job: UploadJob, state: UploadStatus) -> UploadStatusChanged:
    """The outbox event telling an upload's new state (a module function: a lambda per station costs memory)."""
    return UploadStatusChanged(job.kind, state, job.request_id)


class Diagnostics(FunctionalBlock):
    """Builds and uploads diagnostics archives and logs, one at a time."""

    __slots__ = ("ctx", "files", "jobs", "station_id")

    def __init__(self, ctx: StationContext, files: FilePort, *, station_id: str) -> None:
        self.ctx = ctx
        self.files = files
        self.station_id = station_id
        self.jobs: JobKeeper[UploadJob] = JobKeeper(
            ctx.store,
            KIND,
            transitions=TRANSITIONS,
            final=FINAL,
            decode=UploadJob.from_json,
            event=_status_event,
            wake=ctx.outbox_changed,
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
        now = self.ctx.now()
        name = f"{FILE_PREFIX[kind]}-{self.station_id}-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
        policy = RetryPolicy.of(retries, retry_interval_s)
        self.jobs.begin(UploadJob(kind, location, name, policy, start, stop, request_id), self._run)
        return (UpdateResult.ACCEPTED_CANCELED if canceled else UpdateResult.ACCEPTED), name

    def request_log(
        self,
        kind: UploadKind,
        location: str,
        *,
        start: datetime | None,
        stop: datetime | None,
        retries: int | None,
        retry_interval_s: int | None,
        request_id: int,
    ) -> tuple[UpdateResult, str]:
        """A GetLog (whitepaper ed. 2 §4.5, OCPP 2.0.1 N01): Rejected, with no file and the upload in progress
        left alone, for a location the station cannot upload to; otherwise as ``request``."""
        if not self.files.supports(location):
            return UpdateResult.REJECTED, ""
        return self.request(
            kind,
            location,
            start=start,
            stop=stop,
            retries=retries,
            retry_interval_s=retry_interval_s,
            request_id=request_id,
        )

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

    async def start(self) -> None:
        """After a (re)start: report an interrupted upload."""
        self.resume()

    def halt(self) -> list[asyncio.Task[Any]]:
        """The upload's task, to be cancelled."""
        return self.jobs.halt()

    def resume(self) -> None:
        """After a (re)start: an upload the restart interrupted is reported failed (its archive is gone)."""
        job = self.jobs.load()
        if job is None:
            return
        log.warning("the %s upload was interrupted by a restart; reporting it failed", job.kind.value)
        if job.state is U.IDLE:
            self.jobs.set(U.UPLOADING)  # the notification sequence stays Uploading -> UploadFailed
        self.jobs.set(U.UPLOAD_FAILED)

    async def _run(self) -> None:
        job = self.job
        assert job is not None
        self.jobs.set(U.UPLOADING)
        if not self.files.supports(job.location):
            log.warning("upload location %s has an unsupported scheme", shown(job.location))
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
