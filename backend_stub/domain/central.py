"""The central system's domain services, wired together: what the protocol adapters and the web pages use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from backend_stub.domain.authorization import Authorization
from backend_stub.domain.ca import CSR_PER_HOUR, CertificateAuthority, ChargerCertificates, SigningQuota
from backend_stub.domain.chargers import Chargers
from backend_stub.domain.commands import ChargerCommands
from backend_stub.domain.operations import ChargerOperations
from backend_stub.domain.payments import Hooks, PaymentHooks
from backend_stub.domain.prepaid import PrepaidCutoff
from backend_stub.domain.pricing import Pricing
from backend_stub.domain.security import SecurityEvents
from backend_stub.domain.sessions import Sessions
from backend_stub.store import CsmsStore


class Central:
    """Every domain service of one central system over one store, with commands going out through a port."""

    def __init__(
        self,
        store: CsmsStore,
        commands: ChargerCommands,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        site_tz: tzinfo = UTC,
        heartbeat_interval_s: int = 300,
        admit_unknown: bool = False,
        max_pending: int = 1000,
        pending_ttl_s: float = 86400.0,
        http_url: Callable[[], str] = lambda: "",
        ca: CertificateAuthority | None = None,
        csr_per_hour: int = CSR_PER_HOUR,
    ) -> None:
        """Wire the services; ``http_url`` gives the public base URL of the web pages once it is known; ``ca``
        signs the chargers' CSRs (without one they are rejected), at most ``csr_per_hour`` per charger."""
        self.store = store
        self.commands = commands
        self.clock = clock
        self.site_tz = site_tz
        self.heartbeat_interval_s = heartbeat_interval_s
        self._http_url = http_url
        self.hooks = Hooks()
        self.security = SecurityEvents(store)
        self.chargers = Chargers(
            store,
            clock,
            self.security,
            admit_unknown=admit_unknown,
            max_pending=max_pending,
            pending_ttl_s=pending_ttl_s,
            observers=self.hooks.observers,
        )
        self.operations = ChargerOperations(self.chargers, commands)
        self.authorization = Authorization(store, clock, self.hooks)
        self.pricing = Pricing(store, clock, site_tz, self.hooks)
        self.prepaid = PrepaidCutoff(store, clock, self.pricing, commands)
        self.certificates = ChargerCertificates(ca, commands, clock, store, SigningQuota(csr_per_hour))
        self.sessions = Sessions(
            store, clock, self.authorization, self.pricing, self.prepaid, self.security, self.hooks
        )

    @property
    def http_url(self) -> str:
        """The base URL of the web pages; the REST API is under ``{http_url}/api/``."""
        return self._http_url()

    @property
    def payment_hooks(self) -> PaymentHooks | None:
        """The QR payment service's hooks into sessions, once it is set up."""
        return self.hooks.payment

    @payment_hooks.setter
    def payment_hooks(self, hooks: PaymentHooks | None) -> None:
        """Plug in the QR payment service's hooks."""
        self.hooks.payment = hooks

    async def close(self) -> None:
        """Cancel background work (shutdown)."""
        await self.prepaid.close()
        await self.certificates.close()
