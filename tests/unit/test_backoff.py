"""Reconnect backoff: exponential, capped, with bounded random jitter (seedable, so fleets are reproducible)."""

from __future__ import annotations

import random
from pathlib import Path

from chargepoint.config import parse
from chargepoint.core.settings import Settings
from chargepoint.core.station import Station
from chargepoint.csms.link import Link
from chargepoint.ports import CounterIds, SystemClock
from chargepoint.store import Store


def _link(tmp_path: Path, seed: int) -> Link:
    cfg = parse(
        {
            "station": {"id": "CP-1"},
            "csms": {
                "url": "ws://127.0.0.1:1/ocpp",
                "reconnect_min_s": 1,
                "reconnect_max_s": 30,
                "reconnect_jitter_s": 0.5,
            },
            "storage": {"path": str(tmp_path / "a.db")},
            "connectors": [
                {"id": 1, "relay": {"driver": "sim"}, "meter": {"driver": "sim"}, "plug": {"driver": "sim"}}
            ],
        }
    )
    store = Store(cfg.storage.path)
    settings = Settings()
    station = Station({}, store, settings, SystemClock(), transaction_ids=CounterIds("TX-"))
    return Link(
        cfg.station, cfg.csms, station, store, settings, SystemClock(), CounterIds(), rng=random.Random(seed)
    )


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter(tmp_path: Path) -> None:
    link = _link(tmp_path, 7)
    delays = [link.backoff_s(n) for n in range(10)]
    bases = [min(30.0, 2.0**n) for n in range(10)]
    for delay, base in zip(delays, bases, strict=True):
        assert base <= delay <= base + 0.5
    assert delays[-1] <= 30.5
    assert len({round(d - b, 6) for d, b in zip(delays, bases, strict=True)}) > 1, "jitter must vary"


def test_backoff_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    a = [_link(tmp_path, 3).backoff_s(n) for n in range(5)]
    b = [_link(tmp_path, 3).backoff_s(n) for n in range(5)]
    assert a == b
