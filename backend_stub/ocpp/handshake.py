"""What a charger's WebSocket upgrade request presents as credentials (OCPP security profiles 1-3).

One public reading of a handshake, shared by the central system's admission (`CentralSystem._refusal`) and by
anything that judges handshakes (the scripted test server records them; the conformance runner's security
profile cases read those records), so that both parse the Authorization header and the client certificate alike.
"""

from __future__ import annotations

import hmac
import itertools
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import BasicAuth, web

__all__ = [
    "PASSWORD_STRING",
    "HandshakeCredentials",
    "HandshakeRecord",
    "PasswordShape",
    "basic_password",
    "certificate_names",
    "handshake_credentials",
    "offered_subprotocols",
]

MAX_SUBPROTOCOLS_KEPT = 8  # a stranger's header may list thousands; a record keeps the first few
# Subprotocols read from a handshake at all: 128 header lines of 8 KB (aiohttp's limits) list half a million, and
# splitting them all cost ~0.1 s of event loop per unauthenticated request. OCPP offers a handful (OCPP-J §3.1.2).
MAX_SUBPROTOCOLS_READ = 32
# OCPP 2.0.1 Part 2 §2.1 passwordString (A00.FR.205): letters, digits and *-_=:+|@. only.
PASSWORD_STRING = re.compile(r"[A-Za-z0-9*\-_=:+|@.]+")


@dataclass(frozen=True)
class HandshakeCredentials:
    """The credentials one upgrade request of charger ``cp_id`` presented.

    ``certificate_names`` holds the subject commonName of a client certificate the server's TLS context verified
    (empty: none presented, plain ws://, or a certificate with no or several commonNames). ``password`` is the HTTP Basic
    password sent for user ``cp_id`` (None: no header, a malformed one, or one for another user).
    """

    cp_id: str
    tls_version: str | None  # e.g. "TLSv1.3"; None over plain ws://
    certificate_names: frozenset[str]
    password: str | None
    subprotocols: tuple[
        str, ...
    ] = ()  # offered in Sec-WebSocket-Protocol, in the charger's order (at most 8)

    @property
    def certificate_identifies(self) -> bool:
        """Whether a verified client certificate names this charger (OCPP security profile 3 identification)."""
        return self.cp_id in self.certificate_names


@dataclass(frozen=True)
class PasswordShape:
    """What a record keeps of an HTTP Basic password: its length and whether it is an OCPP passwordString, never
    its characters (what the security profile checks judge: 16-40 characters, A00.FR.205)."""

    length: int
    password_string: bool

    @classmethod
    def of(cls, password: str) -> PasswordShape:
        """The shape of ``password``."""
        return cls(len(password), PASSWORD_STRING.fullmatch(password) is not None)


@dataclass(frozen=True)
class HandshakeRecord:
    """A handshake as kept for later judging (the scripted test server's `handshakes`): `HandshakeCredentials`
    with the password reduced to its `PasswordShape` (None: no password for this charger id was sent)."""

    cp_id: str
    tls_version: str | None
    certificate_names: frozenset[str]
    password: PasswordShape | None
    subprotocols: tuple[str, ...] = ()

    @classmethod
    def of(cls, credentials: HandshakeCredentials) -> HandshakeRecord:
        """The record of ``credentials``: the password is not kept, only its shape."""
        password = credentials.password
        return cls(
            credentials.cp_id,
            credentials.tls_version,
            credentials.certificate_names,
            None if password is None else PasswordShape.of(password),
            credentials.subprotocols,
        )

    @property
    def certificate_identifies(self) -> bool:
        """Whether a verified client certificate names this charger (OCPP security profile 3 identification)."""
        return self.cp_id in self.certificate_names


def handshake_credentials(request: web.BaseRequest, cp_id: str) -> HandshakeCredentials:
    """Read the TLS version, the verified client certificate, the Basic password and the offered subprotocols."""
    transport = request.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    return HandshakeCredentials(
        cp_id,
        tls.version() if isinstance(tls, ssl.SSLObject) else None,
        frozenset(certificate_names(tls.getpeercert() or {}))
        if isinstance(tls, ssl.SSLObject)
        else frozenset(),
        basic_password(request.headers.get("Authorization"), cp_id),
        tuple(offered_subprotocols(request.headers.getall("Sec-WebSocket-Protocol", [])))[
            :MAX_SUBPROTOCOLS_KEPT
        ],
    )


def offered_subprotocols(values: Iterable[str], limit: int = MAX_SUBPROTOCOLS_READ) -> list[str]:
    """The first ``limit`` subprotocols offered in the Sec-WebSocket-Protocol header(s), in order; header lines
    after the one that reaches the limit are not read."""
    subs = (sub.strip() for value in values for sub in value.split(","))
    return list(itertools.islice((sub for sub in subs if sub), limit))


def certificate_names(certificate: Mapping[str, Any]) -> set[str]:
    """The one subject commonName of a certificate from `getpeercert()`, or nothing.

    OCPP binds a charger's identity to the CN alone (1.6 security whitepaper and 2.0.1 Part 2 A00: the CN holds the
    Charging Station's identity). subjectAltNames are not identities: a certificate from another trusted CA listing
    many names would otherwise pass for each of them. A certificate with several CNs identifies no one.
    """
    names = [
        str(value) for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    return set(names) if len(names) == 1 else set()


def basic_password(header: str | None, cp_id: str) -> str | None:
    """The HTTP Basic password sent for user ``cp_id``, or None (no header, bad header, other user)."""
    if header is None:
        return None
    try:
        auth = BasicAuth.decode(header, encoding="utf-8")
    except ValueError:
        return None
    username = auth.login.encode(errors="surrogateescape")
    return auth.password if hmac.compare_digest(username, cp_id.encode()) else None
