"""OCPP 2.0.1 charging-station cases that move files: block L, firmware (TC_L_NN_CS: UpdateFirmware L01/L02,
FirmwareStatusNotification), and block N, logs (TC_N_NN_CS: GetLog N01, LogStatusNotification).

The runner serves and receives the files itself (``conformance/fileserver.py`` on 127.0.0.1). Each case checks
the whole status sequence for its requestId, not only the last status, and that a log said Uploaded arrived.
Signed firmware that must install (TC_L_01) needs a manufacturer root on the station first (InstallCertificate,
block M), so only the cases that end before the signature check are here.
"""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.fileserver import FileServer, serve_files
from conformance.model import Case, Fail, Step
from conformance.v201.charger_cases import Ctx, StepFn, check_frames, to_idle
from conformance.v201.charger_smart import utc_text

__all__ = ["CASES"]

FIRMWARE, DIAGNOSTICS = "L FirmwareManagement", "N Diagnostics"
CASES: list[Case[Ctx]] = []
_ids = itertools.count(6101)  # requestIds of the runner's UpdateFirmware and GetLog


def add(
    id: str, title: str, block: str, *steps: tuple[str, StepFn], cleanup: tuple[tuple[str, StepFn], ...] = ()
) -> None:
    """An L or N case: its steps, the frame check, its cleanup, then back to idle."""
    all_steps = (*steps, ("only valid frames, allowed status transitions, whole transactions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(Step[Ctx](t, f) for t, f in all_steps),
            timeout_s=90,
            cleanup=tuple(Step[Ctx](t, f) for t, f in (*cleanup, ("back to idle", to_idle))),
        )
    )


def statuses(ctx: Ctx, action: str, request_id: int, after: int) -> list[str]:
    """The statuses ``action`` (Firmware/LogStatusNotification) reported for ``request_id`` since ``after``."""
    return [
        str(f.payload.get("status"))
        for f in ctx.calls_since(action, after)
        if f.payload.get("requestId") == request_id
    ]


async def until(
    ctx: Ctx, action: str, request_id: int, after: int, final: str, timeout_s: float = 40
) -> list[str]:
    """Wait for ``action`` with status ``final`` for ``request_id``; the statuses of that request up to it."""
    await ctx.wait_call(
        action,
        after,
        lambda p: p.get("requestId") == request_id and p.get("status") == final,
        timeout_s,
        f"{action}Request status {final} for requestId {request_id}",
    )
    return statuses(ctx, action, request_id, after)


def expect_sequence(what: str, got: list[str], want: list[str]) -> None:
    """``got`` must be ``want`` exactly (each status once, in order)."""
    if got != want:
        raise Fail(f"{what} statuses {got}, expected {' then '.join(want)}")


# ================================================================================================ L firmware


async def update(ctx: Ctx, server: FileServer, path: str, expected: tuple[str, ...], **firmware: Any) -> int:
    """UpdateFirmware of ``server``'s ``path`` (no retries); the status must be one of ``expected``."""
    request_id = next(_ids)
    body = {
        "requestId": request_id,
        "retries": 0,
        "retryInterval": 0,
        "firmware": {
            "location": f"{server.url}{path}",
            "retrieveDateTime": utc_text(datetime.now(UTC)),
            **firmware,
        },
    }
    await ctx.expect_answer("UpdateFirmware", body, "status", *expected)
    return request_id


async def download_failed(ctx: Ctx) -> None:
    """A location that answers 404: Downloading, then DownloadFailed for the requestId, nothing installed (L01.FR.?)."""
    async with serve_files({}) as server:
        m = ctx.at()
        rid = await update(ctx, server, "/missing.bin", ("Accepted",))
        got = await until(ctx, "FirmwareStatusNotification", rid, m, "DownloadFailed")
    expect_sequence("FirmwareStatusNotification", got, ["Downloading", "DownloadFailed"])
    if ctx.calls_since("BootNotification", m):
        raise Fail("the station rebooted after a failed download")


