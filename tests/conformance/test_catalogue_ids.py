"""The case ids against the public catalogue: the table of unconfirmed ids names real cases, every id has the
OCTT form of its side, and an unconfirmed id is marked in --list and in every report format."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.__main__ import main
from conformance.catalogue_ids import UNCONFIRMED
from conformance.model import CaseResult, Verdict
from conformance.report import Report
from conformance.versions import VERSIONS

ID_FORMS = {
    ("1.6", "csms"): re.compile(r"TC_\d{3}(_\d)?_CSMS"),
    ("1.6", "charger"): re.compile(r"TC_\d{3}(_\d)?_CS"),
    ("2.0.1", "csms"): re.compile(r"TC_[A-P]_\d{2,3}_CSMS"),
    ("2.0.1", "charger"): re.compile(r"TC_[A-P]_\d{2,3}_CS"),
}


def test_every_unconfirmed_id_names_a_catalogue_case() -> None:
    ids = {c.id for v in VERSIONS.values() for c in (*v.csms_cases(), *v.charger_cases()) if c.catalogue}
    assert sorted(set(UNCONFIRMED) - ids) == []
    assert all(reason.strip() for reason in UNCONFIRMED.values())


@pytest.mark.parametrize(("version", "side"), sorted(ID_FORMS))
def test_catalogue_ids_have_the_octt_form_of_their_side(version: str, side: str) -> None:
    v = VERSIONS[version]
    cases = v.csms_cases() if side == "csms" else v.charger_cases()
    wrong = [c.id for c in cases if c.catalogue and not ID_FORMS[(version, side)].fullmatch(c.id)]
    assert wrong == []


def test_list_marks_unconfirmed_ids(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["charger", "--version", "1.6", "--list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "(id unconfirmed)" in lines["TC_023_2_CS"]
    assert "(id unconfirmed)" not in lines["TC_023_CS"]


def test_reports_carry_the_unconfirmed_mark(tmp_path: Path) -> None:
    report = Report("charger", "1.6", "ws://127.0.0.1:1/ocpp/CP")
    report.results = [
        CaseResult("TC_023_2_CS", "Authorize expired", "Core", Verdict.PASSED, id_unconfirmed="why"),
        CaseResult("TC_023_CS", "Authorize invalid", "Core", Verdict.PASSED),
    ]
    paths = {kind: tmp_path / f"r.{kind}" for kind in ("json", "xml", "html")}
    report.write(junit=str(paths["xml"]), html_path=str(paths["html"]), json_path=str(paths["json"]))
    cases = {c["id"]: c for c in json.loads(paths["json"].read_text())["cases"]}
    assert cases["TC_023_2_CS"]["id_unconfirmed"] == "why" and cases["TC_023_CS"]["id_unconfirmed"] == ""
    suite = ET.parse(paths["xml"]).getroot().find("testsuite")
    assert suite is not None
    marks = {
        (tc.get("name") or "").split()[0]: [p.get("value") for p in tc.iter("property")]
        for tc in suite.findall("testcase")
    }
    assert marks == {"TC_023_2_CS": ["why"], "TC_023_CS": []}
    assert paths["html"].read_text().count("(id unconfirmed)") == 1
