"""Log output of `serve`: ``--log-format text`` (human) or ``json`` (one object per line, for log shippers)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
MAX_FIELD_CHARS = 4096  # a peer's bytes quoted in a message must not make one line unbounded

# Attributes every LogRecord has; anything else came in through ``extra=`` and is written as a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _bounded(value: Any) -> Any:
    """JSON-able ``value``, long strings cut (repr for what json cannot write)."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "…"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC ISO 8601), level, logger, message, exc (if any) and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _bounded(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = _bounded(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str) -> None:
    """Send the root logger's INFO and above to stderr in ``log_format`` (one of `LOG_FORMATS`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


class RateLimitFilter(logging.Filter):
    """Let through at most `per_interval` records per kind (logger and start of the message) every `interval_s`.

    The first record of a new interval after suppressed ones carries "(N similar lines suppressed)", so a flood
    of refused connections or accept() errors costs a few lines per second, not hundreds of megabytes.
    """

    def __init__(
        self, per_interval: int = 5, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Allow `per_interval` lines per template and `interval_s`."""
        super().__init__()
        self.per_interval = per_interval
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[
            str, tuple[float, int, int]
        ] = {}  # template -> (window start, passed, suppressed)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to emit `record` (at most `per_interval` per template and interval)."""
        # The start of the message: a template ("refused %s from %s: ...") or, for a message formatted by its
        # caller (asyncio's "socket.accept() out of system resource\nsocket: <...>"), its fixed first words.
        key = f"{record.name}:{str(record.msg)[:40]}"
        now = self._clock()
        start, passed, suppressed = self._windows.get(key, (now, 0, 0))
        if now - start >= self.interval_s:
            start, passed = now, 0
        if passed >= self.per_interval:
            self._windows[key] = (start, passed, suppressed + 1)
            return False
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar lines suppressed)"
            suppressed = 0
        self._windows[key] = (start, passed + 1, suppressed)
        if len(self._windows) > 1000:  # templates are few; this only guards against a formatting mistake
            self._windows.clear()
        return True