async def install_scheduled_then_replaced(ctx: Ctx) -> None:
    """installDateTime an hour ahead: Downloading, Downloaded, InstallScheduled (L01.FR.?); then (TC_L_10) a new
    request replaces it: AcceptedCanceled, and the new one runs (here to DownloadFailed)."""
    image = b"conformance firmware image\n" * 64
    async with serve_files({"/fw.bin": image}) as server:
        m = ctx.at()
        later = utc_text(datetime.now(UTC) + timedelta(hours=1))
        first = await update(ctx, server, "/fw.bin", ("Accepted",), installDateTime=later)
        got = await until(ctx, "FirmwareStatusNotification", first, m, "InstallScheduled")
        expect_sequence("FirmwareStatusNotification", got, ["Downloading", "Downloaded", "InstallScheduled"])
        ctx.vars["scheduled"] = True
        m2 = ctx.at()
        second = await update(ctx, server, "/missing.bin", ("AcceptedCanceled",))
        ctx.vars["scheduled"] = False
        got = await until(ctx, "FirmwareStatusNotification", second, m2, "DownloadFailed")
    expect_sequence("FirmwareStatusNotification", got, ["Downloading", "DownloadFailed"])
    if ctx.calls_since("BootNotification", m):
        raise Fail("the station installed (rebooted) although the scheduled install was replaced")


async def cancel_scheduled(ctx: Ctx) -> None:
    """Cleanup: a scheduled install left behind is replaced by a request that fails to download (best effort)."""
    if not ctx.vars.get("scheduled"):
        return
    async with serve_files({}) as server:
        with contextlib.suppress(Exception):
            await update(ctx, server, "/missing.bin", ("Accepted", "AcceptedCanceled"))
            await ctx.quiet(2)


async def firmware_idle(ctx: Ctx) -> None:
    """TriggerMessage FirmwareStatusNotification with no update running: Accepted, status Idle, no requestId (F06)."""
    m = ctx.at()
    await ctx.expect_answer(
        "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}, "status", "Accepted"
    )
    frame = await ctx.wait_call(
        "FirmwareStatusNotification", m, timeout_s=10, what="FirmwareStatusNotificationRequest"
    )
    if frame.payload.get("status") != "Idle" or "requestId" in frame.payload:
        raise Fail(
            f"triggered FirmwareStatusNotificationRequest {frame.payload}, expected status Idle without requestId"
        )


add(
    "TC_L_07_CS",
    "Secure Firmware Update - DownloadFailed",
    FIRMWARE,
    ("UpdateFirmware of a missing file: Downloading, DownloadFailed", download_failed),
)
add(
    "TC_L_10_CS",
    "Secure Firmware Update - AcceptedCanceled",
    FIRMWARE,
    ("InstallScheduled, then a new request: AcceptedCanceled", install_scheduled_then_replaced),
    cleanup=(("no install left scheduled", cancel_scheduled),),
)
add(
    "TC_F_18_CS",
    "Trigger message - FirmwareStatusNotification - Idle",
    "F RemoteControl",
    ("TriggerMessage FirmwareStatusNotification: Idle", firmware_idle),
)


# ================================================================================================ N logs


def get_log(log_type: str, reachable: bool) -> StepFn:
    """GetLog ``log_type`` to our server (or to a port nobody listens on): Accepted with a filename; Uploading
    then Uploaded (and the file arrived) or UploadFailure for its requestId (N01.FR.?)."""

    async def run(ctx: Ctx) -> None:
        async with serve_files({}) as server:
            location = f"{server.url}/logs" if reachable else "http://127.0.0.1:9/logs"
            m = ctx.at()
            rid = next(_ids)
            answer = await ctx.expect_answer(
                "GetLog",
                {"logType": log_type, "requestId": rid, "retries": 0, "log": {"remoteLocation": location}},
                "status",
                "Accepted",
            )
            if not answer.get("filename"):
                raise Fail(
                    "GetLogResponse Accepted without a filename (N01.FR.?: the file the station will upload)"
                )
            final = "Uploaded" if reachable else "UploadFailure"
            got = await until(ctx, "LogStatusNotification", rid, m, final)
            expect_sequence("LogStatusNotification", got, ["Uploading", final])
            if reachable and not any(v for v in server.uploads.values()):
                raise Fail("LogStatusNotification said Uploaded but nothing reached the remoteLocation")

    return run


add(
    "TC_N_25_CS",
    "Retrieve Log Information - Diagnostics Log - Success",
    DIAGNOSTICS,
    ("GetLog DiagnosticsLog: Uploading, Uploaded", get_log("DiagnosticsLog", True)),
)
add(
    "TC_N_26_CS",
    "Retrieve Log Information - Diagnostics Log - Upload failed",
    DIAGNOSTICS,
    ("GetLog DiagnosticsLog to a closed port: Uploading, UploadFailure", get_log("DiagnosticsLog", False)),
)
add(
    "TC_N_35_CS",
    "Retrieve Log Information - Security Log - Success",
    DIAGNOSTICS,
    ("GetLog SecurityLog: Uploading, Uploaded", get_log("SecurityLog", True)),
)
