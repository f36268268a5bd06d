"""PcscReader against a real pcscd + vpcd and a virtual card, all in a private network namespace.

Why this shape: vpcd listens on TCP 35963 on every interface, so pcscd runs under ``unshare --net --mount``
(see PcscNamespace). The driver under test runs in this test process, in the host namespace: it reaches
pcscd through the pathname UNIX socket, named by PCSCLITE_CSOCK_NAME. libpcsclite reads that variable once
per process, so every test in a process uses the same directory (one pcscd at a time, restarted per test).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from chargepoint.errors import ConfigError, ReaderError
from hardware.pcsc_reader import PcscReader, build_pcsc
from tests.hardware.readers_conftest_helpers import (
    VPCD_PORT,
    PcscNamespace,
    TokenCollector,
)

READER = "Virtual PCD 00 00"  # slot 0 of the vpcd driver: the one on port 35963


@pytest.fixture
async def collectors() -> AsyncIterator[list[TokenCollector]]:
    """Token collectors a test started; all closed at the end."""
    started: list[TokenCollector] = []
    yield started
    for collector in started:
        await collector.close()


async def test_card_presentations_give_one_token_each(
    pcsc: PcscNamespace, collectors: list[TokenCollector]
) -> None:
    reader = PcscReader("Virtual PCD", poll_interval_s=0.1)
    tokens = TokenCollector(reader)
    collectors.append(tokens)
    assert await tokens.next() is None
    assert reader.name == READER
    pcsc.insert("04A2B3C4")
    assert await tokens.next() == "04A2B3C4"
    await tokens.quiet_for(0.8)  # the card stays on the reader: one token
    pcsc.remove()
    await tokens.quiet_for(0.6)
    pcsc.insert("0456A1B2C3D4E5")  # a second card
    assert await tokens.next() == "0456A1B2C3D4E5"
    pcsc.remove()
    await tokens.quiet_for(0.6)
    pcsc.insert("0456A1B2C3D4E5")  # the same card presented again: a new presentation
    assert await tokens.next() == "0456A1B2C3D4E5"


async def test_card_already_on_the_reader_at_start(
    pcsc: PcscNamespace, collectors: list[TokenCollector]
) -> None:
    pcsc.insert("DEADBEEF")
    tokens = TokenCollector(PcscReader(poll_interval_s=0.1))  # no name: the first reader
    collectors.append(tokens)
    assert await tokens.next() is None
    assert await tokens.next() == "DEADBEEF"


async def test_pcscd_gone_is_a_reader_error_and_recovers(
    pcsc: PcscNamespace, collectors: list[TokenCollector]
) -> None:
    reader = PcscReader(READER, poll_interval_s=0.1)
    tokens = TokenCollector(reader)
    collectors.append(tokens)
    assert await tokens.next() is None
    pcsc.command("stop-pcscd")
    error = await tokens.next()
    assert isinstance(error, ReaderError), error
    retry = TokenCollector(reader)  # the station retries after a pause: still gone
    collectors.append(retry)
    assert isinstance(await retry.next(), ReaderError)
    pcsc.command("start-pcscd")  # back: the next retry is ready again (clears ReaderFailure)
    back = TokenCollector(reader)
    collectors.append(back)
    assert await back.next() is None
    pcsc.insert("01020304")
    assert await back.next() == "01020304"


async def test_unknown_reader_name_is_a_reader_error(
    pcsc: PcscNamespace, collectors: list[TokenCollector]
) -> None:
    tokens = TokenCollector(PcscReader("ACS ACR122U"))
    collectors.append(tokens)
    error = await tokens.next()
    assert isinstance(error, ReaderError) and "Virtual PCD 00 00" in str(error)


def test_vpcd_port_is_private_to_the_namespace(pcsc: PcscNamespace) -> None:
    pcsc.command("probe")  # inside the namespace vpcd listens...
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", VPCD_PORT), timeout=1):
        pass  # ...from the host namespace nobody can connect to it


def test_build_pcsc() -> None:
    reader = build_pcsc({"reader": "ACR122", "poll_interval_s": 1}, "k")
    assert (reader.reader_name, reader.poll_interval_s) == ("ACR122", 1.0)
    assert build_pcsc({}, "k").reader_name is None
    for options, key in (
        ({"reader": ""}, "k.reader"),
        ({"reader": 3}, "k.reader"),
        ({"poll_interval_s": 0}, "k.poll_interval_s"),
        ({"port": "/dev/x"}, "k.port"),
    ):
        with pytest.raises(ConfigError) as info:
            build_pcsc(options, "k")
        assert info.value.key == key
