"""Settings of the OCPI CPO role: who we are, where our chargers stand, limits and retry timing."""

from __future__ import annotations

import re
from dataclasses import dataclass

_COUNTRY = re.compile(r"[A-Z]{2}")  # ISO 3166-1 alpha-2 (OCPI 2.2.1 §7.3.2 country_code)
_PARTY = re.compile(r"[A-Z0-9]{3}")  # OCPI 2.2.1 §7.3.2 party_id, CiString(3)


@dataclass(frozen=True)
class OcpiConfig:
    """Our party, the location details our chargers are published with, the page limit and push retries."""

    country_code: str = "DE"
    party_id: str = "OCS"
    business_name: str = "OpenCharge"
    public_url: str | None = None  # the base URL partners reach us at; the server's own URL if None
    # Where the chargers stand (one OCPI Location per charger; OCPI 2.2.1 §8.3.1 requires these fields).
    address: str = "unknown"
    city: str = "unknown"
    postal_code: str = ""
    country: str = "DEU"  # ISO 3166-1 alpha-3
    latitude: str = "0.000000"
    longitude: str = "0.000000"
    time_zone: str = "Europe/Berlin"
    # Each EVSE's connector (OCPP does not tell these; OCPI 2.2.1 §8.3.3 requires them).
    connector_standard: str = "IEC_62196_T2"
    connector_format: str = "SOCKET"
    power_type: str = "AC_3_PHASE"
    max_voltage_v: int = 230
    max_current_a: int = 32
    page_limit_max: int = 100  # OCPI 2.2.1 §4.1.5: a larger limit asked for gets this many (X-Limit says so)
    retry_base_s: float = 5.0  # the first retry of a failed push; doubled each time up to retry_max_s
    retry_max_s: float = 600.0
    timeout_s: float = 20.0  # one call to a partner

    def __post_init__(self) -> None:
        """Validate; an error names the setting."""
        if not _COUNTRY.fullmatch(self.country_code):
            raise ValueError(f"ocpi country_code must be two capital letters, got {self.country_code!r}")
        if not _PARTY.fullmatch(self.party_id):
            raise ValueError(f"ocpi party_id must be three capital letters or digits, got {self.party_id!r}")
        if not 1 <= self.page_limit_max <= 1000:
            raise ValueError(f"ocpi page_limit_max must be 1-1000, got {self.page_limit_max}")
        if not 0 < self.retry_base_s <= self.retry_max_s:
            raise ValueError("ocpi retry_base_s must be > 0 and at most retry_max_s")
        if not 0 < self.timeout_s <= 300:
            raise ValueError(f"ocpi timeout_s must be in (0, 300], got {self.timeout_s}")

    def party(self, role: str = "CPO") -> dict[str, object]:
        """Our CredentialsRole (OCPI 2.2.1 §7.4.1)."""
        return {
            "role": role,
            "business_details": {"name": self.business_name},
            "party_id": self.party_id,
            "country_code": self.country_code,
        }
