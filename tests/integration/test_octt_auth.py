"""OCTT OCPP 1.6 charge-point cases about authorization: cache, local list (LocalAuthList), invalid ids."""

from __future__ import annotations

from typing import Any

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.core.model import AuthStatus
from tests.integration.conftest import RunningAgent, StartAgent
from tests.integration.octt_support import (
    CP,
    answer_to,
    go_offline,
    go_online,
    incoming_calls,
    index,
    mark,
    outbox_empty,
    quiet,
    start_session,
    wait_status,
)


async def _session_online(a: RunningAgent, cs: CentralSystem, tag: str) -> None:
    """A whole online session with ``tag`` (it is authorized online, so it ends up in the cache)."""
    m = mark(cs)
    await start_session(a, cs, tag)
    a.swipe(tag)
    await cs.wait_for_call("StopTransaction", after=m)
    await a.wait_state("FINISHING")
    a.unplug()
    await a.wait_state("AVAILABLE")
    await outbox_empty(a)


def _authorizes(cs: CentralSystem, tag: str, after: int = 0) -> list[Any]:
    return [f for f in incoming_calls(cs, after) if f.action == "Authorize" and f.payload["idTag"] == tag]


async def _send_local_list(
    cs: CentralSystem, version: int, update: str, entries: dict[str, str | None]
) -> dict[str, Any]:
    items = [
        {"idTag": tag} if status is None else {"idTag": tag, "idTagInfo": {"status": status}}
        for tag, status in entries.items()
    ]
    return await cs.call(
        CP, "SendLocalList", {"listVersion": version, "updateType": update, "localAuthorizationList": items}
    )


async def _list_version(cs: CentralSystem) -> int:
    return int((await cs.call(CP, "GetLocalListVersion", {}))["listVersion"])


