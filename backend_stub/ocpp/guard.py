"""Limits on what strangers can consume: TCP connections (per address and in total), password guesses, log lines.

Nothing here knows OCPP: `ocpp_server.CentralSystem` asks these objects at the TCP accept, at the HTTP request head
and at the WebSocket handshake.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backend_stub.domain.commands import Lockout
from backend_stub.logs import RateLimitFilter

__all__ = [
    "AuthThrottle",
    "ConnectionGuard",
    "Lockout",
    "RateLimitFilter",
    "accept_backlog",
    "default_max_connections",
    "listen_backlog",
]

# File descriptors kept free of connections: the SQLite store and its WAL, the log file, the listener, pipes.
FD_RESERVE = 256


def default_max_connections() -> int:
    """The global connection cap: the soft RLIMIT_NOFILE minus a reserve for files (256, or a quarter if less)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(2, soft - min(FD_RESERVE, soft // 4))


def accept_backlog(max_connections: int) -> int:
    """The listen backlog, which asyncio also uses as the most sockets it accepts in one go.

    Those sockets hold file descriptors for a few event-loop iterations before `ConnectionGuard.admit` sees
    (and may refuse) them, and a few bursts can be in flight: one burst gets a quarter of the descriptors left
    above `max_connections`, between 16 and 4096 (64 with the default cap).
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, (soft - max_connections) // 4))


def listen_backlog(somaxconn: Path = Path("/proc/sys/net/core/somaxconn")) -> int:
    """The kernel accept queue a listener asks for: the system's cap (net.core.somaxconn), 4096 if unknown.

    The kernel holds a connection there until accept(); it costs the server no descriptor, so a boot storm of
    thousands of chargers is best queued there in full (the kernel clamps to somaxconn anyway).
    """
    try:
        return max(128, int(somaxconn.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 4096


# ---------------------------------------------------------------------------------------------- connections


@dataclass(eq=False)
class _Tracked:
    address: str
    busy: bool = False  # a request (or a WebSocket) is being handled


class ConnectionGuard:
    """Counts open TCP connections per peer address and in total, and decides which to refuse or evict.

    A connection that has not sent a complete request head yet is "idle". When the total cap is reached, the
    oldest idle connection is closed to make room (a flood of idle or slowloris sockets cannot lock out the
    REST API); when none is idle the new one is refused. WebSockets are capped at `max_websockets`, below the
    total by `api_reserve`, so that OCPP connections never take the last slots the REST API needs.
    """

    def __init__(
        self, max_connections: int | None = None, per_address: int | None = None, api_reserve: int = 64
    ) -> None:
        """Caps: `max_connections` in total (default: below the fd limit), `per_address` (None: no cap)."""
        self.max_connections = max_connections if max_connections is not None else default_max_connections()
        self.per_address = per_address
        self.api_reserve = api_reserve
        self._open: dict[asyncio.Transport, _Tracked] = {}
        self._idle: OrderedDict[asyncio.Transport, None] = OrderedDict()  # oldest first
        self._by_address: dict[str, int] = {}
        self.refused = 0
        self.evicted = 0

    @property
    def max_websockets(self) -> int:
        """How many WebSockets may be open: the total cap minus the REST API's reserve."""
        return max(1, self.max_connections - self.api_reserve)

    @property
    def open_count(self) -> int:
        """TCP connections open now."""
        return len(self._open)

    def connections_from(self, address: str) -> int:
        """TCP connections open now from `address`."""
        return self._by_address.get(address, 0)

    def admit(self, transport: asyncio.Transport) -> str | None:
        """Track a new connection; returns why it must be refused, or None. May close an idle one."""
        address = _address(transport)
        if self.per_address is not None and self._by_address.get(address, 0) >= self.per_address:
            self.refused += 1
            return f"{address} has {self.per_address} connections open (the per-address cap)"
        if len(self._open) >= self.max_connections:
            if not self._idle:
                self.refused += 1
                return f"{len(self._open)} connections open (the global cap), none of them idle"
            oldest, _ = self._idle.popitem(last=False)
            self.evicted += 1
            oldest.abort()  # its connection_lost releases it
            self._release(oldest)
        self._open[transport] = _Tracked(address)
        self._idle[transport] = None
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return None

    def release(self, transport: asyncio.Transport) -> None:
        """Forget a closed connection (idempotent)."""
        self._release(transport)

    def _release(self, transport: asyncio.Transport) -> None:
        tracked = self._open.pop(transport, None)
        if tracked is None:
            return
        self._idle.pop(transport, None)
        left = self._by_address[tracked.address] - 1
        if left:
            self._by_address[tracked.address] = left
        else:
            del self._by_address[tracked.address]

    def busy(self, transport: asyncio.Transport | None, busy: bool) -> None:
        """Mark a connection as handling a request (not evictable) or idle again."""
        if transport is None:
            return
        tracked = self._open.get(transport)
        if tracked is None or tracked.busy == busy:
            return
        tracked.busy = busy
        if busy:
            self._idle.pop(transport, None)
        else:
            self._idle[transport] = None


def _address(transport: asyncio.Transport) -> str:
    peer: Any = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


# ---------------------------------------------------------------------------------------------- passwords


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0  # monotonic
    last_failure: float = 0.0  # monotonic


class AuthThrottle:
    """Exponential back-off of failed handshake authentications, per charger id and per peer address.

    After `free_per_id` failures for one id (or `free_per_address` from one address), every attempt is refused
    for 1 s, then 2, 4, ... up to `max_lockout_s`, whatever the password: a right guess during a lock-out still
    gets 429, so guessing cannot be confirmed. A success resets the id's count. The tables hold at most
    `max_entries` ids and addresses each (least recently failed dropped first); an entry is forgotten once it
    has been quiet for twice the longest lock-out.
    """

    def __init__(
        self,
        *,
        free_per_id: int = 5,
        free_per_address: int = 50,
        max_lockout_s: float = 900.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Configure thresholds and bounds; the clocks are injectable for tests."""
        self.free_per_id = free_per_id
        self.free_per_address = free_per_address
        self.max_lockout_s = max_lockout_s
        self.max_entries = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._by_id: OrderedDict[str, _Failures] = OrderedDict()
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after_s(self, cp_id: str, address: str) -> float | None:
        """Seconds until `cp_id` from `address` may try again, or None if it may try now."""
        now = self._clock()
        waits = [
            f.locked_until - now
            for f in (self._get(self._by_id, cp_id, now), self._get(self._by_address, address, now))
            if f is not None and f.locked_until > now
        ]
        return max(waits) if waits else None

    def failed(self, cp_id: str, address: str) -> None:
        """Record a failed authentication of `cp_id` from `address`."""
        now = self._clock()
        self._fail(self._by_id, cp_id, self.free_per_id, now)
        self._fail(self._by_address, address, self.free_per_address, now)

    def succeeded(self, cp_id: str) -> None:
        """Reset `cp_id`'s failures after a successful authentication."""
        self._by_id.pop(cp_id, None)

    def status(self, cp_id: str) -> Lockout | None:
        """`cp_id`'s failures and lock-out, or None when it has none on record."""
        now = self._clock()
        entry = self._get(self._by_id, cp_id, now)
        if entry is None:
            return None
        until = None
        if entry.locked_until > now:
            until = self._wall_clock() + timedelta(seconds=entry.locked_until - now)
        return Lockout(entry.count, until)

    def _get(self, table: OrderedDict[str, _Failures], key: str, now: float) -> _Failures | None:
        entry = table.get(key)
        if (
            entry is not None
            and now - entry.last_failure > 2 * self.max_lockout_s
            and entry.locked_until <= now
        ):
            del table[key]
            return None
        return entry

    def _fail(self, table: OrderedDict[str, _Failures], key: str, free: int, now: float) -> None:
        entry = self._get(table, key, now) or _Failures()
        entry.count += 1
        entry.last_failure = now
        if entry.count >= free:
            exponent = min(entry.count - free, 30)
            entry.locked_until = now + min(self.max_lockout_s, float(2**exponent))
        table[key] = entry
        table.move_to_end(key)
        while len(table) > self.max_entries:
            table.popitem(last=False)


def retry_after_header(seconds: float) -> str:
    """A Retry-After value (whole seconds, at least 1) for a wait of `seconds`."""
    return str(max(1, math.ceil(seconds)))
