"""Reports parsed back (JUnit with xml.etree, JSON, HTML with html.parser), exit statuses, case selection and the
trigger/actuation profile templates (shipped profiles included)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance.__main__ import build_parser, main
from conformance.csms_runner import asked_matches
from conformance.drivers import ProfileError, fill, kebab, load_actuator, load_trigger, render
from conformance.engine import select_cases
from conformance.model import CaseResult, StepResult, TraceEntry, Verdict
from conformance.report import Report
from conformance.versions import VERSIONS

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def sample_report() -> Report:
    """One case of each verdict, with steps and a trace that needs escaping."""
    report = Report("csms", "1.6", "ws://127.0.0.1:1/ocpp", started=T0, finished=T0)
    for i, verdict in enumerate(Verdict):
        report.results.append(
            CaseResult(
                f"TC_00{i}_CSMS",
                f"Case <{verdict}>",
                "Core" if i % 2 else "Security",
                verdict,
                "" if verdict is Verdict.PASSED else f"because {verdict} & <reasons>",
                started=T0,
                duration_s=0.5,
                steps=[StepResult("boot", Verdict.PASSED), StepResult("check", verdict, "why")],
                trace=[
                    TraceEntry(T0, "sent", '[2,"1","Heartbeat",{}]'),
                    TraceEntry(T0, "received", "<garbage>"),
                ],
            )
        )
    return report


def test_junit_parses_back_with_one_testcase_per_case(tmp_path: Path) -> None:
    sample_report().write_junit(tmp_path / "r.xml")
    root = ET.parse(tmp_path / "r.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "5",
        "1",
        "1",
        "2",
    )
    cases = suite.findall("testcase")
    assert cases[0].get("name") == "TC_000_CSMS Case <passed>"
    by_name = {c.get("name", "").split()[0]: c for c in cases}
    failure = by_name["TC_001_CSMS"].find("failure")
    assert failure is not None and failure.get("message") == "because failed & <reasons>"
    assert "<garbage>" in (failure.text or "")
    assert by_name["TC_004_CSMS"].find("error") is not None
    assert by_name["TC_002_CSMS"].find("skipped") is not None


def test_json_parses_back(tmp_path: Path) -> None:
    sample_report().write_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"] == dict.fromkeys(
        ("passed", "failed", "inconclusive", "not_applicable", "setup_error"), 1
    )
    assert data["exit_status"] == 2 and set(data["blocks"]) == {"Security", "Core"}
    case = data["cases"][1]
    assert case["verdict"] == "failed" and case["steps"][1]["verdict"] == "failed"
    assert case["trace"][0] == {"ts": T0.isoformat(), "direction": "sent", "text": '[2,"1","Heartbeat",{}]'}


class _Collector(HTMLParser):
    """Collects the text of the page and the ids of the case sections."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.case_ids: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "details" and a.get("id"):
            self.case_ids.append(a["id"] or "")
        if tag in ("script", "link", "img") or (a.get("src") or "").startswith("http"):
            self.external.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_parses_back_self_contained_with_summary_steps_and_trace(tmp_path: Path) -> None:
    sample_report().write_html(tmp_path / "r.html")
    page = _Collector()
    page.feed((tmp_path / "r.html").read_text())
    text = "".join(page.text)
    assert page.case_ids == [f"TC_00{i}_CSMS" for i in range(5)]
    assert page.external == []  # one file: no scripts, stylesheets or images from elsewhere
    assert "Summary per functional block" in text and "SETUP ERROR" in text
    assert (
        "because failed & <reasons>" in text and "<garbage>" in text
    )  # escaped in the file, text again here
    assert '[2,"1","Heartbeat",{}]' in text and "2026-12-01T10:00:00.000+00:00" in text


def test_exit_status_rules() -> None:
    report = Report("charger", "1.6", "x")
    assert report.exit_status() == 0
    report.results.append(CaseResult("A", "a", "Core", Verdict.INCONCLUSIVE))
    report.results.append(CaseResult("B", "b", "Core", Verdict.NOT_APPLICABLE))
    assert report.exit_status() == 0
    report.results.append(CaseResult("C", "c", "Core", Verdict.FAILED))
    assert report.exit_status() == 1
    report.setup_error = "nobody came"
    assert report.exit_status() == 2


