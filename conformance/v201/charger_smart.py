"""OCPP 2.0.1 charging-station cases of block K, smart charging (TC_K_NN_CS): SetChargingProfile (K01),
RequestStartTransaction with a chargingProfile (K05), GetCompositeSchedule (K08), GetChargingProfiles (K09) and
ClearChargingProfile (K10).

Every answer is checked against the 2.0.1 schema by the runner; beyond the status, each case looks for the effect:
an Accepted profile shows in the EVSE's composite schedule and in ReportChargingProfiles, a Rejected or cleared one
does not. The runner asks every limit in A (one chargingSchedulePeriod each, limits a station must take), and
clears every profile after each case so that the next starts from none.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.model import Case, Fail, Step
from conformance.v201.charger import tx_id_of
from conformance.v201.charger_cases import (
    PLUG,
    PLUG_SWIPE,
    REMOTE_TOKEN,
    UNKNOWN_TX,
    Ctx,
    StepFn,
    check_frames,
    plug,
    reboot_seen,
    start_local,
    to_idle,
)

__all__ = ["CASES"]

SMART = "K SmartCharging"
CASES: list[Case[Ctx]] = []
STATION = 0  # evseId 0: the Charging Station as a whole
EVSE = -1  # stands for the EVSE under test (``--connector``)
COMPOSITE_S = 300  # the duration every GetCompositeSchedule asks for
START_SLACK = timedelta(seconds=60)  # scheduleStart vs. the runner's clock: clocks differ, transit takes time
_ids = itertools.count(9101)  # chargingProfile ids and requestIds of the runner's smart-charging requests


def k_case(
    id: str,
    title: str,
    *steps: tuple[str, StepFn],
    needs: frozenset[str] = frozenset(),
    timeout_s: float = 60.0,
) -> None:
    """A K case: its steps, the frame check, then back to idle and every profile cleared."""
    all_steps = (*steps, ("only valid frames, allowed status transitions, whole transactions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            SMART,
            tuple(Step[Ctx](t, f) for t, f in all_steps),
            needs,
            timeout_s,
            cleanup=(Step[Ctx]("back to idle", to_idle), Step[Ctx]("clear every profile", clear_all)),
        )
    )


async def clear_all(ctx: Ctx) -> None:
    """Cleanup: ClearChargingProfile without criteria (every profile), best effort."""
    with contextlib.suppress(Exception):
        await ctx.cs.call(ctx.cp_id, "ClearChargingProfile", {}, timeout=5)


def evse_id(ctx: Ctx, which: int) -> int:
    """The evseId ``which`` stands for (EVSE: the EVSE under test)."""
    return ctx.setup.connector if which == EVSE else which


def utc_text(t: datetime) -> str:
    """An RFC 3339 UTC time as the schemas want it."""
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def profile(
    pid: int,
    purpose: str,
    limit_a: float,
    *,
    stack: int = 0,
    kind: str = "Absolute",
    duration_s: int | None = None,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """A ChargingProfileType with one schedule of one period (``limit_a`` A from the start); an Absolute one starts
    a second ago."""
    schedule: dict[str, Any] = {
        "id": pid,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_a}],
    }
    if kind == "Absolute":
        schedule["startSchedule"] = utc_text(datetime.now(UTC) - timedelta(seconds=1))
    if duration_s is not None:
        schedule["duration"] = duration_s
    out: dict[str, Any] = {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
    }
    if transaction_id is not None:
        out["transactionId"] = transaction_id
    return out


def set_profile(
    where: int,
    purpose: str,
    limit_a: float,
    expected: str = "Accepted",
    *,
    name: str = "p",
    tx: str | None = None,
    same_id: bool = False,
    **kw: Any,
) -> tuple[str, StepFn]:
    """A step: SetChargingProfile of a new profile (remembered as ``vars[name]``) on ``where``; the status must be
    ``expected``. ``tx``: "running" names the transaction the case started, anything else is sent as it is."""

    async def run(ctx: Ctx) -> None:
        pid = ctx.vars[name]["id"] if same_id and name in ctx.vars else next(_ids)
        tx_id = ctx.vars["tx"] if tx == "running" else tx
        body = profile(pid, purpose, limit_a, transaction_id=tx_id, **kw)
        ctx.vars[name] = body
        await ctx.expect_answer(
            "SetChargingProfile", {"evseId": evse_id(ctx, where), "chargingProfile": body}, "status", expected
        )

    scope = (
        "the station (evseId 0)" if where == STATION else "the EVSE" if where == EVSE else f"evseId {where}"
    )
    return (f"SetChargingProfile {purpose} {limit_a:g} A on {scope}: {expected}", run)


def replace_profile(where: int, purpose: str, limit_a: float, name: str = "p") -> tuple[str, StepFn]:
    """A step: SetChargingProfile with the id of ``vars[name]`` again, another limit: Accepted (K01.FR.05)."""
    title, run = set_profile(where, purpose, limit_a, name=name, same_id=True)
    return (f"{title} (same chargingProfileId)", run)


# ------------------------------------------------------------------------------------------- composite schedule


def limit_at(schedule: dict[str, Any], offset_s: int) -> float:
    """The limit a composite schedule gives ``offset_s`` seconds after its start."""
    periods = [p for p in schedule["chargingSchedulePeriod"] if p["startPeriod"] <= offset_s]
    return float(periods[-1]["limit"])


async def composite(ctx: Ctx, where: int) -> dict[str, Any]:
    """GetCompositeSchedule of ``where`` for COMPOSITE_S s in A: Accepted, and a schedule that says so (K08.FR.?):
    the evseId asked, the unit asked, the duration asked, a scheduleStart of now, periods from 0 on, limits
    finite and not negative."""
    evse = evse_id(ctx, where)
    answer = await ctx.expect_answer(
        "GetCompositeSchedule",
        {"duration": COMPOSITE_S, "evseId": evse, "chargingRateUnit": "A"},
        "status",
        "Accepted",
    )
    schedule = answer.get("schedule")
    if not isinstance(schedule, dict):
        raise Fail("GetCompositeScheduleResponse Accepted without a schedule (K08.FR.?)")
    problems = []
    if schedule.get("evseId") != evse:
        problems.append(f"evseId {schedule.get('evseId')!r}, asked {evse}")
    if schedule.get("chargingRateUnit") != "A":
        problems.append(f"chargingRateUnit {schedule.get('chargingRateUnit')!r}, asked A")
    if schedule.get("duration") != COMPOSITE_S:
        problems.append(f"duration {schedule.get('duration')!r}, asked {COMPOSITE_S}")
    start = datetime.fromisoformat(str(schedule.get("scheduleStart")).replace("Z", "+00:00"))
    if start.tzinfo is None or abs(start - datetime.now(UTC)) > START_SLACK:
        problems.append(f"scheduleStart {schedule.get('scheduleStart')} is not now")
    periods = schedule.get("chargingSchedulePeriod") or []
    starts = [p.get("startPeriod") for p in periods]
    if not periods or starts[0] != 0 or starts != sorted(set(starts)):
        problems.append(f"startPeriods {starts}: from 0, each later than the one before")
    if any(
        not isinstance(p.get("limit"), int | float) or not math.isfinite(p["limit"]) or p["limit"] < 0
        for p in periods
    ):
        problems.append("a limit that is not a finite number >= 0")
    if problems:
        raise Fail("GetCompositeScheduleResponse schedule: " + "; ".join(problems))
    return schedule


def composite_is(
    where: int, limit_a: float | None, at_s: int = 0, *, above: float | None = None
) -> tuple[str, StepFn]:
    """A step: the composite schedule of ``where`` gives ``limit_a`` A (or more than ``above``) at ``at_s``."""

    async def run(ctx: Ctx) -> None:
        got = limit_at(await composite(ctx, where), at_s)
        if limit_a is not None and got != limit_a:
            raise Fail(f"the composite schedule gives {got:g} A at +{at_s} s, expected {limit_a:g} A")
        if above is not None and not got > above:
            raise Fail(f"the composite schedule gives {got:g} A at +{at_s} s, expected more than {above:g} A")

    scope = "the station" if where == STATION else "the EVSE"
    want = f"{limit_a:g} A" if limit_a is not None else f"more than {above:g} A"
    return (f"GetCompositeSchedule of {scope}: {want} at +{at_s} s", run)


async def composite_free(ctx: Ctx) -> None:
    """Without a profile: Accepted with the station's own limit (K08.FR.?), remembered as ``vars['free']``."""
    ctx.vars["free"] = limit_at(await composite(ctx, EVSE), 0)


