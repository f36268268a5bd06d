"""The firmware block: runs one update at a time over the rules of ``core/firmware.py`` (OCPP 1.6 §4.5, §5.19;
Security whitepaper ed. 2 §4.4), persisted at every step; the FilePort does the I/O."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.events import FirmwareStatusChanged
from chargepoint.core.file_jobs import JobKeeper, RetryPolicy, delay_s, scheduled_at, shown, with_retries
from chargepoint.core.firmware import (
    CANCELABLE,
    DOWNLOAD_NAME,
    FINAL,
    KIND,
    TRANSITIONS,
    VERSION_KEY,
    F,
    FirmwareJob,
    FirmwareRequest,
    running_version,
)
from chargepoint.core.model import FirmwareStatus, UpdateResult
from chargepoint.core.security import SecurityEventType
from chargepoint.errors import InstallError, TransferError
from chargepoint.ports import FilePort

log = logging.getLogger(__name__)


def _status_event(job: FirmwareJob, state: FirmwareStatus) -> FirmwareStatusChanged:
    """The outbox event telling an update's new state (a module function: a lambda per station costs memory)."""
    return FirmwareStatusChanged(state, job.request.request_id)


HOLD = "firmware is being installed"  # why no session may start (the install ends in a reboot)


class Firmware(FunctionalBlock):
    """Runs one firmware update at a time; the adapters call ``update`` and ``status_now``."""

    __slots__ = ("_connectors_changed", "_reboot", "configured_version", "ctx", "files", "jobs", "store")

    def __init__(
        self, ctx: StationContext, files: FilePort, *, configured_version: str, reboot: Callable[[], None]
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.files = files
        self.configured_version = configured_version
        self._reboot = reboot
        self.jobs: JobKeeper[FirmwareJob] = JobKeeper(
            ctx.store,
            KIND,
            transitions=TRANSITIONS,
            final=FINAL,
            decode=FirmwareJob.from_json,
            event=_status_event,
            wake=ctx.outbox_changed,
        )
        ctx.listeners.append(self._connector_changed)
        self._connectors_changed: asyncio.Event | None = None  # made only while an install waits (fleets)

    @property
    def job(self) -> FirmwareJob | None:
        """The update in progress."""
        return self.jobs.job

    # commands
    def update(self, request: FirmwareRequest) -> UpdateResult:
        """Accept an update (replacing one that has not begun installing) and start it in the background."""
        if self.job is not None and self.job.state not in CANCELABLE:
            log.warning("firmware update refused: an install is in progress (%s)", self.job.state.value)
            return UpdateResult.REJECTED
        now = self.ctx.now()
        if request.signed:
            why = self.files.check_signing_certificate(request.signing_certificate or "", now)
            if why is not None:
                # Whitepaper ed. 2 §4.4: InvalidCertificate, and the InvalidFirmwareSigningCertificate event.
                log.warning("firmware signing certificate refused: %s", why)
                self.ctx.security_events.record(SecurityEventType.INVALID_FIRMWARE_SIGNING_CERTIFICATE, why)
                return UpdateResult.INVALID_CERTIFICATE
            if not self.files.supports(request.location):
                return UpdateResult.REJECTED
        canceled = self.cancel()
        policy = RetryPolicy.of(request.retries, request.retry_interval_s)
        self.jobs.begin(FirmwareJob(request, scheduled_at(request.retrieve_at, now), policy), self._run)
        return UpdateResult.ACCEPTED_CANCELED if canceled else UpdateResult.ACCEPTED

    def status_now(self) -> tuple[FirmwareStatus, int | None]:
        """The current status and request id, for a triggered notification (Idle when nothing runs)."""
        if self.job is None:
            return F.IDLE, None
        return self.job.state, self.job.request.request_id

    def cancel(self) -> bool:
        """Drop the job in progress, if any (not an install); True if there was one."""
        if self.job is None or self.job.state not in CANCELABLE:
            return False
        self.jobs.drop()
        self.files.discard(DOWNLOAD_NAME)
        return True

    # life cycle
    async def start(self) -> None:
        """After a (re)start: go on with a persisted update, or report how an interrupted one ended."""
        self.resume()

    def halt(self) -> list[asyncio.Task[Any]]:
        """The update's task, to be cancelled; the persisted job goes on at the next start."""
        self.ctx.sessions_held = None
        return self.jobs.halt()

    def resume(self) -> None:
        """After a (re)start: go on with a persisted update, or report how an interrupted one ended."""
        job = self.jobs.load()
        if job is None:
            return
        if job.state is F.INSTALLING:
            # The installer was interrupted: what it left is unknown, and it is never run a second time.
            log.error("firmware install was interrupted by a restart; reporting InstallationFailed")
            self.jobs.set(F.INSTALLATION_FAILED)
        elif job.state is F.INSTALL_REBOOTING:
            version = running_version(self.configured_version, self.store)
            log.info("rebooted into the new firmware (%s)", version)
            self.jobs.set(F.INSTALLED)
            # Security whitepaper ed. 2 (and OCPP 2.0.1 A04): FirmwareUpdated is a critical security event.
            self.ctx.security_events.record(
                SecurityEventType.FIRMWARE_UPDATED,
                f"firmware {version} installed (request {job.request.request_id})",
            )
        else:
            if job.state in (F.DOWNLOADED, F.SIGNATURE_VERIFIED, F.INSTALL_SCHEDULED):
                # Its download succeeded; it is fetched (and verified) again with a fresh round of attempts.
                self.jobs.job = dataclasses.replace(job, attempts=0)
            log.info("resuming the firmware update (%s, %s attempts so far)", job.state.value, job.attempts)
            self.jobs.run(self._run)

    def _busy(self) -> bool:
        """True while any connector has a transaction: installing waits (charging goes on)."""
        return any(c.transaction is not None for c in self.ctx.connectors.values())

    def _connector_changed(self, connector_id: int) -> None:
        """A connector changed state (a station listener): a waiting install looks again whether it may run."""
        if self._connectors_changed is not None:
            self._connectors_changed.set()

    # the update itself
    async def _run(self) -> None:
        job = self.job
        assert job is not None
        wait_s = delay_s(job.retrieve_at, self.ctx.now())
        if job.state is F.IDLE and wait_s > 0:
            self.jobs.set(F.DOWNLOAD_SCHEDULED)
        await asyncio.sleep(wait_s)
        request = job.request
        if not self.files.supports(request.location):
            log.warning("firmware location %s has an unsupported scheme", shown(request.location))
            self.jobs.set(F.DOWNLOADING, attempts=job.attempts + 1)
            self.jobs.set(F.DOWNLOAD_FAILED)
            return

        async def attempt(n: int) -> None:
            self.jobs.set(F.DOWNLOADING, attempts=n)

        try:
            path = await with_retries(
                lambda: self.files.download(request.location, DOWNLOAD_NAME),
                job.policy,
                done_attempts=job.attempts,
                before_attempt=attempt,
                what="firmware download",
            )
        except TransferError as exc:
            log.error("firmware download failed: %s", exc)
            self.files.discard(DOWNLOAD_NAME)
            self.jobs.set(F.DOWNLOAD_FAILED)
            return
        self.jobs.set(F.DOWNLOADED)
        if request.signed:
            ok = await self.files.verify_signature(
                path, request.signing_certificate or "", request.signature or ""
            )
            if not ok:
                # Whitepaper ed. 2 §4.4: InvalidSignature, the InvalidFirmwareSignature event, nothing installed.
                log.error("firmware signature does not verify; not installing")
                self.files.discard(DOWNLOAD_NAME)
                self.ctx.security_events.record(
                    SecurityEventType.INVALID_FIRMWARE_SIGNATURE, shown(request.location, 200)
                )
                self.jobs.set(F.INVALID_SIGNATURE)
                return
            self.jobs.set(F.SIGNATURE_VERIFIED)
        await self._wait_for_install_time(request)
        self.jobs.set(F.INSTALLING)
        self.ctx.sessions_held = HOLD
        await self.store.flush()  # on disk before the installer runs: a crash now reports, never re-installs
        try:
            version = await self.files.install(path)
        except InstallError as exc:
            log.error("firmware install failed: %s", exc)
            self.files.discard(DOWNLOAD_NAME)
            self.ctx.sessions_held = None
            self.jobs.set(F.INSTALLATION_FAILED)
            return
        self.files.discard(DOWNLOAD_NAME)
        if version:
            record = {"version": version[:50], "configured": self.configured_version}
            self.store.put(VERSION_KEY, json.dumps(record))
        self.jobs.set(F.INSTALL_REBOOTING)
        await self.store.flush()
        log.warning("firmware installed (version %s); rebooting into it", version or "unchanged")
        self._reboot()

    async def _wait_for_install_time(self, request: FirmwareRequest) -> None:
        """Wait for installDateTime (signed updates) and until no transaction runs: charging is never cut off."""
        now = self.ctx.now()
        install_at = scheduled_at(request.install_at, now) if request.install_at else now
        if install_at > now or self._busy():
            self.jobs.set(F.INSTALL_SCHEDULED)
        await asyncio.sleep(delay_s(install_at, now))
        changed = self._connectors_changed = asyncio.Event()
        try:
            while self._busy():
                changed.clear()
                await changed.wait()
        finally:
            self._connectors_changed = None