def test_case_selection_by_id_and_block_patterns() -> None:
    cases = VERSIONS["1.6"].csms_cases()
    assert [c.id for c in select_cases(cases, "tc_003_csms")] == ["TC_003_CSMS"]
    assert {c.block for c in select_cases(cases, "SmartCharging")} == {"SmartCharging"}
    assert len(select_cases(cases, "TC_023_*,OCS_01?_CSMS")) == 3 + 6
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    charger_ids = [c.id for c in VERSIONS["1.6"].charger_cases()]
    assert all(i.endswith("_CS") for i in charger_ids) and len(charger_ids) == len(set(charger_ids))


def test_every_case_has_a_timeout_and_steps() -> None:
    for case in [*VERSIONS["1.6"].csms_cases(), *VERSIONS["1.6"].charger_cases()]:
        assert case.timeout_s > 0 and case.steps, case.id


def test_templates_and_kebab_case() -> None:
    assert kebab("RemoteStartTransaction") == "remote-start-transaction"
    assert fill('{"a": {x}, "b": {unknown}}', {"x": "1"}) == '{"a": 1, "b": {unknown}}'


def test_shipped_trigger_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSMS_ADMIN_TOKEN", "tok")
    monkeypatch.delenv("CSMS_HTTP_URL", raising=False)
    bundled = load_trigger("bundled-csms")
    req = bundled.request("Reset", {"type": "Hard"}, "CP-1")
    assert (req.method, req.url, req.body) == (
        "POST",
        "http://127.0.0.1:9000/api/chargers/CP-1/commands/Reset",
        '{"type":"Hard"}',
    )
    assert req.headers["Authorization"] == "Bearer tok"
    tzi = load_trigger("tzi-octt", {"base_url": "http://h:5001"})
    assert tzi.request("RemoteStopTransaction", {"transactionId": 3}, "CP16_SP1").url == (
        "http://h:5001/api/octt/1.6/CP16_SP1/remote-stop-transaction"
    )
    # The runner passes its --version: the same profile drives a tzi-OCTT 2.0.1 adapter.
    tzi201 = load_trigger("tzi-octt", {"base_url": "http://h:5001", "ocpp_version": "2.0.1"})
    assert tzi201.request("RequestStopTransaction", {"transactionId": "T"}, "CP201_SP1").url == (
        "http://h:5001/api/octt/2.0.1/CP201_SP1/request-stop-transaction"
    )
    monkeypatch.delenv("CSMS_ADMIN_TOKEN")
    with pytest.raises(ProfileError, match="CSMS_ADMIN_TOKEN is not set"):
        load_trigger("bundled-csms")


def test_trigger_profile_per_action_overrides_and_skips(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[http]\nbase_url = "http://x"\n[default]\nurl = "{base_url}/{action}"\n'
        '[actions.Reset]\nurl = "{base_url}/reboot/{cp}"\nbody = \'{"kind": "{payload_type}"}\'\n'
        "[actions.UpdateFirmware]\nskip = true\n"
    )
    trigger = load_trigger(str(path))
    req = trigger.request("Reset", {"type": "Soft"}, "CP-9")
    assert (req.url, req.body) == ("http://x/reboot/CP-9", '{"kind": "Soft"}')
    assert not trigger.available("UpdateFirmware") and trigger.available("ClearCache")
    path.write_text('[default]\nurll = "x"\n')
    with pytest.raises(ProfileError, match="unknown key"):
        load_trigger(str(path))


