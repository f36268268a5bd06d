"""The 2.0.1 charger runner against real chargers: this project's agent (a `python -m chargepoint run` process with
simulated hardware negotiating ocpp2.0.1, driven by its ctl actuation profile) passes the whole 2.0.1 charger suite;
a deliberately wrong 2.0.1 station built here fails the cases its faults break, and the report names them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
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
from conformance.tls_checks import NO_TLS
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
    assert len(verdicts) == len(V201.charger_cases()) >= 156
    # The blocks that came later run against the agent too: security, local list, reservation, smart charging,
    # firmware, logs, certificates, and TxStart/StopPoint (E) and GetReport (B).
    per_block = {b: len([k for k in verdicts if k.startswith(f"TC_{b}_")]) for b in "ABDEHKLMN"}
    assert per_block == {"A": 13, "B": 28, "D": 9, "E": 16, "H": 10, "K": 28, "L": 2, "M": 6, "N": 3}
    not_passed = {k: v for k, v in verdicts.items() if v[0] != "passed"}
    # The agent answers SummaryInventory, so TC_B_14 passes and its "Not Supported" twin (TC_B_15) is not
    # applicable; it does reset single EVSEs, so TC_B_25 passes and the twin (TC_B_28) is the one not applicable.
    assert not_passed == {
        "TC_B_15_CS": ("not_applicable", "the station supports SummaryInventory (see TC_B_14_CS)"),
        "TC_B_28_CS": ("not_applicable", "the station resets single EVSEs (see TC_B_25_CS)"),
        # ws:// here; tests/conformance/test_charger_tls.py runs the TLS cases on wss://.
        "TC_A_04_CS": ("not_applicable", NO_TLS),
        "TC_A_05_CS": ("not_applicable", NO_TLS),
        "TC_A_06_CS": ("not_applicable", NO_TLS),
        "TC_A_07_CS": ("not_applicable", NO_TLS),
        "TC_A_19_CS": (
            "not_applicable",
            "the upgrade to security profile 3 needs the runner on wss:// with --tls-ca (client certificates)",
        ),
        "TC_A_21_CS": ("not_applicable", NO_TLS),
        "TC_A_22_CS": (
            "not_applicable",
            "the station uses SecurityProfile 1: a downgrade needs profile 2 or 3 (the runner on wss://)",
        ),
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


# ---------------------------------------------------------------------------------------------- negative control


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BadStation:
    """A raw OCPP 2.0.1 station with one fault: ``transition`` reports Occupied -> Reserved when the cable is
    pulled (Part 2 §G01 forbids it), ``seq_gap`` numbers its second TransactionEvent 2 instead of 1,
    ``two_ended`` ends its transaction twice, ``always_queued`` says messagesInQueue true with nothing queued,
    and ``accept_unknown_tx`` accepts a TxProfile for a transaction it
    does not run."""

    def __init__(self, port: int, flaw: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/ocpp/CP-BAD-201"
        self.flaw = flaw
        self.ws: ClientConnection | None = None
        self.n = 0
        self.seq = 0
        self.tx: str | None = None

    async def send(self, action: str, payload: dict[str, Any]) -> None:
        assert self.ws is not None
        self.n += 1
        await self.ws.send(json.dumps([2, f"bad{self.n}", action, payload]))

    async def status(self, status: str) -> None:
        await self.send(
            "StatusNotification",
            {"timestamp": now(), "connectorStatus": status, "evseId": 1, "connectorId": 1},
        )

    async def event(self, event_type: str, trigger: str, **extra: Any) -> None:
        assert self.tx is not None
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": now(),
            "triggerReason": trigger,
            "seqNo": self.seq,
            "transactionInfo": {"transactionId": self.tx},
            **extra,
        }
        if trigger == "ChargingStateChanged":
            payload["transactionInfo"]["chargingState"] = "Charging"  # EnergyTransferStarted
        self.seq += 2 if self.flaw == "seq_gap" else 1
        await self.send("TransactionEvent", payload)

    async def end(self, trigger: str) -> None:
        await self.event("Ended", trigger)
        if self.flaw == "two_ended":
            await self.event("Ended", trigger)
        self.tx = None

    async def read(self, ws: ClientConnection) -> None:
        async for text in ws:
            frame = json.loads(text)
            if frame[0] != 2:
                continue
            if frame[2] == "RequestStopTransaction" and self.tx is not None:
                await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                await self.end("RemoteStop")
            elif frame[2] == "GetCompositeSchedule":
                schedule = {
                    "evseId": frame[3]["evseId"],
                    "duration": frame[3]["duration"],
                    "scheduleStart": now(),
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0}],
                }
                await ws.send(json.dumps([3, frame[1], {"status": "Accepted", "schedule": schedule}]))
            elif frame[2] == "GetTransactionStatus" and self.flaw == "always_queued":
                # Says messages wait although everything was delivered (E14: messagesInQueue false then).
                answer = {"messagesInQueue": True, "ongoingIndicator": self.tx is not None}
                await ws.send(json.dumps([3, frame[1], answer]))
            elif frame[2] == "SetChargingProfile" and self.flaw == "accept_unknown_tx":
                # Accepts a TxProfile whatever transaction it names (K01.FR.?: Rejected for one not running).
                await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            else:
                await ws.send(json.dumps([3, frame[1], {"status": "Rejected"}]))

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, Exception):
                async with connect(self.url, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
                    self.ws = ws
                    await self.send(
                        "BootNotification",
                        {"chargingStation": {"model": "B", "vendorName": "Bad"}, "reason": "PowerUp"},
                    )
                    await ws.recv()  # BootNotificationResponse Accepted: only then other messages (B01)
                    await self.status("Available")
                    await self.read(ws)
            await asyncio.sleep(0.05)


class BadStationActuator(Actuator):
    """Physical steps on the bad station: plug (Occupied), card (start, or stop), unplug (Available)."""

    def __init__(self, station: BadStation) -> None:
        self.station = station

    def available(self, step: str) -> bool:
        return step in ("plug", "unplug", "swipe")

    async def do(self, step: str, **params: str) -> str:
        s = self.station
        if step == "plug":
            await s.status("Occupied")
        elif step == "unplug":
            if s.flaw == "transition":
                await s.status("Reserved")  # Occupied -> Reserved: not in the Part 2 §G01 table
            await s.status("Available")
        elif s.tx is None:
            await s.send("Authorize", {"idToken": {"idToken": params["id_tag"], "type": "ISO14443"}})
            s.tx, s.seq = f"TX-{s.n}", 0
            token = {"idToken": params["id_tag"], "type": "ISO14443"}
            await s.event("Started", "Authorized", idToken=token, evse={"id": 1, "connectorId": 1})
            await s.event("Updated", "ChargingStateChanged")
        else:
            await s.end("StopAuthorized")
        await asyncio.sleep(0.3)  # let the runner's central system log what was sent
        return f"bad station: {step}"


@pytest.mark.parametrize(
    ("flaw", "case_id", "reason"),
    [
        ("transition", "TC_G_02_CS", "EVSE 1 connector 1: Occupied -> Reserved"),
        ("seq_gap", "TC_E_03_CS", "seqNo skips from 0 to 2"),
        ("two_ended", "TC_E_15_CS", "sent after the transaction's Ended event"),
        ("always_queued", "TC_E_30_CS", "delivered no message of the transaction"),
        (
            "accept_unknown_tx",
            "TC_K_16_CS",
            "SetChargingProfileResponse status is 'Accepted', expected Rejected",
        ),
    ],
)
async def test_a_201_station_with_forbidden_transitions_seqno_gaps_two_ended_or_a_foreign_tx_profile_fails(
    flaw: str, case_id: str, reason: str, tmp_path: Path
) -> None:
    port = free_port()
    station = BadStation(port, flaw)
    setup = ChargerSetup(
        port=port,
        actuator=BadStationActuator(station),
        connect_timeout_s=30,
        call_timeout_s=5,
        schema_version="2.0.1",
        subprotocol="ocpp2.0.1",
    )
    cases = select_cases(V201.charger_cases(), f"TC_B_01_CS,{case_id}")
    report = Report("charger", "2.0.1", f"127.0.0.1:{port}")
    task = asyncio.create_task(station.run())
    try:
        await run_charger_suite(setup, cases, report, quiet=True, timeout_scale=0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    verdicts = {r.id: (str(r.verdict), r.reason) for r in report.results}
    assert verdicts["TC_B_01_CS"] == ("passed", "")
    assert verdicts[case_id][0] == "failed"
    assert reason in verdicts[case_id][1]
    assert report.exit_status() == 1
    # The report names the failing case and why, in every format.
    report.write(
        junit=str(tmp_path / "r.xml"), html_path=str(tmp_path / "r.html"), json_path=str(tmp_path / "r.json")
    )
    failures = [
        tc for tc in ET.parse(tmp_path / "r.xml").getroot().iter("testcase") if tc.find("failure") is not None
    ]
    assert [tc.get("name", "").split()[0] for tc in failures] == [case_id]
    assert reason in json.loads((tmp_path / "r.json").read_text())["cases"][1]["reason"]
    assert case_id in (tmp_path / "r.html").read_text()


FLEET_SCENARIO = """
name = "conformance-one"
seed = 1
duration_s = 900
time_scale = 1
tick_s = 0.5

