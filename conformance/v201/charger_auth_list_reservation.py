"""OCPP 2.0.1 charging-station cases of block D, the local authorization list (TC_D_NN_CS: SendLocalList D01,
GetLocalListVersion D02), and block H, reservations (TC_H_NN_CS: ReserveNow H01, CancelReservation H02, a reserved
EVSE used H03, ReservationStatusUpdate H04).

Beyond each status, the cases look for the effect: the list's version (GetLocalListVersion) and its size
(LocalAuthListCtrlr.Entries, where the station reports it) after every update; for reservations the EVSE's
Reserved status, the reservationId of the transaction that uses it, the Expired update and no transaction for
another idToken.
"""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.model import Case, Fail, NotApplicable, Step
from conformance.v201.charger import tx_id_of
from conformance.v201.charger_cases import (
    PLUG,
    PLUG_SWIPE,
    Ctx,
    StepFn,
    back_operative,
    change_availability,
    check_frames,
    no_transaction_since,
    plug,
    reboot_seen,
    stop_local,
    to_idle,
)
from conformance.v201.charger_smart import utc_text

__all__ = ["CASES"]

LOCAL_LIST, RESERVATION = "D LocalAuthorizationListManagement", "H Reservation"
CASES: list[Case[Ctx]] = []
_ids = itertools.count(8101)  # reservation ids of the runner
OTHER_TOKEN = {"idToken": "CONFOTHER01", "type": "ISO14443"}


def add(
    id: str,
    title: str,
    block: str,
    *steps: tuple[str, StepFn],
    cleanup: tuple[tuple[str, StepFn], ...],
    needs: frozenset[str] = frozenset(),
    timeout_s: float = 60.0,
) -> None:
    """A D or H case: its steps, the frame check, and its block's cleanup."""
    all_steps = (*steps, ("only valid frames, allowed status transitions, whole transactions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(Step[Ctx](t, f) for t, f in all_steps),
            needs,
            timeout_s,
            cleanup=tuple(Step[Ctx](t, f) for t, f in cleanup),
        )
    )


def token(ctx: Ctx) -> dict[str, str]:
    """The idToken the actuation's card presents."""
    return {"idToken": ctx.setup.id_tag, "type": "ISO14443"}


# ================================================================================================ D local list

ENTRIES = ("LocalAuthListCtrlr", "Entries")


async def enabled(ctx: Ctx) -> None:
    """LocalAuthListCtrlr.Enabled true (set back after the case); not applicable without the variable."""
    if await ctx.get_variable("LocalAuthListCtrlr", "Enabled") is None:
        raise NotApplicable("the station has no LocalAuthListCtrlr.Enabled (no local authorization list)")
    await ctx.set_variable("LocalAuthListCtrlr", "Enabled", "true")


async def version_now(ctx: Ctx) -> int:
    """GetLocalListVersion: the versionNumber (>= 0)."""
    answer = await ctx.call("GetLocalListVersion", {})
    version = answer.get("versionNumber")
    if not isinstance(version, int) or version < 0:
        raise Fail(f"GetLocalListVersionResponse versionNumber {version!r}")
    return version


def entry(id_token: str, status: str | None = "Accepted") -> dict[str, Any]:
    """An AuthorizationData: the idToken and (unless None: a removal) its idTokenInfo."""
    data: dict[str, Any] = {"idToken": {"idToken": id_token, "type": "ISO14443"}}
    if status is not None:
        data["idTokenInfo"] = {"status": status}
    return data


def send(
    update: str, step: int, entries: list[dict[str, Any]] | None, expected: str = "Accepted"
) -> tuple[str, StepFn]:
    """A step: SendLocalList ``update`` with versionNumber base + ``step`` (base: the version when the case began,
    read by ``base``); the status must be ``expected``."""

    async def run(ctx: Ctx) -> None:
        body: dict[str, Any] = {"versionNumber": ctx.vars["base"] + step, "updateType": update}
        if entries is not None:
            body["localAuthorizationList"] = entries
        await ctx.expect_answer("SendLocalList", body, "status", expected)

    return (f"SendLocalList {update} version +{step}, {len(entries or [])} entries: {expected}", run)