def test_a_json_template_renders_nested_fields_with_their_types(tmp_path: Path) -> None:
    """Structured values: whole placeholders keep the parameter's JSON type, nested keys and lists are built,
    ``?`` leaves a missing field out, $each / $map reshape; a parameter the template needs and the step does not
    give is a ProfileError that names it."""
    path = tmp_path / "structured.toml"
    path.write_text(
        '[http]\nbase_url = "http://x"\n[default]\nurl = "{base_url}/raw/{action}"\n'
        '[actions.SetChargingProfile]\nurl = "{base_url}/{cp}/profile"\n'
        "[actions.SetChargingProfile.json]\n"
        'evse = "{payload.evseId}"\n'
        'note = "profile {payload.chargingProfile.id} for {cp}"\n'
        'profile = { id = "{payload.chargingProfile.id}", tx = "{payload.chargingProfile.transactionId?}" }\n'
        'schedule = "{payload.chargingProfile.chargingSchedule.0}"\n'
        'periods = { "$each" = "{payload.chargingProfile.chargingSchedule.0.chargingSchedulePeriod}", '
        '"$item" = { start_s = "{item.startPeriod}", limit = "{item.limit}" } }\n'
        'full = { "$map" = "{payload.updateType?}", "$to" = { Full = true }, "$default" = false }\n'
        "[actions.Reset]\n"
        'json = { kind = "{payload.type}", when = "{payload.when}" }\n'
    )
    trigger = load_trigger(str(path))
    schedule = {
        "id": 1,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.5}],
    }
    payload = {"evseId": 1, "chargingProfile": {"id": 7, "chargingSchedule": [schedule]}}
    req = trigger.request("SetChargingProfile", payload, "CP-1")
    assert req.url == "http://x/CP-1/profile" and req.headers["Content-Type"] == "application/json"
    assert req.body is not None and json.loads(req.body) == {
        "evse": 1,
        "note": "profile 7 for CP-1",
        "profile": {"id": 7},  # no transactionId: the optional key is left out
        "schedule": schedule,
        "periods": [{"start_s": 0, "limit": 6.5}],
        "full": False,
    }
    # The default's text body still serves the other actions, unchanged.
    assert trigger.request("ClearCache", {"a": [1]}, "CP-1").body == '{"a":[1]}'
    with pytest.raises(
        ProfileError, match=r"needs \{payload\.when\}.*payload fields: type.*\{payload\.when\?\}"
    ):
        trigger.request("Reset", {"type": "Hard"}, "CP-1")
    with pytest.raises(ProfileError, match=r"\$map has no \$to entry for 'Differential'"):
        render({"f": {"$map": "{p}", "$to": {"Full": True}}}, {"p": "Differential"})
    with pytest.raises(ProfileError, match="exactly one of"):
        render({"$each": "{p}", "$map": "{p}"}, {"p": []})
    path.write_text('[default]\nurl = "x"\n[actions.Reset]\nbody = "{payload}"\njson = { a = 1 }\n')
    with pytest.raises(ProfileError, match="not both"):
        load_trigger(str(path))


def test_version_scoped_actions_and_the_bundled_operations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled profile sends local lists, reservations and profiles to the central system's own operations,
    in each version's field names; other actions still go to the raw command endpoint."""
    monkeypatch.setenv("CSMS_ADMIN_TOKEN", "tok")
    v16 = load_trigger("bundled-csms", {"base_url": "http://h", "ocpp_version": "1.6"})
    req = v16.request(
        "SendLocalList",
        {
            "listVersion": 2,
            "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}, {"idTag": "B"}],
        },
        "CP-1",
    )
    assert req.url == "http://h/api/chargers/CP-1/operations/send-local-list"
    assert req.body is not None and json.loads(req.body) == {
        "version": 2,
        "full": False,
        "entries": [{"token": "A", "status": "Accepted"}, {"token": "B"}],
    }
    v201 = load_trigger("bundled-csms", {"base_url": "http://h", "ocpp_version": "2.0.1"})
    req = v201.request("SendLocalList", {"versionNumber": 6, "updateType": "Full"}, "CP-1")
    assert req.body is not None and json.loads(req.body) == {"version": 6, "full": True, "entries": []}
    req = v201.request(
        "ReserveNow",
        {
            "id": 3,
            "expiryDateTime": "2030-01-01T00:00:00Z",
            "idToken": {"idToken": "T", "type": "Central"},
            "connectorType": "cType2",
        },
        "CP-1",
    )
    assert req.body is not None and json.loads(req.body) == {
        "reservation_id": 3,
        "token": "T",
        "expires_at": "2030-01-01T00:00:00Z",
        "connector_type": "cType2",
    }
    assert (
        v201.request("Reset", {"type": "OnIdle"}, "CP-1").url == "http://h/api/chargers/CP-1/commands/Reset"
    )


