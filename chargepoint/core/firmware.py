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
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargepoint.core.events import FirmwareStatusChanged, SecurityEvent
from chargepoint.core.file_jobs import RetryPolicy, delay_s, scheduled_at, with_retries
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
        self._wake = wake  # something was queued in the outbox
        self.job: FirmwareJob | None = None
        self._task: asyncio.Task[None] | None = None
        self._connectors_changed = asyncio.Event()

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
                # Whitepaper ed. 2 §4.4 (A2.FR.?): InvalidCertificate, and the security event.
                log.warning("firmware signing certificate refused: %s", why)
                self._security_event("InvalidFirmwareSigningCertificate", why)
                return UpdateResult.INVALID_CERTIFICATE
            if not self.files.supports(request.location):
                return UpdateResult.REJECTED
        canceled = self.cancel()
        job = FirmwareJob(
            request,
            scheduled_at(request.retrieve_at, now),
            RetryPolicy.of(request.retries, request.retry_interval_s),
        )
        self.job = job
        self.store.put_file_job(KIND, job.to_json())
        self._start()
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
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.job = None
        self.files.discard(DOWNLOAD_NAME)
        return True

    # life cycle
    def resume(self) -> None:
        """After a (re)start: go on with a persisted update, or report how an interrupted one ended."""
        try:
            data = self.store.file_job(KIND)
            job = FirmwareJob.from_json(data) if data is not None else None
        except (KeyError, ValueError, TypeError, StorageError):
            log.exception("persisted firmware job unreadable; dropped")
            self.store.put_file_job(KIND, None)
            return
        if job is None:
            return
        self.job = job
        if job.state is F.INSTALLING:
            # The installer was interrupted: what it left is unknown, and it is never run a second time.
            log.error("firmware install was interrupted by a restart; reporting InstallationFailed")
            self._set(F.INSTALLATION_FAILED)
        elif job.state is F.INSTALL_REBOOTING:
            log.info("rebooted into the new firmware")
            self._set(F.INSTALLED)
        elif job.state in FINAL:
            self.store.put_file_job(KIND, None)
            self.job = None
        else:
            if job.state in (F.DOWNLOADED, F.SIGNATURE_VERIFIED, F.INSTALL_SCHEDULED):
                # Its download succeeded; it is fetched (and verified) again with a fresh round of attempts.
                self.job = dataclasses.replace(job, attempts=0)
            log.info("resuming the firmware update (%s, %s attempts so far)", job.state.value, job.attempts)
            self._start()

    async def stop(self) -> None:
        """Stop the background work; the persisted job goes on at the next start."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # the update itself
    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="firmware-update")
        self._task.add_done_callback(_log_crash)

    def _set(self, state: FirmwareStatus, **changes: Any) -> None:
        """Move the job on, persist it (removed once final) and queue its status if it changed."""
        job = self.job
        assert job is not None
        if state is not job.state and state not in TRANSITIONS.get(job.state, frozenset()):
            raise ValueError(f"firmware job cannot go from {job.state.value} to {state.value}")
        event = FirmwareStatusChanged(state, job.request.request_id) if state is not job.state else None
        job = dataclasses.replace(job, state=state, **changes)
        self.job = None if state in FINAL else job
        self.store.put_file_job(KIND, None if state in FINAL else job.to_json(), event)
        if event is not None:
            self._wake()

    async def _durable(self) -> None:
        """Wait until what was queued is on disk (off the event loop)."""
        await self.store.flush()

    def _security_event(self, kind: str, info: str | None) -> None:
        self.store.queue(SecurityEvent(kind, safe_now(self.clock), (info or "")[:255] or None))
        self._wake()

    async def _run(self) -> None:
        job = self.job
        assert job is not None
        wait_s = delay_s(job.retrieve_at, safe_now(self.clock))
        if job.state is F.IDLE and wait_s > 0:
            self._set(F.DOWNLOAD_SCHEDULED)
        await asyncio.sleep(wait_s)
        request = job.request
        if not self.files.supports(request.location):
            log.warning("firmware location %.80r has an unsupported scheme", request.location)
            self._set(F.DOWNLOADING, attempts=job.attempts + 1)
            self._set(F.DOWNLOAD_FAILED)
            return

        async def attempt(n: int) -> None:
            self._set(F.DOWNLOADING, attempts=n)

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
            self._set(F.DOWNLOAD_FAILED)
            return
        self._set(F.DOWNLOADED)
        if request.signed:
            ok = await self.files.verify_signature(
                path, request.signing_certificate or "", request.signature or ""
            )
            if not ok:
                # Whitepaper ed. 2 §4.4: InvalidSignature, the security event, and nothing is installed.
                log.error("firmware signature does not verify; not installing")
                self.files.discard(DOWNLOAD_NAME)
                self._security_event("InvalidFirmwareSignature", request.location[:200])
                self._set(F.INVALID_SIGNATURE)
                return
            self._set(F.SIGNATURE_VERIFIED)
        await self._wait_for_install_time(request)
        self._set(F.INSTALLING)
        await self._durable()  # on disk before the installer runs: a crash now reports, never re-installs
        try:
            version = await self.files.install(path)
        except InstallError as exc:
            log.error("firmware install failed: %s", exc)
            self.files.discard(DOWNLOAD_NAME)
            self._set(F.INSTALLATION_FAILED)
            return
        self.files.discard(DOWNLOAD_NAME)
        if version:
            self.store.put(
                VERSION_KEY, json.dumps({"version": version[:50], "configured": self.configured_version})
            )
        self._set(F.INSTALL_REBOOTING)
        await self._durable()
        log.warning("firmware installed (version %s); rebooting into it", version or "unchanged")
        self._reboot()

    async def _wait_for_install_time(self, request: FirmwareRequest) -> None:
        """Wait for installDateTime (signed updates) and until no transaction runs: charging is never cut off."""
        now = safe_now(self.clock)
        install_at = scheduled_at(request.install_at, now) if request.install_at else now
        if install_at > now or self._busy():
            self._set(F.INSTALL_SCHEDULED)
        await asyncio.sleep(delay_s(install_at, now))
        while self._busy():
            self._connectors_changed.clear()
            await self._connectors_changed.wait()

    def connector_changed(self, connector_id: int) -> None:
        """A connector changed state (a station listener): a waiting install looks again whether it may run."""
        self._connectors_changed.set()


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("firmware task crashed", exc_info=task.exception())