async def base(ctx: Ctx) -> None:
    """The list's version when the case begins (the case's versions count on from it)."""
    ctx.vars["base"] = await version_now(ctx)


def holds(step: int | None, entries: int | None) -> tuple[str, StepFn]:
    """A step: GetLocalListVersion is base + ``step`` (None: 0, an emptied list has no version, as OCTT 1.6
    TC_042_2 has it); LocalAuthListCtrlr.Entries (if reported) is ``entries``."""

    async def run(ctx: Ctx) -> None:
        want = 0 if step is None else ctx.vars["base"] + step
        if (got := await version_now(ctx)) != want:
            raise Fail(f"GetLocalListVersionResponse versionNumber {got}, expected {want} (D01.FR.?)")
        if entries is None:
            return
        actual = await ctx.get_variable(*ENTRIES)
        if actual is not None and actual != str(entries):
            raise Fail(f"LocalAuthListCtrlr.Entries reads {actual}, the list should hold {entries} idTokens")

    tail = f", {entries} entries" if entries is not None else ""
    return (f"the list: version {'0' if step is None else f'+{step}'}{tail}", run)


async def empty_list(ctx: Ctx) -> None:
    """Cleanup: an empty Full list (best effort)."""
    with contextlib.suppress(Exception):
        version = ctx.vars.get("base", 0) + 10
        await ctx.cs.call(
            ctx.cp_id, "SendLocalList", {"versionNumber": version, "updateType": "Full"}, timeout=5
        )


async def version_when_disabled(ctx: Ctx) -> None:
    """LocalAuthListCtrlr.Enabled false: GetLocalListVersion answers 0 (D02.FR.?: 2.0.1 has no -1)."""
    if await ctx.get_variable("LocalAuthListCtrlr", "Enabled") is None:
        raise NotApplicable("the station has no LocalAuthListCtrlr.Enabled (no local authorization list)")
    await ctx.set_variable("LocalAuthListCtrlr", "Enabled", "false")
    if (got := await version_now(ctx)) != 0:
        raise Fail(f"GetLocalListVersionResponse versionNumber {got} with the list disabled, expected 0")


async def list_reboot(ctx: Ctx) -> None:
    """Reset: after the reboot the list keeps its version."""
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Accepted")
    await reboot_seen(ctx, m, "RemoteReset")


LIST_CLEANUP = (("an empty list", empty_list), ("back to idle", to_idle))
TWO = [entry("CONFLIST01"), entry("CONFLIST02")]


def d_case(id: str, title: str, *steps: tuple[str, StepFn], timeout_s: float = 60.0) -> None:
    """A D case: the list enabled and its version read first."""
    add(
        id,
        f"Send Local Authorization List - {title}" if not title.startswith("Get") else title,
        LOCAL_LIST,
        ("LocalAuthListCtrlr.Enabled true", enabled),
        ("GetLocalListVersion", base),
        *steps,
        cleanup=LIST_CLEANUP,
        timeout_s=timeout_s,
    )


d_case("TC_D_01_CS", "Full", send("Full", 1, TWO), holds(1, 2))
d_case(
    "TC_D_02_CS",
    "Differential Update",
    send("Full", 1, TWO),
    send("Differential", 2, [entry("CONFLIST02", "Blocked"), entry("CONFLIST03")]),
    holds(2, 3),
)
d_case(
    "TC_D_03_CS",
    "Differential Remove",
    send("Full", 1, TWO),
    send("Differential", 2, [entry("CONFLIST02", None)]),
    holds(2, 1),
)
d_case("TC_D_04_CS", "Full with empty list", send("Full", 1, TWO), send("Full", 2, None), holds(None, 0))
d_case(
    "TC_D_05_CS",
    "Differential with empty list",
    send("Full", 1, TWO),
    send("Differential", 2, None),
    holds(2, 2),
)
d_case(
    "TC_D_06_CS",
    "VersionMismatch",
    send("Full", 2, TWO),
    send("Differential", 1, [entry("CONFLIST03")], "VersionMismatch"),
    holds(2, 2),
)
d_case(
    "TC_D_07_CS",
    "Persistent over reboot",
    send("Full", 1, TWO),
    ("Reset: reboot", list_reboot),
    holds(1, 2),
    timeout_s=90,
)
d_case("TC_D_08_CS", "Get Local List Version - Success", send("Full", 3, TWO), holds(3, None))
add(
    "TC_D_10_CS",
    "Get Local List Version - Function disabled",
    LOCAL_LIST,
    ("LocalAuthListCtrlr.Enabled false: version 0", version_when_disabled),
    cleanup=(("back to idle", to_idle),),
)


