"""The CI scenario: 200 real agents against the bundled central system, checked against its records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from simulator.fleet import CsmsProcess, Fleet
from simulator.metrics import write_report
from simulator.scenario import load
from tests.simulator.conftest import check_sessions_in_csms, scenario_csms

SCENARIOS = Path(__file__).parents[2] / "simulator" / "scenarios"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_session_of_200_chargers_is_in_the_csms_records_with_the_same_energy_and_cost(
    tmp_path: Path, csms_factory: list[CsmsProcess], version: str
) -> None:
    base = load(SCENARIOS / "ci-200.toml")
    scenario = replace(base, fleet=replace(base.fleet, ocpp_version=version))
    db = tmp_path / "csms.db"
    url = await scenario_csms(scenario, db, csms_factory)
    fleet = Fleet(scenario.with_overrides(csms_url=url), work_dir=tmp_path / "fleet")
    try:
        await fleet.start()
        await fleet.run()
        await fleet.wind_down()
    finally:
        await fleet.stop()
    report = fleet.report()
    write_report(report, tmp_path / "fleet")
    await fleet.close()

    assert report["chargers_booted"] == 200
    assert report["chargers_by_version"] == {version: 200}
    sessions = [s for s in report["sessions"] if s["transaction_id"] is not None]
    outcomes = report["sessions_by_outcome"]
    assert len(sessions) >= 100, outcomes  # about one visit per charger, 10 % with unknown cards
    assert set(outcomes) <= {"completed", "rejected"}, outcomes
    assert outcomes.get("rejected", 0) > 0  # the unknown cards were refused by the central system
    assert report["errors"] == {}
    assert report["energy_wh"] == sum(s["energy_wh"] for s in sessions) > 0
    # Same charger, connector, card, energy and cost under the id the version uses; nothing the report does not know.
    check_sessions_in_csms(db, sessions)