[fleet]
count = 1
id_pattern = "SIM-{n:04d}"
connectors = 1
ocpp_version = "2.0.1"
heartbeat_interval_s = 300
meter_value_sample_interval_s = 60

[drivers]
arrivals_per_hour = [ARRIVALS]  # no driver of its own: only the suite's steps happen
id_tags = ["CONFTAG01"]

[[ev]]
name = "compact"
weight = 1
capacity_wh = 40000
start_soc = [0.2, 0.7]
max_power_w = 7400
phases = 1
""".replace("ARRIVALS", ", ".join(["0.0"] * 24))


@pytest.mark.slow
async def test_a_201_fleet_charger_passes_the_transaction_cases_with_the_simulator_profile(
    tmp_path: Path,
) -> None:
    """One charger of the virtual fleet (the real agent with simulated drivers) negotiating 2.0.1, driven by the
    simulator-fleet actuation profile (`python -m simulator ctl`)."""
    port = free_port()
    scenario = tmp_path / "one.toml"
    scenario.write_text(FLEET_SCENARIO, encoding="utf-8")
    sock = tmp_path / "sim.sock"
    with (tmp_path / "sim.log").open("wb") as log:
        fleet = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "--scenario", str(scenario), "--no-live",
            "--csms", f"ws://127.0.0.1:{port}/ocpp", "--control-socket", str(sock),
            "--report-dir", str(tmp_path / "report"), stdout=log, stderr=log,
        )  # fmt: skip
    try:
        code, report = await run_cli(
            [
                "charger", "--version", "2.0.1", "--listen", f"127.0.0.1:{port}", "--charger-id", "SIM-0001",
                "--actuate", "simulator-fleet", "--var", f"socket={sock}", "--connect-timeout", "60", "-q",
                "--cases", "TC_B_01_CS,TC_E_03_CS,TC_E_15_CS,TC_F_01_CS,TC_G_02_CS,TC_J_07_CS",
            ]
        )  # fmt: skip
    finally:
        fleet.terminate()
        await fleet.wait()
    assert report is not None
    assert {r.id: str(r.verdict) for r in report.results} == dict.fromkeys(
        ["TC_B_01_CS", "TC_E_03_CS", "TC_E_15_CS", "TC_F_01_CS", "TC_G_02_CS", "TC_J_07_CS"], "passed"
    )
    assert code == 0


async def test_a_charger_that_negotiates_another_version_is_a_setup_error(tmp_path: Path) -> None:
    """`--version 2.0.1`, but the charger offers only ocpp1.6: no case runs on the wrong protocol (exit 2)."""
    port = free_port()

    async def charger16() -> None:
        while True:
            with contextlib.suppress(OSError):
                async with connect(f"ws://127.0.0.1:{port}/ocpp/CP-16", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
                    await ws.send(json.dumps([2, "b1", "BootNotification", boot]))
                    await ws.wait_closed()
            await asyncio.sleep(0.05)

    task = asyncio.create_task(charger16())
    try:
        code, report = await run_cli(
            [
                "charger",
                "--version",
                "2.0.1",
                "--listen",
                f"127.0.0.1:{port}",
                "--connect-timeout",
                "20",
                "-q",
            ]
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert code == 2 and report is not None and not report.results
    assert "CP-16 negotiated ocpp1.6, but the suite tests ocpp2.0.1" in report.setup_error


def test_the_201_charger_case_ids_are_catalogue_ids_and_unique() -> None:
    """The catalogue gathers its block modules; each names its OCTT case once, as TC_<block>_<nn>_CS."""
    ids = [c.id for c in V201.charger_cases()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"TC_[A-P]_\d{2}_CS", i) for i in ids)
