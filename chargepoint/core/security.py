"""Security rules of the OCPP 1.6 Security whitepaper (edition 2), version-neutral and without I/O.

What is here: the critical security events and how they are queued (so that none is lost offline), the rules for
changing the security profile (§2: only upwards, only with its prerequisites, committed after a successful
connection, falling back otherwise), the AuthorizationKey's format, and the bound on installed certificates.
X.509 parsing lives outside the core (``chargepoint/certificates.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from chargepoint.core.events import SecurityEvent
from chargepoint.core.storage import KeyValueStorage, TransactionStorage
from chargepoint.ports import Clock


class SecurityEventType(StrEnum):
    """The whitepaper's critical security events (ed. 2, security events list): each is sent as SecurityEventNotification."""

    FIRMWARE_UPDATED = "FirmwareUpdated"
    FAILED_TO_AUTHENTICATE_AT_CENTRAL_SYSTEM = "FailedToAuthenticateAtCentralSystem"
    CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE = "CentralSystemFailedToAuthenticate"
    SETTING_SYSTEM_TIME = "SettingSystemTime"
    STARTUP_OF_THE_DEVICE = "StartupOfTheDevice"
    RESET_OR_REBOOT = "ResetOrReboot"
    SECURITY_LOG_WAS_CLEARED = "SecurityLogWasCleared"
    RECONFIGURATION_OF_SECURITY_PARAMETERS = "ReconfigurationOfSecurityParameters"
    MEMORY_EXHAUSTION = "MemoryExhaustion"
    INVALID_MESSAGES = "InvalidMessages"
    ATTEMPTED_REPLAY_ATTACKS = "AttemptedReplayAttacks"
    TAMPER_DETECTION_ACTIVATED = "TamperDetectionActivated"
    INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
    INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
    INVALID_CENTRAL_SYSTEM_CERTIFICATE = "InvalidCentralSystemCertificate"
    INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"
    INVALID_TLS_VERSION = "InvalidTLSVersion"
    INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"


TECH_INFO_MAX_CHARS = 255  # SecurityEventNotification.req techInfo: string[0..255]

# OpenSSL's reasons for a failed TLS handshake that the whitepaper names as their own event (the rest of a failed
# verification is an invalid central-system certificate).
TLS_FAILURE_EVENTS: dict[str, SecurityEventType] = {
    "CERTIFICATE_VERIFY_FAILED": SecurityEventType.INVALID_CENTRAL_SYSTEM_CERTIFICATE,
    "UNSUPPORTED_PROTOCOL": SecurityEventType.INVALID_TLS_VERSION,
    "WRONG_VERSION_NUMBER": SecurityEventType.INVALID_TLS_VERSION,
    "TLSV1_ALERT_PROTOCOL_VERSION": SecurityEventType.INVALID_TLS_VERSION,
    "NO_PROTOCOLS_AVAILABLE": SecurityEventType.INVALID_TLS_VERSION,
    "NO_SHARED_CIPHER": SecurityEventType.INVALID_TLS_CIPHER_SUITE,
    "NO_CIPHERS_AVAILABLE": SecurityEventType.INVALID_TLS_CIPHER_SUITE,
    "SSLV3_ALERT_HANDSHAKE_FAILURE": SecurityEventType.INVALID_TLS_CIPHER_SUITE,
}


# A peer can cause some events at will (a CSMS that moves the clock back and forth, a server that keeps failing
# TLS): each type is queued at most this many times per window, so the outbox (which never drops security events)
# stays bounded; the rest are counted and logged by the caller's logger.
EVENTS_PER_TYPE_PER_WINDOW = 10
EVENT_WINDOW = timedelta(hours=1)


class SecurityEvents:
    """Queues security events in the outbox (persisted first, sent in order, kept while offline), each type at
    most ``EVENTS_PER_TYPE_PER_WINDOW`` times per ``EVENT_WINDOW``."""

    __slots__ = ("_clock", "_notify", "_recent", "_store", "suppressed")

    def __init__(self, store: TransactionStorage, clock: Clock, notify: Callable[[], None]) -> None:
        """Queue into ``store`` stamped by ``clock``; ``notify`` wakes the sender."""
        self._store = store
        self._clock = clock
        self._notify = notify
        # Times of the recent events by type (a short list: at most EVENTS_PER_TYPE_PER_WINDOW; a deque costs
        # ~600 bytes even for one entry, which a fleet of agents in one process notices).
        self._recent: dict[SecurityEventType, list[datetime]] = {}
        self.suppressed = 0  # events over the bound, not queued

    def record(self, kind: SecurityEventType, tech_info: str | None = None) -> bool:
        """Queue one event (queued write; the outbox sends it when online); False if over the bound."""
        now = self._clock.now()
        recent = self._recent.setdefault(kind, [])
        recent[:] = [t for t in recent if timedelta(0) <= now - t < EVENT_WINDOW]
        if len(recent) >= EVENTS_PER_TYPE_PER_WINDOW:
            self.suppressed += 1
            return False
        recent.append(now)
        info = tech_info[:TECH_INFO_MAX_CHARS] if tech_info else None
        self._store.queue(SecurityEvent(kind.value, now, info))
        self._notify()
        return True


