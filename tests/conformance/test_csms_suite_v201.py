"""The CSMS runner for OCPP 2.0.1 against real central systems on 127.0.0.1: the bundled one passes the whole 2.0.1
suite with its REST trigger profile; deliberately wrong 2.0.1 central systems (negative controls) fail the cases
they break, by name."""

from __future__ import annotations

import inspect
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from backend_stub.app import Csms
from backend_stub.ocpp.server import OCPP201, Handler, HandlerResult, tls_context, utc_now_iso
from backend_stub.ocpp.v201 import V201Commands
from backend_stub.store import CsmsStore
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from conformance.__main__ import run_cli
from tests.conformance.conftest import CP, CP_PASSWORD, Site, seed
from tests.conformance.test_csms_suite import failed, naive_args, pki, reasons, verdicts

__all__ = ["pki"]  # the openssl-made CA and server certificate (a module fixture)

pytestmark = pytest.mark.timeout(300)


async def test_bundled_central_system_passes_the_whole_201_csms_suite(
    site: Site, upgrade_args: list[str], tmp_path: Path
) -> None:
    out = {kind: tmp_path / f"r.{kind}" for kind in ("json", "xml", "html")}
    code, report = await run_cli(
        site.args(
            "--version",
            "2.0.1",
            "--json",
            str(out["json"]),
            "--junit",
            str(out["xml"]),
            "--html",
            str(out["html"]),
            *upgrade_args,
        )
    )
    v = verdicts(report)
    not_passed = {k: (x, reasons(report)[k]) for k, x in v.items() if x != "passed"}
    # Only the TLS cases need a wss:// URL (and a client certificate) this test does not set up.
    wss = ("inconclusive", "setup: needs a wss:// --url with --tls-ca")
    client_certificate = (
        "inconclusive",
        "setup: needs --tls-cert PEM --tls-key PEM (the charger's client certificate, security profile 3); "
        "needs a wss:// --url with --tls-ca",
    )
    assert not_passed == {
        "TC_A_04_CSMS": wss,
        "TC_A_06_CSMS": wss,
        "TC_A_07_CSMS": client_certificate,
        "TC_A_08_CSMS": client_certificate,
    }
    assert len(v) >= 100
    assert code == 0
    # Each report format parses back with the 2.0.1 cases.
    saved = json.loads(out["json"].read_text())
    assert saved["ocpp_version"] == "2.0.1" and saved["summary"]["passed"] == len(v) - len(not_passed)
    assert "E Transactions" in saved["blocks"]
    # The conditional blocks the bundled central system implements run too (local list, reservation, smart
    # charging, certificates), and pass.
    blocks = (
        "D LocalAuthorizationListManagement",
        "H Reservation",
        "K SmartCharging",
        "M CertificateManagement",
    )
    assert set(blocks) <= set(saved["blocks"])
    assert {
        "TC_D_02_CSMS",
        "TC_H_17_CSMS",
        "TC_K_60_CSMS",
        "TC_K_37_CSMS",
        "TC_M_18_CSMS",
        "TC_B_08_CSMS",
    } <= set(v)
    # Local list, reservations and smart charging went through the central system's own operations (it built
    # the messages the cases judged), not the raw command endpoint.
    for case_id, operation in (
        ("TC_D_02_CSMS", "send-local-list"),
        ("TC_H_15_CSMS", "reserve-now"),
        ("TC_H_17_CSMS", "cancel-reservation"),
        ("TC_K_60_CSMS", "set-charging-profile"),
        ("TC_K_06_CSMS", "clear-charging-profile"),
        ("TC_K_43_CSMS", "composite-schedule"),
    ):
        texts = [t["text"] for c in saved["cases"] if c["id"] == case_id for t in c["trace"]]
        assert any(f"/operations/{operation} -> HTTP 200" in t for t in texts), case_id
    e03 = next(c for c in saved["cases"] if c["id"] == "TC_E_03_CSMS")
    assert any('"TransactionEvent"' in t["text"] and '"seqNo":0' in t["text"] for t in e03["trace"])
    suite = ET.parse(out["xml"]).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(v)) and suite.get("failures") == "0"
    assert any((c.get("name") or "").startswith("TC_B_01_CSMS ") for c in suite.findall("testcase"))
    page = out["html"].read_text()
    assert "TC_F_01_CSMS" in page and "RequestStartTransaction" in page


