"""Firmware management (OCPP 1.6 §4.5, §5.19 UpdateFirmware; Security whitepaper ed. 2 §4.4 SignedUpdateFirmware).

One update at a time, persisted at every step so a restart resumes it or reports it consistently:

    download (retries, at retrieveDate) -> [verify the signature] -> wait until no transaction runs
    -> install (the FilePort's hook) -> reboot -> Installed after the BootNotification

Statuses are queued events (``FirmwareStatusChanged``), so none is lost offline and Installed follows the boot
into the new firmware. An install is recorded as started before the installer runs: a crash during it is reported
as InstallationFailed after the restart, never run twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargepoint.core.events import FirmwareStatusChanged, SecurityEvent
from chargepoint.core.file_jobs import JobKeeper, RetryPolicy, delay_s, scheduled_at, with_retries
from chargepoint.core.model import FirmwareStatus, UpdateResult
from chargepoint.core.storage import FileJobStorage, KeyValueStorage, TransactionStorage
from chargepoint.errors import InstallError, StorageError, TransferError
from chargepoint.ports import Clock, FilePort, safe_now

log = logging.getLogger(__name__)

F = FirmwareStatus
KIND = "firmware"
VERSION_KEY = "firmware.version"
DOWNLOAD_NAME = "firmware.download"

# Every step an update may take; a state not listed as a source has none (it ends the job).
TRANSITIONS: dict[FirmwareStatus, frozenset[FirmwareStatus]] = {
    F.IDLE: frozenset({F.DOWNLOAD_SCHEDULED, F.DOWNLOADING}),
    F.DOWNLOAD_SCHEDULED: frozenset({F.DOWNLOADING}),
    F.DOWNLOADING: frozenset({F.DOWNLOADED, F.DOWNLOAD_FAILED}),
    # After a restart a downloaded file is fetched again (the work directory may not have survived).
    F.DOWNLOADED: frozenset(
        {F.SIGNATURE_VERIFIED, F.INVALID_SIGNATURE, F.INSTALL_SCHEDULED, F.INSTALLING, F.DOWNLOADING}
    ),
    F.SIGNATURE_VERIFIED: frozenset({F.INSTALL_SCHEDULED, F.INSTALLING, F.DOWNLOADING}),
    F.INSTALL_SCHEDULED: frozenset({F.INSTALLING, F.DOWNLOADING}),
    F.INSTALLING: frozenset({F.INSTALL_REBOOTING, F.INSTALLATION_FAILED}),
    F.INSTALL_REBOOTING: frozenset({F.INSTALLED}),
}
FINAL = frozenset({F.DOWNLOAD_FAILED, F.INVALID_SIGNATURE, F.INSTALLED, F.INSTALLATION_FAILED})
# A new request replaces a job in these states; an install in progress cannot be taken back.
CANCELABLE = frozenset(
    {F.IDLE, F.DOWNLOAD_SCHEDULED, F.DOWNLOADING, F.DOWNLOADED, F.SIGNATURE_VERIFIED, F.INSTALL_SCHEDULED}
)


class FirmwareStore(FileJobStorage, KeyValueStorage, TransactionStorage, Protocol):
    """What the firmware block persists: its job, the running version, and security events."""


@dataclass(frozen=True, slots=True)
class FirmwareRequest:
    """An UpdateFirmware (``signing_certificate``/``signature`` None) or SignedUpdateFirmware request."""

    location: str
    retrieve_at: datetime | None
    retries: int | None = None
    retry_interval_s: int | None = None
    request_id: int | None = None
    install_at: datetime | None = None
    signing_certificate: str | None = None
    signature: str | None = None

    @property
    def signed(self) -> bool:
        """A whitepaper SignedUpdateFirmware."""
        return self.signature is not None


@dataclass(frozen=True, slots=True)
class FirmwareJob:
    """An update in progress, as persisted."""

    request: FirmwareRequest
    retrieve_at: datetime
    policy: RetryPolicy
    state: FirmwareStatus = F.IDLE
    attempts: int = 0  # download attempts begun

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for the store."""
        r = self.request
        return {
            "location": r.location,
            "retrieve_at": self.retrieve_at.isoformat(),
            "install_at": r.install_at.isoformat() if r.install_at else None,
            "retries": self.policy.retries,
            "retry_interval_s": self.policy.interval_s,
            "request_id": r.request_id,
            "signing_certificate": r.signing_certificate,
            "signature": r.signature,
            "state": self.state.value,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FirmwareJob:
        """Inverse of ``to_json``; KeyError/ValueError/TypeError if it is not one."""
        retrieve_at = datetime.fromisoformat(data["retrieve_at"])
        install_at = data.get("install_at")
        request = FirmwareRequest(
            location=str(data["location"]),
            retrieve_at=retrieve_at,
            request_id=data.get("request_id"),
            install_at=datetime.fromisoformat(install_at) if install_at else None,
            signing_certificate=data.get("signing_certificate"),
            signature=data.get("signature"),
        )
        policy = RetryPolicy(int(data["retries"]), int(data["retry_interval_s"]))
        return cls(request, retrieve_at, policy, FirmwareStatus(data["state"]), int(data["attempts"]))


def running_version(configured: str, store: KeyValueStorage) -> str:
    """The firmware version to report in BootNotification: the one last installed, unless the configured
    version changed since (the charger was re-flashed another way and its config updated)."""
    try:
        text = store.get(VERSION_KEY)
        data = json.loads(text) if text else None
    except (StorageError, ValueError):
        log.exception("cannot read the installed firmware version")
        return configured
    if not isinstance(data, dict) or data.get("configured") != configured:
        return configured
    version = data.get("version")
    return version if isinstance(version, str) and version else configured


class FirmwareBlock:
    """Runs one firmware update at a time; the adapters call ``update`` and ``status_now``."""

    def __init__(
        self,
        store: FirmwareStore,
        clock: Clock,
        files: FilePort,
        *,
        configured_version: str,
        busy: Callable[[], bool],
        reboot: Callable[[], None],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.files = files
        self.configured_version = configured_version
        self._busy = busy  # True while any connector has a transaction: installing waits (charging goes on)
        self._reboot = reboot
        self._wake = wake
        self.jobs: JobKeeper[FirmwareJob] = JobKeeper(
            store,
            KIND,
            transitions=TRANSITIONS,
            final=FINAL,
            decode=FirmwareJob.from_json,
            event=lambda job, state: FirmwareStatusChanged(state, job.request.request_id),
            wake=wake,
        )
        self._connectors_changed: asyncio.Event | None = None  # made only while an install waits (fleets)

    @property
    def job(self) -> FirmwareJob | None:
        """The update in progress."""
        return self.jobs.job

    @property
    def installing(self) -> bool:
        """An install is running or done and the reboot into it is due: no new session may start."""
        return self.job is not None and self.job.state in (F.INSTALLING, F.INSTALL_REBOOTING)

    # commands
    def update(self, request: FirmwareRequest) -> UpdateResult:
        """Accept an update (replacing one that has not begun installing) and start it in the background."""
        if self.job is not None and self.job.state not in CANCELABLE:
            log.warning("firmware update refused: an install is in progress (%s)", self.job.state.value)
            return UpdateResult.REJECTED
        now = safe_now(self.clock)
        if request.signed:
            why = self.files.check_signing_certificate(request.signing_certificate or "", now)
            if why is not None:
                # Whitepaper ed. 2 §4.4: InvalidCertificate, and the InvalidFirmwareSigningCertificate event.
                log.warning("firmware signing certificate refused: %s", why)
                self._security_event("InvalidFirmwareSigningCertificate", why)
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
            log.info("rebooted into the new firmware")
            self.jobs.set(F.INSTALLED)
        else:
            if job.state in (F.DOWNLOADED, F.SIGNATURE_VERIFIED, F.INSTALL_SCHEDULED):
                # Its download succeeded; it is fetched (and verified) again with a fresh round of attempts.
                self.jobs.job = dataclasses.replace(job, attempts=0)
            log.info("resuming the firmware update (%s, %s attempts so far)", job.state.value, job.attempts)
            self.jobs.run(self._run)

    async def stop(self) -> None:
        """Stop the background work; the persisted job goes on at the next start."""
        await self.jobs.stop()

    def connector_changed(self, connector_id: int) -> None:
        """A connector changed state (a station listener): a waiting install looks again whether it may run."""
        if self._connectors_changed is not None:
            self._connectors_changed.set()

    # the update itself
    def _security_event(self, kind: str, info: str | None) -> None:
        self.store.queue(SecurityEvent(kind, safe_now(self.clock), (info or "")[:255] or None))
        self._wake()

    async def _run(self) -> None:
        job = self.job
        assert job is not None
        wait_s = delay_s(job.retrieve_at, safe_now(self.clock))
        if job.state is F.IDLE and wait_s > 0:
            self.jobs.set(F.DOWNLOAD_SCHEDULED)
        await asyncio.sleep(wait_s)
        request = job.request
        if not self.files.supports(request.location):
            log.warning("firmware location %.80r has an unsupported scheme", request.location)
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
                self._security_event("InvalidFirmwareSignature", request.location[:200])
                self.jobs.set(F.INVALID_SIGNATURE)
                return
            self.jobs.set(F.SIGNATURE_VERIFIED)
        await self._wait_for_install_time(request)
        self.jobs.set(F.INSTALLING)
        await self.store.flush()  # on disk before the installer runs: a crash now reports, never re-installs
        try:
            version = await self.files.install(path)
        except InstallError as exc:
            log.error("firmware install failed: %s", exc)
            self.files.discard(DOWNLOAD_NAME)
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
        now = safe_now(self.clock)
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
