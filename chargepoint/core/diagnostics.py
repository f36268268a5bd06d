"""Diagnostics and logs, the rules (OCPP 1.6 §5.9 GetDiagnostics, §6.13 DiagnosticsStatusNotification; Security
whitepaper ed. 2 GetLog / LogStatusNotification): one upload machinery for all three kinds, run by
``blocks/diagnostics.py``.

An archive of the logs within [start, stop], the configuration with its secrets redacted and a store summary is
built off the event loop, then uploaded with the central system's retries (bounded in ``file_jobs``). One upload at
a time: a new request cancels the one in progress (GetLog answers AcceptedCanceled). Persisted, so an upload
interrupted by a restart is reported as failed rather than forgotten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoint.core.file_jobs import RetryPolicy
from chargepoint.core.model import UploadKind, UploadStatus

log = logging.getLogger(__name__)

U = UploadStatus
KIND = "upload"

TRANSITIONS: dict[UploadStatus, frozenset[UploadStatus]] = {
    U.IDLE: frozenset({U.UPLOADING, U.UPLOAD_FAILED}),
    U.UPLOADING: frozenset({U.UPLOADED, U.UPLOAD_FAILED}),
}
FINAL = frozenset({U.UPLOADED, U.UPLOAD_FAILED})
FILE_PREFIX = {
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
