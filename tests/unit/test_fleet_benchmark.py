"""The fleet benchmark's own bookkeeping: the Heartbeat phase histogram and SAP's CALLs counted from a frame log."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # fleet.py imports sap_compare from its own directory
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


fleet = _load("fleet")
sap = _load("sap_compare")


def test_phase_histogram_bins_by_second_of_minute_and_minute_since_start() -> None:
    start = 1_800_000_000.0  # a whole minute (divisible by 60)
    sent = [start - 1.0, start + 0.2, start + 0.9, start + 59.5, start + 61.0, start + 125.3]
    rows = fleet.phase_histogram(sent, start)
    assert len(rows) == 3
    assert rows[0][0] == 2 and rows[0][59] == 1 and sum(rows[0]) == 3  # the one before the start is left out
    assert rows[1][1] == 1 and sum(rows[1]) == 1
    assert rows[2][5] == 1 and sum(rows[2]) == 1


def test_phase_summary_names_the_busiest_second_and_its_share() -> None:
    row = [10] * 60
    row[47] = 130
    (minute,) = fleet.phase_summary([row])
    assert minute["heartbeats"] == 720
    assert minute["busiest_second"] == 47
    assert minute["busiest_count"] == 130
    assert minute["mean_per_second"] == 12.0
    assert minute["busiest_share_pct"] == round(100 * 130 / 720, 1)
    assert fleet.phase_summary([[0] * 60])[0]["busiest_share_pct"] == 0.0


def _frame(ts: datetime, direction: str, message_type: int, action: str | None) -> str:
    return json.dumps(
        {"event": "frame", "ts": ts.isoformat(), "direction": direction, "message_type": message_type,
         "action": action, "cp_id": "X", "payload": {}, "raw": ""}
    )  # fmt: skip


def test_calls_in_counts_received_calls_inside_the_window_only(tmp_path: Path) -> None:
    t0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    log = tmp_path / "frames.jsonl"
    lines = [
        _frame(t0 - timedelta(seconds=1), "in", 2, "Heartbeat"),  # before
        _frame(t0, "in", 2, "Heartbeat"),
        _frame(t0 + timedelta(seconds=5), "in", 2, "MeterValues"),
        _frame(t0 + timedelta(seconds=5), "out", 3, None),  # our answer
        _frame(t0 + timedelta(seconds=6), "out", 2, "RemoteStartTransaction"),  # our CALL
        json.dumps({"event": "connected", "ts": t0.isoformat(), "cp_id": "X"}),
        _frame(t0 + timedelta(seconds=60), "in", 2, "Heartbeat"),  # at the end: outside
    ]
    log.write_text("\n".join(lines) + "\n")
    assert sap._calls_in(log, t0, t0 + timedelta(seconds=60)) == {"Heartbeat": 1, "MeterValues": 1}


def test_tail_counts_each_complete_line_once_as_the_log_grows(tmp_path: Path) -> None:
    t0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    log = tmp_path / "frames.jsonl"
    tail = sap._Tail(log)
    seen: dict[str, int] = {}
    tail.count_calls(seen)  # no file yet
    assert seen == {}
    boot = _frame(t0, "in", 2, "BootNotification")
    log.write_text(boot + "\n" + boot[:20])  # the second line is still being written
    tail.count_calls(seen)
    assert seen == {"BootNotification": 1}
    with log.open("a") as f:
        f.write(boot[20:] + "\n" + _frame(t0, "in", 2, "StartTransaction") + "\n")
    tail.count_calls(seen)
    assert seen == {"BootNotification": 2, "StartTransaction": 1}
    tail.count_calls(seen)
    assert seen == {"BootNotification": 2, "StartTransaction": 1}
