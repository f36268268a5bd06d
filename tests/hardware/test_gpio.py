"""GPIO relay and plug-detect drivers against FakeLineBackend: this machine has no /dev/gpiochip* and a GPIO chip
cannot be emulated here, so only ``test_real_chip_input`` touches libgpiod, and only where a chip exists."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chargepoint.errors import ConfigError, HardwareError, RelayError
from hardware.gpio import (
    FakeLineBackend,
    GpiodBackend,
    GpioPlugSensor,
    GpioRelay,
    build_gpio_plug,
    build_gpio_relay,
)

CHIP = "/dev/gpiochip0"


# --- relay -----------------------------------------------------------------------------------------------------


def test_relay_line_requested_open() -> None:
    """The output is requested with the OFF value, so a restarted agent never closes the contactor."""
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, active_low=True, settle_s=0)
    line = fake.line(CHIP, 17)
    assert line.output and line.active_low
    assert line.high is True  # active-low: the coil is off at the high level
    assert not line.is_active()
    assert not relay.closed


@pytest.mark.parametrize(("active_low", "high_when_closed"), [(False, True), (True, False)])
async def test_relay_switches(active_low: bool, high_when_closed: bool) -> None:
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, active_low=active_low, settle_s=0)
    line = fake.line(CHIP, 17)
    await relay.close()
    assert relay.closed and line.high is high_when_closed
    await relay.open()
    assert not relay.closed and line.high is not high_when_closed


@pytest.mark.parametrize("feedback_active_low", [False, True])
async def test_relay_feedback_confirms(feedback_active_low: bool) -> None:
    fake = FakeLineBackend()
    relay = GpioRelay(
        fake, CHIP, 17, feedback_line=27, feedback_active_low=feedback_active_low, settle_s=0.01
    )
    # The mirror contact reads "closed" exactly when the contactor is; feedback_active_low inverts the wiring.
    fake.wire(CHIP, 17, 27, inverted=feedback_active_low)
    assert relay.has_feedback
    await relay.close()
    assert relay.closed
    await relay.open()
    assert not relay.closed


async def test_relay_close_feedback_mismatch_raises_and_drives_off() -> None:
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, feedback_line=27, settle_s=0.01)  # feedback not wired: stays open
    with pytest.raises(RelayError, match="feedback on line 27 reads open"):
        await relay.close()
    assert not relay.closed
    assert not fake.line(CHIP, 17).is_active()  # an unconfirmed close is undone


async def test_relay_welded_contactor_fails_open() -> None:
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, feedback_line=27, settle_s=0.01)
    fake.set_level(CHIP, 27, True)  # welded: the mirror contact says closed whatever the coil does
    await relay.close()
    with pytest.raises(RelayError, match="switched open but its feedback on line 27 reads closed"):
        await relay.open()
    assert relay.closed  # believed closed: that is what the contact says
    assert not fake.line(CHIP, 17).is_active()  # the coil is off all the same


async def test_relay_open_during_close_settle_wins() -> None:
    """An open that arrives while a close is settling supersedes it; neither reports a false mismatch."""
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, feedback_line=27, settle_s=0.05)
    fake.wire(CHIP, 17, 27)
    closing = asyncio.create_task(relay.close())
    await asyncio.sleep(0.01)
    await relay.open()
    await closing
    assert not relay.closed and not fake.line(CHIP, 17).is_active()


async def test_relay_chip_failure_is_relay_error() -> None:
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, settle_s=0)
    fake.line(CHIP, 17).fail = True
    with pytest.raises(RelayError, match="simulated chip failure"):
        await relay.open()


def test_relay_release_opens_and_frees_line() -> None:
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, feedback_line=27, settle_s=0)
    fake.line(CHIP, 17).set_active(True)
    relay.release()
    assert fake.line(CHIP, 17).high is False
    assert fake.line(CHIP, 17).released and fake.line(CHIP, 27).released
    GpioRelay(fake, CHIP, 17, settle_s=0)  # the line is free again


def test_relay_feedback_request_failure_releases_output() -> None:
    fake = FakeLineBackend()
    GpioPlugSensor(fake, CHIP, 27)  # line 27 is busy
    with pytest.raises(HardwareError, match="busy"):
        GpioRelay(fake, CHIP, 17, feedback_line=27)
    assert fake.line(CHIP, 17).released


# --- plug sensor -----------------------------------------------------------------------------------------------


async def _next(changes: AsyncIterator[bool], timeout_s: float = 2.0) -> bool:
    async with asyncio.timeout(timeout_s):
        return await anext(changes)


async def _quiet(changes: AsyncIterator[bool], wait_s: float) -> bool:
    """True if no change arrives within ``wait_s``."""
    try:
        async with asyncio.timeout(wait_s):
            await anext(changes)
    except TimeoutError:
        return True
    return False


@pytest.fixture
def fake() -> FakeLineBackend:
    return FakeLineBackend()


@pytest.fixture
async def plug(fake: FakeLineBackend) -> AsyncIterator[GpioPlugSensor]:
    sensor = GpioPlugSensor(fake, CHIP, 22, debounce_s=0.05, poll_s=0.05)
    yield sensor
    sensor.release()


async def test_plug_initial_state_and_active_low(fake: FakeLineBackend) -> None:
    fake.set_level(CHIP, 23, False)
    sensor = GpioPlugSensor(fake, CHIP, 23, active_low=True)
    assert sensor.plugged  # pulled low by the plug: active-low
    sensor.release()


async def test_plug_reports_changes(fake: FakeLineBackend, plug: GpioPlugSensor) -> None:
    changes = plug.changes()
    assert not plug.plugged
    fake.set_level(CHIP, 22, True)
    assert await _next(changes) is True and plug.plugged
    fake.set_level(CHIP, 22, False)
    assert await _next(changes) is False and not plug.plugged
    await changes.aclose()


async def test_plug_bounces_within_debounce_give_one_change(fake: FakeLineBackend) -> None:
    """Edges 5 ms apart with a 200 ms debounce (wide, so a loaded CI machine keeps the margin): one change."""
    sensor = GpioPlugSensor(fake, CHIP, 24, debounce_s=0.2, poll_s=0.05)
    changes = sensor.changes()
    waiter = asyncio.ensure_future(_next(changes))
    await asyncio.sleep(0.01)
    for level in (True, False, True, False, True):  # contact bounce
        fake.set_level(CHIP, 24, level)
        await asyncio.sleep(0.005)
    assert await waiter is True
    assert await _quiet(changes, 0.5)
    await changes.aclose()
    sensor.release()


async def test_plug_bounce_back_to_same_level_is_no_change(
    fake: FakeLineBackend, plug: GpioPlugSensor
) -> None:
    changes = plug.changes()
    for level in (True, False, True, False):
        fake.set_level(CHIP, 22, level)
    assert await _quiet(changes, 0.3)
    assert not plug.plugged
    await changes.aclose()


async def test_plug_level_change_without_edge_is_caught(fake: FakeLineBackend, plug: GpioPlugSensor) -> None:
    """A lost edge (kernel buffer overflow) is caught by the periodic level check."""
    changes = plug.changes()
    fake.line(CHIP, 22).high = True  # no edge event queued
    assert await _next(changes) is True
    await changes.aclose()


async def test_plug_cancelled_consumer_loses_no_change(fake: FakeLineBackend, plug: GpioPlugSensor) -> None:
    """A change seen by a wait whose consumer was cancelled is reported to the next consumer."""
    changes = plug.changes()
    waiter = asyncio.ensure_future(_next(changes))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    fake.set_level(CHIP, 22, True)
    assert await _next(plug.changes()) is True


async def test_plug_chip_failure_raises(fake: FakeLineBackend, plug: GpioPlugSensor) -> None:
    fake.line(CHIP, 22).fail = True
    with pytest.raises(HardwareError):
        await _next(plug.changes())


async def test_plug_wait_runs_off_the_event_loop(fake: FakeLineBackend, plug: GpioPlugSensor) -> None:
    """While the sensor waits for edges, the event loop keeps running other tasks."""
    changes = plug.changes()
    waiter = asyncio.ensure_future(_next(changes))
    ticks = 0
    for _ in range(10):
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 10 and not waiter.done()
    fake.set_level(CHIP, 22, True)
    assert await waiter is True


def test_plug_offer_current_logs_once(
    fake: FakeLineBackend, plug: GpioPlugSensor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hardware.gpio"):
        plug.offer_current(16)
        plug.offer_current(None)
    assert len([r for r in caplog.records if "no control pilot" in r.getMessage()]) == 1


# --- builders --------------------------------------------------------------------------------------------------


def test_build_relay_from_options() -> None:
    fake = FakeLineBackend()
    options = {
        "chip": "/dev/gpiochip4",
        "line": 17,
        "active_low": True,
        "feedback_line": 27,
        "feedback_active_low": True,
        "settle_s": 0.1,
    }
    relay = build_gpio_relay(options, "connectors[0].relay", backend=fake)
    assert (relay.chip, relay.line, relay.feedback_line, relay.settle_s) == ("/dev/gpiochip4", 17, 27, 0.1)
    assert fake.line("/dev/gpiochip4", 17).active_low and fake.line("/dev/gpiochip4", 27).active_low


def test_build_plug_from_options() -> None:
    fake = FakeLineBackend()
    plug = build_gpio_plug({"line": 22, "debounce_s": 0.02}, "connectors[0].plug", backend=fake)
    assert (plug.chip, plug.line, plug.debounce_s) == ("/dev/gpiochip0", 22, 0.02)
    assert fake.line("/dev/gpiochip0", 22).edges
    plug.release()


@pytest.mark.parametrize(
    ("options", "bad_key"),
    [
        ({}, "line"),
        ({"line": "17"}, "line"),
        ({"line": True}, "line"),
        ({"line": -1}, "line"),
        ({"line": 17, "chip": "gpiochip0"}, "chip"),
        ({"line": 17, "chip": 0}, "chip"),
        ({"line": 17, "active_low": "yes"}, "active_low"),
        ({"line": 17, "feedback_line": 17}, "feedback_line"),
        ({"line": 17, "feedback_line": 2000}, "feedback_line"),
        ({"line": 17, "feedback_active_low": True}, "feedback_active_low"),
        ({"line": 17, "feedback_line": 27, "settle_s": 0}, "settle_s"),
        ({"line": 17, "settle_s": -0.1}, "settle_s"),
        ({"line": 17, "settle_s": 10}, "settle_s"),
        ({"line": 17, "settle_s": "fast"}, "settle_s"),
        ({"line": 17, "debounce_s": 0.1}, "debounce_s"),  # a plug option, not a relay one
        ({"line": 17, "pin": 4}, "pin"),
    ],
)
def test_build_relay_rejects(options: dict[str, Any], bad_key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_gpio_relay(options, "connectors[0].relay", backend=FakeLineBackend())
    assert err.value.key == f"connectors[0].relay.{bad_key}"


@pytest.mark.parametrize(
    ("options", "bad_key"),
    [
        ({}, "line"),
        ({"line": 22, "debounce_s": 5}, "debounce_s"),
        ({"line": 22, "feedback_line": 3}, "feedback_line"),
        ({"line": 22, "active_low": 1}, "active_low"),
    ],
)
def test_build_plug_rejects(options: dict[str, Any], bad_key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_gpio_plug(options, "connectors[0].plug", backend=FakeLineBackend())
    assert err.value.key == f"connectors[0].plug.{bad_key}"


def test_gpiod_backend_missing_chip_is_hardware_error() -> None:
    """The real backend translates libgpiod's error for a chip that is not there (as on this machine)."""
    with pytest.raises(HardwareError, match="cannot request the line"):
        build_gpio_relay({"chip": "/dev/gpiochip-does-not-exist", "line": 17}, "connectors[0].relay")