PROFILES = (0, 1, 2, 3)  # 0: no security (unsecured transport, no Basic auth), 1-3 per the whitepaper §2
PENDING_PROFILE_KEY = "security_profile_pending"  # persisted: the profile being tried
PROFILE_ATTEMPTS = 3  # connection attempts with a new profile before falling back to the previous one


class ProfileChange(Enum):
    """The answer to a requested security profile."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the charge point has for each profile's prerequisites."""

    has_password: bool  # profiles 1 and 2: an AuthorizationKey (or configured password)
    has_csms_root: bool  # profiles 2 and 3: a CentralSystemRootCertificate (installed or configured)
    has_client_certificate: bool  # profile 3: a ChargePointCertificate and its key


def prerequisites_met(profile: int, have: Credentials) -> bool:
    """Whether the charge point has what a connection with ``profile`` needs (whitepaper §2; OCPP 2.0.1
    A05.FR.05/FR.06 for a NetworkConnectionProfile): a password for 1 and 2, a CSMS root certificate for 2 and 3, a
    client certificate for 3."""
    if profile in (1, 2) and not have.has_password:
        return False
    if profile >= 2 and not have.has_csms_root:
        return False
    return not (profile == 3 and not have.has_client_certificate)


# The Basic-auth password each version lets the CSMS set (both are kept in the setting ``authorization_key``).
# OCPP 1.6 Security whitepaper ed. 2, AuthorizationKey: 16-40 bytes, sent as hexadecimal text.
_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2}){16,40}")
# OCPP 2.0.1 Part 2 §2.1 passwordString and A00.FR.205: 16-40 characters of letters, digits and *-_=:+|@.
_PASSWORD_STRING = re.compile(r"[A-Za-z0-9*\-_=:+|@.]{16,40}")


def authorization_key_error(text: str) -> str | None:
    """Why ``text`` is no OCPP 1.6 AuthorizationKey (hexadecimal, 16-40 bytes), or None."""
    if _HEX_KEY.fullmatch(text):
        return None
    return "AuthorizationKey must be 16-40 bytes as hexadecimal (two characters per byte)"


def basic_auth_password_error(text: str) -> str | None:
    """Why ``text`` is no OCPP 2.0.1 BasicAuthPassword (passwordString of 16-40 characters), or None."""
    if _PASSWORD_STRING.fullmatch(text):
        return None
    return "BasicAuthPassword must be 16-40 characters of letters, digits and *-_=:+|@."


class SecurityProfiles:
    """The security profile in use, and a move to a higher one (whitepaper §2, "migration").

    The active profile is the setting ``security_profile``; a requested higher profile is kept as pending
    (persisted) and used for the next connections; the first successful connection with it makes it the active
    one, and after ``PROFILE_ATTEMPTS`` failed connections it is dropped and the previous profile used again."""

    __slots__ = ("_active", "_failures", "_promote", "_store")

    def __init__(
        self, store: KeyValueStorage, active: Callable[[], int], promote: Callable[[int], None]
    ) -> None:
        """Keep the pending profile in ``store``; ``active`` reads the active profile, ``promote`` sets it."""
        self._store = store
        self._active = active
        self._promote = promote
        self._failures = 0

    @property
    def active(self) -> int:
        """The profile of the last successful connection (or configured)."""
        return self._active()

    @property
    def pending(self) -> int | None:
        """A higher profile being tried, if any."""
        text = self._store.get(PENDING_PROFILE_KEY)
        return int(text) if text is not None and text.isdigit() and int(text) in PROFILES else None

    def connecting(self) -> int:
        """The profile the next connection uses."""
        pending = self.pending
        return pending if pending is not None else self.active

    def request(self, text: str, have: Credentials) -> ProfileChange:
        """ChangeConfiguration SecurityProfile: Accepted only for a higher profile whose prerequisites are met."""
        if not text.strip().isdigit() or int(text) not in PROFILES:
            return ProfileChange.REJECTED
        new = int(text)
        # Whitepaper §2: "it is not allowed to lower the security profile" (nor to re-request the current one).
        if new <= self.active or not prerequisites_met(new, have):
            return ProfileChange.REJECTED
        self._failures = 0
        self._store.put(PENDING_PROFILE_KEY, str(new))
        return ProfileChange.ACCEPTED

    def connected(self) -> int | None:
        """A connection succeeded: a pending profile becomes the active one (returned), else None."""
        self._failures = 0
        pending = self.pending
        if pending is None:
            return None
        self._promote(pending)
        self._store.put(PENDING_PROFILE_KEY, "")
        return pending

    def connect_failed(self) -> int | None:
        """A connection failed: after ``PROFILE_ATTEMPTS`` with a pending profile it is dropped (returned)."""
        pending = self.pending
        if pending is None:
            return None
        self._failures += 1
        if self._failures < PROFILE_ATTEMPTS:
            return None
        self._failures = 0
        self._store.put(PENDING_PROFILE_KEY, "")
        return pending


def may_store_certificate(installed: int, max_length: int) -> bool:
    """Whether one more certificate fits (CertificateStoreMaxLength)."""
    return installed < max_length
