"""The resets block on a real station and SQLite store: OnIdle resets that wait for their transaction are stored,
so they survive a restart while the transaction resumes, and the boot reason of a planned restart is told once."""

from __future__ import annotations

from pathlib import Path

from chargepoint.core.model import BootReason, ResetKind, ResetResult, StopReason
from chargepoint.core.station import Station, StationTiming
from tests.property.test_connector_machine import FixedClock, Rig, rig


def restarted(r: Rig) -> Station:
    """A new station on the same store and hardware, as after the agent restarted."""
    return Station(
        {1: r.hw.ports()},
        r.store,
        r.settings,
        FixedClock(),
        transaction_ids=r.station.transaction_ids,
        timing=StationTiming(meter_poll_s=3600),
    )


async def test_an_on_idle_reset_of_a_resumed_transaction_still_waits_after_a_restart(tmp_path: Path) -> None:
    r = await rig(tmp_path, resume_transactions_after_power_loss=True)
    await r.charging()
    assert r.station.reset(ResetKind.SOFT, 1) is ResetResult.SCHEDULED
    assert r.station.reset_answer(ResetKind.SOFT, 9) is ResetResult.REJECTED  # no connector 9
    await r.store.flush()
    assert r.store.get("reset.pending") == "1"
    await r.station.stop()  # no reason: like a crash, the transaction stays open
    again = restarted(r)
    await again.start()
    assert again.connectors[1].transaction is not None  # resumed
    assert again.resets.pending == {1}
    await again.sessions.stop_all(StopReason.LOCAL)  # the driver ends it: now the EVSE resets
    assert again.resets.pending == set()
    await again.stop()
    r.store.close()


async def test_without_a_resumed_transaction_the_restart_was_the_reset(tmp_path: Path) -> None:
    r = await rig(tmp_path)
    await r.charging()
    assert r.station.reset(ResetKind.SOFT, None) is ResetResult.SCHEDULED
    await r.station.stop()  # the power went: the transaction ends with PowerLoss at the next start
    again = restarted(r)
    await again.start()
    assert again.connectors[1].transaction is None
    assert again.resets.pending == set()
    await again.store.flush()
    assert r.store.get("reset.pending") == ""
    assert again.reset_requested is not None and not again.reset_requested.done()  # no second restart
    await again.stop()
    r.store.close()


async def test_the_boot_reason_of_a_planned_restart_is_told_once(tmp_path: Path) -> None:
    r = await rig(tmp_path)
    assert r.station.boot_reason is BootReason.POWER_UP
    r.station.request_reset(ResetKind.SOFT, BootReason.FIRMWARE_UPDATE)
    assert r.station.reset_requested is not None and r.station.reset_requested.result() is ResetKind.SOFT
    await r.station.stop()
    await r.store.flush()
    again = restarted(r)
    assert again.boot_reason is BootReason.FIRMWARE_UPDATE
    await again.start()
    await again.stop()
    await r.store.flush()
    assert restarted(r).boot_reason is BootReason.POWER_UP  # a later start nobody planned
    r.store.close()
