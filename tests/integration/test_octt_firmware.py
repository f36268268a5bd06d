"""OCTT OCPP 1.6 charge-point cases of the FirmwareManagement profile (TC_044_x, TC_045_x), and the bad input of
issue 11: the real agent against the scripted central system, with real HTTP and FTP servers on 127.0.0.1."""

from __future__ import annotations

import io
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backend_stub.ocpp.server import utc_now_iso
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.core.file_jobs import MAX_RETRIES, MAX_SCHEDULE_AHEAD
from chargepoint.core.model import ResetKind
from chargepoint.core.security import EVENTS_PER_TYPE_PER_WINDOW
from chargepoint.core.storage import CertificateHashData, CertificateUse, InstalledCertificate
from tests.integration.conftest import RunningAgent, StartAgent, until
from tests.integration.file_servers import FtpFiles, HttpFiles, ftp_files, http_files
from tests.integration.octt_support import CP, incoming_calls, index, mark, quiet, start_session
from tests.integration.signing import make_chain, pem, sign

__all__ = ["ftp_files", "http_files"]  # fixtures

IMAGE = b"FIRMWARE 2.0.0\n" + bytes(range(256)) * 64  # the simulated installer reports version 2.0.0


def statuses_of(cs: CentralSystem, action: str, after: int = 0) -> list[str]:
    """The statuses of every ``action`` notification since ``after``, in order."""
    return [f.payload["status"] for f in incoming_calls(cs, after) if f.action == action]


async def wait_firmware(cs: CentralSystem, status: str, after: int = 0, timeout: float = 10) -> Any:
    return await cs.wait_for_call(
        "FirmwareStatusNotification", after=after, timeout=timeout, where=lambda p: p["status"] == status
    )


async def wait_diagnostics(cs: CentralSystem, status: str, after: int = 0, timeout: float = 10) -> Any:
    return await cs.wait_for_call(
        "DiagnosticsStatusNotification", after=after, timeout=timeout, where=lambda p: p["status"] == status
    )


async def update(cs: CentralSystem, location: str, **extra: Any) -> None:
    payload = {"location": location, "retrieveDate": utc_now_iso(), **extra}
    assert await cs.call(CP, "UpdateFirmware", payload) == {}


def boots(cs: CentralSystem, after: int = 0) -> list[dict[str, Any]]:
    return [f.payload for f in incoming_calls(cs, after) if f.action == "BootNotification"]


