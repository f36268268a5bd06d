"""Fleet metrics: CALL->CALLRESULT latency per action, errors by code, message rates; and the end report."""

from __future__ import annotations

import json
import random
import time
from array import array
from collections import Counter, deque
from pathlib import Path
from typing import Any

# The report's "timing fields": they depend on the machine and the scheduler, not on the scenario, and are
# left out when two seeded runs are compared.
TIMING_FIELDS = frozenset(
    {
        "latency_ms",
        "messages",
        "calls",
        "errors",
        "errors_by_action",
        "reconnects",
        "reconnect_attempts",
        "started_at",
        "wall_s",
        "transaction_id",
        "rates",
    }
)


def percentile(sorted_values: Any, q: float) -> float:
    """The q-quantile (0..1) of sorted values, nearest-rank; 0.0 for none."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    index = min(n - 1, max(0, int(q * n + 0.999999) - 1))
    return float(sorted_values[index])


def summary(values: Any) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies in seconds."""
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 0.50) * 1000, 2),
        "p95": round(percentile(ordered, 0.95) * 1000, 2),
        "p99": round(percentile(ordered, 0.99) * 1000, 2),
        "max": round((ordered[-1] if ordered else 0.0) * 1000, 2),
    }


# Raw latency samples kept per action (8 bytes each): past this, a uniform reservoir of this size stands for all
# of them (Vitter's algorithm R), so a fleet running for days holds at most ~2 MB per action, not 8 bytes per CALL.
SAMPLE_CAP = 2**18


class Metrics:
    """Collects what every agent's link reports about its CALLs (one instance per fleet process)."""

    def __init__(self, window_s: float = 10.0, sample_cap: int = SAMPLE_CAP) -> None:
        self.sample_cap = sample_cap
        self.answered: Counter[str] = Counter()  # latencies observed per action (the reservoir's population)
        self._pick = random.Random(0)  # the reservoir's choices: seeded, so a run's report is reproducible
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # by CallError code (or Timeout / ConnectionClosed)
        self.errors_by_action: Counter[str] = Counter()
        self.latency: dict[str, array[float]] = {}
        self.window_s = window_s
        self.recent: deque[tuple[float, str, float]] = deque()
        self.started = time.monotonic()

    def observe(self, action: str, latency_s: float, error: str | None) -> None:
        """A CallObserver: one CALL answered (or not)."""
        self.calls[action] += 1
        if error is not None:
            self.errors[error] += 1
            self.errors_by_action[f"{action}:{error}"] += 1
            return
        samples = self.latency.get(action)
        if samples is None:
            samples = self.latency[action] = array("d")
        self.answered[action] += 1
        if len(samples) < self.sample_cap:
            samples.append(latency_s)
        else:
            slot = self._pick.randrange(self.answered[action])
            if slot < self.sample_cap:
                samples[slot] = latency_s
        now = time.monotonic()
        self.recent.append((now, action, latency_s))
        horizon = now - self.window_s
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()

    def restart(self) -> None:
        """Forget the counts and samples so far (a benchmark's steady window starts)."""
        for counter in (self.calls, self.errors, self.errors_by_action, self.answered):
            counter.clear()
        self.latency.clear()

    def live(self) -> tuple[float, dict[str, dict[str, float]]]:
        """Messages per second and latency percentiles per action over the recent window."""
        now = time.monotonic()
        horizon = now - self.window_s
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()
        by_action: dict[str, list[float]] = {}
        for _, action, latency in self.recent:
            by_action.setdefault(action, []).append(latency)
        span = min(self.window_s, max(now - self.started, 1e-3))
        rate = len(self.recent) / span
        return rate, {action: summary(values) for action, values in sorted(by_action.items())}

    def to_json(self) -> dict[str, Any]:
        """Counts and latency percentiles over the whole run (raw samples kept for merging)."""
        return {
            "calls": dict(sorted(self.calls.items())),
            "errors": dict(sorted(self.errors.items())),
            "errors_by_action": dict(sorted(self.errors_by_action.items())),
            "latency_ms": {action: summary(values) for action, values in sorted(self.latency.items())},
        }


def merge_reports(parts: list[dict[str, Any]], samples: list[dict[str, list[float]]]) -> dict[str, Any]:
    """One report from the reports of ``--processes`` shards (latency percentiles recomputed from samples)."""
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, Any] = dict(parts[0])
    for key in ("calls", "errors", "errors_by_action", "sessions_by_outcome", "chargers_by_state"):
        total: Counter[str] = Counter()
        for part in parts:
            total.update(part.get(key, {}))
        merged[key] = dict(sorted(total.items()))
    for key in ("reconnects", "reconnect_attempts", "energy_wh", "chargers", "chargers_booted", "messages"):
        merged[key] = sum(part.get(key, 0) for part in parts)
    merged["wall_s"] = max(part.get("wall_s", 0.0) for part in parts)
    joined: dict[str, list[float]] = {}
    for s in samples:
        for action, values in s.items():
            joined.setdefault(action, []).extend(values)
    merged["latency_ms"] = {action: summary(values) for action, values in sorted(joined.items())}
    merged["sessions"] = sorted(
        (row for part in parts for row in part.get("sessions", [])),
        key=lambda r: (r["charger"], r["connector"], r["visit"]),
    )
    merged["processes"] = len(parts)
    return merged


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    lines = [
        f"# Fleet report: {report['scenario']}",
        "",
        f"- chargers: {report['chargers']} ({report['chargers_booted']} booted), seed {report['seed']}, "
        f"{report['wall_s']:.1f} s wall, {report.get('processes', 1)} process(es)",
        f"- energy delivered: {report['energy_wh']} Wh; reconnects: {report['reconnects']} "
        f"({report.get('reconnect_attempts', 0)} attempts); "
        f"CALLs sent: {report['messages']}",
        "",
        "## Sessions by outcome",
        "",
        "| outcome | sessions |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v} |" for k, v in report["sessions_by_outcome"].items()]
    lines += ["", "## CALLs by action", "", "| action | count | p50 ms | p95 ms | p99 ms | max ms |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    for action, count in report["calls"].items():
        lat = report["latency_ms"].get(action, {"p50": 0, "p95": 0, "p99": 0, "max": 0})
        lines.append(f"| {action} | {count} | {lat['p50']} | {lat['p95']} | {lat['p99']} | {lat['max']} |")
    lines += ["", "## Errors by CallError code", "", "| code | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["errors"].items()] or ["| (none) | 0 |"]
    lines += ["", "## Chargers by state at the end", "", "| state | connectors |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["chargers_by_state"].items()]
    lines += [
        "",
        "## Sessions",
        "",
        "| charger | connector | idTag | transactionId | energy Wh | outcome | stop reason |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for s in report["sessions"]:
        lines.append(
            f"| {s['charger']} | {s['connector']} | {s['id_tag']} | {s['transaction_id'] or ''} | "
            f"{s['energy_wh'] if s['energy_wh'] is not None else ''} | {s['outcome']} | {s['stop_reason'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write report.json and report.md; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    js, md = directory / "report.json", directory / "report.md"
    js.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    md.write_text(markdown(report))
    return js, md


def comparable(report: dict[str, Any]) -> Any:
    """The report without its timing fields, for comparing two seeded runs."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(report)
