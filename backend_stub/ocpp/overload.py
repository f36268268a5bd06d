"""The boot-storm gate: under overload a BootNotification is answered Pending with a retry interval, never dropped.

After a site power cut every charger connects and boots in the same second. Each accepted boot costs a store write
and brings a StatusNotification per connector; taken all at once they push the event loop's lag to seconds, CALLs
time out, chargers reconnect, and the retries make a second storm. OCPP lets the central system answer Pending with
the interval after which the charger sends BootNotification again (1.6 §4.2, 2.0.1 B02.FR.01), and a Pending
charger sends nothing else meanwhile. The gate answers so while the server is overloaded and gives each deferred
charger its own appointment, ``1 / boots_per_s`` after the previous one, so the retries come back at the rate the
server takes rather than all at once. Answering Pending costs no store write: it is cheaper than the boot it defers.

Two overload signals, either one enough: BootNotifications received but not answered yet (the loop is behind), and
the event loop's lag (it is busy with handshakes, which cannot be deferred). While overloaded, boots are still
handled at ``boots_per_s`` (a token bucket), the rate the appointments come back at: a server slowed by something
else than boots (a loaded machine) must not keep every charger Pending forever.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from backend_stub.looplag import LoopLag

__all__ = ["BOOT_STORM_DEFAULTS", "BootGate"]

# max_in_flight, max_lag_s, boots_per_s, min_interval_s, max_interval_s (the `serve` defaults)
BOOT_STORM_DEFAULTS = (200, 0.5, 200.0, 5, 300)
LAG_PROBE_S = 0.1
LAG_WINDOW = 5  # the lag is the worst of the last ~0.5 s: a storm shows at once, and ends soon after it does


class BootGate:
    """Decides whether a BootNotification is deferred (Pending) and after how long the charger retries."""

    def __init__(
        self,
        *,
        max_in_flight: int = BOOT_STORM_DEFAULTS[0],
        max_lag_s: float = BOOT_STORM_DEFAULTS[1],
        boots_per_s: float = BOOT_STORM_DEFAULTS[2],
        min_interval_s: int = BOOT_STORM_DEFAULTS[3],
        max_interval_s: int = BOOT_STORM_DEFAULTS[4],
        lag: LoopLag | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """Overloaded above ``max_in_flight`` unanswered boots or ``max_lag_s`` of loop lag; deferred chargers
        retry ``boots_per_s`` apart, after ``min_interval_s`` at the soonest and ``max_interval_s`` at the latest."""
        if not (
            max_in_flight >= 1 and max_lag_s > 0 and boots_per_s > 0 and 1 <= min_interval_s <= max_interval_s
        ):
            raise ValueError(
                "boot gate: need max_in_flight >= 1, max_lag_s > 0, boots_per_s > 0, 1 <= min <= max"
            )
        self.max_in_flight = max_in_flight
        self.max_lag_s = max_lag_s
        self.boots_per_s = boots_per_s
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.lag = lag if lag is not None else LoopLag(LAG_PROBE_S, LAG_WINDOW)
        self._clock = clock
        self._rng = rng or random.Random()
        self._next_slot = -math.inf  # the next free retry appointment (clock seconds)
        self._burst = max(1.0, boots_per_s)  # one second's worth of boots handled even while overloaded
        self._tokens = self._burst
        self._refilled = clock()
        self.in_flight = 0  # BootNotifications received and not answered yet
        self.deferred = 0  # Pending answers given because of overload, since start

    def arrived(self) -> None:
        """A BootNotification was received (call `answered` once it is answered or dropped)."""
        self.in_flight += 1

    def answered(self) -> None:
        """A BootNotification was answered (or its connection went away first)."""
        self.in_flight = max(0, self.in_flight - 1)

    def overload(self) -> str | None:
        """Why the server is overloaded now, or None when it is not."""
        if self.in_flight > self.max_in_flight:
            return f"{self.in_flight} BootNotifications waiting for an answer (over {self.max_in_flight})"
        lag_s = self.lag.lag_s
        if lag_s > self.max_lag_s:
            return f"event loop lag {lag_s:.2f} s (over {self.max_lag_s} s)"
        return None

    def admit(self) -> str | None:
        """None when this BootNotification is handled now; else why it is deferred (then call `defer`)."""
        reason = self.overload()
        if reason is None:
            return None
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self.boots_per_s)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return reason

    def defer(self) -> int:
        """The interval (whole seconds) a deferred charger waits before its next BootNotification.

        Appointments are handed out ``1 / boots_per_s`` apart from ``min_interval_s`` on; once the book reaches
        ``max_interval_s`` the rest are spread at random over the whole range (the server is far behind).
        """
        self.deferred += 1
        now = self._clock()
        slot = max(self._next_slot, now + self.min_interval_s)
        if slot - now > self.max_interval_s:
            return self._rng.randint(self.min_interval_s, self.max_interval_s)
        self._next_slot = slot + 1.0 / self.boots_per_s
        return max(self.min_interval_s, min(self.max_interval_s, math.ceil(slot - now)))

    def start(self) -> None:
        """Start measuring the loop lag (on the running loop)."""
        self.lag.start()

    async def stop(self) -> None:
        """Stop measuring."""
        await self.lag.stop()
