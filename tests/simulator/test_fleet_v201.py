"""A fleet of real agents speaking OCPP 2.0.1 (``fleet.ocpp_version``) against the bundled central system: every
session the fleet reports is in the central system's records under the station's transactionId, with the same
energy, ended and billed."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_stub.store import CsmsStore, SecurityEventKind
from simulator.fleet import CsmsProcess, Fleet
from tests.simulator.conftest import seed_csms
from tests.simulator.test_fleet_runs import TAGS, _run, small_scenario

pytestmark = pytest.mark.slow


async def test_a_2_0_1_fleet_run_is_in_the_csms_records(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    db = tmp_path / "csms.db"
    seed_csms(db, [(f"CP-{n:04d}", None) for n in range(1, 13)], TAGS)
    csms = CsmsProcess(db)
    csms_factory.append(csms)
    url = await csms.start()
    scenario = small_scenario(fleet={"ocpp_version": "2.0.1"}).with_overrides(csms_url=url)
    report = await _run(Fleet(scenario, work_dir=tmp_path / "fleet"))
    sessions = [s for s in report["sessions"] if s["transaction_id"] is not None]
    outcomes = report["sessions_by_outcome"]
    assert report["chargers_booted"] == 12
    assert outcomes.get("completed", 0) >= 5, outcomes
    assert set(outcomes) <= {"completed", "rejected"}, outcomes
    # No CALL refused or unanswered; one cut by the fleet's own stop under load is no error of the protocol.
    assert set(report["errors"]) <= {"ConnectionClosed"}, report["errors"]
    with CsmsStore(db) as store:
        by_station_id = {t.station_tx_id: t for t in store.recent_transactions(limit=10_000)}
        for s in sessions:
            assert isinstance(s["transaction_id"], str)  # the station's own id: 2.0.1 has no CSMS integer
            tx = by_station_id[s["transaction_id"]]
            assert (tx.cp_id, tx.connector_id, tx.id_tag) == (s["charger"], s["connector"], s["id_tag"])
            assert tx.meter_stop_wh is not None and tx.energy_wh == s["energy_wh"]
            assert tx.cost_minor is not None
        assert store.active_transactions() == []
        assert store.security_events(kind=SecurityEventKind.SEQUENCE_GAP) == []