CHIPS = sorted(glob.glob("/dev/gpiochip*"))


@pytest.mark.skipif(
    not CHIPS, reason="no /dev/gpiochip* here; a GPIO chip cannot be emulated on this machine"
)
async def test_real_chip_input() -> None:
    """On a machine with a GPIO chip: request a free line as a plug input through libgpiod, read it, release it."""
    import gpiod

    with gpiod.Chip(CHIPS[0]) as chip:
        free = [i for i in range(chip.get_info().num_lines) if not chip.get_line_info(i).used]
    if not free:
        pytest.fail(f"{CHIPS[0]} has no free line to test with")
    sensor = GpioPlugSensor(GpiodBackend(), CHIPS[0], free[0], debounce_s=0.01, poll_s=0.05)
    try:
        assert isinstance(sensor.plugged, bool)
        changes = sensor.changes()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await anext(changes)
    finally:
        sensor.release()


async def test_relay_check_sees_a_contactor_that_changed_by_itself() -> None:
    """Between switches the mirror contact is compared with the last command (fake chip: none exists here)."""
    fake = FakeLineBackend()
    relay = GpioRelay(fake, CHIP, 17, feedback_line=27, settle_s=0.01)
    fake.wire(CHIP, 17, 27, inverted=False)
    await relay.check()  # open and reads open
    await relay.close()
    await relay.check()  # closed and reads closed
    fake.set_level(CHIP, 27, False)  # the contactor dropped out while commanded closed
    with pytest.raises(RelayError, match="commanded closed but its feedback on line 27 reads open"):
        await relay.check()