async def composite_unchanged(ctx: Ctx) -> None:
    """The composite schedule is what it was before the Rejected profile (a refused profile has no effect)."""
    got = limit_at(await composite(ctx, EVSE), 0)
    if got != ctx.vars["free"]:
        raise Fail(
            f"the composite schedule gives {got:g} A after a Rejected profile, {ctx.vars['free']:g} A before"
        )


async def composite_unknown_evse(ctx: Ctx) -> None:
    """GetCompositeSchedule of an EVSE the station lacks: Rejected, no schedule (K08.FR.?)."""
    answer = await ctx.expect_answer(
        "GetCompositeSchedule", {"duration": COMPOSITE_S, "evseId": 99}, "status", "Rejected"
    )
    if "schedule" in answer:
        raise Fail("GetCompositeScheduleResponse Rejected with a schedule")


# ------------------------------------------------------------------------------------------- reported profiles


async def reported(
    ctx: Ctx, criterion: dict[str, Any], where: int | None = None
) -> list[tuple[int, dict[str, Any]]] | None:
    """GetChargingProfiles: None for NoProfiles, else the (evseId, profile) pairs its ReportChargingProfiles
    parts carry (same requestId, tbc on all but the last, K09.FR.?)."""
    request_id = next(_ids)
    body: dict[str, Any] = {"requestId": request_id, "chargingProfile": criterion}
    if where is not None:
        body["evseId"] = evse_id(ctx, where)
    m = ctx.at()
    answer = await ctx.expect_answer("GetChargingProfiles", body, "status", "Accepted", "NoProfiles")
    if answer["status"] == "NoProfiles":
        await ctx.quiet(1)
        if any(
            f.payload.get("requestId") == request_id for f in ctx.calls_since("ReportChargingProfiles", m)
        ):
            raise Fail("sent ReportChargingProfilesRequest after answering NoProfiles")
        return None
    out: list[tuple[int, dict[str, Any]]] = []
    after = m
    while True:
        frame = await ctx.wait_call(
            "ReportChargingProfiles",
            after,
            lambda p: p.get("requestId") == request_id,
            15,
            f"ReportChargingProfilesRequest of requestId {request_id}",
        )
        after = ctx.index_of(frame) + 1
        out += [(frame.payload["evseId"], p) for p in frame.payload.get("chargingProfile", [])]
        if not frame.payload.get("tbc", False):
            return out


