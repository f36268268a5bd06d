"""The live terminal view (rich): chargers by state, sessions, messages/s, latency percentiles per action."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table

log = logging.getLogger(__name__)


def render(summary: dict[str, Any], title: str) -> Group:
    """One frame of the view from a fleet summary."""
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{title}[/] [dim]{summary.get('phase', '')}[/]",
        f"chargers {summary.get('chargers', 0)} (online {summary.get('online', 0)})",
        " ".join(f"OCPP {v}: {n}" for v, n in summary.get("versions", {}).items()),
        f"sessions active {summary.get('visits_active', 0)} finished {summary.get('visits_finished', 0)}",
        f"{summary.get('messages_per_s', 0)} msg/s",
        f"outbox {summary.get('outbox', 0)}",
        f"virtual {summary.get('virtual_s', 0) / 3600:.2f} h",
    )
    states = Table(title="connectors by state", expand=False)
    states.add_column("state")
    states.add_column("count", justify="right")
    for state, n in summary.get("states", {}).items():
        states.add_row(state, str(n))
    lat = Table(title="CALL->CALLRESULT latency, last 10 s (ms)", expand=False)
    for name in ("action", "p50", "p95", "p99", "max"):
        lat.add_column(name, justify="left" if name == "action" else "right")
    for action, p in summary.get("latency_ms", {}).items():
        lat.add_row(action, str(p["p50"]), str(p["p95"]), str(p["p99"]), str(p["max"]))
    return Group(head, "", states, lat)


async def show(
    summary: Callable[[], dict[str, Any]], title: str, *, live: bool, period_s: float = 1.0
) -> None:
    """Refresh the view until cancelled; without a terminal (or with --no-live) log one line every 10 s."""
    if live and sys.stdout.isatty():
        with Live(render(summary(), title), refresh_per_second=2, screen=False) as view:
            while True:
                await asyncio.sleep(period_s)
                view.update(render(summary(), title))
    while True:
        await asyncio.sleep(10)
        s = summary()
        p99 = {a: v["p99"] for a, v in s.get("latency_ms", {}).items()}
        log.warning(
            "%s: %s online, states %s, %s msg/s, p99 ms %s",
            s.get("phase"),
            s.get("online"),
            s.get("states"),
            s.get("messages_per_s"),
            p99,
        )
