"""The connection cases of both versions (OCTT 1.6 TC_078/TC_085/TC_086/TC_087, 2.0.1 TC_A_01/TC_A_04-TC_A_07):
the charger's next handshake with the central system we play, judged on what the security profiles require."""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Iterator

from backend_stub.ocpp.handshake import HandshakeRecord, PasswordShape
from conformance.charger_runner import ChargerContext
from conformance.model import Fail, NotApplicable
from conformance.pki import write_server_pki

__all__ = [
    "basic_auth_valid",
    "client_certificate_valid",
    "invalid_server_certificate",
    "latest_handshake",
    "server_certificate_valid",
    "tls_version_too_low",
]

StepFn = Callable[[ChargerContext], Awaitable[None]]
# How long the charger gets to (wrongly) connect while we present a certificate from an unknown CA.
UNKNOWN_CA_WINDOW_S = 5.0
NO_TLS = (
    "needs a wss:// central system: run the charger suite with --tls-cert FILE --tls-key FILE "
    "(or --tls-self-signed DIR) and point the charger at wss://"
)

TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")  # OCPP 1.6 security whitepaper / 2.0.1 A00.FR.309: TLS 1.2 or above
PASSWORD_LENGTH = (16, 40)  # AuthorizationKey / BasicAuthPassword: 16 to 40 characters
TOO_LOW = ssl.TLSVersion.TLSv1_1  # what TC_A_06 offers: the highest version below the TLS 1.2 minimum


def latest_handshake(ctx: ChargerContext) -> HandshakeRecord:
    """The charger's latest recorded handshake (a Fail if there is none)."""
    mine = [h for h in ctx.cs.handshakes if h.cp_id == ctx.cp_id]
    if not mine:
        raise Fail("the charger reconnected without a handshake we recorded")
    return mine[-1]


async def reconnect_handshake(ctx: ChargerContext) -> HandshakeRecord:
    """Drop the charger's connection and return the handshake of its reconnect (ws:// or wss://)."""
    ctx.cs.handshakes.clear()
    with contextlib.suppress(KeyError, ConnectionError):
        await ctx.cs.disconnect(ctx.cp_id)
    await ctx.reconnected(30)
    shown = latest_handshake(ctx)
    ctx.event(
        f"handshake: {shown.tls_version or 'plain ws://'}, client certificate names "
        f"{sorted(shown.certificate_names) or 'none'}, Basic auth {'sent' if shown.password is not None else 'not sent'}"
    )
    return shown


async def fresh_handshake(ctx: ChargerContext, *, client_ca: bool) -> HandshakeRecord:
    """The handshake of the charger's reconnect over wss:// (OCTT: the charger connects), with TLS 1.2 or above."""
    if ctx.setup.tls is None:
        raise NotApplicable(NO_TLS)
    if client_ca and not ctx.setup.tls_client_ca:
        raise NotApplicable("security profile 3 needs a CA for client certificates: add --tls-ca FILE")
    shown = await reconnect_handshake(ctx)
    if shown.tls_version not in TLS_VERSIONS:
        raise Fail(
            f"the charger connected with {shown.tls_version or 'no TLS'}; TLS 1.2 or above is required"
        )
    return shown


async def server_certificate_valid(ctx: ChargerContext) -> None:
    """Security profile 2 (or 3): the charger accepts our server certificate and connects over TLS; at profile 2
    its upgrade request carries HTTP Basic ``<chargerId>:<password>`` with a 16-40 character password."""
    shown = await fresh_handshake(ctx, client_ca=False)
    if shown.certificate_names:
        return  # security profile 3: the client certificate identifies the charger
    if shown.password is None:
        raise Fail(
            "security profile 2: the upgrade request has no HTTP Basic Authorization for user "
            f"{ctx.cp_id!r} (and no client certificate)"
        )
    low, high = PASSWORD_LENGTH
    if not low <= shown.password.length <= high:
        raise Fail(
            f"the Basic auth password has {shown.password.length} characters; {low} to {high} are required"
        )


async def client_certificate_valid(ctx: ChargerContext) -> None:
    """Security profile 3: the charger presents a client certificate our CA verifies, issued to its identity."""
    shown = await fresh_handshake(ctx, client_ca=True)
    if not shown.certificate_names:
        raise Fail("security profile 3: the charger presented no client certificate")
    if ctx.cp_id not in shown.certificate_names:
        raise Fail(
            f"the client certificate is issued to {sorted(shown.certificate_names)}, not to the charger {ctx.cp_id!r}"
        )