async def test_a_card_uid_the_central_system_types_iso14443_passes_the_local_list_and_reservation_cases(
    site: Site,
) -> None:
    """The central system builds the IdTokenType from its own store (a 7-byte card UID is ISO14443, OCPP 2.0.1
    IdTokenEnumType), not the type the case happened to ask for: the idToken is judged, the type is its own."""
    uid = "04A1B2C3D4E5F6"
    site.csms.store.add_card(uid, user_id=site.csms.store.add_user("Card holder").id)
    args = [
        f"--id-tag-accepted={uid}" if a.startswith("--id-tag-accepted=") else a
        for a in site.args("--version", "2.0.1", "--cases", "TC_D_*,TC_H_*")
    ]
    code, report = await run_cli(args)
    assert report is not None and len(report.results) >= 10
    assert set(verdicts(report).values()) == {"passed"}, reasons(report)
    sent = [t.text for r in report.results if r.id == "TC_H_01_CSMS" for t in r.trace]
    assert any('"ReserveNow"' in t and '"type":"ISO14443"' in t.replace(" ", "") for t in sent)
    assert code == 0


async def test_the_bundled_csms_own_message_building_is_judged(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through its operations the central system builds the messages itself, so a fault there fails the case: here
    a ReserveNow that drops the connector type the operator asked for (TC_H_15), and a ClearChargingProfile that
    drops its criteria (K10.FR.02 / TC_K_06)."""
    reserve_now = V201Commands.reserve_now
    clear = V201Commands.clear_charging_profile

    async def no_connector_type(self: V201Commands, *args: Any, **kw: Any) -> Any:
        return await reserve_now(self, *args, **{**kw, "connector_type": None})

    async def no_criteria(self: V201Commands, charger: str, *args: Any, **kw: Any) -> Any:
        return await clear(self, charger, None, None, None, timeout_s=kw.get("timeout_s"))

    monkeypatch.setattr(V201Commands, "reserve_now", no_connector_type)
    monkeypatch.setattr(V201Commands, "clear_charging_profile", no_criteria)
    code, report = await run_cli(
        site.args("--version", "2.0.1", "--cases", "TC_H_15_CSMS,TC_K_06_CSMS,TC_H_01_CSMS")
    )
    assert verdicts(report) == {"TC_H_01_CSMS": "passed", "TC_H_15_CSMS": "failed", "TC_K_06_CSMS": "failed"}
    assert "connectorType None, expected cType2" in reasons(report)["TC_H_15_CSMS"]
    assert "K10.FR.02" in reasons(report)["TC_K_06_CSMS"]
    assert code == 1


async def test_tc_b_08_get_variables_keep_to_the_station_items_per_message(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TC_B_08_CSMS: the central system learns ItemsPerMessage[GetVariables] = 4 from the station's answer, then
    asks for five variables as 4 + 1 (B06.FR.05), and TC_B_07 still gets its three in one request after the
    central system read the station's (larger) limits. A central system that never learns the limits sends the
    five at once and fails."""
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", "TC_B_07_CSMS,TC_B_08_CSMS"))
    assert verdicts(report) == {"TC_B_07_CSMS": "passed", "TC_B_08_CSMS": "passed"}, reasons(report)
    events = [t.text for r in report.results if r.id == "TC_B_08_CSMS" for t in r.trace]
    assert any("GetVariablesRequests of [4, 1] variables" in t for t in events), [
        t[:70] for t in events[-10:]
    ]
    b07 = [t.text for r in report.results if r.id == "TC_B_07_CSMS" for t in r.trace]
    assert any("read the station's message limits" in t for t in b07)
    assert code == 0

    async def forgets(self: V201Commands, charger: str, names: Any, timeout_s: Any = None) -> Any:
        return dict.fromkeys(names)

    monkeypatch.setattr(V201Commands, "limits", forgets)
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", "TC_B_08_CSMS"))
    assert verdicts(report) == {"TC_B_08_CSMS": "failed"}
    assert "with 5 GetVariableData" in reasons(report)["TC_B_08_CSMS"]
    assert "B06.FR.05" in reasons(report)["TC_B_08_CSMS"]
    assert code == 1


async def test_heartbeat_interval_is_waited_out_when_short_enough_201(site: Site, tmp_path: Path) -> None:
    """TC_B_01 with --heartbeat-wait-max: idle for one interval, then a second Heartbeat on the same link."""
    site.csms.central.heartbeat_interval_s = 1
    out = tmp_path / "hb.json"
    code, _ = await run_cli(
        site.args(
            "--version", "2.0.1", "--cases", "TC_B_01_CSMS", "--heartbeat-wait-max", "2", "--json", str(out)
        )
    )
    trace = json.loads(out.read_text())["cases"][0]["trace"]
    beats = [t for t in trace if t["direction"] == "sent" and '"Heartbeat"' in t["text"]]
    assert code == 0 and len(beats) == 2


async def test_tls_server_certificate_case_passes_over_wss_201(tmp_path: Path, pki: Path) -> None:
    """TC_A_04_CSMS: the bundled central system serving wss:// with a certificate the given CA signed."""
    store = CsmsStore(tmp_path / "tls.db")
    seed(store)
    app = Csms(store, admin_token="tls-admin-token-0123456789")
    app.server.ssl_context = tls_context(pki / "server.pem", pki / "server.key")
    await app.start()
    try:
        code, report = await run_cli(
            [
                "csms",
                "--version",
                "2.0.1",
                "--url",
                app.url,
                "--charger-id",
                CP,
                "--password",
                CP_PASSWORD,
                "--tls-ca",
                str(pki / "ca.pem"),
                "--cases",
                "TC_A_0*",
                "-q",
            ]
        )
    finally:
        await app.stop()
        store.close()
    v = verdicts(report)
    passed = ("TC_A_01_CSMS", "TC_A_02_CSMS", "TC_A_03_CSMS", "TC_A_04_CSMS", "TC_A_06_CSMS")
    assert {k: v[k] for k in passed} == dict.fromkeys(passed, "passed")
    # The password update needs a trigger this run does not give: inconclusive, not failed.
    assert v["TC_A_09_CSMS"] == "inconclusive" and code == 0


# ---------------------------------------------------------------------------------------------- negative controls


def naive_v201_handlers() -> dict[str, Handler]:
    """A naive 2.0.1 central system: boots everyone Accepted, accepts every idToken, acknowledges the rest."""

    def boot(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": "Accepted", "currentTime": utc_now_iso(), "interval": 300}

    def heartbeat(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"currentTime": utc_now_iso()}

    def authorize(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"idTokenInfo": {"status": "Accepted"}}

    def transaction_event(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"idTokenInfo": {"status": "Accepted"}} if "idToken" in payload else {}

    def empty(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {}

    return {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "Authorize": authorize,
        "TransactionEvent": transaction_event,
        **dict.fromkeys(
            (
                "StatusNotification",
                "MeterValues",
                "NotifyReport",
                "NotifyEvent",
                "LogStatusNotification",
                "FirmwareStatusNotification",
                "SecurityEventNotification",
            ),
            empty,
        ),
    }


@pytest.fixture
async def naive201() -> AsyncIterator[CentralSystem]:
    """A naive accept-all 2.0.1 central system (every station, password and idToken) with a tzi-OCTT webhook."""
    cs = CentralSystem("127.0.0.1", 0)
    cs.handlers_by_subprotocol[OCPP201.subprotocol] = naive_v201_handlers()

    async def webhook(request: web.Request) -> web.Response:
        action = "".join(w.capitalize() for w in request.match_info["action"].split("-"))
        reply = await cs.call(request.match_info["cp"], action, await request.json())
        return web.json_response(reply)

    cs.app.router.add_post("/api/octt/2.0.1/{cp}/{action}", webhook)
    async with cs:
        yield cs


async def test_a_naive_accept_all_201_central_system_fails_the_business_cases(
    naive201: CentralSystem, tmp_path: Path
) -> None:
    args = naive_args(naive201, "--version", "2.0.1", "--json", str(tmp_path / "naive.json"))
    code, report = await run_cli(args)
    bad = failed(report)
    # It accepts every idToken ...
    assert {"TC_C_02_CSMS", "TC_C_06_CSMS", "TC_C_07_CSMS", "TC_C_20_CSMS", "TC_E_16_CSMS"} <= bad
    assert {"OCS_C_01_CSMS", "OCS_C_02_CSMS", "OCS_C_03_CSMS", "OCS_C_04_CSMS", "OCS_C_05_CSMS"} <= bad
    assert "OCS_C_06_CSMS" in bad
    # ... never checks a password (nor keeps a new one), admits unknown stations, ignores Pending.
    assert {"TC_A_02_CSMS", "TC_A_03_CSMS", "TC_A_09_CSMS", "TC_A_10_CSMS"} <= bad
    assert {"OCS_A_01_CSMS", "OCS_A_02_CSMS", "OCS_A_03_CSMS"} <= bad
    assert {"TC_B_02_CSMS", "TC_B_30_CSMS", "TC_B_31_CSMS", "OCS_B_01_CSMS"} <= bad
    assert len(bad) >= 20, sorted(bad)
    assert "was Accepted" in reasons(report)["TC_C_06_CSMS"]
    # Its tzi-OCTT webhook (/api/octt/2.0.1/...) drove the trigger cases, which it passes.
    v = verdicts(report)
    assert v["TC_F_01_CSMS"] == "passed" and v["TC_E_21_CSMS"] == "passed" and v["TC_B_20_CSMS"] == "passed"
    assert code == 1
    saved = json.loads((tmp_path / "naive.json").read_text())
    assert saved["ocpp_version"] == "2.0.1"
    assert {c["id"] for c in saved["cases"] if c["verdict"] == "failed"} == bad


async def test_a_201_central_system_that_ignores_passwords_fails_the_password_cases(site: Site) -> None:
    async def admit_everyone(cp_id: str, password: str | None, profile: Any) -> Any:
        return "ok"

    site.csms.server.admission = admit_everyone
    code, report = await run_cli(site.args("--version", "2.0.1"))
    assert failed(report) == {
        "TC_A_02_CSMS",
        "TC_A_03_CSMS",
        "TC_A_09_CSMS",
        "TC_A_10_CSMS",
        "OCS_A_01_CSMS",
        "OCS_A_02_CSMS",
        "OCS_A_03_CSMS",
    }
    assert "HTTP 401" in reasons(report)["TC_A_03_CSMS"]
    assert code == 1


async def test_a_201_central_system_that_skips_boot_notification_checks(site: Site) -> None:
    """Its 2.0.1 handlers serve every station whatever its registration state (no Pending guard)."""
    app = site.csms
    table = app.server.handlers_by_subprotocol[OCPP201.subprotocol]
    table["StatusNotification"] = app.v201.status
    table["TransactionEvent"] = app.v201.transaction_event
    code, report = await run_cli(site.args("--version", "2.0.1"))
    assert failed(report) == {"TC_B_30_CSMS", "OCS_B_01_CSMS"}
    assert "SecurityError" in reasons(report)["TC_B_30_CSMS"]
    assert code == 1


async def test_a_201_central_system_that_answers_transaction_event_wrongly(site: Site) -> None:
    """Its TransactionEventResponse never carries idTokenInfo (required when the request has an idToken)."""
    app = site.csms
    table = app.server.handlers_by_subprotocol[OCPP201.subprotocol]
    right = table["TransactionEvent"]

    async def without_token_info(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        answer = right(cp_id, payload)
        answer = await answer if inspect.isawaitable(answer) else answer
        assert isinstance(answer, dict)
        answer.pop("idTokenInfo", None)
        return answer

    table["TransactionEvent"] = without_token_info
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", "TC_C_*,TC_E_*,TC_F_*,TC_J_*"))
    bad = failed(report)
    assert {
        "TC_E_03_CSMS",
        "TC_E_04_CSMS",
        "TC_E_15_CSMS",
        "TC_F_01_CSMS",
        "TC_J_07_CSMS",
        "TC_C_08_CSMS",
    } <= bad
    assert all("has no idTokenInfo" in reasons(report)[c] for c in bad)
    # Cases without an idToken in any TransactionEvent are not affected.
    assert verdicts(report)["TC_J_01_CSMS"] == "passed" and verdicts(report)["TC_C_02_CSMS"] == "passed"
    assert code == 1


async def test_a_201_answer_off_the_schema_fails_the_case(naive201: CentralSystem) -> None:
    """Every answer is checked against the 2.0.1 schemas: a Heartbeat answered without currentTime fails."""
    naive201.validate_responses = False  # let the wrong answer out
    naive201.handlers_by_subprotocol[OCPP201.subprotocol]["Heartbeat"] = lambda cp_id, payload: {}
    code, report = await run_cli(
        naive_args(naive201, "--version", "2.0.1", "--cases", "TC_B_01_CSMS,TC_J_01_CSMS")
    )
    assert verdicts(report) == {"TC_B_01_CSMS": "failed", "TC_J_01_CSMS": "passed"}
    assert "HeartbeatResponse violates the OCPP 2.0.1 schema" in reasons(report)["TC_B_01_CSMS"]
    assert code == 1


async def test_201_blocks_the_central_system_does_not_offer_are_not_applicable(site: Site) -> None:
    code, report = await run_cli(
        site.args(
            "--version", "2.0.1", "--profiles", "DataTransfer", "--cases", "TC_L_0*,TC_M_01*,TC_P_*,TC_B_01*"
        )
    )
    v = verdicts(report)
    assert {v[c] for c in ("TC_L_01_CSMS", "TC_L_06_CSMS", "TC_M_01_CSMS")} == {"not_applicable"}
    assert v["TC_P_02_CSMS"] == v["TC_P_03_CSMS"] == v["TC_B_01_CSMS"] == "passed"
    assert "does not offer FirmwareManagement" in reasons(report)["TC_L_01_CSMS"]
    assert code == 0