# ================================================================================================ H reservation


def reserve(
    expected: str, *, evse: bool = True, other: bool = False, same_id: bool = False, expiry_s: int = 3600
) -> StepFn:
    """ReserveNow (for the card's idToken, or another if ``other``) of the EVSE (or any, without ``evse``): the
    status must be ``expected``; the id is remembered as ``vars['reservation']`` (``same_id``: the last one)."""

    async def run(ctx: Ctx) -> None:
        rid = ctx.vars["reservation"] if same_id else next(_ids)
        body: dict[str, Any] = {
            "id": rid,
            "expiryDateTime": utc_text(datetime.now(UTC) + timedelta(seconds=expiry_s)),
            "idToken": OTHER_TOKEN if other else token(ctx),
        }
        if evse:
            body["evseId"] = ctx.setup.connector
        await ctx.expect_answer("ReserveNow", body, "status", expected)
        if expected == "Accepted":
            ctx.vars["reservation"] = rid
            ctx.vars.setdefault("reservations", []).append(rid)

    return run


async def cancel_all(ctx: Ctx) -> None:
    """Cleanup: CancelReservation of every reservation the case made (best effort)."""
    for rid in ctx.vars.get("reservations", []):
        with contextlib.suppress(Exception):
            await ctx.cs.call(ctx.cp_id, "CancelReservation", {"reservationId": rid}, timeout=5)


async def reserved_status(ctx: Ctx) -> None:
    """The EVSE reports Reserved (H01.FR.?)."""
    await ctx.wait_status("Reserved", ctx.mark)


async def use_reservation(ctx: Ctx) -> None:
    """Plug, the reserved card: Started with the reservationId (H03.FR.?); the EVSE is no longer Reserved."""
    m = ctx.at()
    await ctx.act("plug")
    await ctx.act("swipe")
    started = await ctx.wait_event("Started", m)
    if started.get("reservationId") != ctx.vars["reservation"]:
        raise Fail(
            f"TransactionEventRequest Started reservationId {started.get('reservationId')!r}, expected the "
            f"reservation {ctx.vars['reservation']} it used (H03.FR.?)"
        )
    ctx.vars["tx"] = tx_id_of(started)
    ctx.vars["reservations"] = []  # used: nothing left to cancel


async def other_card_refused(ctx: Ctx) -> None:
    """Plug, a card the reservation is not for: no transaction on the reserved EVSE (H01.FR.?)."""
    m = ctx.at()
    await ctx.act("plug")
    await ctx.act("swipe")
    await ctx.quiet(3)
    await no_transaction_since(ctx, m, "the EVSE is reserved for another idToken")


async def expires(ctx: Ctx) -> None:
    """The reservation runs out: ReservationStatusUpdate Expired for its id, then Available (H04)."""
    rid = ctx.vars["reservation"]
    m = ctx.mark
    await ctx.wait_call(
        "ReservationStatusUpdate",
        m,
        lambda p: p.get("reservationId") == rid and p.get("reservationUpdateStatus") == "Expired",
        20,
        f"ReservationStatusUpdateRequest Expired for reservation {rid}",
    )
    await ctx.wait_status("Available", m, 10)
    ctx.vars["reservations"] = []


