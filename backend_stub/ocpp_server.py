"""Compatibility name for `backend_stub.ocpp.server` (used by the agent's tests, the simulator and loadtests)."""

from backend_stub.ocpp.server import (
    CALL,
    CALLERROR,
    CALLRESULT,
    NO_REPLY,
    CallErrorReply,
    CentralSystem,
    Frame,
    HandlerResult,
    tls_context,
    utc_now_iso,
)

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "NO_REPLY",
    "CallErrorReply",
    "CentralSystem",
    "Frame",
    "HandlerResult",
    "tls_context",
    "utc_now_iso",
]
