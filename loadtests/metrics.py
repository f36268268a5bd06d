"""Charger metrics Locust has no column for: connections held, connects, reconnects, server calls.

Each load-generator process keeps a `ChargerMetrics`; workers send its snapshot with every stats report
(Locust's report_to_master event) and the master (or the single local process) folds them into a
`MetricsAggregate`, which the locustfile logs and writes as JSON at the end of the run. Pure: no gevent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["COUNTERS", "ChargerMetrics", "MetricsAggregate"]

COUNTERS = (
    "connects",  # WebSocket handshakes that succeeded
    "reconnects",  # ... of which by a charger that had been connected before
    "connect_failures",
    "boots",  # accepted BootNotifications
    "sessions_started",
    "sessions_completed",
    "power_cuts",
    "link_drops",
    "resets",
    "calls_not_sent",  # CALLs the charger skipped because its connection had already ended
    "offline_queued",  # session messages (2.0.1 TransactionEvent) kept while offline
    "offline_replayed",  # ... sent once back online (flagged offline)
    "offline_dropped",  # ... dropped because the queue was full (the oldest readings first)
    "invalid_frames",
    "unexpected_responses",
    "binary_frames",
)


class ChargerMetrics:
    """Counters and the connection gauge of one load-generator process."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0
        self.counters: Counter[str] = Counter()
        self.server_calls: Counter[str] = Counter()

    def connected(self, *, reconnect: bool) -> None:
        """A connection opened."""
        self.held += 1
        self.peak = max(self.peak, self.held)
        self.counters["connects"] += 1
        if reconnect:
            self.counters["reconnects"] += 1

    def disconnected(self) -> None:
        """A connection ended (once per connection)."""
        self.held -= 1

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter."""
        self.counters[name] += n

    def server_call(self, action: str) -> None:
        """The central system sent a CALL."""
        self.server_calls[action] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy (cumulative counters: a lost or repeated report changes nothing)."""
        return {
            "held": self.held,
            "peak": self.peak,
            "counters": {name: self.counters[name] for name in COUNTERS},
            "server_calls": dict(self.server_calls),
        }


class MetricsAggregate:
    """The metrics of every load-generator process, by process id."""

    def __init__(self) -> None:
        self.per_process: dict[str, dict[str, Any]] = {}
        self.held_max = 0

    def update(self, process_id: str, snapshot: dict[str, Any]) -> None:
        """Take a process's latest snapshot."""
        self.per_process[process_id] = snapshot
        self.held_max = max(self.held_max, sum(int(s["held"]) for s in self.per_process.values()))

    def summary(self) -> dict[str, Any]:
        """Totals over every process (connections_held_max is the largest total seen in one report round)."""
        totals: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        for snap in self.per_process.values():
            totals.update({k: int(v) for k, v in snap["counters"].items()})
            calls.update({k: int(v) for k, v in snap["server_calls"].items()})
        return {
            "processes": len(self.per_process),
            "connections_held": sum(int(s["held"]) for s in self.per_process.values()),
            "connections_held_max": self.held_max,
            "connections_peak_sum": sum(int(s["peak"]) for s in self.per_process.values()),
            **{name: totals[name] for name in COUNTERS},
            "server_calls": dict(sorted(calls.items())),
            "per_process": self.per_process,
        }