def test_the_asked_fields_match_exactly_but_for_the_central_systems_id_token_type() -> None:
    token = {"idToken": "04A1B2C3", "type": "Central"}
    assert asked_matches([{"idToken": token}], [{"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}])
    assert not asked_matches(token, {"idToken": "04A1B2C4", "type": "Central"})
    assert not asked_matches(token, {"idToken": "04A1B2C3", "type": "Central", "additionalInfo": []})
    assert not asked_matches({"type": "Hard"}, {"type": "Soft"})  # only an IdTokenType's type is the CSMS's
    assert not asked_matches([1, 2], [1]) and not asked_matches({"a": 1}, {"a": 1, "b": None})
    assert asked_matches({"limit": 6}, {"limit": 6.0})


def test_shipped_actuation_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = load_actuator("chargepoint-agent", {"config": "/etc/station.toml"})
    argv = agent.command("swipe", {"connector": "1", "id_tag": "TAG"})
    assert argv[1:] == ["-m", "chargepoint", "ctl", "--config", "/etc/station.toml", "swipe", "1", "TAG"]
    # The agent's profile runs the agent as its [process]: a power cut kills it, a restore starts it again.
    assert agent.available("power_cut") and agent.available("power_restore")
    assert agent.process.split()[1:] == ["-m", "chargepoint", "run", "--config", "{config}"]
    monkeypatch.setenv("SIM_CONTROL_SOCKET", "/run/fleet.sock")
    fleet = load_actuator("simulator-fleet", {"cp": "SIM-0001"})
    assert fleet.command("swipe", {"connector": "2", "id_tag": "T"})[1:] == [
        "-m",
        "simulator",
        "ctl",
        "--socket",
        "/run/fleet.sock",
        "swipe",
        "SIM-0001",
        "T",
        "2",
    ]
    assert not fleet.available("power_cut")  # simulator ctl has no power step


def test_cli_version_list_and_unknown_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        build_parser().parse_args(["--version"])
    assert version.value.code == 0 and "python -m conformance" in capsys.readouterr().out
    args = build_parser().parse_args(["csms", "--version", "1.6", "--url", "ws://x", "--charger-id", "A"])
    assert args.ocpp_version == "1.6"
    assert main(["csms", "--url", "ws://x", "--charger-id", "A", "--list", "--cases", "Security"]) == 0
    listed = capsys.readouterr().out
    assert "TC_085_CSMS" in listed and "needs: password" in listed
    assert main(["charger", "--cases", "TC_999_CS"]) == 2


def test_cli_lists_both_201_catalogues(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["csms", "--version", "2.0.1", "--url", "ws://x", "--charger-id", "A", "--list"]
    assert main(argv) == 0
    listed = capsys.readouterr().out
    assert "TC_B_01_CSMS" in listed and "TC_E_53_CSMS" in listed and "TC_085_CSMS" not in listed
    ids = [c.id for c in VERSIONS["2.0.1"].csms_cases()]
    assert len(ids) == len(set(ids)) >= 100
    assert main(["charger", "--version", "2.0.1", "--list", "--cases", "E Transactions"]) == 0
    listed = capsys.readouterr().out
    assert "TC_E_03_CS" in listed and "needs: plug, swipe, unplug" in listed and "TC_B_01_CS" not in listed
    charger_ids = [c.id for c in VERSIONS["2.0.1"].charger_cases()]
    assert len(charger_ids) == len(set(charger_ids)) >= 70
    assert all(i.startswith("TC_") and i.endswith("_CS") for i in charger_ids)
