"""Random SetVariables with extreme values against a RUNNING agent over OCPP 2.0.1 (issue 12).

One real agent (simulated hardware) talks 2.0.1 over loopback to the bundled central system, whose server checks
every answer against the 2.0.1 schemas; Hypothesis drives SetVariables. After every call: each element got its
own result (B05.FR.01), a value was taken exactly when the answer says Accepted or RebootRequired and then reads
back (GetVariables) as the setting's canonical text, nothing else changed, the stored settings equal the live
ones, and the link is the same connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from chargepoint.core.device_model import VARIABLES, Mutability, Variable
from chargepoint.core.network_profiles import PRIORITY_SETTING
from chargepoint.core.security import basic_auth_password_error
from chargepoint.core.settings import SPECS
from chargepoint.csms.v201 import mapping as mapping201
from tests.integration.conftest import FAST_TIMING, agent_config
from tests.property.test_csms_fuzz import Harness, _until

CP_ID = "PROP-201"
REFS = sorted(VARIABLES, key=lambda r: (r.component, r.variable))

components = st.sampled_from(sorted({r.component for r in REFS})) | st.sampled_from(["", "EVSE", "X" * 50])
variables = st.sampled_from(sorted({r.variable for r in REFS})) | st.text(max_size=12)
extreme = (
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1",
            "true",
            "FALSE",
            "NaN",
            "Infinity",
            "1e308",
            "-0",
            "9" * 19,
            "9" * 1000,
            "\u0661\u0662",
            "1_000",
            " 30 ",
            "Energy.Active.Import.Register",
            "Energy.Active.Import.Register,Voltage,SoC",
            "Voltage,Nope",
            "a\x00b",
            str(2**31),
            str(2**63),
            "Pass-word_12345678",  # a 2.0.1 BasicAuthPassword (16-40 characters of the passwordString set)
            "ab" * 20,  # a 1.6 AuthorizationKey: hex, too long for a 2.0.1 password
            "0,0",
        ]
    )
    | st.integers(-(2**64), 2**64).map(str)
    | st.text(max_size=40)
)
# A known variable with an extreme value, most of the time; else any (component, variable).
known = st.sampled_from(REFS).flatmap(
    lambda r: st.fixed_dictionaries(
        {
            "component": st.just({"name": r.component}),
            "variable": st.just({"name": r.variable}),
            "attributeValue": extreme,
        },
        optional={"attributeType": st.sampled_from(["Actual", "Actual", "Target", "MinSet", "MaxSet"])},
    )
)
anything = st.fixed_dictionaries(
    {
        "component": st.fixed_dictionaries({"name": components}),
        "variable": st.fixed_dictionaries({"name": variables}),
        "attributeValue": extreme,
    }
)
requests = st.lists(known | known | anything, min_size=1, max_size=4)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="prop-201-loop", daemon=True)
    thread.start()
    tmp = tmp_path_factory.mktemp("prop201")

    async def start() -> tuple[Csms, Agent, asyncio.Task[None]]:
        store = CsmsStore(tmp / "csms.db")
        store.add_charger(CP_ID)
        csms = Csms(store, heartbeat_interval_s=60, admin_token="property-test-admin-token")
        await csms.start()
        config = agent_config(csms.url, tmp / "agent.db", cp_id=CP_ID, csms={"ocpp_versions": ["2.0.1"]})
        agent = Agent(config, timing=FAST_TIMING)
        task = asyncio.get_running_loop().create_task(agent.run())
        await _until(lambda: agent.link is not None and agent.link.online, 10, "the agent booted")
        return csms, agent, task

    csms, agent, task = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield Harness(loop, csms, agent)  # type: ignore[arg-type]

    async def stop() -> None:
        agent.shutdown()
        await asyncio.wait_for(task, 20)
        await csms.stop()
        csms.store.close()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _expected(spec_name: str, text: str) -> str | None:
    """The canonical text a setting takes from ``text``, or None if it refuses it."""
    spec = SPECS[spec_name]
    if spec.readonly:
        return None
    try:
        return spec.format(spec.parse(text))
    except ValueError:
        return None


def _expected_201(variable: Variable, text: str, link: Any) -> str | None:
    """The canonical text a variable takes from ``text`` over 2.0.1, or None if it refuses it: the 2.0.1 security
    block's own rules first (read-only SecurityProfile, a passwordString, slots that hold a network profile)."""
    if mapping201.MUTABILITY_OVERRIDE.get(variable.setting, variable.mutability) is Mutability.READ_ONLY:
        return None
    if variable.setting == "authorization_key":
        return text if basic_auth_password_error(text) is None else None
    if variable.setting == PRIORITY_SETTING:
        return (
            None
            if link.network.priority_error(text)
            else ",".join(p.strip() for p in text.split(",")).strip()
        )
    return _expected(variable.setting, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=requests)
