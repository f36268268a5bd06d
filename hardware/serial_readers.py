"""Serial RFID readers: RDM6300 (125 kHz EM4100) and PN532 (13.56 MHz, HSU/UART), over pyserial."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import termios
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import serial  # type: ignore[import-untyped]  # pyserial ships no type hints

from chargepoint.errors import ConfigError, ReaderError

log = logging.getLogger(__name__)

MonotonicClock = Callable[[], float]

# ---------------------------------------------------------------------------------------------------------
# RDM6300: 9600 8N1, frame STX + 10 ASCII hex (version byte + 32-bit id) + 2 ASCII hex XOR checksum + ETX,
# repeated every ~60 ms while a card stays in the field.

_STX: Final = 0x02
_ETX: Final = 0x03
_RDM_FRAME_LEN: Final = 14
_HEX_DIGITS: Final = frozenset(b"0123456789ABCDEFabcdef")


def rdm6300_frame(card_id: bytes) -> bytes:
    """The RDM6300 frame for a 5-byte EM4100 card number (version byte + 32-bit id)."""
    if len(card_id) != 5:
        raise ValueError(f"an EM4100 card number has 5 bytes, got {len(card_id)}")
    checksum = 0
    for b in card_id:
        checksum ^= b
    return bytes([_STX]) + card_id.hex().upper().encode() + f"{checksum:02X}".encode() + bytes([_ETX])


class Debouncer:
    """Counts a tag repeated within ``debounce_s`` of its last sighting once; a card held still stays one."""

    def __init__(self, debounce_s: float, clock: MonotonicClock = time.monotonic) -> None:
        self.debounce_s = debounce_s
        self._clock = clock
        self._last_tag: str | None = None
        self._last_seen_s = 0.0

    def accept(self, tag: str) -> bool:
        """True if ``tag`` is a new presentation, False for a repeat of the current one."""
        now = self._clock()
        repeat = tag == self._last_tag and now - self._last_seen_s < self.debounce_s
        self._last_tag = tag
        self._last_seen_s = now
        return not repeat


class Rdm6300Parser:
    """Turns an RDM6300 byte stream into idTags; skips garbage, waits for split frames, drops bad checksums."""

    def __init__(self, *, debounce_s: float = 1.0, clock: MonotonicClock = time.monotonic) -> None:
        self._buffer = bytearray()
        self._debouncer = Debouncer(debounce_s, clock)
        self.rejected = 0  # frames dropped for bad hex or a bad checksum

    def feed(self, data: bytes) -> list[str]:
        """Consume ``data``; return the idTags (10 uppercase hex chars) of new presentations."""
        self._buffer += data
        tags: list[str] = []
        while True:
            start = self._buffer.find(_STX)
            if start < 0:
                self._buffer.clear()
                break
            del self._buffer[:start]
            if len(self._buffer) < _RDM_FRAME_LEN:
                # A partial frame: keep it, unless it is already broken (then resync right away).
                if all(b in _HEX_DIGITS for b in self._buffer[1:]):
                    break
                self.rejected += 1
                del self._buffer[:1]
                continue
            tag = self._decode(bytes(self._buffer[:_RDM_FRAME_LEN]))
            if tag is None:
                # Not a frame after all: drop only the STX so a real frame starting inside it is still found.
                self.rejected += 1
                del self._buffer[:1]
                continue
            del self._buffer[:_RDM_FRAME_LEN]
            if self._debouncer.accept(tag):
                tags.append(tag)
        return tags

    @staticmethod
    def _decode(frame: bytes) -> str | None:
        body = frame[1:13]
        if frame[13] != _ETX or not all(b in _HEX_DIGITS for b in body):
            return None
        raw = bytes.fromhex(body.decode("ascii"))
        checksum = 0
        for b in raw[:5]:
            checksum ^= b
        if checksum != raw[5]:
            return None
        return raw[:5].hex().upper()


# ---------------------------------------------------------------------------------------------------------
# PN532 frames (PN532 User Manual §6.2.1): 00 00 FF LEN LCS TFI PD0..PDn DCS 00, LEN counts TFI + PD,
# LCS = -LEN, DCS = -sum(TFI, PD). ACK 00 00 FF 00 FF 00, NACK 00 00 FF FF 00 00.

PN532_ACK: Final = bytes.fromhex("0000FF00FF00")
PN532_NACK: Final = bytes.fromhex("0000FFFF0000")
# HSU wake-up (User Manual §7.2.11): a long preamble takes the chip out of power-down before the first command.
PN532_WAKEUP: Final = bytes.fromhex("5555000000000000000000000000000000")
TFI_HOST: Final = 0xD4
TFI_PN532: Final = 0xD5
CMD_SAM_CONFIGURATION: Final = 0x14
CMD_RF_CONFIGURATION: Final = 0x32
CMD_IN_LIST_PASSIVE_TARGET: Final = 0x4A
# SAMConfiguration: normal mode, no timeout, use IRQ.
SAM_CONFIGURATION: Final = bytes([TFI_HOST, CMD_SAM_CONFIGURATION, 0x01, 0x00, 0x01])
# RFConfiguration item 5 (MaxRetries): MxRtyATR=FF, MxRtyPSL=01, MxRtyPassiveActivation=01 so that
# InListPassiveTarget answers "no target" instead of waiting forever (the power-on default is FF = infinite).
RF_MAX_RETRIES: Final = bytes([TFI_HOST, CMD_RF_CONFIGURATION, 0x05, 0xFF, 0x01, 0x01])
# InListPassiveTarget: at most one target, 106 kbps type A (ISO 14443A / MIFARE).
IN_LIST_PASSIVE_TARGET: Final = bytes([TFI_HOST, CMD_IN_LIST_PASSIVE_TARGET, 0x01, 0x00])


class Pn532ProtocolError(ValueError):
    """A PN532 frame or response is malformed."""


def pn532_encode(data: bytes) -> bytes:
    """The normal information frame carrying ``data`` (TFI + command + parameters)."""
    if not 1 <= len(data) <= 254:
        raise ValueError(f"a normal PN532 frame carries 1..254 bytes, got {len(data)}")
    length = len(data)
    return bytes([0x00, 0x00, 0xFF, length, (-length) & 0xFF]) + data + bytes([(-sum(data)) & 0xFF, 0x00])


@dataclass(frozen=True, slots=True)
class Pn532Frame:
    """One decoded frame: kind "ack", "nack" or "data" (then ``data`` holds TFI + payload)."""

    kind: str
    data: bytes = b""


class Pn532Decoder:
    """Finds PN532 frames in a byte stream; skips garbage and bad checksums, keeps split frames."""

    _MAX_BUFFER: Final = 4096

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.rejected = 0

    def feed(self, data: bytes) -> list[Pn532Frame]:
        """Consume ``data``; return the complete frames found so far."""
        self._buffer += data
        frames: list[Pn532Frame] = []
        while True:
            start = self._buffer.find(b"\x00\xff")
            if start < 0:
                # Keep a trailing 00: it may be the first half of a start code.
                keep = 1 if self._buffer.endswith(b"\x00") else 0
                del self._buffer[: len(self._buffer) - keep]
                break
            del self._buffer[:start]
            buf = self._buffer
            if len(buf) < 4:
                break
            length, lcs = buf[2], buf[3]
            if length == 0x00 and lcs == 0xFF:
                frames.append(Pn532Frame("ack"))
                del buf[:4]
                continue
            if length == 0xFF and lcs == 0x00:
                frames.append(Pn532Frame("nack"))
                del buf[:4]
                continue
            if length == 0xFF and lcs == 0xFF:
                # Extended frame: 00 FF FF FF LENM LENL LCS TFI ... DCS.
                if len(buf) < 7:
                    break
                length = (buf[4] << 8) | buf[5]
                if (buf[4] + buf[5] + buf[6]) & 0xFF or length == 0:
                    self._reject()
                    continue
                header = 7
            elif (length + lcs) & 0xFF or length == 0:
                self._reject()
                continue
            else:
                header = 4
            if len(buf) < header + length + 1:
                if len(buf) > self._MAX_BUFFER:
                    self._reject()
                    continue
                break
            payload = bytes(buf[header : header + length])
            dcs = buf[header + length]
            if (sum(payload) + dcs) & 0xFF:
                self._reject()
                continue
            del buf[: header + length + 1]
            frames.append(Pn532Frame("data", payload))
        return frames

    def _reject(self) -> None:
        # Drop just the start code: a real frame may begin inside what looked like this one.
        self.rejected += 1
        del self._buffer[:2]


def pn532_response_to_uid(data: bytes) -> str | None:
    """The UID (uppercase hex) in an InListPassiveTarget response, or None if no target answered."""
    if len(data) < 3 or data[0] != TFI_PN532 or data[1] != CMD_IN_LIST_PASSIVE_TARGET + 1:
        raise Pn532ProtocolError(f"not an InListPassiveTarget response: {data.hex()}")
    if data[2] == 0:
        return None
    # D5 4B NbTg Tg SENS_RES(2) SEL_RES NFCIDLength NFCID... [ATS] (User Manual §7.3.5, 106 kbps type A).
    if len(data) < 8:
        raise Pn532ProtocolError(f"InListPassiveTarget response too short: {data.hex()}")
    uid_len = data[7]
    uid = data[8 : 8 + uid_len]
    if uid_len == 0 or len(uid) != uid_len:
        raise Pn532ProtocolError(f"InListPassiveTarget response with a bad NFCID length: {data.hex()}")
    return uid.hex().upper()


def pn532_target_response(uid: bytes | None) -> bytes:
    """The InListPassiveTarget response data for a type A card with ``uid`` (None: no card); for emulators."""
    if uid is None:
        return bytes([TFI_PN532, CMD_IN_LIST_PASSIVE_TARGET + 1, 0x00])
    return bytes([TFI_PN532, CMD_IN_LIST_PASSIVE_TARGET + 1, 0x01, 0x01, 0x00, 0x44, 0x00, len(uid)]) + uid


# ---------------------------------------------------------------------------------------------------------
# pyserial link: every blocking call runs on one worker thread per reader, so calls never overlap and the
# event loop never blocks. Library errors become ReaderError here.


class _SerialLink:
    """A serial port opened by URL; blocking I/O on a private single-thread executor."""

    _READ_TIMEOUT_S: Final = 0.05

    def __init__(self, url: str, baudrate: int) -> None:
        self._url = url
        self._baudrate = baudrate
        self._port: Any = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"serial {url}")

    async def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:
            # termios.error is no OSError: tcdrain() on a vanished tty raises it (EIO) from port.flush().
            raise ReaderError(f"serial port {self._url}: {exc}") from exc

    async def open(self) -> None:
        """Open the port; ReaderError if it does not exist or cannot be opened."""

        def _open() -> Any:
            return serial.serial_for_url(self._url, baudrate=self._baudrate, timeout=self._READ_TIMEOUT_S)

        self._port = await self._call(_open)

    async def read(self) -> bytes:
        """Whatever arrived within a short timeout (maybe nothing); ReaderError when the port vanished."""
        port = self._port

        def _read() -> bytes:
            data: bytes = port.read(max(1, port.in_waiting))
            return data

        return bytes(await self._call(_read))

    async def write(self, data: bytes) -> None:
        """Write ``data``; ReaderError when the port vanished."""
        port = self._port

        def _write() -> None:
            port.write(data)
            port.flush()

        await self._call(_write)

    def close(self) -> None:
        """Close the port after any pending call finished; never blocks the loop."""
        port, self._port = self._port, None

        def _close() -> None:
            if port is not None:
                try:
                    port.close()
                except (serial.SerialException, OSError, termios.error) as exc:
                    log.debug("closing %s: %s", self._url, exc)

        try:
            self._executor.submit(_close)
        except RuntimeError:  # executor already shut down
            pass
        self._executor.shutdown(wait=False)


class Rdm6300Reader:
    """An RDM6300 125 kHz reader on a serial port (9600 8N1); idTag = the 5-byte EM4100 number in hex."""

    BAUDRATE: Final = 9600

    def __init__(self, port: str, *, debounce_s: float = 1.0, clock: MonotonicClock = time.monotonic) -> None:
        self.port = port
        self.debounce_s = debounce_s
        self._clock = clock

    async def tokens(self) -> AsyncIterator[str | None]:
        """None once the port is open, then one idTag per presentation; ReaderError when the port is gone."""
        link = _SerialLink(self.port, self.BAUDRATE)
        try:
            await link.open()
            parser = Rdm6300Parser(debounce_s=self.debounce_s, clock=self._clock)
            yield None
            while True:
                for tag in parser.feed(await link.read()):
                    yield tag
        finally:
            link.close()


class Pn532Reader:
    """A PN532 over HSU (UART): SAMConfiguration once, then InListPassiveTarget every ``poll_interval_s``."""

    RESPONSE_TIMEOUT_S: Final = 1.0
    MAX_MISSES: Final = 3  # consecutive unanswered commands before the reader counts as gone

    def __init__(self, port: str, *, poll_interval_s: float = 0.2, baudrate: int = 115200) -> None:
        self.port = port
        self.poll_interval_s = poll_interval_s
        self.baudrate = baudrate

    async def tokens(self) -> AsyncIterator[str | None]:
        """None once the PN532 answered its configuration, then one UID per presentation; else ReaderError."""
        link = _SerialLink(self.port, self.baudrate)
        decoder = Pn532Decoder()
        try:
            await link.open()
            try:
                await self._command(link, decoder, PN532_WAKEUP, SAM_CONFIGURATION)
                await self._command(link, decoder, b"", RF_MAX_RETRIES)
            except (_NoAnswer, Pn532ProtocolError) as exc:
                raise ReaderError(f"PN532 on {self.port} did not initialise: {exc}") from exc
            yield None
            current: str | None = None  # the card on the reader now; not reported again until it left
            misses = 0
            while True:
                try:
                    response = await self._command(link, decoder, b"", IN_LIST_PASSIVE_TARGET)
                    uid = pn532_response_to_uid(response)
                    misses = 0
                except _NoAnswer as exc:
                    misses += 1
                    if misses >= self.MAX_MISSES:
                        raise ReaderError(f"PN532 on {self.port} stopped answering: {exc}") from exc
                    uid = current
                except Pn532ProtocolError as exc:
                    log.warning("PN532 on %s: %s", self.port, exc)
                    uid = current
                if uid is not None and uid != current:
                    yield uid
                current = uid
                await asyncio.sleep(self.poll_interval_s)
        finally:
            link.close()

    async def _command(self, link: _SerialLink, decoder: Pn532Decoder, prefix: bytes, data: bytes) -> bytes:
        """Send one command frame, wait for its ACK and its response; returns the response data."""
        await link.write(prefix + pn532_encode(data))
        acked = False
        expected = data[1] + 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.RESPONSE_TIMEOUT_S
        while loop.time() < deadline:
            for frame in decoder.feed(await link.read()):
                if frame.kind == "ack":
                    acked = True
                elif frame.kind == "data" and len(frame.data) >= 2 and frame.data[0] == TFI_PN532:
                    if frame.data[1] == expected:
                        return frame.data
                    log.debug("PN532 on %s: unexpected response %s", self.port, frame.data.hex())
                elif frame.kind == "data" and frame.data == b"\x7f":
                    raise Pn532ProtocolError(f"PN532 reported a syntax error for {data.hex()}")
        # Abort whatever the chip is still doing (User Manual §6.2.1.3: an ACK from the host aborts).
        await link.write(PN532_ACK)
        raise _NoAnswer(
            f"no {'response' if acked else 'ACK'} to command {data[1]:02X} within {self.RESPONSE_TIMEOUT_S} s"
        )


class _NoAnswer(Exception):
    """The PN532 did not acknowledge or answer a command in time."""


# ---------------------------------------------------------------------------------------------------------
# Builders: validate the TOML options of a reader and construct it. ``key`` names the table for errors.


def _check_keys(options: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    for name in options:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", f"unknown option (allowed: {', '.join(allowed)})")


def _port_option(options: Mapping[str, Any], key: str) -> str:
    port = options.get("port")
    if not isinstance(port, str) or not port:
        raise ConfigError(f"{key}.port", f"must be a serial device path or URL, got {port!r}")
    return port


def _float_option(
    options: Mapping[str, Any], key: str, name: str, default: float, low: float, high: float
) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}.{name}", f"must be a number of seconds, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{key}.{name}", f"must be between {low} and {high}, got {value}")
    return float(value)


_BAUDRATES: Final = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def build_rdm6300(options: Mapping[str, Any], key: str) -> Rdm6300Reader:
    """An Rdm6300Reader from options ``port`` (required) and ``debounce_s`` (0.2..10, default 1.0)."""
    _check_keys(options, key, ("port", "debounce_s"))
    # The module repeats its frame every ~0.1 s while a card is held: a shorter debounce would turn one held
    # card into a stream of tokens, starting and stopping sessions.
    return Rdm6300Reader(
        _port_option(options, key), debounce_s=_float_option(options, key, "debounce_s", 1.0, 0.2, 10.0)
    )


def build_pn532(options: Mapping[str, Any], key: str) -> Pn532Reader:
    """A Pn532Reader from options ``port`` (required), ``baudrate`` (default 115200), ``poll_interval_s``."""
    _check_keys(options, key, ("port", "baudrate", "poll_interval_s"))
    baudrate = options.get("baudrate", 115200)
    if isinstance(baudrate, bool) or baudrate not in _BAUDRATES:
        raise ConfigError(
            f"{key}.baudrate", f"must be one of {', '.join(map(str, _BAUDRATES))}, got {baudrate!r}"
        )
    return Pn532Reader(
        _port_option(options, key),
        poll_interval_s=_float_option(options, key, "poll_interval_s", 0.2, 0.01, 10.0),
        baudrate=int(baudrate),
    )
