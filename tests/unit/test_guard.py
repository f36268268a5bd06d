"""The central system's limits as pure objects: back-off schedule, bounded tables, rate-limited log lines."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from backend_stub.ocpp.guard import AuthThrottle, RateLimitFilter, retry_after_header


def test_lockout_starts_after_the_free_attempts_and_doubles_up_to_the_maximum() -> None:
    now = [0.0]
    throttle = AuthThrottle(free_per_id=3, free_per_address=1000, max_lockout_s=10, clock=lambda: now[0])
    waits = []
    for _ in range(8):
        throttle.failed("CP-1", "10.0.0.1")
        waits.append(throttle.retry_after_s("CP-1", "10.0.0.1"))
    assert waits == [None, None, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert throttle.retry_after_s("CP-2", "10.0.0.2") is None, "other ids and addresses are not affected"
    now[0] += 10
    assert throttle.retry_after_s("CP-1", "10.0.0.1") is None
    throttle.succeeded("CP-1")
    assert throttle.status("CP-1") is None


def test_the_address_is_locked_out_for_guesses_across_ids() -> None:
    throttle = AuthThrottle(free_per_id=5, free_per_address=4, clock=lambda: 0.0)
    for i in range(4):
        throttle.failed(f"CP-{i}", "10.0.0.9")
    assert throttle.retry_after_s("CP-NEW", "10.0.0.9") == 1.0
    assert throttle.retry_after_s("CP-NEW", "10.0.0.8") is None


def test_status_reports_failures_and_the_end_of_the_lockout() -> None:
    wall = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    throttle = AuthThrottle(free_per_id=2, clock=lambda: 100.0, wall_clock=lambda: wall)
    throttle.failed("CP-1", "a")
    first = throttle.status("CP-1")
    assert first is not None and first.failed_attempts == 1 and first.locked_until is None
    throttle.failed("CP-1", "a")
    second = throttle.status("CP-1")
    assert second is not None and second.locked_until == datetime(2026, 12, 6, 12, 0, 1, tzinfo=UTC)


def test_tables_are_bounded_and_quiet_entries_are_forgotten() -> None:
    now = [0.0]
    throttle = AuthThrottle(free_per_id=1, max_lockout_s=5, max_entries=100, clock=lambda: now[0])
    for i in range(1000):
        throttle.failed(f"CP-{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._by_id) == 100 and len(throttle._by_address) == 100
    assert throttle.status("CP-0") is None and throttle.status("CP-999") is not None
    now[0] += 11
    assert throttle.status("CP-999") is None


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after_header(s) for s in (0.01, 1.0, 1.2, 899.5)] == ["1", "1", "2", "900"]


def test_rate_limit_filter_passes_a_few_lines_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    limit = RateLimitFilter(per_interval=3, interval_s=1.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, __file__, 1, msg, (), None)

    passed = [limit.filter(record("refused %s")) for _ in range(1000)]
    assert sum(passed) == 3
    assert limit.filter(record("another kind %s")), "each message template has its own budget"
    now[0] += 1.5
    late = record("refused %s")
    assert limit.filter(late)
    assert late.msg == "refused %s (997 similar lines suppressed)"