@example(
    data=[
        {
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
            "attributeValue": "Pass-word_12345678",
        },
        {
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "SecurityProfile"},
            "attributeValue": "2",
        },
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "NetworkConfigurationPriority"},
            "attributeValue": " 0 ",
        },
    ]
)
def test_random_set_variables_answer_each_element_and_keep_the_model_consistent(
    harness: Harness, data: list[dict[str, Any]]
) -> None:
    csms: Csms = harness.cs  # type: ignore[assignment]
    agent = harness.agent
    station = agent.station
    assert station is not None and agent.store is not None
    live = station.settings
    connections = harness.link.connections
    before = {name: live.text(name) for name in live.names()}
    try:
        answer = harness.run(csms.server.call(CP_ID, "SetVariables", {"setVariableData": data}))
    except (
        CallErrorReply
    ) as exc:  # the request itself was not one the schema allows (a value over 1000 chars)
        assert exc.code in ("FormatViolation", "PropertyConstraintViolation", "OccurrenceConstraintViolation")
        assert {name: live.text(name) for name in live.names()} == before
        return
    results = answer["setVariableResult"]
    assert len(results) == len(data)  # B05.FR.01
    expected = dict(before)
    for element, result in zip(data, results, strict=True):
        assert result["component"] == element["component"] and result["variable"] == element["variable"]
        ref = next(
            (
                r
                for r in REFS
                if (r.component, r.variable) == (element["component"]["name"], element["variable"]["name"])
            ),
            None,
        )
        status = result["attributeStatus"]
        if ref is None:
            assert status in ("UnknownComponent", "UnknownVariable")
            continue
        variable = VARIABLES[ref]
        if element.get("attributeType", "Actual") != "Actual":
            assert status == "NotSupportedAttributeType"
            continue
        canonical = _expected_201(variable, element["attributeValue"], harness.link)
        if canonical is None:
            assert status == "Rejected", (element, result)
            continue
        assert status == ("RebootRequired" if variable.reboot_required else "Accepted"), (element, result)
        expected[variable.setting] = canonical
    assert {name: live.text(name) for name in live.names()} == expected
    if expected["authorization_key"] != before["authorization_key"]:
        # A01: a new BasicAuthPassword is used from the next connection, which follows at once.
        harness.run(
            _until(lambda: harness.link.online and harness.link.connections > connections, 10, "reconnected")
        )
        connections = harness.link.connections
    # What the station reports is what it holds, and what it stored is what it holds.
    for element, result in zip(data, results, strict=True):
        write_only = element["variable"]["name"] == "BasicAuthPassword"
        if result["attributeStatus"] in ("Accepted", "RebootRequired") and not write_only:
            read = harness.run(
                csms.server.call(
                    CP_ID,
                    "GetVariables",
                    {
                        "getVariableData": [
                            {"component": element["component"], "variable": element["variable"]}
                        ]
                    },
                )
            )
            setting = VARIABLES[
                next(
                    r
                    for r in REFS
                    if r.component == element["component"]["name"]
                    and r.variable == element["variable"]["name"]
                )
            ].setting
            assert read["getVariableResult"][0]["attributeValue"] == live.text(setting)
    stored = agent.store.settings()
    assert all(stored[name] == live.text(name) for name in stored if not SPECS[name].readonly)
    assert harness.link.online and harness.link.connections == connections
    assert csms.server.violations == [], json.dumps(csms.server.violations[-3:])
