"""The whitepaper's security rules in the core (core/security.py), on the real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.core.events import OutboxKind, SecurityEvent
from chargepoint.core.security import (
    EVENTS_PER_TYPE_PER_WINDOW,
    PROFILE_ATTEMPTS,
    Credentials,
    ProfileChange,
    SecurityEvents,
    SecurityEventType,
    SecurityProfiles,
)
from chargepoint.core.settings import Settings
from chargepoint.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALL = Credentials(has_password=True, has_csms_root=True, has_client_certificate=True)


class FixedClock:
    def now(self) -> datetime:
        return T0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "agent.db")
    yield s
    s.close()


def profiles(store: Store, settings: Settings) -> SecurityProfiles:
    return SecurityProfiles(
        store,
        active=lambda: settings.get_int("security_profile"),
        promote=lambda p: settings.set_text("security_profile", str(p)),
    )


def test_a_higher_profile_is_pending_until_a_connection_succeeds(store: Store) -> None:
    settings = Settings(overrides={"security_profile": 1})
    p = profiles(store, settings)
    assert p.request("2", ALL) is ProfileChange.ACCEPTED
    assert (p.active, p.pending, p.connecting()) == (1, 2, 2)
    assert profiles(store, settings).pending == 2  # persisted
    assert p.connected() == 2
    assert (p.active, p.pending, settings.text("security_profile")) == (2, None, "2")


def test_a_profile_that_keeps_failing_falls_back_to_the_previous_one(store: Store) -> None:
    settings = Settings(overrides={"security_profile": 2})
    p = profiles(store, settings)
    assert p.request("3", ALL) is ProfileChange.ACCEPTED
    for _ in range(PROFILE_ATTEMPTS - 1):
        assert p.connect_failed() is None
        assert p.connecting() == 3
    assert p.connect_failed() == 3
    assert (p.active, p.pending, p.connecting()) == (2, None, 2)


@pytest.mark.parametrize(
    ("active", "text", "have"),
    [
        (2, "1", ALL),  # a downgrade
        (2, "2", ALL),  # the same
        (0, "9", ALL),  # no such profile
        (0, "-1", ALL),
        (0, "two", ALL),
        (0, "1", Credentials(False, True, True)),  # profile 1 without a password
        (1, "2", Credentials(True, False, True)),  # TLS without a CentralSystemRootCertificate
        (2, "3", Credentials(True, True, False)),  # profile 3 without a ChargePointCertificate
    ],
)
def test_refused_profile_changes_change_nothing(
    store: Store, active: int, text: str, have: Credentials
) -> None:
    settings = Settings(overrides={"security_profile": active})
    p = profiles(store, settings)
    assert p.request(text, have) is ProfileChange.REJECTED
    assert (p.active, p.pending) == (active, None)


def test_security_events_are_queued_in_the_outbox_with_the_clock_and_a_bounded_tech_info(
    store: Store,
) -> None:
    woken: list[bool] = []
    events = SecurityEvents(store, FixedClock(), lambda: woken.append(True))
    events.record(SecurityEventType.STARTUP_OF_THE_DEVICE)
    events.record(SecurityEventType.INVALID_CHARGE_POINT_CERTIFICATE, "x" * 1000)
    head = store.outbox_head()
    assert head is not None and head.kind == OutboxKind.SECURITY
    assert head.event() == SecurityEvent("StartupOfTheDevice", T0, None)
    store.acknowledge(head.seq)
    second = store.outbox_head()
    assert second is not None
    event = second.event()
    assert isinstance(event, SecurityEvent) and event.tech_info == "x" * 255
    assert woken == [True, True]


def test_each_event_type_is_bounded_per_hour_so_a_peer_cannot_fill_the_outbox(store: Store) -> None:
    now = [T0]

    class Clock:
        def now(self) -> datetime:
            return now[0]

    events = SecurityEvents(store, Clock(), lambda: None)
    results = [
        events.record(SecurityEventType.SETTING_SYSTEM_TIME) for _ in range(EVENTS_PER_TYPE_PER_WINDOW + 5)
    ]
    assert results == [True] * EVENTS_PER_TYPE_PER_WINDOW + [False] * 5
    assert events.record(SecurityEventType.STARTUP_OF_THE_DEVICE)  # another type is not held back
    assert store.outbox_size() == EVENTS_PER_TYPE_PER_WINDOW + 1 and events.suppressed == 5
    now[0] = T0 + timedelta(hours=1)
    assert events.record(SecurityEventType.SETTING_SYSTEM_TIME)
