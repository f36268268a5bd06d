"""Compatibility names for the agent's tests, the simulator, benchmarks and the conformance package.

`CentralSystem` here is the scripted test server (`backend_stub.testing.server.ScriptedCentralSystem`); the
production transport is `backend_stub.ocpp.server.CentralSystem`.
"""

from backend_stub.ocpp.server import CALL, CALLERROR, CALLRESULT, tls_context
from backend_stub.testing.server import (
    NO_REPLY,
    CallErrorReply,
    Frame,
    HandlerResult,
    utc_now_iso,
)
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem

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
