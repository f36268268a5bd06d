"""The 2.0.1 CSMS cases of the conditional blocks D (local list), H (reservation), K (smart charging) and M
(certificates) against the bundled central system on 127.0.0.1 with its REST trigger profile, and negative
controls: the same central system with one business rule broken in what it sends (each CALL of one action
rewritten on its way out) fails exactly the cases that rule belongs to, with the clause named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend_stub.ocpp.server import OCPP201
from conformance.__main__ import run_cli
from tests.conformance.conftest import Site
from tests.conformance.test_csms_suite import failed, reasons, verdicts

pytestmark = pytest.mark.timeout(300)

BLOCKS = "TC_D_*,TC_H_*,TC_K_*,TC_M_*"
Rewrite = Callable[[dict[str, Any]], None]


def breaking(site: Site, action: str, rewrite: Rewrite) -> None:
    """Make the bundled central system send every ``action`` CALL rewritten by ``rewrite`` (a copy)."""
    server = site.csms.server
    right = server.call

    async def call(cp_id: str, name: str, payload: dict[str, Any], timeout: float | None = None) -> Any:
        if name == action:
            payload = copy.deepcopy(payload)
            rewrite(payload)
        return await right(cp_id, name, payload, timeout)

    server.call = call  # type: ignore[method-assign]


def version_zero(payload: dict[str, Any]) -> None:
    payload["versionNumber"] = 0


def version_not_raised(payload: dict[str, Any]) -> None:
    if payload["updateType"] == "Differential":
        payload["versionNumber"] = 1  # below the version the station reported


def late_first_period(payload: dict[str, Any]) -> None:
    for schedule in payload["chargingProfile"]["chargingSchedule"]:
        schedule["chargingSchedulePeriod"][0]["startPeriod"] = 60


def periods_out_of_order(payload: dict[str, Any]) -> None:
    for schedule in payload["chargingProfile"]["chargingSchedule"]:
        schedule["chargingSchedulePeriod"] += [
            {"startPeriod": 600, "limit": 8.0},
            {"startPeriod": 300, "limit": 7.0},
        ]


def tx_profile_without_transaction(payload: dict[str, Any]) -> None:
    payload["chargingProfile"].pop("transactionId", None)


def expired_reservation(payload: dict[str, Any]) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    payload["expiryDateTime"] = past.isoformat(timespec="seconds").replace("+00:00", "Z")


def clear_everything(payload: dict[str, Any]) -> None:
    payload.clear()


def other_hash_algorithm(payload: dict[str, Any]) -> None:
    payload["certificateHashData"]["hashAlgorithm"] = "SHA384"


SET_PROFILE_CASES = {
    "TC_K_01_CSMS",
    "TC_K_02_CSMS",
    "TC_K_03_CSMS",
    "TC_K_04_CSMS",
    "TC_K_10_CSMS",
    "TC_K_15_CSMS",
    "TC_K_19_CSMS",
    "TC_K_60_CSMS",
    "TC_K_70_CSMS",
}
RESERVE_CASES = {f"TC_H_{n}_CSMS" for n in ("01", "07", "08", "14", "15", "17", "19", "20", "22")}


async def test_the_bundled_central_system_passes_the_d_h_k_m_cases(site: Site) -> None:
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", BLOCKS))
    v = verdicts(report)
    assert {k: (x, reasons(report)[k]) for k, x in v.items() if x != "passed"} == {}
    assert {"TC_D_01_CSMS", "TC_H_17_CSMS", "TC_K_37_CSMS", "TC_K_60_CSMS", "TC_M_18_CSMS"} <= set(v)
    assert code == 0


async def test_without_a_trigger_the_d_h_k_cases_are_inconclusive(site: Site) -> None:
    args = site.args("--version", "2.0.1", "--cases", "TC_D_01*,TC_H_01*,TC_K_01*")
    at = args.index("--trigger")
    del args[at : at + 2]
    code, report = await run_cli(args)
    assert set(verdicts(report).values()) == {"inconclusive"}
    assert code == 0


@pytest.mark.parametrize(
    ("action", "rewrite", "broken", "why"),
    [
        pytest.param(
            "SendLocalList",
            version_zero,
            {"TC_D_01_CSMS", "TC_D_02_CSMS", "TC_D_03_CSMS", "TC_D_04_CSMS"},
            "D01.FR.18",
            id="local-list-version-0",
        ),
        pytest.param(
            "SendLocalList",
            version_not_raised,
            {"TC_D_02_CSMS", "TC_D_03_CSMS"},
            "after the station reported version",
            id="differential-list-version-not-raised",
        ),
        pytest.param(
            "SetChargingProfile",
            late_first_period,
            SET_PROFILE_CASES,
            "K01.FR.31",
            id="first-period-not-at-0",
        ),
        pytest.param(
            "SetChargingProfile",
            periods_out_of_order,
            SET_PROFILE_CASES,
            "do not increase",
            id="periods-out-of-order",
        ),
        pytest.param(
            "SetChargingProfile",
            tx_profile_without_transaction,
            {"TC_K_02_CSMS", "TC_K_60_CSMS"},
            "K01.FR.03",
            id="tx-profile-without-transaction",
        ),
        pytest.param(
            "ReserveNow", expired_reservation, RESERVE_CASES, "not in the future", id="reservation-expired"
        ),
        pytest.param(
            "ClearChargingProfile",
            clear_everything,
            {"TC_K_05_CSMS", "TC_K_06_CSMS", "TC_K_08_CSMS"},
            "K10.FR.02",
            id="clear-without-criteria",
        ),
        pytest.param(
            "DeleteCertificate",
            other_hash_algorithm,
            {"TC_M_20_CSMS", "TC_M_21_CSMS"},
            "M04.FR.07",
            id="delete-with-another-hash-algorithm",
        ),
    ],
)
async def test_a_central_system_breaking_a_rule_fails_its_cases(
    site: Site, action: str, rewrite: Rewrite, broken: set[str], why: str
) -> None:
    breaking(site, action, rewrite)
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", BLOCKS))
    assert failed(report) == broken
    assert all(why in reasons(report)[c] for c in broken), {c: reasons(report)[c] for c in broken}
    # The other blocks' cases still pass: the judges look only at the message they are about.
    assert verdicts(report)["TC_M_18_CSMS"] == "passed"
    assert code == 1


async def test_a_remote_start_profile_naming_a_transaction_fails_tc_k_37(site: Site) -> None:
    """F01.FR.11: the profile of a RequestStartTransaction names no transaction (it does not exist yet)."""

    def with_transaction(payload: dict[str, Any]) -> None:
        if "chargingProfile" in payload:
            payload["chargingProfile"]["transactionId"] = "CONF-EARLY"

    breaking(site, "RequestStartTransaction", with_transaction)
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", "TC_K_37*,TC_F_01*"))
    assert failed(report) == {"TC_K_37_CSMS"}
    assert "F01.FR.11" in reasons(report)["TC_K_37_CSMS"]
    assert code == 1


async def test_a_central_system_without_the_external_limit_messages_fails_k12_k13(site: Site) -> None:
    """TC_K_48/50/51: NotifyChargingLimit and ClearedChargingLimit must be answered (here: NotImplemented)."""
    table = site.csms.server.handlers_by_subprotocol[OCPP201.subprotocol]
    del table["NotifyChargingLimit"], table["ClearedChargingLimit"]
    code, report = await run_cli(site.args("--version", "2.0.1", "--cases", "TC_K_4*,TC_K_5*"))
    assert failed(report) == {"TC_K_48_CSMS", "TC_K_50_CSMS", "TC_K_51_CSMS"}
    assert "NotImplemented" in reasons(report)["TC_K_48_CSMS"]
    assert verdicts(report)["TC_K_52_CSMS"] == "passed"
    assert code == 1


async def test_blocks_not_offered_are_not_applicable(site: Site) -> None:
    code, report = await run_cli(
        site.args(
            "--version", "2.0.1", "--profiles", "SmartCharging", "--cases", "TC_D_01*,TC_H_01*,TC_K_01*"
        )
    )
    v = verdicts(report)
    assert v == {"TC_D_01_CSMS": "not_applicable", "TC_H_01_CSMS": "not_applicable", "TC_K_01_CSMS": "passed"}
    assert "does not offer LocalAuthListManagement" in reasons(report)["TC_D_01_CSMS"]
    assert code == 0
