"""``python -m chargepoint probe``: a technician's wiring check of every connector's hardware, one device at a time.

It reads each meter once, waits for one card on each reader, and only when asked closes then opens each relay.
Exit codes: 0 all checks passed, 1 some failed, 2 a bad config.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from chargepoint.config import AgentConfig
from chargepoint.errors import ConfigError, HardwareError
from chargepoint.ports import ConnectorPorts, MeterReading, Relay, TokenReader

METER_TIMEOUT_S = 5.0


def reading_lines(reading: MeterReading) -> list[str]:
    """Every value of a meter reading with its unit, one per line."""
    lines = [f"energy {reading.energy_wh:.1f} Wh"]
    if reading.power_w is not None:
        lines.append(f"power {reading.power_w:.1f} W")
    for phase, volts in enumerate(reading.voltage_v, start=1):
        lines.append(f"voltage L{phase} {volts:.1f} V")
    for phase, amps in enumerate(reading.current_a, start=1):
        lines.append(f"current L{phase} {amps:.2f} A")
    if reading.frequency_hz is not None:
        lines.append(f"frequency {reading.frequency_hz:.2f} Hz")
    if reading.soc_percent is not None:
        lines.append(f"state of charge {reading.soc_percent:.0f} %")
    return lines


class _Report:
    """Prints check results and remembers whether all passed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.ok = True

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def fail(self, text: str) -> None:
        self.ok = False
        self.say(f"  FAIL {text}")


async def _probe_meter(cid: int, ports: ConnectorPorts, report: _Report, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            reading = await ports.meter.read()
    except TimeoutError:
        report.fail(f"meter: no answer within {timeout_s} s")
        return
    except Exception as exc:  # any driver error is a failed check, reported with its type
        report.fail(f"meter: {type(exc).__name__}: {exc}")
        return
    values = [reading.energy_wh, reading.power_w, *reading.voltage_v, *reading.current_a]
    if not all(v is None or math.isfinite(v) for v in values):
        report.fail("meter: answered non-finite values (wrong register map or byte order?)")
    else:
        report.say("  ok   meter read")
    for line in reading_lines(reading):
        report.say(f"         {line}")


async def _probe_reader(cid: int, reader: TokenReader, report: _Report, timeout_s: float) -> None:
    report.say(f"  ...  reader: present a card within {timeout_s:g} s")
    tokens = reader.tokens()
    try:
        async with asyncio.timeout(timeout_s):
            async for id_tag in tokens:
                if id_tag is not None:  # None only says the reader is ready
                    report.say(f"  ok   reader: idTag {id_tag}")
                    return
    except TimeoutError:
        report.fail(f"reader: no card within {timeout_s:g} s")
    except Exception as exc:
        report.fail(f"reader: {type(exc).__name__}: {exc}")
    finally:
        aclose = getattr(tokens, "aclose", None)
        if aclose is not None:
            await aclose()


def _feedback_note(relay: Relay) -> str:
    has_feedback = getattr(relay, "has_feedback", None)
    if has_feedback is True:
        return "confirmed by the feedback contact"
    if has_feedback is False:
        return "no feedback contact configured, not confirmed"
    return "as reported by the driver"


async def _probe_relay(cid: int, ports: ConnectorPorts, report: _Report) -> None:
    relay = ports.relay
    if ports.plug.plugged:
        report.say(
            "  note relay: a vehicle is plugged in; its pilot gets no offer, so it should not draw current"
        )
    try:
        try:
            await relay.close()
        except Exception as exc:
            report.fail(f"relay close: {type(exc).__name__}: {exc}")
        else:
            if relay.closed:
                report.say(f"  ok   relay closed ({_feedback_note(relay)})")
            else:
                report.fail("relay close: the driver reports it open")
    finally:
        # Always open again, whatever happened above (also on Ctrl-C).
        try:
            await relay.open()
        except Exception as exc:
            report.fail(f"relay open: {type(exc).__name__}: {exc}")
        else:
            if relay.closed:
                report.fail("relay open: the driver reports it still closed")
            else:
                report.say(f"  ok   relay open ({_feedback_note(relay)})")


async def probe(
    ports: Mapping[int, ConnectorPorts],
    *,
    relay: bool = False,
    card_timeout_s: float = 10.0,
    meter_timeout_s: float = METER_TIMEOUT_S,
    out: TextIO = sys.stdout,
) -> bool:
    """Check each connector's meter, reader and (with ``relay``) relay; True if every check passed."""
    report = _Report(out)
    for cid in sorted(ports):
        p = ports[cid]
        report.say(f"connector {cid}")
        await _probe_meter(cid, p, report, meter_timeout_s)
        report.say(f"  info plug: {'plugged' if p.plug.plugged else 'unplugged'}")
        if p.reader is None:
            report.say("  info reader: none configured")
        else:
            await _probe_reader(cid, p.reader, report, card_timeout_s)
        if relay:
            await _probe_relay(cid, p, report)
        else:
            report.say("  info relay: not switched (pass --relay to close and open it once)")
    report.say("result: all checks passed" if report.ok else "result: some checks FAILED")
    return report.ok


def _release(parts: list[Any]) -> None:
    """Release drivers that hold OS resources (GPIO lines); the simulated twins have nothing to release."""
    for part in parts:
        release = getattr(part, "release", None)
        if callable(release):
            release()


def run_probe(cfg: AgentConfig, *, relay: bool, card_timeout_s: float, out: TextIO = sys.stdout) -> int:
    """Build every connector's ports from ``cfg`` and probe them; the exit code (0 ok, 1 failed, 2 bad config)."""
    from hardware.factory import build_ports

    if not (card_timeout_s > 0):
        print(f"error: --card-timeout-s must be > 0, got {card_timeout_s}", file=sys.stderr)
        return 2
    ports: dict[int, ConnectorPorts] = {}
    parts: list[Any] = []
    try:
        for index, conn in enumerate(cfg.connectors):
            try:
                ports[conn.id], _ = build_ports(index, conn)
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            except (HardwareError, OSError) as exc:
                print(f"connector {conn.id}\n  FAIL cannot open its hardware: {exc}", file=out)
                return 1
            p = ports[conn.id]
            parts.extend([p.relay, p.meter, p.plug, p.reader])
        ok = asyncio.run(probe(ports, relay=relay, card_timeout_s=card_timeout_s, out=out))
    finally:
        _release(parts)
    return 0 if ok else 1
