"""Sends the durable outbox strictly in order: one message at a time, retried, never dropped while offline."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from chargepoint.core.settings import Settings
from chargepoint.errors import CsmsRejected, CsmsUnavailable, StorageError
from chargepoint.store import OutboxMessage, Store

log = logging.getLogger(__name__)


class Deliverer(Protocol):
    """A connected, booted session that can deliver one outbox message."""

    accepted: asyncio.Event

    async def deliver(self, message: OutboxMessage) -> None:
        """Send it and acknowledge it in the store; raise CsmsRejected or CsmsUnavailable."""
        ...


class OutboxSender:
    """Drains the store's outbox through whichever session is connected."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.not_delivering = asyncio.Event()
        self.not_delivering.set()
        self.paused = False

    def changed(self) -> None:
        """Something was queued."""
        self.idle.clear()
        self.wake.set()

    async def run(self, session: Deliverer) -> None:
        """Deliver until the session ends (CsmsUnavailable propagates to end the loop)."""
        await session.accepted.wait()
        while True:
            self.wake.clear()
            if self.paused:
                await asyncio.Event().wait()  # stopping: take nothing more
            try:
                message = self.store.outbox_head()
            except StorageError:
                log.exception("cannot read the outbox")
                await asyncio.sleep(5)
                continue
            if message is None:
                self.idle.set()
                await self.wake.wait()
                continue
            self.idle.clear()
            self.not_delivering.clear()
            try:
                await session.deliver(message)
            except CsmsRejected as exc:
                await self._refused(message, exc)
            except CsmsUnavailable as exc:
                # Not an attempt: offline or unanswered messages wait for the link, whatever it takes.
                log.info("outbox: %s #%s not delivered (%s); will retry", message.kind, message.seq, exc)
                await asyncio.sleep(self.settings.get_int("transaction_message_retry_interval_s") or 1)
            finally:
                self.not_delivering.set()

    async def quiesce(self, timeout_s: float) -> None:
        """Start nothing new and let a CALL in flight get its answer, so a restart does not send it twice."""
        self.paused = True
        try:
            async with asyncio.timeout(timeout_s):
                await self.not_delivering.wait()
        except TimeoutError:
            log.warning("outbox: a message was still in flight at shutdown; it will be sent again")

    async def _refused(self, message: OutboxMessage, exc: CsmsRejected) -> None:
        """A CallError: retry TransactionMessageAttempts times, waiting interval x attempt (OCPP 1.6 §4.10)."""
        attempts = self.store.count_attempt(message.seq)
        limit = self.settings.get_int("transaction_message_attempts")
        if attempts >= limit:
            log.error(
                "outbox: %s #%s refused %s times (%s); kept as a dead letter",
                message.kind,
                message.seq,
                attempts,
                exc,
            )
            self.store.give_up(message.seq, f"{exc.code}: {exc.description}"[:200])
            return
        delay = self.settings.get_int("transaction_message_retry_interval_s") * attempts
        log.warning(
            "outbox: %s #%s refused (%s); attempt %s/%s, retry in %s s",
            message.kind,
            message.seq,
            exc,
            attempts,
            limit,
            delay,
        )
        await asyncio.sleep(delay)
