"""The 2.0.1 charger runner against real chargers: this project's agent (a `python -m chargepoint run` process with
simulated hardware negotiating ocpp2.0.1, driven by its ctl actuation profile) passes the whole 2.0.1 charger suite;
a deliberately wrong 2.0.1 station built here fails the cases its faults break, and the report names them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from conformance.__main__ import run_cli
from conformance.charger_runner import ChargerSetup, run_charger_suite
from conformance.drivers import Actuator
from conformance.engine import select_cases
from conformance.report import Report
from conformance.versions import VERSIONS
from tests.conformance.test_charger_suite import AGENT_CONFIG, charger_args, free_port

pytestmark = pytest.mark.timeout(900)

V201 = VERSIONS["2.0.1"]


@pytest.fixture
def agent201(tmp_path: Path) -> tuple[int, Path]:
    """The agent's config offering only ocpp2.0.1, pointed at a port the charger runner will listen on."""
    port = free_port()
    config = tmp_path / "station.toml"
    text = AGENT_CONFIG.format(port=port, dir=tmp_path).replace(
        "[csms]\n", '[csms]\nocpp_versions = ["2.0.1"]\n', 1
    )
    config.write_text(text, encoding="utf-8")
    return port, config


@pytest.mark.slow
async def test_the_agent_passes_the_whole_201_charger_suite_with_its_ctl_profile(
    agent201: tuple[int, Path], tmp_path: Path
) -> None:
    port, config = agent201
    junit, html, out = tmp_path / "c.xml", tmp_path / "c.html", tmp_path / "c.json"
    code, report = await run_cli(
        charger_args(
            port, config, "--version", "2.0.1", "--junit", str(junit), "--html", str(html), "--json", str(out)
        )
    )
    assert report is not None
    verdicts = {r.id: (str(r.verdict), r.reason) for r in report.results}
    assert len(verdicts) == len(V201.charger_cases()) >= 70
    not_passed = {k: v for k, v in verdicts.items() if v[0] != "passed"}
    # The agent answers SummaryInventory and a single-EVSE Reset as not supported: their "Not Supported" twins
    # (TC_B_15, TC_B_28) pass instead.
    assert not_passed == {
        "TC_B_14_CS": ("not_applicable", "the station answers SummaryInventory NotSupported (see TC_B_15_CS)"),
        "TC_B_25_CS": ("not_applicable", "the station does not reset single EVSEs (Rejected; see TC_B_28_CS)"),
    }
    assert code == 0
    # Reports parse back: JUnit has one testcase per case, JSON the same verdicts, HTML names the version.
    suites = ET.parse(junit).getroot()
    names = [tc.get("name", "") for tc in suites.iter("testcase")]
    assert len(names) == len(verdicts)
    assert any(n.startswith("TC_E_03_CS") for n in names)
    data = json.loads(out.read_text())
    assert data["ocpp_version"] == "2.0.1" and data["exit_status"] == 0
    assert {c["id"]: c["verdict"] for c in data["cases"]} == {k: v[0] for k, v in verdicts.items()}
    assert "OCPP 2.0.1" in html.read_text()
    # The traces hold the 2.0.1 frames of each case.
    e03 = next(r for r in report.results if r.id == "TC_E_03_CS")
    assert any('"TransactionEvent"' in t.text and '"Started"' in t.text for t in e03.trace)
