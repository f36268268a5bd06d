"""One error tree for the central system: CentralError > StoreError | CommandFailed | ApiError.

StoreError and its kinds (InvalidInput, NotFound, Conflict...) live with the store (`backend_stub.store`);
every other error class of the central system is here or derives from one here.
"""

from __future__ import annotations

from typing import Any, Final


class CentralError(Exception):
    """Root of every error the central system raises on purpose."""


class CommandFailed(CentralError):
    """A command to a charger did not get an answer: not connected, timed out, disconnected or a CallError."""

    # Codes of failures that are not a CallError from the charger (a CallError keeps the charger's errorCode).
    NOT_CONNECTED: Final = "NotConnected"
    TIMEOUT: Final = "Timeout"
    DISCONNECTED: Final = "Disconnected"
    # The command (or one of its values) does not exist in the charger's OCPP version; nothing was sent.
    NOT_IN_VERSION: Final = "NotInVersion"
    # The command does not fit the charger's own limits even when split (an entry over its BytesPerMessage, a list
    # over its LocalAuthListMaxLength, too few versions below the asked one for the parts); nothing more was sent.
    TOO_LARGE: Final = "TooLarge"

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        """Keep the failure code, its description and any CallError details."""
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details: dict[str, Any] = details if details is not None else {}

    @property
    def is_call_error(self) -> bool:
        """Whether the charger answered with a CallError (rather than not answering at all)."""
        return self.code not in (
            self.NOT_CONNECTED,
            self.TIMEOUT,
            self.DISCONNECTED,
            self.NOT_IN_VERSION,
            self.TOO_LARGE,
        )


class InvalidCommand(CentralError):
    """A raw command that cannot be sent: an action the charger's version lacks, or a payload off its schema."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        """``unknown``: the action (or its schema) does not exist, rather than the payload being invalid."""
        super().__init__(message)
        self.unknown = unknown


class NotConnected(CommandFailed, KeyError):
    """The charger is not connected (a KeyError too, as the server's `call` has always raised)."""

    def __init__(self, charger: str) -> None:
        """Name the charger."""
        super().__init__(self.NOT_CONNECTED, f"charger {charger!r} is not connected")
        self.charger = charger

    def __str__(self) -> str:
        """The description, as a KeyError's text (quoted)."""
        return repr(self.description)


class ApiError(CentralError):
    """An HTTP error answered as ``{"error": message, **extra}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        """Keep the status, message and extra JSON fields."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class FormError(CentralError, ValueError):
    """A form field is missing or malformed; the message is shown to the operator."""


class FieldRefused(FormError):
    """A well-formed field whose value is refused (a reservation ending in the past or beyond the maximum): the
    REST API answers 422 naming ``field``, the dashboard shows it like any form error."""

    def __init__(self, field: str, reason: str) -> None:
        """Name the field and say why."""
        super().__init__(f"{field}: {reason}")
        self.field = field
