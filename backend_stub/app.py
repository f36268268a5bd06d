"""The composition root of the bundled central system: store, domain services, OCPP server and web pages wired.

Chargers are admitted from the registry at the handshake (404 unknown, 401 wrong password), BootNotification
answers from the registry, cards authorize from the store (prepaid balance included), sessions are priced with
the charger's tariff and charged to the ledger exactly once, and a prepaid session whose running cost reaches the
card's balance is stopped remotely. A new OCPP version is one more module in `backend_stub.ocpp`, installed here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from backend_stub.domain.ca import CSR_PER_HOUR, CertificateAuthority
from backend_stub.domain.central import Central
from backend_stub.ocpi import admin as ocpi_admin
from backend_stub.ocpi import dashboard as ocpi_dashboard
from backend_stub.ocpi import routes as ocpi_routes
from backend_stub.ocpi.config import OcpiConfig
from backend_stub.ocpi.service import Ocpi
from backend_stub.ocpp.commands import CommandsByVersion
from backend_stub.ocpp.server import OCPP16, OCPP201, CentralSystem
from backend_stub.ocpp.v16 import V16Commands, V16Handlers
from backend_stub.ocpp.v201 import V201Commands, V201Handlers
from backend_stub.store import CsmsStore
from backend_stub.web import common, ops, site


class Csms:
    """The central system application: one port carrying OCPP, the REST API and the web pages over a CsmsStore."""

    def __init__(
        self,
        store: CsmsStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admit_unknown: bool = False,
        heartbeat_interval_s: int = 300,
        site_tz: tzinfo = UTC,
        log_path: str | Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        admin_token: str | None = None,
        boot_timeout_s: float | None = 60.0,
        max_pending: int = 1000,
        pending_ttl_s: float = 86400.0,
        payment_provider: str = "none",
        ca: CertificateAuthority | None = None,
        ocpi: OcpiConfig | None = None,
        csr_per_hour: int = CSR_PER_HOUR,
    ) -> None:
        """Wire the OCPP handlers and the HTTP routes to ``store``; nothing listens until `start()`.

        ``admin_token`` sets the REST API token; without it, ``CSMS_ADMIN_TOKEN`` or the stored one is used,
        or one is generated and kept in `new_admin_token` for the caller to print once. With ``admit_unknown``,
        at most ``max_pending`` unknown chargers wait as pending; one that has not booted for ``pending_ttl_s``
        is deleted, and a new unknown charger is refused (404) while the table is full. ``payment_provider``
        is ``none`` (the pay pages say card payment is not configured) or ``test`` (simulated money). ``ca``
        signs the chargers' CSRs (SignCertificate), at most ``csr_per_hour`` per charger; without one they are
        rejected. ``ocpi``
        serves the OCPI 2.2.1 CPO role under ``/ocpi/`` (roaming partners); without it there is no /ocpi.
        """
        self.store = store
        self.server = CentralSystem(host, port, log_path=log_path, boot_timeout_s=boot_timeout_s)
        self.central = Central(
            store,
            # Each charger is commanded in the version it negotiated (OCPP 2.0.1 by its own transaction ids).
            CommandsByVersion(
                self.server,
                {
                    OCPP16.subprotocol: V16Commands(self.server),
                    OCPP201.subprotocol: V201Commands(
                        self.server, lambda tx_id: store.transaction(tx_id).station_tx_id
                    ),
                },
            ),
            clock=clock,
            site_tz=site_tz,
            heartbeat_interval_s=heartbeat_interval_s,
            admit_unknown=admit_unknown,
            max_pending=max_pending,
            pending_ttl_s=pending_ttl_s,
            http_url=lambda: self.server.http_url,
            ca=ca,
            csr_per_hour=csr_per_hour,
        )
        self.server.admission = self.central.chargers.admission
        self.server.booted_before = self.central.chargers.booted_before
        self.server.on_inbound = self.central.chargers.seen
        self.v16 = V16Handlers(self.central)
        self.v16.install(self.server)
        self.v201 = V201Handlers(self.central)
        self.v201.install(self.server)
        if admin_token is not None:
            token_sha256, self.new_admin_token = common.resolve_admin_token(
                store, {common.TOKEN_ENV: admin_token}
            )
        else:
            token_sha256, self.new_admin_token = common.resolve_admin_token(store)
        # Per application, not the global registry: one process may run many central systems (tests).
        self.metrics = ops.Metrics(
            store,
            limits=lambda: {
                "idle_evicted": self.server.guard.evicted,
                "csr_rate_limited": self.central.certificates.quota.refused,
            },
        )
        self.server.observer = self.metrics
        site.setup(self.central, self.server.app, token_sha256, payment_provider, self.metrics)
        self.ocpi: Ocpi | None = None
        if ocpi is not None:
            self.ocpi = Ocpi(self.central, ocpi, lambda: self.server.http_url)
            ocpi_routes.setup(self.server.app, self.ocpi)
            ocpi_admin.setup(self.server.app)
            ocpi_dashboard.setup(self.server.app)

    async def start(self) -> None:
        """Listen (127.0.0.1 by default)."""
        await self.server.start()
        if self.ocpi is not None:
            self.ocpi.start()

    async def stop(self) -> None:
        """Close every connection and the listener."""
        if self.ocpi is not None:
            await self.ocpi.close()
        await self.central.close()
        await self.server.stop()

    @property
    def url(self) -> str:
        """The OCPP base URL; chargers connect to ``{url}/{id}``."""
        return self.server.url

    @property
    def http_url(self) -> str:
        """The base URL of the dashboard; the REST API is under ``{http_url}/api/``."""
        return self.server.http_url
