"""PC/SC contactless reader via pyscard: the card UID (``FF CA 00 00 00``) as the idTag."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, TypeVar

from smartcard import scard  # type: ignore[import-untyped]  # pyscard ships no type hints

from chargepoint.errors import ConfigError, ReaderError

log = logging.getLogger(__name__)

T = TypeVar("T")

# PC/SC part 3 §3.2.2.1.3: GET DATA, P1=00 -> UID of the card in the field; answer UID + 90 00.
GET_UID: Final = [0xFF, 0xCA, 0x00, 0x00, 0x00]
# The card went away between "present" and our APDU: not a reader fault, just no token for that presentation.
_CARD_GONE: Final = frozenset(
    {
        scard.SCARD_W_REMOVED_CARD,
        scard.SCARD_E_NO_SMARTCARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_UNRESPONSIVE_CARD,
        scard.SCARD_W_RESET_CARD,
        scard.SCARD_E_PROTO_MISMATCH,
        scard.SCARD_W_UNSUPPORTED_CARD,
        scard.SCARD_E_SHARING_VIOLATION,
        scard.SCARD_E_NOT_TRANSACTED,
    }
)
# pcsc-lite keeps a per-reader card event counter in the high 16 bits of the event state.
_EVENT_COUNT_SHIFT: Final = 16


def _error_text(rc: int) -> str:
    return f"{scard.SCardGetErrorMessage(rc)} (0x{rc & 0xFFFFFFFF:08X})"


# Beyond the poll interval, how long one PC/SC call may take before the reader counts as gone.
CALL_TIMEOUT_S = 5.0


class PcscReader:
    """A PC/SC reader (first one, or the first whose name contains ``reader_name``); one token per insertion."""

    def __init__(self, reader_name: str | None = None, *, poll_interval_s: float = 0.3) -> None:
        self.reader_name = reader_name
        self.poll_interval_s = poll_interval_s
        self.name: str | None = None  # the full PC/SC name of the reader in use, once found

    async def tokens(self) -> AsyncIterator[str | None]:
        """None once the reader is found, then one UID per card insertion; ReaderError when it is gone."""
        # One worker thread per reader: pyscard calls on one context never overlap, and closing the
        # context queues behind a pending SCardGetStatusChange (which SCardCancel ends at once).
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pcsc")
        loop = asyncio.get_running_loop()

        async def call(fn: Callable[..., T], *args: Any) -> T:
            # A hung pcscd must surface as a ReaderFailure, not as a reader that silently never reads again.
            try:
                async with asyncio.timeout(self.poll_interval_s + CALL_TIMEOUT_S):
                    return await loop.run_in_executor(executor, fn, *args)
            except TimeoutError:
                raise ReaderError(f"PC/SC service did not answer within {CALL_TIMEOUT_S:g} s") from None

        context: int | None = None
        try:
            context = await call(self._establish)
            name = await call(self._find_reader, context)
            self.name = name
            yield None
            timeout_ms = max(1, int(self.poll_interval_s * 1000))
            state = scard.SCARD_STATE_UNAWARE
            handled_count: int | None = None  # event count of the insertion already read
            while True:
                event = await call(self._wait_change, context, name, state, timeout_ms)
                if event is None:
                    continue
                state = event & ~scard.SCARD_STATE_CHANGED
                count = event >> _EVENT_COUNT_SHIFT
                if event & scard.SCARD_STATE_EMPTY:
                    handled_count = None
                elif event & scard.SCARD_STATE_PRESENT and count != handled_count:
                    handled_count = count
                    uid = await call(self._read_uid, context, name)
                    if uid is not None:
                        yield uid
        finally:
            if context is not None:
                # Wake a pending SCardGetStatusChange, then release the context on the worker thread. The
                # cancel runs on a thread of its own: against a hung pcscd it may block, never the event loop.
                threading.Thread(target=scard.SCardCancel, args=(context,), daemon=True).start()
                executor.submit(scard.SCardReleaseContext, context)
            executor.shutdown(wait=False)

    @staticmethod
    def _establish() -> int:
        rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rc != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"PC/SC service unavailable: {_error_text(rc)}")
        return int(context)

    def _find_reader(self, context: int) -> str:
        rc, readers = scard.SCardListReaders(context, [])
        if rc == scard.SCARD_E_NO_READERS_AVAILABLE:
            readers = []
        elif rc != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"PC/SC cannot list readers: {_error_text(rc)}")
        for reader in readers:
            if self.reader_name is None or self.reader_name in reader:
                return str(reader)
        wanted = "any reader" if self.reader_name is None else f"a reader named like {self.reader_name!r}"
        raise ReaderError(f"PC/SC has no {wanted} (readers: {', '.join(readers) or 'none'})")

    @staticmethod
    def _wait_change(context: int, name: str, state: int, timeout_ms: int) -> int | None:
        """The reader's new event state, or None when nothing changed within the timeout."""
        rc, states = scard.SCardGetStatusChange(context, timeout_ms, [(name, state)])
        if rc == scard.SCARD_E_TIMEOUT:
            return None
        if rc != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"PC/SC reader {name!r} lost: {_error_text(rc)}")
        event = int(states[0][1])
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
            raise ReaderError(f"PC/SC reader {name!r} is gone")
        return event

    @staticmethod
    def _read_uid(context: int, name: str) -> str | None:
        """The UID of the card now in the reader, or None if it left or did not answer GET DATA."""
        rc, card, protocol = scard.SCardConnect(
            context, name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if rc in _CARD_GONE:
            log.info("PC/SC reader %r: card left before it was read (%s)", name, _error_text(rc))
            return None
        if rc != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"PC/SC reader {name!r}: connect failed: {_error_text(rc)}")
        try:
            rc, response = scard.SCardTransmit(card, protocol, GET_UID)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        if rc in _CARD_GONE:
            log.info("PC/SC reader %r: card left while being read (%s)", name, _error_text(rc))
            return None
        if rc != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"PC/SC reader {name!r}: transmit failed: {_error_text(rc)}")
        if len(response) < 3 or response[-2:] != [0x90, 0x00]:
            log.warning("PC/SC reader %r: GET DATA (UID) answered %s", name, bytes(response).hex().upper())
            return None
        return bytes(response[:-2]).hex().upper()


def build_pcsc(options: Mapping[str, Any], key: str) -> PcscReader:
    """A PcscReader from options ``reader`` (name substring, default: the first reader), ``poll_interval_s``."""
    for name in options:
        if name not in ("reader", "poll_interval_s"):
            raise ConfigError(f"{key}.{name}", "unknown option (allowed: reader, poll_interval_s)")
    reader = options.get("reader")
    if reader is not None and (not isinstance(reader, str) or not reader):
        raise ConfigError(f"{key}.reader", f"must be a non-empty part of a PC/SC reader name, got {reader!r}")
    poll_interval_s = options.get("poll_interval_s", 0.3)
    if isinstance(poll_interval_s, bool) or not isinstance(poll_interval_s, int | float):
        raise ConfigError(f"{key}.poll_interval_s", f"must be a number of seconds, got {poll_interval_s!r}")
    if not 0.05 <= poll_interval_s <= 10:
        raise ConfigError(f"{key}.poll_interval_s", f"must be between 0.05 and 10, got {poll_interval_s}")
    return PcscReader(reader, poll_interval_s=float(poll_interval_s))
