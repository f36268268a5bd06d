"""Sends the durable outbox strictly in order: one message at a time, retried, never dropped while offline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from chargepoint.core.events import (
    AnswerListener,
    IdTagInfoReceived,
    OutboxKind,
    OutboxMessage,
    TransactionNotStarted,
    TransactionStartAnswered,
)
from chargepoint.core.model import AuthStatus, IdTagInfo
from chargepoint.core.scheduler import Flag
from chargepoint.core.settings import Settings
from chargepoint.errors import CsmsRejected, CsmsUnavailable, MessageTooLarge, StorageError
from chargepoint.store import Store

log = logging.getLogger(__name__)
STORAGE_RETRY_S = 1.0
# The first back-off after an unexpected error in handling one message; it doubles up to 60 s.
AGENT_ERROR_RETRY_S = 1.0


class MalformedAnswer(CsmsRejected):
    """The CSMS answered with a CALLRESULT the protocol does not allow (missing field, id out of range).

    It counts as a refusal of that one message. What could still be read of it is kept: ``answer`` (the raw
    payload, if any) and, for a StartTransaction, the idTag and the status the CSMS gave it."""

    def __init__(self, code: str, description: str = "", *, answer: Any = None) -> None:
        super().__init__(code, description)
        self.answer = answer
        self.id_tag: str | None = None
        self.id_tag_info: IdTagInfo | None = None


class OrphanedTransaction(Exception):
    """A message of a transaction whose StartTransaction the CSMS never accepted (it is a dead letter)."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the CSMS's answer to an outbox message says: the transaction id it gave (1.6), an idTag's info, and
    whether it answered the start of a transaction (1.6 with its id; 2.0.1 TransactionEvent Started, whose ids
    are the station's own)."""

    csms_tx_id: int | None = None
    id_tag: str | None = None
    id_tag_info: IdTagInfo | None = None
    started: bool = False

    @property
    def confirms_start(self) -> bool:
        """The answer to a transaction's start: its idTag's status is acted on (StopTxOnInvalidId)."""
        return self.started or self.csms_tx_id is not None


Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[Any]"]


class Deliverer(Protocol):
    """A connected, booted session that can deliver one outbox message."""

    accepted: asyncio.Event

    async def deliver(self, message: OutboxMessage) -> Delivered:
        """Send it; raise CsmsRejected or CsmsUnavailable, or another error if it cannot be encoded."""
        ...


class OutboxSender:
    """Drains the store's outbox through whichever session is connected; the answers go to ``answers`` as
    typed events (``core/events.py``), so the outbox knows neither the OCPP version nor the station."""

    def __init__(self, store: Store, settings: Settings, answers: AnswerListener) -> None:
        self.store = store
        self.settings = settings
        self.answers = answers
        # Flags, not asyncio.Events: an Event holds a waiter deque (~0.8 KB) for its whole life, on every agent.
        self.wake = Flag()
        self.idle = Flag()
        self.not_delivering = Flag()
        self.not_delivering.set()
        self.paused = False
        # The session it sends through and how to start its task there, while one is accepted.
        self._session: Deliverer | None = None
        self._spawn: Spawn | None = None
        # Its task while it runs. Checked with done(), not a flag the task clears: a task cancelled before its
        # first step never runs its finally.
        self._task: asyncio.Task[Any] | None = None

    def changed(self) -> None:
        """Something was queued: the sender runs if a session is up and it does not run yet."""
        self.idle.clear()
        self.wake.set()
        self._kick()

    def start(self, session: Deliverer, spawn: Spawn) -> None:
        """A session was accepted: send through it what waits, and whatever is queued while it lasts."""
        self._session, self._spawn = session, spawn
        self._kick()

    def stop(self, session: Deliverer) -> None:
        """The session ended (it cancels the sender's task, which it spawned)."""
        if self._session is session:
            self._session = self._spawn = None

    def _kick(self) -> None:
        session, spawn = self._session, self._spawn
        if session is None or spawn is None or self.paused:
            return
        if self._task is None or self._task.done():
            self._task = spawn(self.run(session), "outbox")

    async def run(self, session: Deliverer) -> None:
        """Deliver until the outbox is empty, then end (``changed()`` starts it again); CsmsUnavailable propagates
        to end it with the session. A task only while messages wait: an idle agent has none."""
        try:
            await session.accepted.wait()
            await self._drain(session)
        finally:
            if self._task is asyncio.current_task():
                self._task = None  # a done task kept for the session's life is ~0.3 KB per agent

    async def _drain(self, session: Deliverer) -> None:
        backoff = AGENT_ERROR_RETRY_S
        while True:
            self.wake.clear()
            if self.paused:
                return  # stopping: take nothing more
            try:
                # What was queued so far is committed before it is read and sent (a StartTransaction is on disk
                # before the CSMS hears of it); the commit is awaited, never waited for on the event loop.
                await self.store.flush()
                message = self.store.outbox_head()
            except StorageError:
                log.exception("cannot read the outbox")
                await asyncio.sleep(STORAGE_RETRY_S)
                continue
            if message is None:
                if self.wake.is_set():
                    continue  # queued while the commit was awaited
                self.idle.set()
                return
            self.idle.clear()
            self.not_delivering.clear()
            try:
                await self._deliver_one(session, message)
                backoff = AGENT_ERROR_RETRY_S
            except CsmsUnavailable:
                raise
            except Exception as exc:
                # A bug or an answer nobody foresaw must not kill the task that carries every transaction
                # message: log it, count it as an attempt on this message (so it ends as a dead letter rather
                # than block the queue), back off, and go on.
                log.exception(
                    "outbox: handling %s #%s failed; backing off %s s", message.kind, message.seq, backoff
                )
                try:
                    await self._refused(message, f"agent error: {type(exc).__name__}: {exc}", wait=False)
                except Exception:
                    log.exception("outbox: cannot count the attempt on %s #%s", message.kind, message.seq)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
            finally:
                self.not_delivering.set()

    async def _deliver_one(self, session: Deliverer, message: OutboxMessage) -> None:
        try:
            result = await session.deliver(message)
        except MalformedAnswer as exc:
            info = exc.id_tag_info
            if exc.id_tag is not None and info is not None:
                await self.answers(IdTagInfoReceived(exc.id_tag, info))
            if (
                message.local_tx_id is not None
                and info is not None
                and info.status is not AuthStatus.ACCEPTED
            ):
                # OCPP 1.6 §5.x StopTransactionOnInvalidId: the status is readable, the rest is not; act on it now
                # as for a well-formed answer, rather than let the session charge while the message is retried.
                await self.answers(TransactionStartAnswered(message.local_tx_id, info, taken=False))
            await self._refused(message, f"{exc.code}: {exc.description}")
            return
        except MessageTooLarge as exc:
            # Never sent: a frame over the CSMS's limit drops the link, and sending it again cannot make it
            # smaller. Kept as a dead letter at once rather than block every message behind it (a poison message).
            log.error(
                "outbox: %s #%s cannot be made to fit in one frame (%s); kept as a dead letter",
                message.kind,
                message.seq,
                exc.description,
            )
            await self._give_up(message, f"too large: {exc.description}"[:200])
            return
        except CsmsRejected as exc:
            await self._refused(message, f"{exc.code}: {exc.description}")
            return
        except CsmsUnavailable as exc:
            # Not an attempt: offline or unanswered messages wait for the link, whatever it takes.
            log.info("outbox: %s #%s not delivered (%s); will retry", message.kind, message.seq, exc)
            await asyncio.sleep(self.settings.get_int("transaction_message_retry_interval_s") or 1)
            return
        except OrphanedTransaction as exc:
            # Its StartTransaction is a dead letter: the CSMS knows no id for it, and a made-up one would be an
            # orphan there. It joins its start in the dead letters, for the operator to inspect together.
            log.error(
                "outbox: %s #%s joins its transaction's start in the dead letters", message.kind, message.seq
            )
            await self._give_up(message, f"orphan: {exc}"[:200])
            return
        except Exception as exc:
            # A message this agent cannot turn into a valid CALL (a bug, or data from an older version) must not
            # block every message behind it: it goes to the dead letters at once.
            log.exception("outbox: %s #%s cannot be sent; kept as a dead letter", message.kind, message.seq)
            await self._give_up(message, f"not encodable: {type(exc).__name__}: {exc}"[:200])
            return
        await self._acknowledge(message, result)

    async def _give_up(self, message: OutboxMessage, reason: str) -> None:
        """Move a message to the dead letters (committed off the event loop); a StartTransaction's session is then
        stopped and reported."""
        mark = self.store.mark()
        self.store.give_up(message.seq, reason)
        try:
            await self.store.flush(since=mark)
        except StorageError:
            await asyncio.sleep(STORAGE_RETRY_S)
            return
        if message.kind == OutboxKind.START and message.local_tx_id is not None:
            await self.answers(TransactionNotStarted(message.local_tx_id, reason))

    async def _acknowledge(self, message: OutboxMessage, result: Delivered) -> None:
        """Record the answer and drop the message, retrying while storage refuses: the answer is never lost
        (which would send the message a second time), and nothing behind it goes first.

        The answer is applied in memory at once (a RemoteStop right behind StartTransaction.conf must find the
        transaction's id) and the commit of its record is awaited after, off the event loop."""
        mark = self.store.mark()
        self.store.acknowledge(message.seq, csms_tx_id=result.csms_tx_id, local_tx_id=message.local_tx_id)
        if result.id_tag is not None and result.id_tag_info is not None:
            await self.answers(IdTagInfoReceived(result.id_tag, result.id_tag_info))
        if result.confirms_start and message.local_tx_id is not None and result.id_tag_info is not None:
            await self.answers(TransactionStartAnswered(message.local_tx_id, result.id_tag_info, taken=True))
        delay = STORAGE_RETRY_S
        while True:
            try:
                await self.store.flush(since=mark)
                return
            except StorageError:
                log.exception(
                    "outbox: cannot record the answer to %s #%s; retrying", message.kind, message.seq
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
            mark = self.store.mark()
            self.store.acknowledge(message.seq, csms_tx_id=result.csms_tx_id, local_tx_id=message.local_tx_id)

    async def _refused(self, message: OutboxMessage, reason: str, *, wait: bool = True) -> None:
        """Retry TransactionMessageAttempts times, waiting interval x attempt (OCPP 1.6 §4.10), then keep it as a
        dead letter."""
        try:
            attempts = await asyncio.wrap_future(self.store.count_attempt(message.seq))
            limit = self.settings.get_int("transaction_message_attempts")
        except StorageError:
            log.exception("outbox: cannot count the attempt on %s #%s", message.kind, message.seq)
            await asyncio.sleep(STORAGE_RETRY_S)
            return
        if attempts >= limit:
            log.error(
                "outbox: %s #%s refused %s times (%s); kept as a dead letter",
                message.kind,
                message.seq,
                attempts,
                reason,
            )
            await self._give_up(message, reason[:200])
            return
        delay = self.settings.get_int("transaction_message_retry_interval_s") * attempts
        log.warning(
            "outbox: %s #%s refused (%s); attempt %s/%s, retry in %s s",
            message.kind,
            message.seq,
            reason,
            attempts,
            limit,
            delay,
        )
        if wait:
            await asyncio.sleep(delay)

    async def quiesce(self, timeout_s: float) -> None:
        """Start nothing new and let a CALL in flight get its answer, so a restart does not send it twice."""
        self.paused = True
        try:
            async with asyncio.timeout(timeout_s):
                await self.not_delivering.wait()
        except TimeoutError:
            log.warning("outbox: a message was still in flight at shutdown; it will be sent again")
