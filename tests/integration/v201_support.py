"""Fixtures and helpers for the OCPP 2.0.1 agent tests: the bundled central system (its real 2.0.1 side, with its
store and billing) on loopback, and real agents (simulated hardware) that negotiate 2.0.1 with it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from backend_stub.app import Csms
from backend_stub.domain.ca import CertificateAuthority
from backend_stub.ocpp.server import CallErrorReply, Frame
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, RunningAgent, agent_config, until
from tests.integration.test_csms import TARIFF

CP = "CP-1"
CALL, CALLRESULT, CALLERROR = 2, 3, 4
BOTH = {"ocpp_versions": ["2.0.1", "1.6"]}


@contextlib.asynccontextmanager
async def running_csms(
    db: Path,
    *,
    password: str | None = None,
    ca: CertificateAuthority | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Csms]:
    """The bundled central system on ``db`` with CP-1 registered (with ``password``), a tariff of 100.00 EUR/kWh,
    ``ca`` to sign certificates, serving wss:// with ``tls``."""
    store = CsmsStore(db)
    store.put_tariff("T1", json.dumps(TARIFF))
    store.set_default_tariff_id("T1")
    store.add_charger(CP, password)
    app = Csms(store, heartbeat_interval_s=60, admin_token="test-admin-token-v201-agent", ca=ca)
    if tls is not None:
        app.server.ssl_context = tls
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        store.close()


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    """The bundled central system with CP-1 registered and a tariff of 100.00 EUR/kWh."""
    async with running_csms(tmp_path / "csms.db") as app:
        yield app


StartAgent = Callable[..., Awaitable[RunningAgent]]


@pytest.fixture
async def start_agent(csms: Csms, tmp_path: Path) -> AsyncIterator[StartAgent]:
    """Start agents that prefer 2.0.1; after the test, the CSMS must have seen no schema violation from them."""
    running: list[RunningAgent] = []

    async def start(*, boot: bool = True, db: Path | None = None, **kwargs: Any) -> RunningAgent:
        kwargs["csms"] = {**BOTH, **kwargs.get("csms", {})}
        config = agent_config(csms.url, db or tmp_path / "agent.db", **kwargs)
        agent = Agent(config, timing=FAST_TIMING)
        task = asyncio.create_task(agent.run())
        handle = RunningAgent(agent, task, csms.server)  # type: ignore[arg-type]
        running.append(handle)
        await until(lambda: agent.started.is_set(), 5, "agent did not start")
        if boot:
            await handle.wait_booted()
        return handle

    yield start
    for handle in running:
        await handle.stop()
    assert csms.server.violations == []


def mark(csms: Csms) -> int:
    """The current end of the CSMS log (use as ``after=``)."""
    return len(csms.server.log)


def calls(csms: Csms, action: str, after: int = 0) -> list[dict[str, Any]]:
    """The payloads of the charger's CALLs of ``action`` in ``log[after:]``."""
    return [
        f.payload
        for f in csms.server.log[after:]
        if f.direction == "in" and f.message_type == CALL and f.action == action
    ]


async def wait_call(
    csms: Csms, action: str, *, after: int = 0, where: Callable[[Any], bool] | None = None, timeout: float = 5
) -> Frame:
    """Wait for the charger's CALL of ``action`` (whose payload satisfies ``where``)."""
    return await csms.server.wait_for_call(action, CP, timeout, after=after, where=where)


async def answer_to(csms: Csms, call: Frame, timeout: float = 5.0) -> Frame:
    """The CSMS's answer to a CALL the charger sent."""
    return await csms.server.wait_for(
        lambda f: (
            f.direction == "out"
            and f.message_type in (CALLRESULT, CALLERROR)
            and f.unique_id == call.unique_id
        ),
        timeout,
    )


async def events_of(csms: Csms, tx_id: str, after: int = 0) -> list[dict[str, Any]]:
    """Every TransactionEvent of the transaction ``tx_id``, in order."""
    return [
        p for p in calls(csms, "TransactionEvent", after) if p["transactionInfo"]["transactionId"] == tx_id
    ]


async def start_session(a: RunningAgent, csms: Csms, tag: str, cid: int = 1) -> dict[str, Any]:
    """Plug in, present ``tag``, wait until charging; returns the Started event."""
    after = mark(csms)
    a.plug(cid)
    await a.wait_state("PREPARING", cid)
    a.swipe(tag, cid)
    started = await wait_call(
        csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Started"
    )
    await a.wait_state("CHARGING", cid)
    payload: dict[str, Any] = started.payload
    return payload


def var(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    """A GetVariableData / SetVariableData element."""
    return {"component": {"name": component}, "variable": {"name": variable}, **extra}


async def get_value(csms: Csms, component: str, variable: str) -> dict[str, Any]:
    """The one GetVariableResult for (component, variable)."""
    answer = await csms.server.call(CP, "GetVariables", {"getVariableData": [var(component, variable)]})
    result: dict[str, Any] = answer["getVariableResult"][0]
    return result


async def set_value(csms: Csms, component: str, variable: str, value: str, **extra: Any) -> dict[str, Any]:
    """The one SetVariableResult of setting (component, variable) to ``value``."""
    data = var(component, variable, attributeValue=value, **extra)
    answer = await csms.server.call(CP, "SetVariables", {"setVariableData": [data]})
    result: dict[str, Any] = answer["setVariableResult"][0]
    return result


def still_connected(a: RunningAgent) -> None:
    """The link stayed up: one connection, online."""
    link = a.agent.link
    assert link is not None and link.online and link.connections == 1


async def call_error(csms: Csms, action: str, payload: dict[str, Any]) -> str:
    """The code of the CallError the station answers ``action`` with."""
    with pytest.raises(CallErrorReply) as err:
        await csms.server.call(CP, action, payload)
    return err.value.code