# ----------------------------------------------------------------------------------------------------------------
# Authorization cache
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_007_cached_id_offline(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_007_CS Regular Start Charging Session - Cached Id (offline)."""
    a = await start_agent(settings={"authorization_cache_enabled": True, "local_authorize_offline": True})
    await _session_online(a, cs, "CACHED1")
    assert len(_authorizes(cs, "CACHED1")) == 1
    await go_offline(a, cs)
    a.plug()
    a.swipe("CACHED1")
    await a.wait_state("CHARGING")
    assert a.sim().relay.closed
    m = mark(cs)
    await go_online(a, cs)
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "CACHED1"
    assert len(_authorizes(cs, "CACHED1")) == 1, "the cached id was authorized again"


async def test_tc_007_cache_disabled(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_007_CS Regular Start Charging Session - Cached Id: with AuthorizationCacheEnabled false nothing is cached."""
    a = await start_agent(settings={"authorization_cache_enabled": False, "local_authorize_offline": True})
    await _session_online(a, cs, "CACHED1")
    await go_offline(a, cs)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CACHED1")
    await quiet(0.3)
    assert a.state() == "PREPARING" and a.station.connectors[1].transaction is None


async def test_tc_007_cached_id_expired_offline(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_007_CS Regular Start Charging Session - Cached Id: a cached id past its expiryDate does not start offline."""
    info = {"status": "Accepted", "expiryDate": "2000-01-01T00:00:00Z"}
    cs.handlers["Authorize"] = lambda cp_id, p: {"idTagInfo": info}
    cs.handlers["StartTransaction"] = lambda cp_id, p: {
        "transactionId": cs.next_transaction_id(),
        "idTagInfo": info,
    }
    cs.handlers["StopTransaction"] = lambda cp_id, p: {"idTagInfo": info}
    a = await start_agent(settings={"authorization_cache_enabled": True, "local_authorize_offline": True})
    await _session_online(a, cs, "CACHED1")
    await go_offline(a, cs)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CACHED1")
    await quiet(0.3)
    assert a.state() == "PREPARING" and a.station.connectors[1].transaction is None


async def test_tc_007_cached_id_local_pre_authorize(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_007_CS Regular Start Charging Session - Cached Id (LocalPreAuthorize, online)."""
    a = await start_agent(settings={"authorization_cache_enabled": True, "local_pre_authorize": True})
    await _session_online(a, cs, "CACHED1")
    m = mark(cs)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CACHED1")
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "CACHED1"
    await a.wait_state("CHARGING")
    assert not _authorizes(cs, "CACHED1", m)


async def test_tc_061_clear_authorization_cache(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_061_CS Clear Authorization Data in Authorization Cache."""
    a = await start_agent(settings={"authorization_cache_enabled": True, "local_authorize_offline": True})
    await _session_online(a, cs, "CACHED1")
    assert await cs.call(CP, "ClearCache", {}) == {"status": "Accepted"}
    await go_offline(a, cs)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CACHED1")
    await quiet(0.3)
    assert a.state() == "PREPARING" and a.station.connectors[1].transaction is None
    assert not a.sim().relay.closed


async def test_tc_061_cleared_cache_asks_the_csms_again(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_061_CS Clear Authorization Data in Authorization Cache - a cleared id is authorized online again."""
    a = await start_agent(settings={"authorization_cache_enabled": True, "local_pre_authorize": True})
    await _session_online(a, cs, "CACHED1")
    assert await cs.call(CP, "ClearCache", {}) == {"status": "Accepted"}
    m = mark(cs)
    await start_session(a, cs, "CACHED1")
    assert len(_authorizes(cs, "CACHED1", m)) == 1


# ----------------------------------------------------------------------------------------------------------------
# Invalid ids
# ----------------------------------------------------------------------------------------------------------------


async def _refused_id(cs: CentralSystem, start_agent: StartAgent, status: str) -> None:
    cs.id_tags["BADTAG"] = status
    a = await start_agent()
    a.plug()
    await wait_status(cs, 1, "Preparing")
    m = mark(cs)
    a.swipe("BADTAG")
    auth = await cs.wait_for_call("Authorize", after=m)
    assert (await answer_to(cs, auth)).payload["idTagInfo"]["status"] == status
    await quiet(0.3)
    assert not cs.calls("StartTransaction")
    assert a.state() == "PREPARING" and not a.sim().relay.closed


async def test_tc_023_authorize_invalid(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_023_CS Start Charging Session - Authorize invalid."""
    await _refused_id(cs, start_agent, "Invalid")


async def test_tc_023_2_authorize_expired(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_023_2_CS Start Charging Session - Authorize Expired."""
    await _refused_id(cs, start_agent, "Expired")


async def test_tc_023_3_authorize_blocked(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_023_3_CS Start Charging Session - Authorize Blocked."""
    await _refused_id(cs, start_agent, "Blocked")


def _start_answers_blocked(cs: CentralSystem) -> None:
    def start(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"transactionId": cs.next_transaction_id(), "idTagInfo": {"status": "Blocked"}}

    cs.handlers["StartTransaction"] = start


async def test_stop_transaction_on_invalid_id_true(cs: CentralSystem, start_agent: StartAgent) -> None:
    """StopTransactionOnInvalidId = true: StartTransaction.conf not Accepted ends the session, DeAuthorized."""
    _start_answers_blocked(cs)
    a = await start_agent(settings={"stop_transaction_on_invalid_id": True})
    a.plug()
    await a.wait_state("PREPARING")
    m = mark(cs)
    a.swipe("TAG1")
    start = await cs.wait_for_call("StartTransaction", after=m)
    tx_id = (await answer_to(cs, start)).payload["transactionId"]
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "DeAuthorized" and stop.payload["transactionId"] == tx_id
    assert not a.sim().relay.closed
    await a.wait_state("FINISHING")


async def test_stop_transaction_on_invalid_id_false(cs: CentralSystem, start_agent: StartAgent) -> None:
    """StopTransactionOnInvalidId = false, MaxEnergyOnInvalidId = 0: the session stays, power stops (SuspendedEVSE)."""
    _start_answers_blocked(cs)
    a = await start_agent(
        settings={"stop_transaction_on_invalid_id": False, "max_energy_on_invalid_id_wh": 0}
    )
    a.plug()
    await a.wait_state("PREPARING")
    m = mark(cs)
    a.swipe("TAG1")
    await cs.wait_for_call("StartTransaction", after=m)
    await wait_status(cs, 1, "SuspendedEVSE", after=m)
    assert not a.sim().relay.closed
    await quiet(0.3)
    assert not cs.calls("StopTransaction")


# ----------------------------------------------------------------------------------------------------------------
# Stop by idTag / parentIdTag
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_068_stop_transaction_same_id_tag(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_068_CS Stop Transaction - IdTag stop transaction matches IdTag start transaction."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs, "TAG1")
    m = mark(cs)
    a.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload == stop.payload | {"transactionId": tx_id, "idTag": "TAG1", "reason": "Local"}
    assert not _authorizes(cs, "TAG1", m), "the id that started the session needs no new Authorize"


async def test_tc_068_other_id_tag_does_not_stop(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_068_CS Stop transaction - IdTag in StopTransaction matches IdTag in StartTransaction (another card first)."""
    a = await start_agent()
    await start_session(a, cs, "TAG1")
    m = mark(cs)
    a.swipe("TAG2")  # no parentIdTag on TAG1: TAG2 cannot stop it, so there is nothing to ask the CSMS
    await quiet(0.4)
    assert a.state() == "CHARGING" and not cs.calls("StopTransaction")
    assert [f.action for f in incoming_calls(cs, m) if f.action in ("Authorize", "StopTransaction")] == []


def _group(cs: CentralSystem, members: dict[str, str]) -> None:
    """Authorize/StartTransaction answers that carry a parentIdTag per member."""

    def info(tag: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "Accepted"}
        if tag in members:
            out["parentIdTag"] = members[tag]
        return out

    cs.handlers["Authorize"] = lambda cp_id, p: {"idTagInfo": info(p["idTag"])}
    cs.handlers["StartTransaction"] = lambda cp_id, p: {
        "transactionId": cs.next_transaction_id(),
        "idTagInfo": info(p["idTag"]),
    }


async def test_tc_069_stop_transaction_parent_id_tag(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_069_CS Stop Transaction - ParentIdTag in StopTransaction matches ParentIdTag in StartTransaction."""
    _group(cs, {"CARD-A": "FLEET-1", "CARD-B": "FLEET-1", "CARD-C": "FLEET-2"})
    a = await start_agent()
    _, tx_id = await start_session(a, cs, "CARD-A")
    m = mark(cs)
    a.swipe("CARD-C")  # another group: must not stop the session
    await cs.wait_for_call("Authorize", after=m, where=lambda p: p["idTag"] == "CARD-C")
    await quiet(0.3)
    assert not cs.calls("StopTransaction") and a.state() == "CHARGING"
    a.swipe("CARD-B")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload == stop.payload | {"transactionId": tx_id, "idTag": "CARD-B", "reason": "Local"}


# ----------------------------------------------------------------------------------------------------------------
# Local authorization list
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_042_1_get_local_list_version_not_supported(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_042_1_CS Get Local List Version (not supported)."""
    await start_agent(settings={"local_auth_list_enabled": False})
    assert await _list_version(cs) == -1


async def test_tc_042_2_get_local_list_version(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_042_2_CS Get Local List Version (success)."""
    await start_agent()
    assert await _list_version(cs) == 0, "no list yet: version 0"
    assert await _send_local_list(cs, 5, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    assert await _list_version(cs) == 5


async def test_tc_043_send_local_list_full(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_043_CS Send Local Authorization List - Full."""
    a = await start_agent()
    assert await _send_local_list(cs, 1, "Full", {"LOCAL1": "Accepted", "LOCAL2": "Blocked"}) == {
        "status": "Accepted"
    }
    store = a.agent.store
    assert store is not None
    assert store.local_get("LOCAL1") is not None and store.local_get("LOCAL2") is not None
    assert await _send_local_list(cs, 2, "Full", {"LOCAL3": "Accepted"}) == {"status": "Accepted"}
    assert store.local_get("LOCAL1") is None and store.local_get("LOCAL3") is not None
    assert await _list_version(cs) == 2
    assert await _send_local_list(cs, 3, "Full", {}) == {"status": "Accepted"}
    assert store.local_list_size() == 0


async def test_tc_042_2_local_list_version_zero_when_empty(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_042_2_CS Get Local List Version (success) - 0 when the list is empty (OCPP 1.6 §5.9)."""
    await start_agent()
    assert await _send_local_list(cs, 4, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    assert await _send_local_list(cs, 5, "Differential", {"LOCAL1": None}) == {"status": "Accepted"}
    assert await _list_version(cs) == 0
    assert await _send_local_list(cs, 6, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    assert await _send_local_list(cs, 7, "Full", {}) == {"status": "Accepted"}
    assert await _list_version(cs) == 0


async def test_tc_043_send_local_list_differential(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_043_CS Send Local Authorization List - Differential update and removal."""
    a = await start_agent()
    store = a.agent.store
    assert store is not None
    assert await _send_local_list(cs, 1, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    assert await _send_local_list(cs, 2, "Differential", {"LOCAL1": "Blocked", "LOCAL2": "Accepted"}) == {
        "status": "Accepted"
    }
    entry = store.local_get("LOCAL1")
    assert entry is not None and entry.status is AuthStatus.BLOCKED
    assert store.local_get("LOCAL2") is not None
    assert await _send_local_list(cs, 3, "Differential", {"LOCAL1": None}) == {"status": "Accepted"}
    assert store.local_get("LOCAL1") is None and store.local_get("LOCAL2") is not None
    assert await _list_version(cs) == 3


async def test_tc_043_send_local_list_version_mismatch(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_043_CS Send Local Authorization List - VersionMismatch for an outdated differential update."""
    a = await start_agent()
    assert await _send_local_list(cs, 3, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    assert await _send_local_list(cs, 2, "Differential", {"LOCAL2": "Accepted"}) == {
        "status": "VersionMismatch"
    }
    assert await _send_local_list(cs, 3, "Differential", {"LOCAL2": "Accepted"}) == {
        "status": "VersionMismatch"
    }
    store = a.agent.store
    assert store is not None and store.local_get("LOCAL2") is None
    assert await _list_version(cs) == 3


async def test_tc_008_id_in_local_list_pre_authorize(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_008_CS Regular Start Charging Session - Id in Authorization List (LocalPreAuthorize)."""
    a = await start_agent(settings={"local_pre_authorize": True})
    assert await _send_local_list(cs, 1, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    m = mark(cs)
    start, _ = await start_session(a, cs, "LOCAL1")
    assert not _authorizes(cs, "LOCAL1", m)
    assert index(cs, start) > m


async def test_tc_008_id_in_local_list_offline(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_008_CS Regular Start Charging Session - Id in Authorization List (offline)."""
    a = await start_agent(settings={"local_authorize_offline": True})
    assert await _send_local_list(cs, 1, "Full", {"LOCAL1": "Accepted", "LOCAL2": "Blocked"}) == {
        "status": "Accepted"
    }
    await go_offline(a, cs)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("LOCAL2")
    await quiet(0.3)
    assert a.state() == "PREPARING", "a blocked local-list id must not start offline"
    a.swipe("LOCAL1")
    await a.wait_state("CHARGING")
    m = mark(cs)
    await go_online(a, cs)
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "LOCAL1"
    assert not _authorizes(cs, "LOCAL1")


async def test_tc_008_local_list_id_never_cached(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_008_CS Regular Start Charging Session - Id in Authorization List: it never enters the cache."""
    a = await start_agent(settings={"local_pre_authorize": False, "authorization_cache_enabled": True})
    assert await _send_local_list(cs, 1, "Full", {"LOCAL1": "Accepted"}) == {"status": "Accepted"}
    await _session_online(a, cs, "LOCAL1")
    assert _authorizes(cs, "LOCAL1"), "without LocalPreAuthorize the CSMS is asked"
    store = a.agent.store
    assert store is not None
    assert store.cache_get("LOCAL1") is None
    # An id that was cached before it joined the list leaves the cache then.
    await _session_online(a, cs, "LATER1")
    assert store.cache_get("LATER1") is not None
    assert await _send_local_list(cs, 2, "Differential", {"LATER1": "Accepted"}) == {"status": "Accepted"}
    assert store.cache_get("LATER1") is None
