"""Security events: what a charger did that the operator should see, recorded and logged at a bounded rate."""

from __future__ import annotations

import logging
import math
import time

from backend_stub.store import CsmsStore, SecurityEventKind, StoreError

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 60.0  # at most one warning per charger and kind of event in this time
MAX_LOGGED_KEYS = 10_000  # (charger, kind) rate-limit marks kept before the stale ones are dropped


class SecurityEvents:
    """Records security events for the operator, with at most one log line per charger and kind a minute."""

    def __init__(self, store: CsmsStore) -> None:
        """Record into ``store``."""
        self.store = store
        self._logged: dict[tuple[str, str], float] = {}  # (cp_id, kind) -> monotonic time of the last warning

    def record(
        self,
        cp_id: str,
        kind: SecurityEventKind,
        detail: str,
        *,
        transaction_id: int | None = None,
        rate_limited: bool = False,
    ) -> None:
        """Record one event; ``rate_limited`` events (a flood of them is no news) at most as often as logged."""
        now = time.monotonic()
        key = (cp_id, str(kind))
        due = now - self._logged.get(key, -math.inf) >= LOG_INTERVAL_S
        if due:
            if len(self._logged) >= MAX_LOGGED_KEYS:
                # Bounded: forget the marks older than the interval (they no longer hold anything back).
                self._logged = {k: t for k, t in self._logged.items() if now - t < LOG_INTERVAL_S}
            self._logged[key] = now
            log.warning("security event %s from %s: %s", kind, cp_id, detail)
        if due or not rate_limited:
            try:
                self.store.record_security_event(cp_id, kind, detail, transaction_id=transaction_id)
            except StoreError:
                log.exception("cannot record security event %s from %s", kind, cp_id)

    def bad_samples(self, cp_id: str, tx_id: int | None, problems: list[str]) -> None:
        """Record the samples of one message that were left out (one event per message)."""
        if problems:
            detail = f"{len(problems)} sample(s) skipped: " + "; ".join(problems[:5])
            self.record(cp_id, SecurityEventKind.BAD_SAMPLE, detail, transaction_id=tx_id)