def reports(
    criterion: Callable[[Ctx], dict[str, Any]] | dict[str, Any],
    where: int | None,
    expected: Callable[[Ctx], dict[int, int]] | None,
    what: str,
) -> tuple[str, StepFn]:
    """A step: GetChargingProfiles (``criterion``, ``where``) reports exactly the profiles ``expected`` gives
    ({profile id: evseId}); None: NoProfiles."""

    async def run(ctx: Ctx) -> None:
        crit = criterion(ctx) if callable(criterion) else criterion
        got = await reported(ctx, crit, where)
        want = expected(ctx) if expected is not None else None
        if want is None:
            if got is not None:
                raise Fail(
                    f"GetChargingProfiles {crit} reported {[p['id'] for _, p in got]}, expected NoProfiles"
                )
            return
        if got is None:
            raise Fail(f"GetChargingProfilesResponse NoProfiles for {crit}, expected profiles {sorted(want)}")
        seen = {p["id"]: e for e, p in got}
        if seen != {pid: evse_id(ctx, e) for pid, e in want.items()} or len(got) != len(seen):
            raise Fail(
                f"ReportChargingProfiles for {crit}: profiles {sorted((i, e) for e, p in got for i in [p['id']])} "
                f"as (id, evseId), expected {sorted((i, evse_id(ctx, e)) for i, e in want.items())}"
            )
        ctx.vars["reported"] = [p for _, p in got]

    return (f"GetChargingProfiles {what}", run)


def ids(*names_and_evse: tuple[str, int]) -> Callable[[Ctx], dict[int, int]]:
    """The {profile id: evseId} of the profiles the case set (by their ``vars`` name)."""
    return lambda ctx: {ctx.vars[n]["id"]: e for n, e in names_and_evse}


