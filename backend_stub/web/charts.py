"""A running session's power and energy curve from its MeterValues, laid out for an inline SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backend_stub.store import MeterSample, Transaction
from backend_stub.store.records import ENERGY_REGISTER, POWER_ACTIVE_IMPORT

MAX_POINTS = 240  # a long session (or a flooding charger) still draws a small SVG


@dataclass(frozen=True)
class Line:
    """One panel of the curve: a polyline over a baseline, with its peak label."""

    title: str
    css: str
    top: float
    height: float
    max_label: str
    points: str  # "x,y x,y ..." for <polyline points>
    last_label: str

    @property
    def baseline(self) -> float:
        return self.top + self.height


@dataclass(frozen=True)
class Curve:
    """Power (kW) and energy (kWh) of one session over time, in SVG user units."""

    transaction_id: int
    connector_id: int
    width: float
    height: float
    left: float
    right: float
    lines: list[Line]
    labels: list[tuple[float, str]]  # x, HH:MM (UTC)


def _series(samples: Sequence[MeterSample], tx: Transaction) -> tuple[list[tuple[datetime, float]], ...]:
    """(power in kW, energy in kWh since the start) per sample time, totals only (no phases), Outlet only."""
    power: list[tuple[datetime, float]] = []
    energy: list[tuple[datetime, float]] = [(tx.started_at, 0.0)]
    for s in samples:
        if s.phase or s.location not in (None, "Outlet") or not math.isfinite(s.value):
            continue
        if s.measurand == POWER_ACTIVE_IMPORT:
            power.append((s.timestamp, s.value if s.unit == "kW" else s.value / 1000))
        elif s.measurand == ENERGY_REGISTER:
            wh = s.value * 1000 if s.unit == "kWh" else s.value
            energy.append((s.timestamp, max(0.0, wh - tx.meter_start_wh) / 1000))
    return power, energy


def _thin(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """At most MAX_POINTS points, evenly picked, keeping the last."""
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / (MAX_POINTS - 1)
    return [points[int(i * step)] for i in range(MAX_POINTS - 1)] + [points[-1]]


def session_curve(tx: Transaction, samples: Sequence[MeterSample]) -> Curve:
    """Lay out the power and energy curves of ``tx``; the template only draws what this computes."""
    left, right, panel_h, gap, top, width = 64.0, 12.0, 90.0, 40.0, 22.0, 640.0
    power, energy = (_thin(s) for s in _series(samples, tx))
    times = [t for t, _ in power + energy]
    start = min(times, default=tx.started_at)
    end = max(times, default=tx.started_at)
    span_s = max((end - start).total_seconds(), 1.0)
    plot_w = width - left - right
    lines = []
    for i, (title, css, series, unit) in enumerate(
        (("Power (kW)", "power", power, "kW"), ("Energy (kWh)", "energy", energy, "kWh"))
    ):
        panel_top = top + i * (panel_h + gap)
        peak = max((v for _, v in series), default=0.0)
        scale = panel_h / peak if peak > 0 else 0.0
        points = " ".join(
            f"{left + (t - start).total_seconds() / span_s * plot_w:.1f},"
            f"{panel_top + panel_h - max(0.0, v) * scale:.1f}"
            for t, v in series
        )
        last = f"{series[-1][1]:,.{1 if unit == 'kW' else 3}f} {unit}" if series else "no samples yet"
        lines.append(
            Line(title, css, panel_top, panel_h, f"{peak:,.{1 if unit == 'kW' else 3}f}", points, last)
        )
    label_y = top + 2 * panel_h + gap + 16
    labels = [(left, start.strftime("%H:%M")), (width - right, end.strftime("%H:%M"))]
    return Curve(tx.id, tx.connector_id, width, label_y + 8, left, right, lines, labels)
