"""A QA pipeline reads the simulator's exit status: a fleet that never boots, or a run with too many errors,
must fail, and quickly, with log lines that name the charger."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.__main__ import main
from simulator.scenario import Checks, ScenarioError, load, parse


def _report(chargers: int, booted: int, errors: dict[str, int] | None = None) -> dict[str, Any]:
    return {"chargers": chargers, "chargers_booted": booted, "errors": errors or {}}


@pytest.mark.parametrize(
    ("checks", "report", "failed"),
    [
        (Checks(), _report(5, 0), ["no charger booted"]),
        (Checks(), _report(5, 1), []),
        (Checks(min_booted_share=0.8), _report(5, 3), ["3 of 5 chargers booted"]),
        (Checks(min_booted_share=0.8), _report(5, 4), []),
        (Checks(max_errors=2), _report(5, 5, {"Timeout": 2, "InternalError": 1}), ["3 errors, more than 2"]),
        (Checks(max_errors=3), _report(5, 5, {"Timeout": 2, "InternalError": 1}), []),
        (Checks(), _report(5, 5, {"Timeout": 900}), []),
    ],
)
def test_checks_name_what_failed(checks: Checks, report: dict[str, Any], failed: list[str]) -> None:
    failures = checks.failures(report)
    assert len(failures) == len(failed)
    for line, expected in zip(failures, failed, strict=True):
        assert expected in line


def test_checks_come_from_the_scenario_and_the_command_line() -> None:
    scenario = parse({"checks": {"min_booted_share": 0.9, "max_errors": 10}})
    assert scenario.checks == Checks(min_booted_share=0.9, max_errors=10)
    overridden = scenario.with_overrides(min_booted_share=0.5, max_errors=0)
    assert overridden.checks == Checks(min_booted_share=0.5, max_errors=0)
    with pytest.raises(ScenarioError, match=r"checks\.min_booted_share"):
        parse({"checks": {"min_booted_share": 1.5}})
    with pytest.raises(ScenarioError, match=r"checks\.max_errors"):
        parse({"checks": {"max_errors": -1}})
    with pytest.raises(ScenarioError, match=r"checks\.max_error"):
        parse({"checks": {"max_error": 1}})
    with pytest.raises(ScenarioError, match="--fail-on-booted-below"):
        scenario.with_overrides(min_booted_share=2.0)


def test_a_packaged_scenario_is_found_by_name() -> None:
    assert load("ci-200").fleet.count == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.slow
def test_a_fleet_that_cannot_connect_fails_fast_and_names_its_chargers(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}/ocpp"
    run = subprocess.run(
        [sys.executable, "-m", "simulator", "run", "--scenario", "demo", "--csms", url, "--count", "2",
         "--duration", "3", "--no-live", "--report-dir", str(tmp_path / "out"),
         "--control-socket", str(tmp_path / "fleet.sock")],
        capture_output=True, text=True, timeout=90, cwd=tmp_path, env=dict(os.environ),
    )  # fmt: skip
    assert run.returncode == 1, run.stderr[-2000:]
    assert "FAILED: no charger booted (0 of 2)" in run.stderr
    assert "[CP-0001] chargepoint.csms.link: cannot reach the CSMS" in run.stderr
    assert (tmp_path / "out" / "report.json").is_file()  # the report is still written


@pytest.mark.slow
async def test_a_seeded_central_system_knows_the_ci_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # README: `python -m simulator seed --scenario ci-200 --db csms.db`, then serve that store and run the fleet.
    import asyncio

    from backend_stub.process import start_csms_process

    db = tmp_path / "csms.db"
    assert main(["seed", "--scenario", "ci-200", "--db", str(db), "--count", "4"]) == 0
    assert "4 chargers added" in capsys.readouterr().out
    csms, url = await start_csms_process(db=db)
    try:
        fleet = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "--scenario", "ci-200", "--csms", url, "--count", "4",
            "--duration", "4", "--no-live", "--report-dir", str(tmp_path / "out"), "--fail-on-booted-below", "1",
            "--control-socket", str(tmp_path / "fleet.sock"), cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(fleet.communicate(), 120)
        assert fleet.returncode == 0, stderr.decode()[-2000:]
    finally:
        csms.terminate()
        await csms.wait()
