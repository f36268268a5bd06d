"""Load shapes by name: how many chargers over time, and how each charger behaves.

Every time is a real-world duration; a run's speed factor (``--ocpp-speed``) divides them all, so
``--ocpp-speed 60`` plays an hour of charger life per minute. Pure: no gevent, no Locust.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PROFILES", "Profile", "Ramp", "shape_tick"]


class Ramp(enum.Enum):
    """How the charger count reaches its target."""

    RATE = "rate"  # at the spawn rate given with -r
    INSTANT = "instant"  # all at once
    TENTH = "tenth"  # evenly over the first tenth of the run time (-r when there is no -t)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named load shape: its ramp and each charger's behaviour, in real-world seconds."""

    name: str
    description: str
    ramp: Ramp
    idle_mean_s: float  # mean gap between sessions (exponentially distributed)
    session_s: tuple[float, float]  # session length, uniform in [low, high]
    meter_interval_s: int  # initial MeterValueSampleInterval (the central system may change it)
    power_w: float  # charging power, for the energy register
    heartbeat_s: int | None = None  # None: the interval of the boot answer (or of ChangeConfiguration)
    power_cut_every_s: float | None = None  # a site-wide power cut at the same instant on every charger
    link_drop_mean_s: float | None = None  # each charger loses its connection about this often (exponential)


PROFILES: Mapping[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "boot-storm",
            "every charger connects and boots at once, and again after each site-wide power cut (every 5 "
            "minutes); sessions cut by a power cut end with PowerLoss and start again",
            Ramp.INSTANT,
            idle_mean_s=1800,
            session_s=(1200, 3600),
            meter_interval_s=60,
            power_w=11_000,
            power_cut_every_s=300,
        ),
        Profile(
            "steady",
            "heartbeats plus transactions at a realistic arrival rate: a session of 20-60 minutes about every "
            "hour per charger, MeterValues every minute",
            Ramp.RATE,
            idle_mean_s=3600,
            session_s=(1200, 3600),
            meter_interval_s=60,
            power_w=11_000,
        ),
        Profile(
            "transaction-heavy",
            "short sessions back to back: 30-90 s sessions with MeterValues every 10 s, 20 s apart on average",
            Ramp.RATE,
            idle_mean_s=20,
            session_s=(30, 90),
            meter_interval_s=10,
            power_w=22_000,
        ),
        Profile(
            "soak",
            "the steady load held for the whole run time after a slow ramp (a tenth of the run time), with "
            "each charger's link dropping about once an hour",
            Ramp.TENTH,
            idle_mean_s=3600,
            session_s=(1200, 3600),
            meter_interval_s=60,
            power_w=7_400,
            link_drop_mean_s=3600,
        ),
    )
}


def shape_tick(
    profile: Profile, users: int, spawn_rate: float, run_time_s: float | None, elapsed_s: float
) -> tuple[int, float] | None:
    """The (user count, spawn rate) the shape wants at `elapsed_s`, or None when the run time is over."""
    if run_time_s and elapsed_s >= run_time_s:
        return None
    if profile.ramp is Ramp.INSTANT:
        return users, float(max(users, 1))
    if profile.ramp is Ramp.TENTH and run_time_s:
        return users, max(users / max(run_time_s / 10, 1.0), 0.1)
    return users, spawn_rate
