"""RDM6300 and PN532 drivers: frame tables, then real byte streams over a pty pair and a TCP socket URL."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chargepoint.errors import ConfigError, ReaderError
from chargepoint.ports import TokenReader
from hardware.serial_readers import (
    IN_LIST_PASSIVE_TARGET,
    PN532_ACK,
    SAM_CONFIGURATION,
    Pn532Decoder,
    Pn532Frame,
    Pn532ProtocolError,
    Pn532Reader,
    Rdm6300Parser,
    Rdm6300Reader,
    build_pn532,
    build_rdm6300,
    pn532_encode,
    pn532_response_to_uid,
    rdm6300_frame,
)
from tests.hardware.readers_conftest_helpers import EmulatedPn532, PtyPair, TokenCollector

# A real EM4100 tag read by an RDM6300: version 0x62, id 0xE3086CED; checksum 62^E3^08^6C^ED = 0x08.
CARD_A = b"\x0262E3086CED08\x03"
CARD_B = rdm6300_frame(bytes.fromhex("0100ABCDEF"))


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


# ------------------------------------------------------------------------------------------ RDM6300 frames


def test_known_frame_decodes() -> None:
    assert rdm6300_frame(bytes.fromhex("62E3086CED")) == CARD_A
    assert Rdm6300Parser().feed(CARD_A) == ["62E3086CED"]


@pytest.mark.parametrize(
    ("stream", "tags"),
    [
        (CARD_A + CARD_B, ["62E3086CED", "0100ABCDEF"]),
        (b"\xff\x00garbage\x03\x02" + CARD_A, ["62E3086CED"]),  # noise and a stray STX before a frame
        (CARD_A[:-3] + b"09\x03" + CARD_B, ["0100ABCDEF"]),  # bad checksum dropped
        (CARD_A[:-1] + b"\x04" + CARD_B, ["0100ABCDEF"]),  # missing ETX dropped
        (CARD_A[:7] + CARD_B, ["0100ABCDEF"]),  # truncated frame, next frame still found
        (CARD_A.lower(), ["62E3086CED"]),  # lowercase hex is accepted, idTag is uppercase
        (b"\x02" + b"Z" * 12 + b"\x03", []),  # not hex
    ],
)
def test_rdm6300_stream_table(stream: bytes, tags: list[str]) -> None:
    assert Rdm6300Parser(debounce_s=0).feed(stream) == tags


def test_rdm6300_frame_split_byte_by_byte() -> None:
    parser = Rdm6300Parser()
    out = [tag for byte in CARD_A for tag in parser.feed(bytes([byte]))]
    assert out == ["62E3086CED"]


def test_rdm6300_debounce_uses_the_injected_clock() -> None:
    clock = FakeClock()
    parser = Rdm6300Parser(debounce_s=1.0, clock=clock)
    assert parser.feed(CARD_A) == ["62E3086CED"]
    for _ in range(20):  # a card held for 2 s: a frame every 100 ms, one presentation
        clock.now_s += 0.1
        assert parser.feed(CARD_A) == []
    assert parser.feed(CARD_B) == ["0100ABCDEF"]  # another card counts at once
    clock.now_s += 0.5
    assert parser.feed(CARD_A) == ["62E3086CED"]  # back to A: a new presentation
    clock.now_s += 1.5
    assert parser.feed(CARD_A) == ["62E3086CED"]  # A again after a gap longer than debounce_s


# ------------------------------------------------------------------------------------------ PN532 frames


def test_pn532_encode_known_frames() -> None:
    assert pn532_encode(SAM_CONFIGURATION) == bytes.fromhex("0000FF05FBD414010001 16 00".replace(" ", ""))
    assert pn532_encode(IN_LIST_PASSIVE_TARGET) == bytes.fromhex("0000FF04FCD44A0100E100")


def test_pn532_decoder_table() -> None:
    response = bytes.fromhex("D54B0101004400070456A1B2C3D4E5")
    stream = (
        b"\x55\x00"
        + PN532_ACK
        + b"\x00\xff\x03\x00junk"
        + pn532_encode(response)
        + bytes.fromhex("0000FFFF0000")
    )
    decoder = Pn532Decoder()
    frames = [f for i in range(0, len(stream), 3) for f in decoder.feed(stream[i : i + 3])]
    assert frames == [Pn532Frame("ack"), Pn532Frame("data", response), Pn532Frame("nack")]
    assert decoder.rejected == 1  # the 00 FF with a bad LCS


def test_pn532_decoder_rejects_bad_dcs() -> None:
    good = pn532_encode(b"\xd5\x15")
    bad = bytearray(good)
    bad[-2] ^= 0x01
    assert Pn532Decoder().feed(bytes(bad) + good) == [Pn532Frame("data", b"\xd5\x15")]


def test_pn532_decoder_extended_frame() -> None:
    data = b"\xd5\x4b" + bytes(300)
    frame = (
        bytes([0, 0, 0xFF, 0xFF, 0xFF, 1, 0x2E, (-(1 + 0x2E)) & 0xFF])
        + data
        + bytes([(-sum(data)) & 0xFF, 0])
    )
    assert Pn532Decoder().feed(frame) == [Pn532Frame("data", data)]


def test_pn532_target_parsing() -> None:
    assert pn532_response_to_uid(bytes.fromhex("D54B00")) is None
    assert pn532_response_to_uid(bytes.fromhex("D54B010100040804DEADBEEF")) == "DEADBEEF"
    assert pn532_response_to_uid(bytes.fromhex("D54B0101004400070456A1B2C3D4E5")) == "0456A1B2C3D4E5"
    for bad in ("D54B01010004080455", "D515", "D54B0101"):
        with pytest.raises(Pn532ProtocolError):
            pn532_response_to_uid(bytes.fromhex(bad))


# ------------------------------------------------------------------------------------------ builders


def test_builders_accept_good_options() -> None:
    rdm = build_rdm6300({"port": "/dev/ttyAMA0", "debounce_s": 2}, "connectors[0].reader")
    assert (rdm.port, rdm.debounce_s) == ("/dev/ttyAMA0", 2.0)
    pn = build_pn532({"port": "socket://10.0.0.2:4001", "baudrate": 9600, "poll_interval_s": 0.5}, "k")
    assert (pn.port, pn.baudrate, pn.poll_interval_s) == ("socket://10.0.0.2:4001", 9600, 0.5)
    assert build_pn532({"port": "/dev/ttyS0"}, "k").baudrate == 115200


@pytest.mark.parametrize(
    ("builder", "options", "key"),
    [
        (build_rdm6300, {}, "r.port"),
        (build_rdm6300, {"port": 5}, "r.port"),
        (build_rdm6300, {"port": "/dev/x", "debounce_s": -1}, "r.debounce_s"),
        (build_rdm6300, {"port": "/dev/x", "debounce_s": "1"}, "r.debounce_s"),
        (build_rdm6300, {"port": "/dev/x", "baudrate": 9600}, "r.baudrate"),
        (build_pn532, {"port": "/dev/x", "baudrate": 1234}, "r.baudrate"),
        (build_pn532, {"port": "/dev/x", "baudrate": True}, "r.baudrate"),
        (build_pn532, {"port": "/dev/x", "poll_interval_s": 0}, "r.poll_interval_s"),
        (build_pn532, {"port": "/dev/x", "debounce_s": 1}, "r.debounce_s"),
    ],
)
def test_builders_name_the_bad_key(builder: Any, options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        builder(options, "r")
    assert info.value.key == key


# ------------------------------------------------------------------------------------------ over a pty


@pytest.fixture
def rfid_pty() -> Iterator[PtyPair]:
    """A pty pair from os.openpty(); the reader opens its slave by name."""
    pair = PtyPair()
    yield pair
    pair.vanish()


@pytest.fixture
async def collectors() -> AsyncIterator[list[TokenCollector]]:
    """Token collectors a test started; all closed at the end."""
    started: list[TokenCollector] = []
    yield started
    for collector in started:
        await collector.close()


def collect(collectors: list[TokenCollector], reader: TokenReader) -> TokenCollector:
    collector = TokenCollector(reader)
    collectors.append(collector)
    return collector


async def test_rdm6300_over_pty(rfid_pty: PtyPair, collectors: list[TokenCollector]) -> None:
    clock = FakeClock()
    reader = collect(collectors, Rdm6300Reader(rfid_pty.path, debounce_s=1.0, clock=clock))
    assert await reader.next() is None
    rfid_pty.write(b"\x00\xffnoise" + CARD_A)
    assert await reader.next() == "62E3086CED"
    for _ in range(5):  # the card stays: the module repeats the frame; within debounce_s that is one token
        clock.now_s += 0.065
        rfid_pty.write(CARD_A)
        await asyncio.sleep(0.01)
    rfid_pty.write(CARD_B[:3])  # another card, its frame split across writes and preceded by a bad checksum
    await asyncio.sleep(0.1)
    rfid_pty.write(CARD_B[3:9])
    await asyncio.sleep(0.1)
    rfid_pty.write(CARD_B[9:] + CARD_A[:-3] + b"00\x03")
    assert await reader.next() == "0100ABCDEF"
    clock.now_s += 5  # much later, card A again
    rfid_pty.write(b"\x02\x02\x03" + CARD_A)
    assert await reader.next() == "62E3086CED"
    await reader.quiet_for(0.2)


async def test_rdm6300_port_vanishes(rfid_pty: PtyPair, collectors: list[TokenCollector]) -> None:
    reader = Rdm6300Reader(rfid_pty.path)
    tokens = collect(collectors, reader)
    assert await tokens.next() is None
    rfid_pty.write(CARD_A)
    assert await tokens.next() == "62E3086CED"
    rfid_pty.vanish()  # unplugged USB-serial adapter
    assert isinstance(await tokens.next(), ReaderError)
    again = collect(collectors, reader)  # the station retries after a pause: the device is still gone
    assert isinstance(await again.next(), ReaderError)


async def test_rdm6300_missing_port_is_a_reader_error(collectors: list[TokenCollector]) -> None:
    tokens = collect(collectors, Rdm6300Reader("/dev/does-not-exist-rdm6300"))
    error = await tokens.next()
    assert isinstance(error, ReaderError) and "does-not-exist" in str(error)


async def test_rdm6300_over_socket_url(collectors: list[TokenCollector]) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    tokens = collect(collectors, Rdm6300Reader(f"socket://127.0.0.1:{port}"))
    loop = asyncio.get_running_loop()
    conn, _ = await loop.run_in_executor(None, server.accept)
    with contextlib.closing(server), contextlib.closing(conn):
        assert await tokens.next() is None
        conn.sendall(CARD_B[:5])
        await asyncio.sleep(0.05)
        conn.sendall(CARD_B[5:])
        assert await tokens.next() == "0100ABCDEF"
        conn.close()  # the serial server went away
        assert isinstance(await tokens.next(), ReaderError)


@pytest.fixture
def pn532(rfid_pty: PtyPair) -> Iterator[EmulatedPn532]:
    """An emulated PN532 on the far end of the pty."""
    chip = EmulatedPn532(rfid_pty).start()
    yield chip
    chip.stop()


async def test_pn532_one_token_per_presentation(
    rfid_pty: PtyPair, pn532: EmulatedPn532, collectors: list[TokenCollector]
) -> None:
    tokens = collect(collectors, Pn532Reader(rfid_pty.path, poll_interval_s=0.02))
    assert await tokens.next() is None
    assert pn532.commands[:2] == [0x14, 0x32]  # SAMConfiguration, then RFConfiguration (max retries)
    await tokens.quiet_for(0.1)  # no card: polls answer NbTg = 0
    pn532.card_uid = bytes.fromhex("04A2B3C4")
    assert await tokens.next() == "04A2B3C4"
    await tokens.quiet_for(0.2)  # the card stays on the reader: not reported again
    pn532.card_uid = None
    await asyncio.sleep(0.1)
    pn532.card_uid = bytes.fromhex("04A2B3C4")  # taken away and presented again
    assert await tokens.next() == "04A2B3C4"
    pn532.card_uid = bytes.fromhex("0456A1B2C3D4E5")  # swapped for a 7-byte UID card
    assert await tokens.next() == "0456A1B2C3D4E5"
    assert pn532.commands.count(0x4A) > 5


async def test_pn532_port_vanishes(
    rfid_pty: PtyPair, pn532: EmulatedPn532, collectors: list[TokenCollector]
) -> None:
    reader = Pn532Reader(rfid_pty.path, poll_interval_s=0.02)
    tokens = collect(collectors, reader)
    assert await tokens.next() is None
    rfid_pty.vanish()
    assert isinstance(await tokens.next(), ReaderError)
    assert isinstance(await collect(collectors, reader).next(), ReaderError)


async def test_pn532_that_stops_answering(
    rfid_pty: PtyPair, pn532: EmulatedPn532, collectors: list[TokenCollector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pn532Reader, "RESPONSE_TIMEOUT_S", 0.1)
    tokens = collect(collectors, Pn532Reader(rfid_pty.path, poll_interval_s=0.02))
    assert await tokens.next() is None
    pn532.mute = True
    error = await tokens.next()
    assert isinstance(error, ReaderError) and "stopped answering" in str(error)


async def test_pn532_absent_at_start(
    rfid_pty: PtyPair, collectors: list[TokenCollector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pn532Reader, "RESPONSE_TIMEOUT_S", 0.1)
    tokens = collect(collectors, Pn532Reader(rfid_pty.path))  # nothing on the far end of the port
    assert isinstance(await tokens.next(), ReaderError)
