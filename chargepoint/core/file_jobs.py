"""What the firmware and diagnostics blocks share: the bounds on a CSMS's retries and dates, and the retry loop.

The central system chooses ``retries``, ``retryInterval`` and the dates (OCPP 1.6 §5.9 GetDiagnostics, §5.19
UpdateFirmware); a hostile or broken one sends 2^31 retries, an interval of a year, or the year 9999. They are
clamped here, once, so neither block can be kept busy for ever or overflow a date computation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from chargepoint.errors import TransferError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RETRIES = (
    10  # attempts after the first; OCPP leaves the bound to the charger ("if absent, the CP decides")
)
DEFAULT_RETRIES = 2
MAX_RETRY_INTERVAL_S = 3600
DEFAULT_RETRY_INTERVAL_S = 60
MAX_SCHEDULE_AHEAD = timedelta(days=30)  # a retrieveDate further ahead is taken as this far ahead


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a transfer is tried: 1 + ``retries`` attempts, ``interval_s`` apart."""

    retries: int
    interval_s: int

    @classmethod
    def of(cls, retries: int | None, interval_s: int | None) -> RetryPolicy:
        """The CSMS's values within our bounds (absent: our defaults; negative counts as 0)."""
        r = DEFAULT_RETRIES if retries is None else min(max(retries, 0), MAX_RETRIES)
        i = DEFAULT_RETRY_INTERVAL_S if interval_s is None else min(max(interval_s, 0), MAX_RETRY_INTERVAL_S)
        return cls(r, i)

    @property
    def attempts(self) -> int:
        """Attempts in all."""
        return 1 + self.retries


def scheduled_at(requested: datetime | None, now: datetime) -> datetime:
    """When to start a job the CSMS asked for at ``requested``: not before now, not after MAX_SCHEDULE_AHEAD."""
    if requested is None or requested < now:
        return now
    return min(requested, now + MAX_SCHEDULE_AHEAD)


def delay_s(until: datetime, now: datetime) -> float:
    """Seconds from ``now`` to ``until`` (0 if past)."""
    return max(0.0, (until - now).total_seconds())


async def with_retries(
    action: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    done_attempts: int = 0,
    before_attempt: Callable[[int], Awaitable[None]] | None = None,
    what: str = "transfer",
) -> T:
    """Run ``action`` until it succeeds or the policy's attempts are used up (``done_attempts`` of them were used
    before a restart); ``before_attempt(n)`` runs before attempt n (1-based, e.g. to persist it). The last
    TransferError propagates."""
    attempt = done_attempts
    while True:
        attempt += 1
        if attempt > policy.attempts:
            raise TransferError(f"{what}: no attempts left ({policy.attempts} used)")
        if before_attempt is not None:
            await before_attempt(attempt)
        try:
            return await action()
        except TransferError as exc:
            if attempt >= policy.attempts:
                raise
            log.warning(
                "%s attempt %s/%s failed (%s); retrying in %s s",
                what,
                attempt,
                policy.attempts,
                exc,
                policy.interval_s,
            )
        await asyncio.sleep(policy.interval_s)
