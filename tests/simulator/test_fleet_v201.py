"""Fleets of real agents speaking OCPP 2.0.1 (``fleet.ocpp_version``) or a mix of 1.6 and 2.0.1
(``fleet.ocpp_versions``) against the bundled central system: every session the fleet reports is in the central
system's records under the id that version uses, with the same energy, ended and billed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend_stub.store import CsmsStore, SecurityEventKind
from simulator.fleet import CsmsProcess, Fleet
from tests.simulator.conftest import check_sessions_in_csms, seed_csms
from tests.simulator.test_fleet_runs import TAGS, _run, small_scenario

pytestmark = pytest.mark.slow


async def _run_against_csms(
    tmp_path: Path, csms_factory: list[CsmsProcess], fleet: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    db = tmp_path / "csms.db"
    seed_csms(db, [(f"CP-{n:04d}", None) for n in range(1, 13)], TAGS)
    csms = CsmsProcess(db)
    csms_factory.append(csms)
    url = await csms.start()
    scenario = small_scenario(fleet=fleet).with_overrides(csms_url=url)
    return db, await _run(Fleet(scenario, work_dir=tmp_path / "fleet"))


def _check(db: Path, report: dict[str, Any]) -> None:
    outcomes = report["sessions_by_outcome"]
    assert report["chargers_booted"] == 12
    assert outcomes.get("completed", 0) >= 5, outcomes
    assert set(outcomes) <= {"completed", "rejected"}, outcomes
    # No CALL refused or unanswered; one cut by the fleet's own stop under load is no error of the protocol.
    assert set(report["errors"]) <= {"ConnectionClosed"}, report["errors"]
    check_sessions_in_csms(db, [s for s in report["sessions"] if s["transaction_id"] is not None])
    with CsmsStore(db) as store:
        assert store.active_transactions() == []
        assert store.security_events(kind=SecurityEventKind.SEQUENCE_GAP) == []


async def test_a_2_0_1_fleet_run_is_in_the_csms_records(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    db, report = await _run_against_csms(tmp_path, csms_factory, {"ocpp_version": "2.0.1"})
    _check(db, report)
    assert report["chargers_by_version"] == {"2.0.1": 12}


async def test_a_mixed_fleet_run_counts_and_checks_the_sessions_of_both_versions(
    tmp_path: Path, csms_factory: list[CsmsProcess]
) -> None:
    db, report = await _run_against_csms(
        tmp_path, csms_factory, {"ocpp_versions": {"1.6": 0.5, "2.0.1": 0.5}}
    )
    _check(db, report)
    assert report["chargers_by_version"] == {"1.6": 6, "2.0.1": 6}
    by_version = report["sessions_by_version"]
    assert by_version["1.6"].get("completed", 0) > 0 and by_version["2.0.1"].get("completed", 0) > 0, (
        by_version
    )
    first_half = {f"CP-{n:04d}" for n in range(1, 7)}  # contiguous blocks in scenario order: 1.6 first
    for version, counts in by_version.items():
        sessions = [s for s in report["sessions"] if s["ocpp_version"] == version]
        assert sum(counts.values()) == len(sessions) > 0
        assert all((s["charger"] in first_half) == (version == "1.6") for s in sessions), version
