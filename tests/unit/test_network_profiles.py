"""The network connection profiles (core/network_profiles.py) on the real SQLite store: slot checks, the priority
list, fallback after failed attempts to the last good slot, and promotion to a higher security profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chargepoint.core.network_profiles import NetworkProfile, NetworkProfiles, profile_error
from chargepoint.core.security import Credentials
from chargepoint.core.settings import Settings
from chargepoint.store import Store

ALL = Credentials(has_password=True, has_csms_root=True, has_client_certificate=True)
NONE = Credentials(has_password=False, has_csms_root=False, has_client_certificate=False)


def profile(url: str = "ws://127.0.0.1:9000/ocpp", security: int = 1) -> NetworkProfile:
    return NetworkProfile(url=url, security_profile=security, message_timeout_s=30, ocpp_version="2.0.1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "agent.db")
    yield s
    s.close()


def network(store: Store, settings: Settings) -> NetworkProfiles:
    return NetworkProfiles(
        store,
        settings,
        active=lambda: settings.get_int("security_profile"),
        promote=lambda p: settings.set_text("security_profile", str(p)),
    )


def test_slots_are_checked_stored_and_read_back(store: Store) -> None:
    settings = Settings(overrides={"security_profile": 1})
    net = network(store, settings)
    assert net.set_error(0, profile(), ALL) is not None  # the configured connection
    assert net.set_error(5, profile(), ALL) is not None
    assert net.set_error(1, profile(security=0), ALL) == "securityProfile 0 is below the active 1"
    assert "prerequisites" in (net.set_error(1, profile("wss://h/", 2), NONE) or "")
    assert net.set_error(1, profile("wss://h/", 2), ALL) is None
    net.put(1, profile()).result()
    assert net.slot(1) == profile()
    assert net.slot(2) is None and net.slot(99) is None


@pytest.mark.parametrize(
    "bad",
    [
        profile("http://h/"),
        profile("ws://"),
        profile("ws://h:99999/"),
        profile("ws://h/ x"),
        profile("ws://h/" + "x" * 600),
        profile("wss://h/", 1),
        profile(security=4),
        NetworkProfile("ws://h/", 1, 0, "2.0.1"),
        NetworkProfile("ws://h/", 1, 30, "1.5"),
    ],
)
def test_unusable_profiles(bad: NetworkProfile) -> None:
    assert profile_error(bad) is not None


def test_a_stored_profile_that_no_longer_reads_is_ignored(store: Store) -> None:
    net = network(store, Settings())
    store.put("network_profile.1", '{"url": 7}').result()
    store.put("network_profile.2", "not json").result()
    assert net.slot(1) is None and net.slot(2) is None


def test_priority_falls_back_to_the_last_good_slot_after_the_attempts(store: Store) -> None:
    settings = Settings(overrides={"security_profile": 1, "network_profile_connection_attempts": 2})
    net = network(store, settings)
    net.put(1, profile("ws://new/")).result()
    assert net.priority_error("1") is None
    settings.set_text("network_configuration_priority", "1")
    assert net.candidates() == [1, 0] and net.current() == 1
    assert net.connect_failed() is None  # one failure: still slot 1
    assert net.connect_failed() == 0  # the second: the previous (configured) one
    assert net.current() == 0
    assert net.connected() is None
    assert net.last_good() == 0 and net.current() == 0
    # A new priority list is tried from its top again.
    settings.set_text("network_configuration_priority", "1,0")
    assert net.current() == 1
    assert net.connected() is None and net.last_good() == 1
    # Now slot 1 is the one that worked: the previous one for the next change.
    net.put(2, profile("ws://newer/")).result()
    settings.set_text("network_configuration_priority", "2")
    assert net.candidates() == [2, 1]


def test_a_higher_profile_is_promoted_on_its_first_connection_and_lower_slots_are_never_used(
    store: Store,
) -> None:
    settings = Settings(overrides={"security_profile": 1})
    net = network(store, settings)
    net.put(1, profile("ws://old/", 1)).result()
    net.put(2, profile("wss://new/", 2)).result()
    settings.set_text("network_configuration_priority", "2,1")
    assert net.current() == 2
    assert net.connected() == 2
    assert settings.get_int("security_profile") == 2
    assert net.candidates() == [2]  # slot 1 (profile 1) is below the active profile now
    assert net.priority_error("1,0") == "slot 1 has security profile 1, below the active one"
    assert net.priority_error("2,0") is None


@pytest.mark.parametrize("text", ["", "1,1", "a", "0,1,2,3,4,5", "-1", "1;2", "\u0661"])
def test_priority_texts_that_are_refused(store: Store, text: str) -> None:
    net = network(store, Settings())
    net.put(1, profile()).result()
    assert net.priority_error(text) is not None
