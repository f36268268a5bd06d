"""Authorization precedence and offline rules (OCPP 1.6 §3.5) with a real Store and Settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chargepoint.core.auth import Authorizer
from chargepoint.core.model import AuthStatus, IdTagInfo
from chargepoint.core.settings import Settings
from chargepoint.errors import CsmsUnavailable
from chargepoint.store import Store

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ACCEPTED = IdTagInfo(AuthStatus.ACCEPTED)
BLOCKED = IdTagInfo(AuthStatus.BLOCKED)
INVALID = IdTagInfo(AuthStatus.INVALID)


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class FakeCsms:
    """Stands in for the CSMS link's online authorizer. The real link (OCPP 1.6 Authorize over WebSocket)
    is exercised end to end by tests/integration against backend_stub; here only the decision rules matter."""

    def __init__(self, answers: dict[str, IdTagInfo] | None = None, *, online: bool = True) -> None:
        self.answers = answers or {}
        self.online = online
        self.unavailable = False
        self.asked: list[str] = []

    async def authorize(self, id_tag: str) -> IdTagInfo:
        self.asked.append(id_tag)
        if self.unavailable:
            raise CsmsUnavailable("timed out")
        return self.answers.get(id_tag, INVALID)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "agent.db", durable=False)
    yield s
    s.close()


def make(store: Store, csms: FakeCsms, **overrides: Any) -> Authorizer:
    return Authorizer(store, Settings(overrides=overrides), csms, FixedClock())


# --- precedence: local list > cache > online --------------------------------------------------------------


def test_local_list_wins_over_cache(store: Store) -> None:
    store.local_list_update(1, True, {"TAG": BLOCKED})
    store.cache_put("TAG", ACCEPTED)  # stale entry written behind the list's back
    auth = make(store, FakeCsms())
    assert auth.local("TAG") == (BLOCKED, True)


def test_cache_used_when_not_on_local_list(store: Store) -> None:
    store.cache_put("TAG", BLOCKED)
    auth = make(store, FakeCsms())
    assert auth.local("TAG") == (BLOCKED, False)
    assert auth.local("OTHER") == (None, False)


def test_disabled_sources_are_skipped(store: Store) -> None:
    store.local_list_update(1, True, {"L": ACCEPTED})
    store.cache_put("C", ACCEPTED)
    auth = make(store, FakeCsms(), local_auth_list_enabled=False, authorization_cache_enabled=False)
    assert auth.local("L") == (None, False)
    assert auth.local("C") == (None, False)


async def test_online_answer_used_and_cached(store: Store) -> None:
    csms = FakeCsms({"NEW": ACCEPTED})
    auth = make(store, csms)
    assert await auth.authorize("NEW") == ACCEPTED
    assert csms.asked == ["NEW"]
    assert store.cache_get("NEW") == ACCEPTED


async def test_online_answer_overrides_cache_without_pre_authorize(store: Store) -> None:
    store.cache_put("TAG", ACCEPTED)
    csms = FakeCsms({"TAG": BLOCKED})
    auth = make(store, csms)
    assert (await auth.authorize("TAG")).status is AuthStatus.BLOCKED
    assert store.cache_get("TAG") == BLOCKED


async def test_local_list_entries_never_enter_the_cache(store: Store) -> None:
    store.local_list_update(1, True, {"LIST": ACCEPTED})
    csms = FakeCsms({"LIST": BLOCKED})
    auth = make(store, csms)
    assert (await auth.authorize("LIST")).status is AuthStatus.BLOCKED
    assert csms.asked == ["LIST"]
    assert store.cache_get("LIST") is None
    auth.remember("LIST", ACCEPTED)
    assert store.cache_get("LIST") is None


async def test_cache_disabled_remembers_nothing(store: Store) -> None:
    auth = make(store, FakeCsms({"NEW": ACCEPTED}), authorization_cache_enabled=False)
    assert await auth.authorize("NEW") == ACCEPTED
    assert store.cache_get("NEW") is None


@pytest.mark.parametrize("source", ["local_list", "cache"])
async def test_local_pre_authorize_skips_the_online_call(store: Store, source: str) -> None:
    if source == "local_list":
        store.local_list_update(1, True, {"TAG": ACCEPTED})
    else:
        store.cache_put("TAG", ACCEPTED)
    csms = FakeCsms({"TAG": BLOCKED})
    auth = make(store, csms, local_pre_authorize=True)
    assert await auth.authorize("TAG") == ACCEPTED
    assert csms.asked == []


async def test_local_pre_authorize_still_asks_for_refused_or_unknown_ids(store: Store) -> None:
    store.local_list_update(1, True, {"BLK": BLOCKED})
    csms = FakeCsms({"BLK": ACCEPTED, "NEW": ACCEPTED})
    auth = make(store, csms, local_pre_authorize=True)
    assert (await auth.authorize("BLK")).status is AuthStatus.ACCEPTED
    assert (await auth.authorize("NEW")).status is AuthStatus.ACCEPTED
    assert csms.asked == ["BLK", "NEW"]


async def test_local_pre_authorize_does_not_use_an_expired_entry(store: Store) -> None:
    store.cache_put("TAG", IdTagInfo(AuthStatus.ACCEPTED, NOW - timedelta(seconds=1)))
    csms = FakeCsms({"TAG": ACCEPTED})
    auth = make(store, csms, local_pre_authorize=True)
    assert await auth.authorize("TAG") == ACCEPTED
    assert csms.asked == ["TAG"]


# --- offline ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local_authorize_offline", "allow_unknown", "expected"),
    [
        (True, False, AuthStatus.ACCEPTED),
        (True, True, AuthStatus.ACCEPTED),
        (False, False, AuthStatus.INVALID),
    ],
)
async def test_offline_known_accepted_id(
    store: Store, local_authorize_offline: bool, allow_unknown: bool, expected: AuthStatus
) -> None:
    store.cache_put("TAG", ACCEPTED)
    csms = FakeCsms(online=False)
    auth = make(
        store,
        csms,
        local_authorize_offline=local_authorize_offline,
        allow_offline_tx_for_unknown_id=allow_unknown,
    )
    assert (await auth.authorize("TAG")).status is expected
    assert csms.asked == []


@pytest.mark.parametrize(
    ("allow_unknown", "expected"), [(True, AuthStatus.ACCEPTED), (False, AuthStatus.INVALID)]
)
async def test_offline_unknown_id(store: Store, allow_unknown: bool, expected: AuthStatus) -> None:
    auth = make(store, FakeCsms(online=False), allow_offline_tx_for_unknown_id=allow_unknown)
    assert (await auth.authorize("STRANGER")).status is expected
    assert store.cache_get("STRANGER") is None  # an offline guess is not a CSMS answer


@pytest.mark.parametrize("source", ["local_list", "cache"])
async def test_offline_blocked_id_stays_refused(store: Store, source: str) -> None:
    if source == "local_list":
        store.local_list_update(1, True, {"TAG": BLOCKED})
    else:
        store.cache_put("TAG", BLOCKED)
    auth = make(store, FakeCsms(online=False), allow_offline_tx_for_unknown_id=True)
    assert (await auth.authorize("TAG")).status is AuthStatus.BLOCKED


async def test_csms_unavailable_falls_back_to_offline_rules(store: Store) -> None:
    store.cache_put("KNOWN", ACCEPTED)
    csms = FakeCsms()
    csms.unavailable = True
    auth = make(store, csms)
    assert (await auth.authorize("KNOWN")).status is AuthStatus.ACCEPTED
    assert (await auth.authorize("STRANGER")).status is AuthStatus.INVALID
    assert csms.asked == ["KNOWN", "STRANGER"]
    assert store.cache_get("STRANGER") is None


# --- expiry -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        (NOW - timedelta(seconds=1), AuthStatus.EXPIRED),
        (NOW, AuthStatus.EXPIRED),
        (NOW + timedelta(seconds=1), AuthStatus.ACCEPTED),
        (None, AuthStatus.ACCEPTED),
    ],
)
@pytest.mark.parametrize("source", ["local_list", "cache"])
async def test_accepted_entry_past_expiry_counts_as_expired(
    store: Store, source: str, expiry: datetime | None, expected: AuthStatus
) -> None:
    info = IdTagInfo(AuthStatus.ACCEPTED, expiry, "GROUP")
    if source == "local_list":
        store.local_list_update(1, True, {"TAG": info})
    else:
        store.cache_put("TAG", info)
    auth = make(store, FakeCsms(online=False), allow_offline_tx_for_unknown_id=True)
    got = await auth.authorize("TAG")
    assert got.status is expected
    assert got.parent_id_tag == "GROUP"


def test_blocked_entry_past_expiry_stays_blocked() -> None:
    info = IdTagInfo(AuthStatus.BLOCKED, NOW - timedelta(days=1))
    assert info.effective(NOW) == info
