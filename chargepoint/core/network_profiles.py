"""Network connection profiles (OCPP 2.0.1 B09 SetNetworkProfile, B10 migration, A05 security profile upgrade),
version-neutral and without I/O.

Slot 0 is the configured connection (``csms.url`` and the security profile of ``core/security.py``); slots
1..``MAX_SLOTS`` hold the profiles the CSMS set, persisted. ``network_configuration_priority`` lists the slots to
connect with, in order. A slot that fails ``network_profile_connection_attempts`` times in a row gives way to the
next; after the listed slots comes the slot of the last successful connection ("the previous one"), so a new
profile that never connects falls back to what worked. A slot whose security profile is below the active one is
never used (A05: no way back to a lower profile), and the first connection with a higher one makes it the active
profile.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from chargepoint.core.security import PROFILES, Credentials, prerequisites_met
from chargepoint.core.settings import Settings
from chargepoint.core.storage import KeyValueStorage

MAX_SLOTS = 4  # configuration slots the CSMS may set (1..4); the priority list names at most these and slot 0
CONFIGURED_SLOT = 0
SLOT_KEY = "network_profile.{}"  # kv: the JSON of a slot's profile
LAST_GOOD_KEY = "network_profile_last_good"  # kv: the slot of the last successful connection
MAX_URL_CHARS = 512  # NetworkConnectionProfileType.ocppCsmsUrl: string[0..512]
MAX_MESSAGE_TIMEOUT_S = 3600
OCPP_VERSIONS = frozenset({"1.6", "2.0.1"})
PRIORITY_SETTING = "network_configuration_priority"


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """Where and how to connect: the CSMS URL (the station id is appended, or fills its template), the security
    profile, the response timeout and the OCPP version to offer."""

    url: str
    security_profile: int
    message_timeout_s: int
    ocpp_version: str  # "1.6" or "2.0.1"
    interface: str = ""  # the 2.0.1 ocppInterface (Wired0, Wireless0, ...): kept, not acted on

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> NetworkProfile | None:
        """A stored profile; None for anything unreadable (a store from another version)."""
        try:
            data: Any = json.loads(text)
            profile = NetworkProfile(
                url=str(data["url"]),
                security_profile=int(data["security_profile"]),
                message_timeout_s=int(data["message_timeout_s"]),
                ocpp_version=str(data["ocpp_version"]),
                interface=str(data.get("interface", "")),
            )
        except (ValueError, TypeError, KeyError):
            return None
        return profile if profile_error(profile) is None else None


def profile_error(profile: NetworkProfile) -> str | None:
    """Why a profile can never be connected with (URL, security profile, timeout, version), or None."""
    if profile.security_profile not in PROFILES:
        return f"securityProfile must be one of {PROFILES}"
    if not 1 <= profile.message_timeout_s <= MAX_MESSAGE_TIMEOUT_S:
        return f"messageTimeout must be 1-{MAX_MESSAGE_TIMEOUT_S} s"
    if profile.ocpp_version not in OCPP_VERSIONS:
        return "only OCPP 1.6 and 2.0.1 are spoken"
    url = profile.url
    if len(url) > MAX_URL_CHARS or not url.isprintable() or any(c.isspace() for c in url):
        return "ocppCsmsUrl is not a usable URL"
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        return "ocppCsmsUrl is not a usable URL"
    if parsed.scheme not in ("ws", "wss") or not parsed.hostname or (port is not None and port == 0):
        return "ocppCsmsUrl must be a ws:// or wss:// URL with a host"
    if profile.security_profile <= 1 and parsed.scheme == "wss":
        return "security profiles 0 and 1 do not use TLS (wss://)"
    return None


class NetworkProfiles:
    """The configuration slots, the priority among them, and which one the next connection uses."""

    __slots__ = ("_active", "_failures", "_index", "_promote", "_settings", "_store")

    def __init__(
        self,
        store: KeyValueStorage,
        settings: Settings,
        active: Callable[[], int],
        promote: Callable[[int], None],
    ) -> None:
        """Keep slots in ``store``; ``active`` reads the active security profile, ``promote`` raises it."""
        self._store = store
        self._settings = settings
        self._active = active
        self._promote = promote
        self._index = 0  # position in ``candidates()`` of the slot being tried
        self._failures = 0  # failed attempts in a row on that slot
        settings.listeners.append(self._setting_changed)

    def _setting_changed(self, name: str) -> None:
        if name == PRIORITY_SETTING:
            # A new priority list is tried from its first slot (B10: migrate to the new CSMS at the next connect).
            self._index = 0
            self._failures = 0

    # slots
    def slot(self, number: int) -> NetworkProfile | None:
        """The profile stored in slot ``number`` (1..MAX_SLOTS), if any."""
        if not 1 <= number <= MAX_SLOTS:
            return None
        text = self._store.get(SLOT_KEY.format(number))
        return NetworkProfile.from_json(text) if text else None

    def set_error(self, number: int, profile: NetworkProfile, have: Credentials) -> str | None:
        """Why SetNetworkProfile of ``profile`` into slot ``number`` is refused (B09, A05), or None."""
        if not 1 <= number <= MAX_SLOTS:
            return f"configurationSlot must be 1-{MAX_SLOTS} (0 is the configured connection)"
        if number == self.current():
            return "the slot is the one in use"
        error = profile_error(profile)
        if error is not None:
            return error
        # B09.FR.04 / A05: a profile below the active security profile is refused.
        if profile.security_profile < self._active():
            return f"securityProfile {profile.security_profile} is below the active {self._active()}"
        if not prerequisites_met(profile.security_profile, have):
            return f"the prerequisites of security profile {profile.security_profile} are not met"
        return None

    def put(self, number: int, profile: NetworkProfile) -> Future[Any]:
        """Store ``profile`` in slot ``number`` (checked by ``set_error``); the store's future."""
        return self._store.put(SLOT_KEY.format(number), profile.to_json())

    # priority
    def priority_error(self, text: str) -> str | None:
        """Why ``text`` is no NetworkConfigurationPriority (A05.FR.03: no slot below the active profile), or None."""
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or len(parts) > MAX_SLOTS + 1:
            return f"1 to {MAX_SLOTS + 1} comma-separated configuration slots"
        if not all(p.isascii() and p.isdigit() and len(p) <= 2 for p in parts) or len(set(parts)) < len(
            parts
        ):
            return "distinct configuration slot numbers"
        for number in map(int, parts):
            if number == CONFIGURED_SLOT:
                continue
            profile = self.slot(number)
            if profile is None:
                return f"slot {number} holds no network profile"
            if profile.security_profile < self._active():
                return f"slot {number} has security profile {profile.security_profile}, below the active one"
        return None

    def _priority(self) -> list[int]:
        out = []
        for part in self._settings.text(PRIORITY_SETTING).split(","):
            part = part.strip()
            if part.isascii() and part.isdigit() and int(part) not in out:
                out.append(int(part))
        return out

    def usable(self, number: int) -> bool:
        """A slot a connection may use: the configured one, or a stored one not below the active profile."""
        if number == CONFIGURED_SLOT:
            return True
        profile = self.slot(number)
        return profile is not None and profile.security_profile >= self._active()

    def last_good(self) -> int:
        """The slot of the last successful connection (the configured one before any)."""
        text = self._store.get(LAST_GOOD_KEY)
        number = int(text) if text and text.isdigit() else CONFIGURED_SLOT
        return number if self.usable(number) else CONFIGURED_SLOT

    def candidates(self) -> list[int]:
        """The slots to connect with, in order: the usable ones of the priority list, then the last good one."""
        out = [n for n in self._priority() if self.usable(n)]
        last = self.last_good()
        if last not in out:
            out.append(last)
        return out

    def current(self) -> int:
        """The slot the next connection uses."""
        candidates = self.candidates()
        return candidates[self._index % len(candidates)]

    def current_profile(self) -> NetworkProfile | None:
        """The profile of that slot (None: the configured connection)."""
        number = self.current()
        return None if number == CONFIGURED_SLOT else self.slot(number)

    # outcomes
    def connected(self) -> int | None:
        """A connection succeeded: its slot is the last good one; a higher security profile it used becomes the
        active one (returned), else None."""
        number = self.current()
        self._failures = 0
        if self._store.get(LAST_GOOD_KEY) != str(number):
            self._store.put(LAST_GOOD_KEY, str(number))
        # The next connection starts again from the top of the list (the slot that worked stays first if it is).
        self._index = self.candidates().index(number) if number in self.candidates() else 0
        profile = self.current_profile() if number != CONFIGURED_SLOT else None
        if profile is not None and profile.security_profile > self._active():
            self._promote(profile.security_profile)
            return profile.security_profile
        return None

    def connect_failed(self) -> int | None:
        """A connection failed: after NetworkProfileConnectionAttempts on one slot, the next one is tried
        (returned), else None."""
        self._failures += 1
        if self._failures < self._settings.get_int("network_profile_connection_attempts"):
            return None
        self._failures = 0
        candidates = self.candidates()
        if len(candidates) == 1:
            return None
        self._index = (self._index % len(candidates) + 1) % len(candidates)
        return candidates[self._index]
