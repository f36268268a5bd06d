"""The prepaid cut-off: a prepaid session is stopped remotely once its running cost reaches the card's balance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from backend_stub.domain.commands import ChargerCommands, CommandFailed
from backend_stub.domain.pricing import Pricing
from backend_stub.store import CardMode, CsmsStore, StoreError

log = logging.getLogger(__name__)


class PrepaidCutoff:
    """Watches running prepaid sessions after each meter value and stops those that used up their balance."""

    def __init__(
        self, store: CsmsStore, clock: Callable[[], datetime], pricing: Pricing, commands: ChargerCommands
    ) -> None:
        """Price with ``pricing``; stop through ``commands``."""
        self.store = store
        self.clock = clock
        self.pricing = pricing
        self.commands = commands
        self._stopping: set[int] = set()  # transactions a remote stop was sent for
        # Prepaid sessions: (time, Wh) of the last stored sample at their last exact pricing, and that price.
        self._priced: dict[int, tuple[tuple[datetime, int], int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def check(self, cp_id: str, tx_id: int) -> None:
        """Stop a prepaid session remotely once its running cost reaches the card's balance."""
        if tx_id in self._stopping:
            return
        tx = self.store.transaction(tx_id)
        card = self.store.card(tx.id_tag)
        if card is None or card.mode is not CardMode.PREPAID or tx.stopped_at is not None:
            self._priced.pop(tx_id, None)
            return
        now, balance = self.clock(), self.store.balance(tx.id_tag)
        # Pricing a session exactly costs time in proportion to its samples; doing it at every MeterValues of a
        # long session would be quadratic. While even the most the session can have cost since its last exact
        # price stays below the balance, the exact price is skipped.
        tariff, last = self.pricing.tariff_for(tx.cp_id), self._priced.get(tx_id)
        if tariff is not None and last is not None:
            (at, wh), cost = last
            growth = tariff.cost_growth_bound_minor(
                max(0, tx.last_meter_wh - wh), max(0.0, (now - at).total_seconds())
            )
            if cost + growth < balance:
                return
        try:
            cdr, stable = self.pricing.cdr_to(tx, now, tx.last_meter_wh)
        except (ValueError, StoreError):
            log.exception("cannot price running transaction %s", tx_id)
            return
        running = cdr.total_cost_incl_vat if cdr else 0
        self._priced[tx_id] = (stable, running)
        if running < balance:
            return
        log.info(
            "transaction %s: running cost %s reached the balance %s of %s; stopping it",
            tx_id,
            running,
            balance,
            tx.id_tag,
        )
        self._stopping.add(tx_id)
        task = asyncio.get_running_loop().create_task(self._remote_stop(cp_id, tx_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stopped(self, tx_id: int) -> None:
        """The session ended: forget it."""
        self._stopping.discard(tx_id)
        self._priced.pop(tx_id, None)

    async def close(self) -> None:
        """Cancel the remote stops under way (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _remote_stop(self, cp_id: str, tx_id: int) -> None:
        try:
            reply = await self.commands.remote_stop(cp_id, tx_id)
        except CommandFailed as exc:
            log.warning("remote stop of %s to %s failed: %s", tx_id, cp_id, exc)
            self._stopping.discard(tx_id)  # try again with the next meter value
            return
        if not reply.accepted:
            log.warning("%s rejected the remote stop of %s", cp_id, tx_id)
            self._stopping.discard(tx_id)
