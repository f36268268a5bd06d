"""Version-neutral steps of central-system cases: triggered CALLs and the handshake checks (HTTP Basic auth,
unknown station ids, subprotocol negotiation), shared by the 1.6 and 2.0.1 catalogues."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from conformance.csms_runner import CsmsContext, HandshakeRefused, RawCharger
from conformance.model import Fail, NotApplicable, SetupError

__all__ = [
    "StepFn",
    "cs_sends",
    "no_credentials",
    "offered",
    "others_password",
    "random_tag",
    "refused_with_401",
    "subprotocol_negotiation",
    "unknown_charger",
    "upgrade_steps",
    "username_mismatch",
    "wrong_password",
]

StepFn = Callable[[CsmsContext], Awaitable[None]]


def offered(profile: str) -> tuple[str, StepFn]:
    """A first step: the case is not applicable unless the central system offers ``profile`` (``--profiles``).

    The OCTT runs an optional profile's (or functional block's) cases only for a system that supports it.
    """

    async def run(ctx: CsmsContext) -> None:
        if ctx.setup.profiles is not None and profile not in ctx.setup.profiles:
            raise NotApplicable(f"the central system does not offer {profile} (--profiles)")

    return (f"central system offers {profile}", run)


def cs_sends(
    action: str,
    payload: dict[str, Any] | Callable[[CsmsContext], dict[str, Any]],
    answer: dict[str, Any],
    *,
    judge: Callable[[CsmsContext, dict[str, Any]], None] | None = None,
) -> tuple[str, StepFn]:
    """A step: the central system (triggered) sends ``action`` (keeping ``judge``'s rules, if given); the charger
    answers ``answer``."""

    async def run(ctx: CsmsContext) -> None:
        body = payload(ctx) if callable(payload) else payload
        ctx.vars[action] = await ctx.csms_sends(action, body, answer, judge=judge)

    return (f"central system sends {action}; charger answers {answer}", run)


def random_tag() -> str:
    """An idTag no central system knows (20 characters, CiString20)."""
    return "ZZ" + secrets.token_hex(9).upper()


async def refused_with_401(
    ctx: CsmsContext, cp_id: str, password: str | None, what: str, authorization: str | None = None
) -> None:
    """The handshake must be refused with HTTP 401 (OCPP 1.6 security whitepaper §2.3, security profile 1)."""
    try:
        ws = await ctx.handshake(cp_id, password, authorization=authorization)
    except HandshakeRefused as exc:
        if exc.status != 401:
            raise Fail(
                f"{what}: refused with HTTP {exc.status}, expected 401 (OCPP 1.6 security whitepaper §2.3)"
            ) from None
        return
    await ws.close()
    raise Fail(f"{what}: the connection was accepted (OCPP 1.6 security whitepaper §2.3: HTTP 401)")


async def wrong_password(ctx: CsmsContext) -> None:
    password = ctx.setup.password or ""
    await refused_with_401(ctx, ctx.setup.charger_id, password + "-wrong", "a wrong password")


async def subprotocol_negotiation(ctx: CsmsContext) -> None:
    """Offered only an unknown subprotocol, the central system must not select it; offered ocpp1.6 it selects it."""
    s = ctx.setup
    try:
        ws = await ctx.handshake(s.charger_id, s.password, subprotocols=("ocpp0.1",))
    except HandshakeRefused:
        pass
    else:
        chosen = ws.subprotocol
        await ws.close()
        if chosen is not None:
            raise Fail(f"selected subprotocol {chosen!r} though only ocpp0.1 was offered (OCPP-J 1.6 §3.1.2)")
    ws = await ctx.handshake(s.charger_id, s.password, subprotocols=("ocpp0.1", s.subprotocol))
    chosen = ws.subprotocol
    await ws.close()
    if chosen != s.subprotocol:
        raise Fail(f"selected {chosen!r} when {s.subprotocol} was offered (OCPP-J 1.6 §3.1.2)")


async def no_credentials(ctx: CsmsContext) -> None:
    await refused_with_401(ctx, ctx.setup.charger_id, None, "no credentials")


async def others_password(ctx: CsmsContext) -> None:
    s = ctx.setup
    assert s.second_charger_id is not None
    await refused_with_401(
        ctx, s.second_charger_id, s.password, f"{s.second_charger_id} with {s.charger_id}'s password"
    )


async def username_mismatch(ctx: CsmsContext) -> None:
    s = ctx.setup
    token = base64.b64encode(f"{s.charger_id}-other:{s.password}".encode()).decode()
    await refused_with_401(
        ctx, s.charger_id, None, "a Basic username other than the charger id", f"Basic {token}"
    )


async def unknown_charger(ctx: CsmsContext) -> None:
    """OCPP-J 1.6 §3.1.1: an unknown charge point identity SHOULD get HTTP 404 (any refusal passes)."""
    cp_id = "ZZ-UNKNOWN-" + random_tag()[:8]
    try:
        ws = await ctx.handshake(cp_id, ctx.setup.password)
    except HandshakeRefused:
        return
    await ws.close()
    raise Fail(
        f"an unknown charger id {cp_id} was admitted (OCPP-J 1.6 §3.1.1: the central system SHOULD answer 404)"
    )


# Security profile upgrade (OCPP 1.6 TC_083_CSMS, OCPP 2.0.1 TC_A_19_CSMS): the upgrade charger goes one profile up,
# from 1 (ws:// + HTTP Basic) to 2 (TLS + HTTP Basic), or from 2 to 3 (TLS + client certificate), the higher one on
# --upgrade-url if the central system serves it elsewhere. The central system must admit it at the higher profile
# after the reset and from then on refuse it at the lower one (1.6 security whitepaper and 2.0.1 A00: no fallback
# to a lower profile). The cases run on their own charger id (--upgrade-charger-id): that charger stays up there.

BootFn = Callable[[CsmsContext, RawCharger], Awaitable[Any]]


def upgrade_steps(boot: BootFn, clause: str) -> tuple[tuple[str, StepFn], tuple[tuple[str, StepFn], ...]]:
    """The first step (connect at the lower profile and boot) and the closing steps (after the central system's
    Reset: admitted at the higher profile and booted, refused at the lower one, admitted at the higher one again)
    of an upgrade case; ``boot`` boots a connection as the version does (BootNotification, connectors Available)."""

    async def connect_lower(ctx: CsmsContext) -> None:
        lower = ctx.setup.upgrade_profiles[0]
        try:
            conn = await ctx.open("upgrade", profile=lower)
        except Fail as exc:
            # The precondition, not the upgrade: a charger left higher by an earlier run is refused here.
            raise SetupError(
                f"the upgrade charger cannot connect at security profile {lower} ({exc.reason}); register a fresh "
                "--upgrade-charger-id with that password (an earlier run leaves it at the higher profile)"
            ) from None
        await boot(ctx, conn)

    async def admitted_higher(ctx: CsmsContext) -> None:
        higher = ctx.setup.upgrade_profiles[1]
        await ctx.main().close()  # the charger reboots (the Reset it accepted)
        ctx.event(
            f"reboot: reconnect at security profile {higher} on {ctx.setup.upgrade_endpoint(higher)[0]}"
        )
        try:
            conn = await ctx.open("upgrade", profile=higher)
        except Fail as exc:
            raise Fail(f"after the upgrade to profile {higher}: {exc.reason} ({clause})") from None
        await boot(ctx, conn)

    async def refused_lower(ctx: CsmsContext) -> None:
        lower, higher = ctx.setup.upgrade_profiles
        await ctx.main().close()
        cp_id = str(ctx.setup.upgrade_charger_id)
        url, password, tls = ctx.setup.upgrade_endpoint(lower)
        ctx.event(f"reconnect at the old security profile {lower}")
        try:
            ws = await ctx.handshake(cp_id, password, ssl_context=tls, base_url=url)
        except HandshakeRefused as exc:
            ctx.event(f"refused: HTTP {exc.status}")
            return
        except Fail as exc:  # the TLS handshake refused (a central system that now asks for a certificate)
            ctx.event(f"refused: {exc.reason}"[:300])
            return
        await ws.close()
        raise Fail(
            f"the central system admitted {cp_id} at security profile {lower} after it upgraded to {higher}: a "
            f"charger must not fall back to a lower profile ({clause})"
        )

    async def admitted_again(ctx: CsmsContext) -> None:
        higher = ctx.setup.upgrade_profiles[1]
        try:
            await ctx.open("upgrade", profile=higher)
        except Fail as exc:
            raise Fail(f"at profile {higher} again: {exc.reason} ({clause})") from None

    first = ("upgrade charger at its profile (1 on ws://, 2 on wss://) connects and boots", connect_lower)
    last = (
        ("reboot: admitted at the higher profile, boots", admitted_higher),
        ("the old profile is refused", refused_lower),
        ("the higher profile is admitted again", admitted_again),
    )
    return first, last