async def test_tc_044_1_firmware_update_download_and_install(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """TC_044_1_CS Firmware Update - Download and Install."""
    a = await start_agent()
    assert boots(cs)[0]["firmwareVersion"] == "0.1.0"
    http_files.files["/fw/2.0.0.bin"] = IMAGE
    after = mark(cs)
    await update(cs, f"{http_files.url}/fw/2.0.0.bin", retries=1, retryInterval=0)
    installed = await wait_firmware(cs, "Installed", after, timeout=20)
    assert statuses_of(cs, "FirmwareStatusNotification", after) == [
        "Downloading",
        "Downloaded",
        "Installing",
        "Installed",
    ]
    # Rebooted into the new firmware: a BootNotification with its version came between Installing and Installed.
    boot = await cs.wait_for_call("BootNotification", after=after)
    installing = await wait_firmware(cs, "Installing", after)
    assert index(cs, installing) < index(cs, boot) < index(cs, installed)
    assert boot.payload["firmwareVersion"] == "2.0.0"
    assert a.agent.resets == [ResetKind.SOFT]
    # The version survives a restart of the agent (persisted), and the job is gone.
    assert a.agent.store is not None and a.agent.store.file_job("firmware") is None
    # Security whitepaper ed. 2 critical events: the reboot is a ResetOrReboot that says why (no Reset was sent),
    # and the new firmware is a FirmwareUpdated naming its version.
    updated = await cs.wait_for_call(
        "SecurityEventNotification", after=after, where=lambda p: p["type"] == "FirmwareUpdated"
    )
    assert "2.0.0" in updated.payload["techInfo"]
    reboot = await cs.wait_for_call(
        "SecurityEventNotification", after=after, where=lambda p: p["type"] == "ResetOrReboot"
    )
    assert "firmware" in reboot.payload["techInfo"] and "central system" not in reboot.payload["techInfo"]


async def test_tc_044_2_firmware_update_download_failed(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """TC_044_2_CS Firmware Update - Download failed (a 404, retried as asked)."""
    a = await start_agent()
    after = mark(cs)
    await update(cs, f"{http_files.url}/fw/missing.bin", retries=2, retryInterval=0)
    await wait_firmware(cs, "DownloadFailed", after)
    assert statuses_of(cs, "FirmwareStatusNotification", after) == ["Downloading", "DownloadFailed"]
    assert http_files.requests.count(("GET", "/fw/missing.bin")) == 3  # 1 + 2 retries
    await quiet(0.3)
    assert a.agent.resets == [] and boots(cs, after) == []


async def test_tc_044_3_firmware_update_installation_failed(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """TC_044_3_CS Firmware Update - Installation failed (the installer refuses the image)."""
    a = await start_agent()
    http_files.files["/fw/bad.bin"] = b"FIRMWARE-FAIL\n" + IMAGE
    after = mark(cs)
    await update(cs, f"{http_files.url}/fw/bad.bin")
    await wait_firmware(cs, "InstallationFailed", after)
    assert statuses_of(cs, "FirmwareStatusNotification", after) == [
        "Downloading",
        "Downloaded",
        "Installing",
        "InstallationFailed",
    ]
    await quiet(0.3)
    assert a.agent.resets == [] and boots(cs, after) == []


async def test_tc_045_1_get_diagnostics(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles, tmp_path: Any
) -> None:
    """TC_045_1_CS Get Diagnostics: the archive holds the log lines within [startTime, stopTime]."""
    logfile = tmp_path / "agent.log"
    logfile.write_text(
        "2026-01-01 10:00:00,000 INFO old line\n"
        "2026-01-02 10:00:00,000 INFO kept line\n"
        "  a continuation of the kept line\n"
        "2026-01-03 10:00:00,000 INFO new line\n"
    )
    await start_agent(firmware={"log_files": [str(logfile)]})
    after = mark(cs)
    answer = await cs.call(
        CP,
        "GetDiagnostics",
        {
            "location": f"{http_files.url}/diag/",
            "startTime": "2026-01-02T00:00:00Z",
            "stopTime": "2026-01-02T23:59:59Z",
            "retries": 1,
            "retryInterval": 0,
        },
    )
    name = answer["fileName"]
    assert name.startswith("diagnostics-CP-1-") and name.endswith(".tar.gz")
    await wait_diagnostics(cs, "Uploaded", after)
    assert statuses_of(cs, "DiagnosticsStatusNotification", after) == ["Uploading", "Uploaded"]
    archive = http_files.uploads[f"/diag/{name}"]
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
        log_text = tar.extractfile("logs/agent.log").read().decode()  # type: ignore[union-attr]
    assert {"logs/agent.log", "config.toml", "store-summary.json"} <= set(names)
    assert "kept line" in log_text and "continuation" in log_text
    assert "old line" not in log_text and "new line" not in log_text


async def test_tc_045_2_get_diagnostics_upload_failed(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_045_2_CS Unable to upload diagnostics (nothing listens on the port), retried as asked."""
    a = await start_agent()
    await start_session(a, cs)
    after = mark(cs)
    answer = await cs.call(
        CP, "GetDiagnostics", {"location": "http://127.0.0.1:9/diag/", "retries": 1, "retryInterval": 0}
    )
    assert answer["fileName"].endswith(".tar.gz")
    await wait_diagnostics(cs, "UploadFailed", after)
    assert statuses_of(cs, "DiagnosticsStatusNotification", after) == ["Uploading", "UploadFailed"]
    assert a.state() == "CHARGING"


async def test_diagnostics_over_ftp_and_trigger(
    cs: CentralSystem, start_agent: StartAgent, ftp_files: FtpFiles
) -> None:
    """GetDiagnostics to an FTP directory; a triggered DiagnosticsStatusNotification says Idle afterwards."""
    await start_agent()
    (ftp_files.root / "up").mkdir()
    after = mark(cs)
    answer = await cs.call(CP, "GetDiagnostics", {"location": ftp_files.url("up/")})
    await wait_diagnostics(cs, "Uploaded", after)
    assert (ftp_files.root / "up" / answer["fileName"]).stat().st_size > 0
    mark_trigger = mark(cs)
    assert await cs.call(CP, "TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"}) == {
        "status": "Accepted"
    }
    frame = await wait_diagnostics(cs, "Idle", mark_trigger)
    assert frame.payload == {"status": "Idle"}


async def test_firmware_over_ftp_waits_for_the_transaction_to_end(
    cs: CentralSystem, start_agent: StartAgent, ftp_files: FtpFiles
) -> None:
    """Downloaded during a transaction, installed only after it ended: charging is never interrupted."""
    (ftp_files.root / "fw.bin").write_bytes(IMAGE)
    a = await start_agent()
    await start_session(a, cs)
    after = mark(cs)
    await update(cs, ftp_files.url("fw.bin"))
    await wait_firmware(cs, "Downloaded", after)
    trigger = mark(cs)
    assert await cs.call(CP, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}) == {
        "status": "Accepted"
    }
    # The current status (Downloaded: a plain 1.6 name for "waiting to install"), not Idle.
    assert (await wait_firmware(cs, "Downloaded", trigger)).payload == {"status": "Downloaded"}
    await quiet(0.5)
    assert "Installing" not in statuses_of(cs, "FirmwareStatusNotification", after)
    assert a.state() == "CHARGING"
    a.swipe("TAG1")  # the driver ends the session
    await cs.wait_for_call("StopTransaction", after=after)
    installed = await wait_firmware(cs, "Installed", after, timeout=20)
    stop = await cs.wait_for_call("StopTransaction", after=after)
    assert index(cs, stop) < index(cs, installed)
    assert boots(cs, after)[0]["firmwareVersion"] == "2.0.0"


# ------------------------------------------------------------------------------------------------------------
# Bad input: each gets DownloadFailed, nothing is installed, and the charger keeps charging.
# ------------------------------------------------------------------------------------------------------------


async def _download_fails(a: RunningAgent, cs: CentralSystem, location: str, **extra: Any) -> None:
    after = mark(cs)
    await update(cs, location, **{"retries": 0, "retryInterval": 0, **extra})
    await wait_firmware(cs, "DownloadFailed", after, timeout=20)
    sent = statuses_of(cs, "FirmwareStatusNotification", after)
    assert "Installing" not in sent and "Downloaded" not in sent, sent
    assert a.state() == "CHARGING"
    assert a.agent.resets == []


async def test_bad_firmware_locations_fail_while_charging_goes_on(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles, ftp_files: FtpFiles
) -> None:
    a = await start_agent(firmware={"max_download_bytes": 4096})
    await start_session(a, cs)
    http_files.files["/big.bin"] = IMAGE  # 16 KB, more than the 4 KB bound
    (ftp_files.root / "truncated.bin").write_bytes(
        IMAGE[:2048]
    )  # within the size bound: only the break fails it
    await _download_fails(a, cs, "http://firmware.invalid/fw.bin")  # does not resolve
    await _download_fails(a, cs, f"{http_files.url}/nothing-here.bin")  # 404
    await _download_fails(a, cs, f"{http_files.url}/big.bin")  # too big
    await _download_fails(a, cs, ftp_files.url("truncated.bin"))  # the server stops mid-transfer
    await _download_fails(a, cs, "file:///etc/passwd")  # unsupported scheme
    await _download_fails(a, cs, "http://127.0.0.1:9/fw.bin")  # closed port
    # Nothing of the failed downloads is left in the work directory.
    assert list((Path(a.agent.config.storage.path).parent / "files").glob("firmware*")) == []


async def test_huge_retries_and_far_future_dates_are_bounded(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    a = await start_agent()
    await start_session(a, cs)
    await _download_fails(a, cs, f"{http_files.url}/missing.bin", retries=2**31 - 1)
    assert http_files.requests.count(("GET", "/missing.bin")) == 1 + MAX_RETRIES
    # A retrieveDate in the year 9999 is accepted and taken as at most MAX_SCHEDULE_AHEAD away.
    after = mark(cs)
    await cs.call(
        CP,
        "UpdateFirmware",
        {"location": f"{http_files.url}/later.bin", "retrieveDate": "9999-12-31T23:59:59Z"},
    )
    firmware = a.station.firmware
    assert firmware is not None
    await until(lambda: firmware.job is not None, 5, "no job")
    assert firmware.job is not None
    assert firmware.job.retrieve_at <= datetime.now(UTC) + MAX_SCHEDULE_AHEAD + timedelta(minutes=1)
    await quiet(0.3)
    assert statuses_of(cs, "FirmwareStatusNotification", after) == []  # DownloadScheduled has no 1.6 name
    assert a.state() == "CHARGING"


# ------------------------------------------------------------------------------------------------------------
# Security whitepaper ed. 2: SignedUpdateFirmware against the installed ManufacturerRootCertificate, and GetLog.
# ------------------------------------------------------------------------------------------------------------


def _install_root(a: RunningAgent, root_pem: str) -> None:
    store = a.agent.store
    assert store is not None
    store.install_certificate(
        InstalledCertificate(
            CertificateUse.MANUFACTURER_ROOT,
            root_pem,
            CertificateHashData("aa", "bb", "1"),
            datetime.now(UTC),
        )
    )


def _signed(location: str, cert: str, signature: str, request_id: int = 5) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "retries": 0,
        "retryInterval": 0,
        "firmware": {
            "location": location,
            "retrieveDateTime": utc_now_iso(),
            "signingCertificate": cert,
            "signature": signature,
        },
    }


def signed_statuses(cs: CentralSystem, after: int) -> list[str]:
    return statuses_of(cs, "SignedFirmwareStatusNotification", after)


async def test_tc_080_secure_firmware_update_and_tc_081_invalid_signature(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """OCTT 1.6 Security TC_081 (invalid signing certificate or signature: refused, security event, nothing
    installed, charging goes on) then TC_080 (a verified update installed once the transaction ends)."""
    chain = make_chain()
    a = await start_agent()
    _install_root(a, pem(chain.root))
    await start_session(a, cs)
    http_files.files["/signed.bin"] = IMAGE
    url = f"{http_files.url}/signed.bin"

    # Untrusted, expired and non-CA-issued signing certificates: refused in the answer, with a security event.
    for bad in (chain.untrusted_signer, chain.expired_signer, chain.signed_by_non_ca):
        after = mark(cs)
        answer = await cs.call(
            CP, "SignedUpdateFirmware", _signed(url, pem(bad), sign(chain.signer_key, IMAGE))
        )
        assert answer == {"status": "InvalidCertificate"}
        await cs.wait_for_call(
            "SecurityEventNotification",
            after=after,
            where=lambda p: p["type"] == "InvalidFirmwareSigningCertificate",
        )
    # A trusted certificate but a signature over other bytes: InvalidSignature, nothing installed.
    after = mark(cs)
    bad_sig = sign(chain.signer_key, IMAGE + b"x")
    assert await cs.call(CP, "SignedUpdateFirmware", _signed(url, pem(chain.signer), bad_sig)) == {
        "status": "Accepted"
    }
    await cs.wait_for_call(
        "SignedFirmwareStatusNotification", after=after, where=lambda p: p["status"] == "InvalidSignature"
    )
    assert signed_statuses(cs, after) == ["Downloading", "Downloaded", "InvalidSignature"]
    await cs.wait_for_call(
        "SecurityEventNotification", after=after, where=lambda p: p["type"] == "InvalidFirmwareSignature"
    )
    assert a.state() == "CHARGING" and a.agent.resets == []
    # A good one: verified, then it waits for the transaction to end before installing.
    after = mark(cs)
    good = sign(chain.signer_key, IMAGE)
    assert await cs.call(CP, "SignedUpdateFirmware", _signed(url, pem(chain.signer), good, 6)) == {
        "status": "Accepted"
    }
    await cs.wait_for_call(
        "SignedFirmwareStatusNotification", after=after, where=lambda p: p["status"] == "InstallScheduled"
    )
    assert a.state() == "CHARGING"
    a.swipe("TAG1")
    installed = await cs.wait_for_call(
        "SignedFirmwareStatusNotification",
        after=after,
        timeout=20,
        where=lambda p: p["status"] == "Installed",
    )
    assert installed.payload == {"status": "Installed", "requestId": 6}
    assert signed_statuses(cs, after) == [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "InstallScheduled",
        "Installing",
        "InstallRebooting",
        "Installed",
    ]
    assert boots(cs, after)[0]["firmwareVersion"] == "2.0.0"


async def test_tc_079_get_security_log(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles, tmp_path: Path
) -> None:
    """OCTT 1.6 Security TC_079: GetLog SecurityLog uploaded with LogStatusNotification Uploading, Uploaded."""
    seclog = tmp_path / "security.log"
    seclog.write_text("2026-01-02 10:00:00,000 WARNING FailedToAuthenticateAtCentralSystem\n")
    await start_agent(firmware={"security_log_files": [str(seclog)], "upload_method": "POST"})
    after = mark(cs)
    answer = await cs.call(
        CP,
        "GetLog",
        {"logType": "SecurityLog", "requestId": 9, "log": {"remoteLocation": f"{http_files.url}/logs"}},
    )
    assert answer["status"] == "Accepted" and answer["filename"].startswith("security-log-CP-1-")
    await cs.wait_for_call("LogStatusNotification", after=after, where=lambda p: p["status"] == "Uploaded")
    assert [f.payload for f in incoming_calls(cs, after) if f.action == "LogStatusNotification"] == [
        {"status": "Uploading", "requestId": 9},
        {"status": "Uploaded", "requestId": 9},
    ]
    archive = http_files.uploads[f"/logs/{answer['filename']}"]
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert tar.getnames() == ["logs/security.log"]
    # An unsupported scheme is refused in the answer.
    rejected = await cs.call(
        CP, "GetLog", {"logType": "DiagnosticsLog", "requestId": 10, "log": {"remoteLocation": "gopher://x/"}}
    )
    assert rejected == {"status": "Rejected"}


async def test_no_session_starts_while_firmware_installs(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles, tmp_path: Path
) -> None:
    """An install ends in a reboot, so a card presented during it starts nothing (it would be cut off)."""
    script = tmp_path / "install.py"
    script.write_text("import time\ntime.sleep(1.5)\nprint('3.1.4')\n")
    a = await start_agent(firmware={"installer": "command", "install_command": [sys.executable, str(script)]})
    http_files.files["/fw.bin"] = IMAGE
    after = mark(cs)
    await update(cs, f"{http_files.url}/fw.bin")
    await wait_firmware(cs, "Installing", after)
    a.plug()
    a.swipe("TAG1")
    await wait_firmware(cs, "Installed", after, timeout=20)
    assert [f for f in incoming_calls(cs, after) if f.action == "StartTransaction"] == []
    assert boots(cs, after)[0]["firmwareVersion"] == "3.1.4"


async def test_a_new_update_replaces_one_still_downloading(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """A second UpdateFirmware during a slow download cancels it: only the second image is installed."""
    await start_agent()
    http_files.files["/old.bin"] = b"FIRMWARE 1.5.0\n" + IMAGE
    http_files.slow_once.add("/old.bin")  # ~17 s at 1 KB per 50 ms: still downloading when replaced
    http_files.files["/new.bin"] = b"FIRMWARE 2.5.0\n" + IMAGE
    after = mark(cs)
    await update(cs, f"{http_files.url}/old.bin")
    await wait_firmware(cs, "Downloading", after)
    await update(cs, f"{http_files.url}/new.bin")
    await wait_firmware(cs, "Installed", after, timeout=20)
    assert boots(cs, after)[0]["firmwareVersion"] == "2.5.0"
    assert statuses_of(cs, "FirmwareStatusNotification", after).count("Installing") == 1


async def test_refused_signing_certificates_are_bounded_like_every_security_event(
    cs: CentralSystem, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """A CSMS that keeps sending an untrusted signing certificate gets InvalidCertificate every time, but the
    InvalidFirmwareSigningCertificate events it causes go through the same per-type bound as every other
    security event (the outbox never drops them, so an unbounded stream would fill it)."""
    chain = make_chain()
    a = await start_agent()
    _install_root(a, pem(chain.root))
    after = mark(cs)
    request = _signed(f"{http_files.url}/x.bin", pem(chain.untrusted_signer), sign(chain.signer_key, IMAGE))
    for _ in range(EVENTS_PER_TYPE_PER_WINDOW + 3):
        assert await cs.call(CP, "SignedUpdateFirmware", request) == {"status": "InvalidCertificate"}
    # A later event of another type: once it arrives, every event queued before it has been sent (FIFO outbox).
    assert await cs.call(
        CP, "ChangeConfiguration", {"key": "AuthorizationKey", "value": "0123456789abcdef" * 2}
    ) == {"status": "Accepted"}
    await cs.wait_for_call(
        "SecurityEventNotification",
        after=after,
        where=lambda p: p["type"] == "ReconfigurationOfSecurityParameters",
    )
    refused = [
        f
        for f in incoming_calls(cs, after)
        if f.action == "SecurityEventNotification"
        and f.payload["type"] == "InvalidFirmwareSigningCertificate"
    ]
    assert len(refused) == EVENTS_PER_TYPE_PER_WINDOW
