"""A scaled-down boot storm: 300 real agents start in the same instant against the bundled central system (a
separate process on a real store) and every one boots Accepted on its first connection: no reset, no refused or
failed BootNotification. The central system's gate is set to trip early, so that it answers some of them Pending."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from backend_stub.store import CsmsStore
from simulator.fleet import CsmsProcess, Fleet
from simulator.scenario import load
from tests.simulator.conftest import seed_csms

SCENARIOS = Path(__file__).parents[2] / "simulator" / "scenarios"
COUNT = 300

pytestmark = pytest.mark.slow


async def test_300_chargers_booting_at_once_all_accepted_without_a_reset(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    base = load(SCENARIOS / "benchmark.toml").with_overrides(count=COUNT, duration_s=120)
    # Every agent is started in one go (no ramp): a site coming back after a power cut.
    scenario = replace(base, fleet=replace(base.fleet, connect_rate_per_s=1e9))
    ids = [scenario.fleet.charger_id(i) for i in range(COUNT)]
    db = tmp_path / "csms.db"
    seed_csms(db, [(cp, None) for cp in ids], ["BENCH-0001"])
    storm = ("--boot-storm-in-flight", "1", "--boot-storm-lag", "0.3", "--boot-storm-interval", "1:4")
    csms = CsmsProcess(db, heartbeat_interval_s=60, extra_args=(*storm, "--boot-storm-rate", "20"))
    csms_factory.append(csms)
    url = await csms.start()
    fleet = Fleet(scenario.with_overrides(csms_url=url), work_dir=tmp_path / "fleet")
    try:
        await fleet.start()  # returns once every charger is booted (or after the ramp timeout)
        links = [c.agent.link for c in fleet.chargers.values()]
        assert all(link is not None for link in links)
        booted = sum(c.booted for c in fleet.chargers.values())
        connections = [link.connections for link in links if link is not None]
        attempts = [link.reconnects for link in links if link is not None]
        kinds = [link.failure_kinds for link in links if link is not None and link.failure_kinds]
        boots = fleet.metrics.calls.get("BootNotification", 0)
        errors = dict(fleet.metrics.errors)
    finally:
        await fleet.stop()
        await fleet.close()
    assert booted == COUNT
    assert connections == [1] * COUNT  # each on its first connection ...
    assert sum(attempts) == 0  # ... with no reset, refusal or timeout before it
    assert kinds == []
    print(f"BootNotifications sent: {boots} for {COUNT} chargers")
    assert boots >= COUNT  # more than one per charger where the gate deferred some
    assert errors == {}
    # The central system recorded every boot.
    with CsmsStore(db) as store:
        assert all((c := store.charger(cp)) is not None and c.last_boot is not None for cp in ids)