def by_id(name: str) -> Callable[[Ctx], dict[str, Any]]:
    """A ChargingProfileCriterionType selecting ``vars[name]`` by its id."""
    return lambda ctx: {"chargingProfileId": [ctx.vars[name]["id"]]}


async def reported_limit_is(ctx: Ctx) -> None:
    """The reported profile is the replacing one (its limit), not the one it replaced (K01.FR.05)."""
    [p] = ctx.vars["reported"]
    limit = p["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
    if limit != ctx.vars["p"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]:
        raise Fail(f"ReportChargingProfiles gives the replaced profile (limit {limit}), not the new one")


def clear(
    body: Callable[[Ctx], dict[str, Any]] | dict[str, Any], expected: str, what: str
) -> tuple[str, StepFn]:
    """A step: ClearChargingProfile ``body``: ``expected`` (Accepted, or Unknown when nothing matched)."""

    async def run(ctx: Ctx) -> None:
        await ctx.expect_answer(
            "ClearChargingProfile", body(ctx) if callable(body) else body, "status", expected
        )

    return (f"ClearChargingProfile {what}: {expected}", run)


# ------------------------------------------------------------------------------------------- transactions


async def remote_start_with_profile(ctx: Ctx) -> None:
    """RequestStartTransaction with a TxProfile (no transactionId): Accepted; Started (RemoteStart) (K05)."""
    m = ctx.at()
    remote_id = next(_ids)
    body = profile(next(_ids), "TxProfile", 7, kind="Relative")
    ctx.vars["p"] = body
    await ctx.expect_answer(
        "RequestStartTransaction",
        {
            "idToken": REMOTE_TOKEN,
            "remoteStartId": remote_id,
            "evseId": ctx.setup.connector,
            "chargingProfile": body,
        },
        "status",
        "Accepted",
    )
    started = await ctx.wait_event("Started", m)
    if started.get("triggerReason") != "RemoteStart":
        raise Fail(
            f"TransactionEventRequest Started triggerReason {started.get('triggerReason')!r}, expected RemoteStart"
        )
    ctx.vars["tx"] = tx_id_of(started)


async def tx_profile_names_transaction(ctx: Ctx) -> None:
    """The TxProfile of the remote start is reported with the started transaction's id (K05.FR.?)."""
    [p] = ctx.vars["reported"]
    if p.get("transactionId") != ctx.vars["tx"]:
        raise Fail(
            f"the TxProfile of RequestStartTransaction is reported with transactionId {p.get('transactionId')!r}, "
            f"not the transaction it started ({ctx.vars['tx']})"
        )


async def reset_and_reboot(ctx: Ctx) -> None:
    """Reset OnIdle: Accepted, the station boots again (reason RemoteReset)."""
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Accepted")
    await reboot_seen(ctx, m, "RemoteReset")


# ================================================================================================ cases

TXD, TXP, MAX = "TxDefaultProfile", "TxProfile", "ChargingStationMaxProfile"

k_case(
    "TC_K_01_CS",
    "Set Charging Profile - TxDefaultProfile - Specific EVSE",
    set_profile(EVSE, TXD, 6),
    composite_is(EVSE, 6),
    reports(by_id("p"), EVSE, ids(("p", EVSE)), "by id: the profile, on the EVSE"),
)
k_case(
    "TC_K_02_CS",
    "Set Charging Profile - TxProfile without ongoing transaction",
    set_profile(EVSE, TXP, 6, "Rejected", tx=UNKNOWN_TX),
    reports(by_id("p"), None, None, "by id: NoProfiles"),
)
k_case(
    "TC_K_03_CS",
    "Set Charging Profile - ChargingStationMaxProfile",
    set_profile(STATION, MAX, 8),
    composite_is(STATION, 8),
    composite_is(EVSE, 8),
    reports(by_id("p"), STATION, ids(("p", STATION)), "by id: the profile, on evseId 0"),
)
k_case(
    "TC_K_04_CS",
    "Replace charging profile - With chargingProfileId",
    set_profile(EVSE, TXD, 6),
    replace_profile(EVSE, TXD, 10),
    composite_is(EVSE, 10),
    reports(by_id("p"), EVSE, ids(("p", EVSE)), "by id: one profile"),
    ("it is the replacing one", reported_limit_is),
)
k_case(
    "TC_K_05_CS",
    "Clear Charging Profile - With chargingProfileId",
    set_profile(EVSE, TXD, 6),
    clear(lambda ctx: {"chargingProfileId": ctx.vars["p"]["id"]}, "Accepted", "by id"),
    reports(by_id("p"), None, None, "by id: NoProfiles"),
)
k_case(
    "TC_K_06_CS",
    "Clear Charging Profile - With stackLevel/purpose combination",
    set_profile(EVSE, TXD, 6, stack=2),
    clear(
        {"chargingProfileCriteria": {"chargingProfilePurpose": TXD, "stackLevel": 2}},
        "Accepted",
        "TxDefault level 2",
    ),
    reports({"chargingProfilePurpose": TXD}, None, None, "TxDefaultProfile: NoProfiles"),
)
k_case(
    "TC_K_07_CS",
    "Clear Charging Profile - With unknown stackLevel/purpose combination",
    set_profile(EVSE, TXD, 6, stack=1),
    clear(
        {"chargingProfileCriteria": {"chargingProfilePurpose": MAX, "stackLevel": 1}},
        "Unknown",
        "Max level 1",
    ),
    reports(by_id("p"), None, ids(("p", EVSE)), "by id: still there"),
)
k_case(
    "TC_K_08_CS",
    "Clear Charging Profile - Without previous charging profile",
    clear({"chargingProfileId": 9099}, "Unknown", "of an id never set"),
)
k_case(
    "TC_K_09_CS",
    "Clear Charging Profile - Clearing a TxDefaultProfile with ongoing transaction",
    set_profile(EVSE, TXD, 6),
    ("transaction by card", start_local),
    composite_is(EVSE, 6),
    clear({"chargingProfileCriteria": {"chargingProfilePurpose": TXD}}, "Accepted", "TxDefaultProfile"),
    composite_is(EVSE, None, above=6),
    needs=PLUG_SWIPE,
)
k_case(
    "TC_K_10_CS",
    "Set Charging Profile - TxDefaultProfile - All EVSE",
    set_profile(STATION, TXD, 6),
    composite_is(EVSE, 6),
    reports(by_id("p"), None, ids(("p", STATION)), "by id: on evseId 0"),
)
k_case(
    "TC_K_11_CS",
    "Set Charging Profile - Unable to set TxProfile on all EVSE at once",
    set_profile(STATION, TXP, 6, "Rejected"),
    reports(by_id("p"), None, None, "by id: NoProfiles"),
)
k_case(
    "TC_K_13_CS",
    "Set Charging Profile - Persistent over reboot",
    set_profile(EVSE, TXD, 6),
    ("Reset: reboot", reset_and_reboot),
    reports(by_id("p"), EVSE, ids(("p", EVSE)), "by id: still there after the reboot"),
    composite_is(EVSE, 6),
    timeout_s=90,
)
k_case(
    "TC_K_14_CS",
    "Set Charging Profile - Unexisting EVSEid",
    set_profile(99, TXD, 6, "Rejected"),
    reports(by_id("p"), None, None, "by id: NoProfiles"),
)
k_case(
    "TC_K_16_CS",
    "Set Charging Profile - Unknown transactionId",
    ("transaction by card", start_local),
    ("GetCompositeSchedule without a profile", composite_free),
    set_profile(EVSE, TXP, 7, "Rejected", tx=UNKNOWN_TX),
    ("GetCompositeSchedule: as before", composite_unchanged),
    reports(by_id("p"), None, None, "by id: NoProfiles"),
    needs=PLUG_SWIPE,
)
for _id, _where, _title, _want in (
    ("TC_K_29_CS", STATION, "EvseId 0", ids(("m", STATION))),
    ("TC_K_30_CS", EVSE, "EvseId > 0", ids(("d", EVSE))),
    ("TC_K_31_CS", None, "No EvseId", ids(("m", STATION), ("d", EVSE))),
):
    k_case(
        _id,
        f"Get Charging Profile - {_title}",
        set_profile(STATION, MAX, 16, name="m"),
        set_profile(EVSE, TXD, 6, name="d"),
        reports({}, _where, _want, f"{_title}: the profiles of that scope"),
    )
k_case(
    "TC_K_32_CS",
    "Get Charging Profile - chargingProfileId",
    set_profile(STATION, MAX, 16, name="m"),
    set_profile(EVSE, TXD, 6, name="d"),
    reports(by_id("d"), None, ids(("d", EVSE)), "by the TxDefaultProfile's id: only it"),
)
k_case(
    "TC_K_33_CS",
    "Get Charging Profile - EvseId > 0 + stackLevel",
    set_profile(EVSE, TXD, 6, stack=1, name="a"),
    set_profile(EVSE, TXD, 8, stack=2, name="b"),
    reports({"stackLevel": 2}, EVSE, ids(("b", EVSE)), "stackLevel 2: only it"),
)
k_case(
    "TC_K_34_CS",
    "Get Charging Profile - EvseId > 0 + chargingLimitSource",
    set_profile(EVSE, TXD, 6, name="d"),
    reports({"chargingLimitSource": ["CSO"]}, EVSE, ids(("d", EVSE)), "source CSO: the profile the CSMS set"),
    reports({"chargingLimitSource": ["EMS"]}, EVSE, None, "source EMS: NoProfiles"),
)
k_case(
    "TC_K_36_CS",
    "Get Charging Profile - EvseId > 0 + chargingProfilePurpose + stackLevel",
    set_profile(STATION, MAX, 16, stack=1, name="m"),
    set_profile(EVSE, TXD, 6, stack=1, name="a"),
    set_profile(EVSE, TXD, 8, stack=2, name="b"),
    reports(
        {"chargingProfilePurpose": TXD, "stackLevel": 1},
        EVSE,
        ids(("a", EVSE)),
        "TxDefaultProfile level 1 on the EVSE: only it",
    ),
)
k_case(
    "TC_K_35_CS",
    "Get Charging Profile - EvseId > 0 + chargingProfilePurpose",
    set_profile(STATION, MAX, 16, name="m"),
    set_profile(EVSE, TXD, 6, name="d"),
    reports({"chargingProfilePurpose": TXD}, EVSE, ids(("d", EVSE)), "TxDefaultProfile on the EVSE: only it"),
)
k_case(
    "TC_K_37_CS",
    "Remote start transaction with charging profile - Success",
    ("plug", plug),
    ("RequestStartTransaction with a TxProfile: Started", remote_start_with_profile),
    composite_is(EVSE, 7),
    reports({"chargingProfilePurpose": TXP}, EVSE, ids(("p", EVSE)), "TxProfile: the remote start's"),
    ("reported with the started transaction's id", tx_profile_names_transaction),
    needs=PLUG,
)
k_case(
    "TC_K_39_CS",
    "Get Composite Schedule - No ChargingProfile installed",
    ("GetCompositeSchedule: the station's own limit", composite_free),
)
k_case(
    "TC_K_40_CS",
    "Get Composite Schedule - Stacking ChargingProfiles",
    set_profile(EVSE, TXD, 6, stack=0, name="low"),
    set_profile(EVSE, TXD, 10, stack=1, duration_s=150, name="high"),
    composite_is(EVSE, 10, 0),
    composite_is(EVSE, 6, 200),
)
k_case(
    "TC_K_41_CS",
    "Get Composite Schedule - Combining chargingProfilePurposes",
    set_profile(STATION, MAX, 8, name="m"),
    set_profile(EVSE, TXD, 10, name="d"),
    composite_is(EVSE, 8),
    set_profile(EVSE, TXD, 6, stack=1, name="d2"),
    composite_is(EVSE, 6),
)
k_case(
    "TC_K_47_CS",
    "Get Composite Schedule - Unknown EVSEId",
    ("GetCompositeSchedule of evseId 99: Rejected", composite_unknown_evse),
)
k_case(
    "TC_K_60_CS",
    "Set Charging Profile - TxProfile with ongoing transaction on the specified EVSE",
    ("transaction by card", start_local),
    set_profile(EVSE, TXP, 7, tx="running"),
    composite_is(EVSE, 7),
    reports({"chargingProfilePurpose": TXP}, EVSE, ids(("p", EVSE)), "TxProfile: the one set"),
    needs=PLUG_SWIPE,
)
