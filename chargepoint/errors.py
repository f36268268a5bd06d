"""One error tree for the agent; libraries' errors are translated at the boundary."""

from __future__ import annotations


class ChargePointError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(ChargePointError):
    """A configuration value is missing or invalid; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class StorageError(ChargePointError):
    """The agent's SQLite store cannot be written (full disk, read-only, corrupt)."""


class HardwareError(ChargePointError):
    """A hardware port failed."""


class MeterError(HardwareError):
    """The energy meter did not answer or answered garbage."""


class RelayError(HardwareError):
    """The relay (contactor) did not switch or its feedback disagrees."""


class ReaderError(HardwareError):
    """The RFID reader is gone or broken."""


class CsmsError(ChargePointError):
    """Talking to the central system failed."""


class CsmsUnavailable(CsmsError):
    """The central system is not reachable right now (offline, not booted, or timed out)."""


class CsmsRejected(CsmsError):
    """The central system answered a CALL with a CallError."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description


class MessageTooLarge(CsmsRejected):
    """A CALL over BytesPerMessage that could not be made to fit: never sent, because the central system refuses
    such a frame by dropping the link (and a queued message would then be sent again for ever). Callers take it as
    a refusal of that one message; the outbox keeps it as a dead letter at once (retrying cannot shrink it)."""

    def __init__(self, action: str, size: int, limit: int) -> None:
        super().__init__("MessageTooLarge", f"{action} of {size} bytes is over BytesPerMessage ({limit})")
        self.action = action
        self.size = size
        self.limit = limit


class TransferError(ChargePointError):
    """A file could not be downloaded or uploaded (unreachable, refused, too big, too slow, bad scheme)."""


class InstallError(ChargePointError):
    """Firmware could not be installed (no installer, the hook failed or timed out)."""