def invalid_server_certificate(event_type: str) -> StepFn:
    """OCTT 1.6 TC_078 / 2.0.1 TC_A_05: while we present a server certificate from an unknown CA (right host
    name, valid dates) the charger must not connect; once the valid one is back it connects and reports
    ``event_type`` (InvalidCentralSystemCertificate / InvalidCsmsCertificate) in a SecurityEventNotification."""

    async def run(ctx: ChargerContext) -> None:
        tls, files = ctx.setup.tls, ctx.setup.tls_files
        if tls is None or files is None:
            raise NotApplicable(NO_TLS)
        after = ctx.at()
        with tempfile.TemporaryDirectory() as tmp:
            bad_cert, bad_key, _ = write_server_pki(tmp, ctx.setup.host)
            # New handshakes take the context's certificate as it is then; open connections are not affected.
            tls.load_cert_chain(bad_cert, bad_key)
            try:
                ctx.cs.handshakes.clear()
                with contextlib.suppress(KeyError, ConnectionError):
                    await ctx.cs.disconnect(ctx.cp_id)
                ctx.event("presenting a server certificate from an unknown CA")
                await ctx.quiet(UNKNOWN_CA_WINDOW_S)
                if ctx.cp_id in ctx.cs.connected or any(h.cp_id == ctx.cp_id for h in ctx.cs.handshakes):
                    raise Fail("the charger accepted a server certificate from an unknown CA and connected")
            finally:
                tls.load_cert_chain(*files)
        ctx.event("the valid server certificate is back")
        await ctx.reconnected(30)
        await ctx.wait_call(
            "SecurityEventNotification",
            after,
            lambda p: p.get("type") == event_type,
            15,
            f"SecurityEventNotification {event_type}",
        )

    return run


def basic_auth_valid(password_rule: Callable[[PasswordShape], str | None]) -> StepFn:
    """OCTT 1.6 TC_085 / 2.0.1 TC_A_01 (security profile 1 or 2): the charger's reconnect carries HTTP Basic
    ``<chargerId>:<password>`` for its own identity (the last path segment), the password 16-40 characters and
    whatever else ``password_rule`` asks (its reason, or None). Over ws:// too (profile 1)."""

    async def run(ctx: ChargerContext) -> None:
        shown = await reconnect_handshake(ctx)
        if shown.certificate_identifies:
            raise NotApplicable(
                "the charger identifies itself with a client certificate (security profile 3)"
            )
        if shown.password is None:
            raise Fail(
                f"the upgrade request has no HTTP Basic Authorization for user {ctx.cp_id!r} (none, malformed, "
                "or for another user name than the charger id of the URL)"
            )
        low, high = PASSWORD_LENGTH
        if not low <= shown.password.length <= high:
            raise Fail(
                f"the Basic auth password has {shown.password.length} characters; {low} to {high} are required"
            )
        problem = password_rule(shown.password)
        if problem:
            raise Fail(problem)

    return run


def password_string(password: PasswordShape) -> str | None:
    """OCPP 2.0.1 A00.FR.205: a BasicAuthPassword is a passwordString (the reason when it is not)."""
    if password.password_string:
        return None
    return "the Basic auth password has characters a passwordString does not allow (A00.FR.205)"


def any_password(password: PasswordShape) -> str | None:
    """OCPP 1.6: any 16-40 character password (the length is checked by the caller)."""
    return None


@contextlib.contextmanager
def offering_only(tls: ssl.SSLContext, version: ssl.TLSVersion) -> Iterator[None]:
    """New handshakes of ``tls`` offer only ``version`` (below 1.2 needs OpenSSL security level 0), then the
    context's versions and ciphers are put back. Open connections are not affected."""
    low, high, level = tls.minimum_version, tls.maximum_version, tls.security_level
    ciphers = ":".join(c["name"] for c in tls.get_ciphers() if c.get("protocol") != "TLSv1.3")
    tls.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # offering a deprecated version is the point of the case
        warnings.simplefilter("ignore", DeprecationWarning)
        tls.minimum_version = tls.maximum_version = version
    try:
        yield
    finally:
        tls.minimum_version, tls.maximum_version = low, high
        tls.set_ciphers(f"{ciphers}:@SECLEVEL={level}")


async def tls_version_too_low(ctx: ChargerContext) -> None:
    """OCTT 2.0.1 TC_A_06 (A00.FR.309: TLS 1.2 or above): while we offer only TLS 1.1 the station must not
    connect; once TLS 1.2+ is back it connects again."""
    tls = ctx.setup.tls
    if tls is None:
        raise NotApplicable(NO_TLS)
    with contextlib.ExitStack() as lowered:
        try:
            lowered.enter_context(offering_only(tls, TOO_LOW))
        except (ssl.SSLError, ValueError) as exc:
            raise NotApplicable(
                f"this OpenSSL cannot offer {TOO_LOW.name} ({exc}); the case needs it"
            ) from None
        ctx.cs.handshakes.clear()
        with contextlib.suppress(KeyError, ConnectionError):
            await ctx.cs.disconnect(ctx.cp_id)
        ctx.event(f"offering only {TOO_LOW.name}")
        await ctx.quiet(UNKNOWN_CA_WINDOW_S)
        shown = [h for h in ctx.cs.handshakes if h.cp_id == ctx.cp_id]
        if ctx.cp_id in ctx.cs.connected or shown:
            version = shown[-1].tls_version if shown else "?"
            raise Fail(f"the station connected with {version} although TLS 1.2 or above is required")
    ctx.event("TLS 1.2 and above offered again")
    await ctx.reconnected(30)
