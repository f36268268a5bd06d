"""The seeded 200-charger CI scenario gives the same report whether its agents share the process's scheduler of
periodic duties (as a fleet runs) or each has its own (as independent agents on chargers would)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from simulator.fleet import CsmsProcess, Fleet
from simulator.metrics import comparable
from simulator.scenario import load
from tests.simulator.conftest import check_sessions_in_csms, scenario_csms

SCENARIOS = Path(__file__).parents[2] / "simulator" / "scenarios"

pytestmark = pytest.mark.slow


async def _run(tmp_path: Path, csms_factory: list[CsmsProcess], *, per_agent: bool) -> dict[str, Any]:
    scenario = load(SCENARIOS / "ci-200.toml")
    db = tmp_path / "csms.db"
    url = await scenario_csms(scenario, db, csms_factory)
    fleet = Fleet(
        scenario.with_overrides(csms_url=url), work_dir=tmp_path / "fleet", scheduler_per_agent=per_agent
    )
    try:
        await fleet.start()
        await fleet.run()
        await fleet.wind_down()
    finally:
        await fleet.stop()
    report = fleet.report()
    await fleet.close()
    await csms_factory[-1].stop()  # its writes are all in the store before the check
    check_sessions_in_csms(db, [s for s in report["sessions"] if s["transaction_id"] is not None])
    return report


@pytest.mark.timeout(600)  # two runs of the CI scenario, each under the default 120 s
async def test_200_chargers_sharing_one_scheduler_report_exactly_as_with_one_scheduler_each(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    # The two fleets run side by side, each against its own central system: a run is mostly the scenario's wall
    # clock (25 s of driving), not CPU, and one scheduler is per event loop only for the fleet that shares it.
    shared, own = await asyncio.gather(
        _run(tmp_path / "shared", csms_factory, per_agent=False),
        _run(tmp_path / "own", csms_factory, per_agent=True),
    )
    assert shared["chargers_booted"] == own["chargers_booted"] == 200
    assert shared["errors"] == own["errors"] == {}
    assert shared["sessions_by_outcome"].get("completed", 0) >= 100
    assert comparable(shared) == comparable(own)