async def cancel(ctx: Ctx) -> None:
    """CancelReservation of the reservation: Accepted; the EVSE Available again (H02)."""
    m = ctx.at()
    await ctx.expect_answer(
        "CancelReservation", {"reservationId": ctx.vars["reservation"]}, "status", "Accepted"
    )
    await ctx.wait_status("Available", m)
    ctx.vars["reservations"] = []


async def cancel_unknown(ctx: Ctx) -> None:
    """CancelReservation of an id the station never had: Rejected (H02.FR.?)."""
    await ctx.expect_answer("CancelReservation", {"reservationId": 8099}, "status", "Rejected")


async def stop_after_use(ctx: Ctx) -> None:
    """The card again: the transaction ends."""
    await stop_local(ctx)


RESERVE_CLEANUP = (
    ("cancel the reservations", cancel_all),
    ("Operative again", back_operative),
    ("back to idle", to_idle),
)


def h_case(id: str, title: str, *steps: tuple[str, StepFn], needs: frozenset[str] = frozenset()) -> None:
    """An H case: reservations cancelled and the EVSE Operative again after it."""
    add(id, title, RESERVATION, *steps, cleanup=RESERVE_CLEANUP, needs=needs)


h_case(
    "TC_H_01_CS",
    "Reserve a specific EVSE - Accepted - Valid idToken",
    ("ReserveNow of the EVSE: Accepted", reserve("Accepted")),
    ("Reserved", reserved_status),
    ("the reserved card starts: Started with the reservationId", use_reservation),
    ("the card again: Ended", stop_after_use),
    needs=PLUG_SWIPE,
)
h_case(
    "TC_H_02_CS",
    "Reserve a specific EVSE - Accepted - Different idToken",
    ("ReserveNow of the EVSE for another idToken: Accepted", reserve("Accepted", other=True)),
    ("Reserved", reserved_status),
    ("our card: no transaction", other_card_refused),
    needs=PLUG_SWIPE,
)
h_case(
    "TC_H_03_CS",
    "Reserve a specific EVSE - Occupied - EVSE Reserved",
    ("ReserveNow of the EVSE: Accepted", reserve("Accepted")),
    ("Reserved", reserved_status),
    ("another ReserveNow of the EVSE: Occupied", reserve("Occupied", other=True)),
)
h_case(
    "TC_H_04_CS",
    "Reserve a specific EVSE - Occupied - EVSE Occupied",
    ("plug: Occupied", plug),
    ("ReserveNow of the EVSE: Occupied", reserve("Occupied")),
    needs=PLUG,
)
h_case(
    "TC_H_06_CS",
    "Reserve a specific EVSE - Unavailable",
    ("EVSE Inoperative", change_availability("EVSE", "Inoperative")),
    ("ReserveNow of the EVSE: Unavailable", reserve("Unavailable")),
)
h_case(
    "TC_H_07_CS",
    "Reserve a specific EVSE - Reservation Ended / not used",
    ("ReserveNow of the EVSE, 5 s: Accepted", reserve("Accepted", expiry_s=5)),
    ("Expired, then Available", expires),
)
h_case(
    "TC_H_08_CS",
    "Reserve an unspecified EVSE - Accepted",
    ("ReserveNow without evseId: Accepted", reserve("Accepted", evse=False)),
)
h_case(
    "TC_H_17_CS",
    "Cancel reservation of an EVSE - Success",
    ("ReserveNow of the EVSE: Accepted", reserve("Accepted")),
    ("Reserved", reserved_status),
    ("CancelReservation: Accepted, Available", cancel),
)
h_case(
    "TC_H_18_CS",
    "Cancel reservation of an EVSE - Rejected",
    ("CancelReservation of an unknown id: Rejected", cancel_unknown),
)
h_case(
    "TC_H_23_CS",
    "Reserve a specific EVSE - Replace reservation",
    ("ReserveNow of the EVSE for another idToken: Accepted", reserve("Accepted", other=True)),
    ("the same id for our card: Accepted (replaces it)", reserve("Accepted", same_id=True)),
    ("our card starts on the EVSE", use_reservation),
    ("the card again: Ended", stop_after_use),
    needs=PLUG_SWIPE,
)
