"""RFID frame parsers reject garbage cleanly, find valid frames in noise, and PN532 frames round-trip."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.serial_readers import (
    PN532_ACK,
    Pn532Decoder,
    Pn532Frame,
    Pn532ProtocolError,
    Rdm6300Parser,
    pn532_encode,
    pn532_response_to_uid,
    pn532_target_response,
    rdm6300_frame,
)

card_ids = st.binary(min_size=5, max_size=5)
uids = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random places."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_rdm(parser: Rdm6300Parser, chunks: list[bytes]) -> list[str]:
    return [tag for chunk in chunks for tag in parser.feed(chunk)]


def feed_pn532(decoder: Pn532Decoder, chunks: list[bytes]) -> list[Pn532Frame]:
    return [frame for chunk in chunks for frame in decoder.feed(chunk)]


@given(st.binary(max_size=300).flatmap(chunked))
def test_rdm6300_random_bytes_never_raise(chunks: list[bytes]) -> None:
    parser = Rdm6300Parser(debounce_s=0)
    for tag in feed_rdm(parser, chunks):
        assert len(tag) == 10 and tag == tag.upper()
    assert len(parser._buffer) < 14  # never holds more than one partial frame


@given(st.binary(max_size=40), st.lists(card_ids, min_size=1, max_size=4), st.binary(max_size=40), st.data())
def test_rdm6300_frames_in_noise_are_found(
    before: bytes, ids: list[bytes], after: bytes, data: st.DataObject
) -> None:
    stream = before + b"".join(rdm6300_frame(i) for i in ids) + after
    found = feed_rdm(Rdm6300Parser(debounce_s=0), data.draw(chunked(stream)))
    expected = [i.hex().upper() for i in ids]
    # Noise may hold an accidental valid frame of its own, but never hides or corrupts a real one.
    it = iter(found)
    assert all(tag in it for tag in expected), (expected, found)


@settings(max_examples=200)
@given(st.binary(max_size=400).flatmap(chunked))
def test_pn532_random_bytes_never_raise(chunks: list[bytes]) -> None:
    decoder = Pn532Decoder()
    for frame in feed_pn532(decoder, chunks):
        assert frame.kind in ("ack", "nack", "data")
        if frame.kind == "data":
            try:
                pn532_response_to_uid(frame.data)
            except Pn532ProtocolError:
                pass  # rejected cleanly


@given(st.binary(min_size=1, max_size=254))
def test_pn532_encode_decode_round_trip(payload: bytes) -> None:
    frame = pn532_encode(payload)
    assert frame[:3] == b"\x00\x00\xff" and (frame[3] + frame[4]) & 0xFF == 0 and frame[-1] == 0
    assert (sum(payload) + frame[-2]) & 0xFF == 0
    assert Pn532Decoder().feed(frame) == [Pn532Frame("data", payload)]


@given(
    st.binary(max_size=30).filter(lambda b: b"\x00\xff" not in b),
    st.lists(uids | st.none(), min_size=1, max_size=3),
    st.data(),
)
def test_pn532_responses_in_noise_round_trip(
    noise: bytes, cards: list[bytes | None], data: st.DataObject
) -> None:
    # Noise without a start code: PN532 frames have no escaping, so an accidental "00 FF" with a valid
    # length checksum may swallow real bytes; the real chip's line noise is a short burst, not that.
    stream = noise + b"".join(PN532_ACK + pn532_encode(pn532_target_response(c)) for c in cards)
    frames = feed_pn532(Pn532Decoder(), data.draw(chunked(stream)))
    responses = [f for f in frames if f.kind == "data"]
    assert [pn532_response_to_uid(f.data) for f in responses] == [
        None if c is None else c.hex().upper() for c in cards
    ]
    assert sum(f.kind == "ack" for f in frames) == len(cards)
