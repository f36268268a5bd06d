"""Scenario files: TOML -> frozen dataclasses, validated once; every error names the key.

Times in a scenario are of two kinds. ``duration_s``, ``ramp_s`` and fault times are real seconds. Driver
behaviour and EV physics run on *virtual* time: ``time_scale`` virtual seconds pass per real second (60 makes a
real minute a simulated hour), starting at ``start_hour`` UTC. The agents themselves keep real time: their OCPP
timers and timestamps are those of a real charger, only the EVs charge (and drivers come and go) faster.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from chargepoint import csms_url
from chargepoint.config import BOOT_FIELD_MAX_CHARS, OCPP_VERSIONS

DISTRIBUTIONS = ("round-robin", "random")
ORDERS = ("plug-first", "swipe-first")
ENDINGS = ("unplug", "swipe")
FAULT_KINDS = ("network_drop", "csms_restart", "meter_failure", "reader_failure", "slow_responses")


class ScenarioError(ValueError):
    """A scenario file is invalid; ``key`` is the dotted key at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"scenario key '{key}': {message}")
        self.key = key


@dataclass(frozen=True)
class FleetSpec:
    """Which chargers, where they connect, and how they are built."""

    count: int = 10
    id_pattern: str = "CP-{n:04d}"
    first: int = 1
    ocpp_version: str = "1.6"
    # A mixed fleet: (version, share) pairs summing to 1, in scenario order; empty: every charger ocpp_version.
    ocpp_versions: tuple[tuple[str, float], ...] = ()
    connectors: int = 1
    csms_urls: tuple[str, ...] = ()
    distribution: str = "round-robin"
    connect_rate_per_s: float = 200.0
    durable: bool = True
    store_path: str | None = None
    vendor: str = "OpenChargeStack"
    model: str = "VirtualCharger"
    max_current_a: float = 32.0
    voltage_v: float = 230.0
    phases: int = (
        3  # every connector's phases (the agent's connectors[].phases); an EV draws on at most these
    )
    heartbeat_interval_s: int = 60
    meter_value_sample_interval_s: int = 60
    meter_poll_s: float = 5.0
    response_timeout_s: float = 30.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    reconnect_jitter_s: float = 3.0

    def charger_id(self, index: int) -> str:
        """The id of the ``index``-th charger (0-based)."""
        return self.id_pattern.format(n=self.first + index)

    def version_of(self, index: int) -> str:
        """The OCPP version of the ``index``-th charger: contiguous blocks, each its share of ``count``."""
        if not self.ocpp_versions:
            return self.ocpp_version
        position = (index + 0.5) / self.count
        cumulative = 0.0
        for version, share in self.ocpp_versions:
            cumulative += share
            if position < cumulative:
                return version
        return self.ocpp_versions[-1][0]


@dataclass(frozen=True)
class Credentials:
    """Per-charger passwords (HTTP Basic, security profile 1), from a pattern or a file; none: profile 0."""

    password_pattern: str | None = None
    passwords: tuple[tuple[str, str], ...] = ()  # from password_file: (charger id, password)

    def password(self, charger_id: str, n: int) -> str | None:
        """The password of one charger, or None."""
        if self.passwords:
            return dict(self.passwords).get(charger_id)
        if self.password_pattern is None:
            return None
        return self.password_pattern.format(id=charger_id, n=n)


@dataclass(frozen=True)
class Drivers:
    """How drivers arrive, identify themselves and leave."""

    arrivals_per_hour: tuple[float, ...] = (0.5,) * 24  # per connector, by virtual hour of day
    plug_first_share: float = 0.5
    id_tags: tuple[str, ...] = ("DEMO-0001",)
    unknown_share: float = 0.0
    session_minutes: tuple[float, float] | None = (30.0, 120.0)
    target_energy_wh: tuple[float, float] | None = None
    end: str = "unplug"
    act_delay_s: float = 20.0  # virtual seconds between plugging and swiping (either order)
    patience_s: float = 120.0  # virtual seconds a refused driver waits before unplugging


@dataclass(frozen=True)
class EvModel:
    """A kind of EV: battery, charging curve, on-board charger."""

    name: str
    weight: float = 1.0
    capacity_wh: float = 60_000.0
    start_soc: tuple[float, float] = (0.2, 0.6)
    max_power_w: float = 11_000.0
    phases: int = 3
    taper_soc: float = 0.8  # above this SoC the power falls linearly to min_power_w at 100 %
    min_power_w: float = 500.0


@dataclass(frozen=True)
class Fault:
    """One injected fault, ``at_s`` real seconds after the fleet started, lasting ``duration_s``."""

    kind: str
    at_s: float
    duration_s: float = 5.0
    share: float = 0.1  # of chargers (network_drop, meter_failure, reader_failure, slow_responses)
    delay_s: float = 1.0  # slow_responses: added to every frame a charger sends


@dataclass(frozen=True)
class Checks:
    """When a run counts as failed (non-zero exit), so that a pipeline cannot take a dead fleet for a pass."""

    min_booted_share: float = 0.0  # of chargers that must have booted; a run where none booted always fails
    max_errors: int | None = None  # CallErrors, timeouts and dropped calls in the report; None: any number

    def failures(self, report: dict[str, Any]) -> list[str]:
        """What in ``report`` breaks these checks, one line each (empty: the run passed)."""
        out: list[str] = []
        chargers, booted = int(report["chargers"]), int(report["chargers_booted"])
        if booted == 0:
            out.append(
                f"no charger booted (0 of {chargers}): is the central system reachable, does it know them?"
            )
        elif booted < self.min_booted_share * chargers:
            out.append(
                f"{booted} of {chargers} chargers booted, fewer than the share {self.min_booted_share}"
            )
        errors = sum(report.get("errors", {}).values())
        if self.max_errors is not None and errors > self.max_errors:
            out.append(f"{errors} errors, more than {self.max_errors}: {report.get('errors')}")
        return out


@dataclass(frozen=True)
class Scenario:
    """A whole fleet run."""

    name: str
    seed: int = 0
    duration_s: float = 60.0
    time_scale: float = 1.0
    start_hour: float = 8.0
    tick_s: float = 0.5
    drain_s: float = 30.0
    fleet: FleetSpec = field(default_factory=FleetSpec)
    credentials: Credentials = field(default_factory=Credentials)
    drivers: Drivers = field(default_factory=Drivers)
    evs: tuple[EvModel, ...] = (EvModel("default"),)
    faults: tuple[Fault, ...] = ()
    checks: Checks = field(default_factory=Checks)
    spawn_csms: bool = False  # no URL given: run the bundled central system (test mode) for this fleet
    source: str = "<memory>"

    def identities(self) -> list[tuple[str, str | None]]:
        """(charger id, password) of every charger of the fleet, in order."""
        f = self.fleet
        return [
            (f.charger_id(i), self.credentials.password(f.charger_id(i), f.first + i)) for i in range(f.count)
        ]

    def with_overrides(
        self,
        *,
        csms_url: str | None = None,
        count: int | None = None,
        duration_s: float | None = None,
        min_booted_share: float | None = None,
        max_errors: int | None = None,
    ) -> Scenario:
        """The command line's --csms, --count, --duration, --fail-on-booted-below and --fail-on-errors."""
        result = self
        if min_booted_share is not None:
            if not 0 <= min_booted_share <= 1:
                raise ScenarioError("--fail-on-booted-below", f"must be 0..1, got {min_booted_share}")
            result = replace(result, checks=replace(result.checks, min_booted_share=min_booted_share))
        if max_errors is not None:
            if max_errors < 0:
                raise ScenarioError("--fail-on-errors", f"must be >= 0, got {max_errors}")
            result = replace(result, checks=replace(result.checks, max_errors=max_errors))
        if csms_url is not None:
            _check_url(csms_url, "--csms")
            result = replace(result, fleet=replace(result.fleet, csms_urls=(csms_url,)), spawn_csms=False)
        if count is not None:
            if count < 1:
                raise ScenarioError("--count", f"must be >= 1, got {count}")
            result = replace(result, fleet=replace(result.fleet, count=count))
        if duration_s is not None:
            if duration_s <= 0:
                raise ScenarioError("--duration", f"must be > 0, got {duration_s}")
            result = replace(result, duration_s=duration_s)
        if not result.fleet.csms_urls and not result.spawn_csms:
            result = replace(result, spawn_csms=True)
        for fault in result.faults:
            if fault.kind == "csms_restart" and not result.spawn_csms:
                raise ScenarioError(
                    "faults.kind", "csms_restart needs the simulator to run the central system (no csms URL)"
                )
        return result


def _check_url(url: str, key: str) -> None:
    error = csms_url.template_error(url)
    if error is not None:
        raise ScenarioError(key, error)


class _Table:
    """Typed access to one TOML table; unknown keys are errors."""

    def __init__(self, data: Any, prefix: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(prefix, f"must be a table, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def num(self, name: str, default: float, *, lo: float | None = None, hi: float | None = None) -> float:
        self.used.add(name)
        if name not in self.data:
            return default
        return _number(self.data[name], self.key(name), lo, hi)

    def int_(self, name: str, default: int, *, lo: int | None = None, hi: int | None = None) -> int:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ScenarioError(self.key(name), f"must be an integer, got {value!r}")
        if lo is not None and value < lo:
            raise ScenarioError(self.key(name), f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ScenarioError(self.key(name), f"must be <= {hi}, got {value}")
        return value

    def str_(self, name: str, default: str | None, *, choices: Sequence[str] | None = None) -> str | None:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, str) or not value:
            raise ScenarioError(self.key(name), f"must be a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise ScenarioError(self.key(name), f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def bool_(self, name: str, default: bool) -> bool:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            raise ScenarioError(self.key(name), f"must be true or false, got {value!r}")
        return value

    def range_(
        self, name: str, default: tuple[float, float] | None, *, lo: float, hi: float | None = None
    ) -> tuple[float, float] | None:
        """A number or a [min, max] pair."""
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        key = self.key(name)
        if isinstance(value, list):
            if len(value) != 2:
                raise ScenarioError(key, f"must be a number or a [min, max] pair, got {value!r}")
            a, b = (_number(v, key, lo, hi) for v in value)
            if a > b:
                raise ScenarioError(key, f"min must not exceed max, got {value!r}")
            return (a, b)
        x = _number(value, key, lo, hi)
        return (x, x)

    def done(self) -> None:
        for name in self.data:
            if name not in self.used:
                raise ScenarioError(self.key(name), "is not a known key")


def _number(value: Any, key: str, lo: float | None, hi: float | None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ScenarioError(key, f"must be a number, got {value!r}")
    number = float(value)
    if number != number:
        raise ScenarioError(key, "must be a number, got nan")
    if lo is not None and number < lo:
        raise ScenarioError(key, f"must be >= {lo:g}, got {value!r}")
    if hi is not None and number > hi:
        raise ScenarioError(key, f"must be <= {hi:g}, got {value!r}")
    return number


def _lines(path: Path, key: str) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(key, f"cannot read {path}: {exc.strerror or exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _fleet(t: _Table) -> FleetSpec:
    d = FleetSpec()
    pattern = cast("str", t.str_("id_pattern", d.id_pattern))
    try:
        sample = pattern.format(n=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ScenarioError(
            t.key("id_pattern"), f"must format with {{n}} only, e.g. 'CP-{{n:04d}}': {exc}"
        ) from exc
    if sample == pattern.format(n=2):
        raise ScenarioError(t.key("id_pattern"), f"must contain {{n}} so that ids differ, got {pattern!r}")
    urls_raw = t.raw("csms_urls")
    if t.has("csms_url"):
        if urls_raw is not None:
            raise ScenarioError(t.key("csms_url"), "give csms_url or csms_urls, not both")
        urls_raw = [t.raw("csms_url")]
    urls: list[str] = []
    if urls_raw is not None:
        key = t.key("csms_urls")
        if not isinstance(urls_raw, list) or not urls_raw:
            raise ScenarioError(key, f"must be a non-empty list of URLs, got {urls_raw!r}")
        for i, url in enumerate(urls_raw):
            if not isinstance(url, str):
                raise ScenarioError(f"{key}[{i}]", f"must be a string, got {url!r}")
            _check_url(url, f"{key}[{i}]")
            urls.append(csms_url.normalize(url))
    version = cast("str", t.str_("ocpp_version", d.ocpp_version, choices=OCPP_VERSIONS))
    shares = _version_shares(t)
    spec = FleetSpec(
        count=t.int_("count", d.count, lo=1, hi=100_000),
        id_pattern=pattern,
        first=t.int_("first", d.first, lo=0),
        ocpp_version=version,
        ocpp_versions=shares,
        connectors=t.int_("connectors", d.connectors, lo=1, hi=8),
        csms_urls=tuple(urls),
        distribution=cast("str", t.str_("distribution", d.distribution, choices=DISTRIBUTIONS)),
        connect_rate_per_s=t.num("connect_rate_per_s", d.connect_rate_per_s, lo=0.1),
        durable=t.bool_("durable", d.durable),
        store_path=t.str_("store_path", None),
        vendor=cast("str", t.str_("vendor", d.vendor)),
        model=cast("str", t.str_("model", d.model)),
        max_current_a=t.num("max_current_a", d.max_current_a, lo=6, hi=500),
        voltage_v=t.num("voltage_v", d.voltage_v, lo=100, hi=480),
        phases=t.int_("phases", d.phases, lo=1, hi=3),
        heartbeat_interval_s=t.int_("heartbeat_interval_s", d.heartbeat_interval_s, lo=1, hi=86_400),
        meter_value_sample_interval_s=t.int_(
            "meter_value_sample_interval_s", d.meter_value_sample_interval_s, lo=0, hi=86_400
        ),
        meter_poll_s=t.num("meter_poll_s", d.meter_poll_s, lo=0.05, hi=60),
        response_timeout_s=t.num("response_timeout_s", d.response_timeout_s, lo=0.1, hi=600),
        reconnect_min_s=t.num("reconnect_min_s", d.reconnect_min_s, lo=0.01, hi=3600),
        reconnect_max_s=t.num("reconnect_max_s", d.reconnect_max_s, lo=0.01, hi=3600),
        reconnect_jitter_s=t.num("reconnect_jitter_s", d.reconnect_jitter_s, lo=0, hi=3600),
    )
    if spec.phases == 2:
        raise ScenarioError(t.key("phases"), "must be 1 or 3, got 2")
    for name in ("vendor", "model"):
        limit = BOOT_FIELD_MAX_CHARS[name]
        if len(getattr(spec, name)) > limit:
            raise ScenarioError(
                t.key(name), f"must be at most {limit} characters (OCPP 1.6 BootNotification)"
            )
    if spec.reconnect_max_s < spec.reconnect_min_s:
        raise ScenarioError(t.key("reconnect_max_s"), "must be >= reconnect_min_s")
    t.done()
    return spec


def _version_shares(t: _Table) -> tuple[tuple[str, float], ...]:
    """``fleet.ocpp_versions``: a table of version -> share of the fleet, shares > 0 summing to 1."""
    raw = t.raw("ocpp_versions")
    if raw is None:
        return ()
    key = t.key("ocpp_versions")
    if t.has("ocpp_version"):
        raise ScenarioError(key, "give ocpp_version or ocpp_versions, not both")
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(
            key, f'must be a table of version = share, e.g. {{"1.6" = 0.5, "2.0.1" = 0.5}}, got {raw!r}'
        )
    shares: list[tuple[str, float]] = []
    for version, value in raw.items():
        if version not in OCPP_VERSIONS:
            raise ScenarioError(
                f'{key}."{version}"', f"must be one of {', '.join(OCPP_VERSIONS)}, got {version!r}"
            )
        share = _number(value, f'{key}."{version}"', 0, 1)
        if share == 0:
            raise ScenarioError(f'{key}."{version}"', "must be > 0 (leave the version out instead)")
        shares.append((version, share))
    total = sum(share for _, share in shares)
    if abs(total - 1) > 1e-9:
        raise ScenarioError(key, f"shares must add up to 1, got {total:g}")
    return tuple(shares)


def _credentials(t: _Table, base: Path) -> Credentials:
    pattern = t.str_("password_pattern", None)
    file = t.str_("password_file", None)
    t.done()
    if pattern is not None and file is not None:
        raise ScenarioError(t.key("password_file"), "give password_pattern or password_file, not both")
    if pattern is not None:
        try:
            pattern.format(id="CP-1", n=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ScenarioError(t.key("password_pattern"), f"may use {{id}} and {{n}} only: {exc}") from exc
        return Credentials(password_pattern=pattern)
    if file is not None:
        key = t.key("password_file")
        pairs = []
        for number, line in enumerate(_lines(base / file, key), 1):
            cp_id, sep, password = line.partition(",")
            if not sep or not cp_id.strip() or not password.strip():
                raise ScenarioError(key, f"line {number} must be 'charger_id,password', got {line!r}")
            pairs.append((cp_id.strip(), password.strip()))
        return Credentials(passwords=tuple(pairs))
    return Credentials()


def _drivers(t: _Table, base: Path) -> Drivers:
    d = Drivers()
    rate_raw = t.raw("arrivals_per_hour")
    key = t.key("arrivals_per_hour")
    rates = d.arrivals_per_hour
    if rate_raw is not None:
        if isinstance(rate_raw, list):
            if len(rate_raw) != 24:
                raise ScenarioError(
                    key, f"must be one number or 24 (one per hour of day), got {len(rate_raw)}"
                )
            rates = tuple(_number(v, f"{key}[{i}]", 0, 3600) for i, v in enumerate(rate_raw))
        else:
            rates = (_number(rate_raw, key, 0, 3600),) * 24
    tags: tuple[str, ...] = d.id_tags
    tags_raw = t.raw("id_tags")
    tag_file = t.str_("id_tag_file", None)
    if tags_raw is not None and tag_file is not None:
        raise ScenarioError(t.key("id_tag_file"), "give id_tags or id_tag_file, not both")
    if tags_raw is not None:
        if not isinstance(tags_raw, list) or not tags_raw or not all(isinstance(x, str) for x in tags_raw):
            raise ScenarioError(t.key("id_tags"), f"must be a non-empty list of strings, got {tags_raw!r}")
        tags = tuple(tags_raw)
    elif tag_file is not None:
        tags = tuple(_lines(base / tag_file, t.key("id_tag_file")))
        if not tags:
            raise ScenarioError(t.key("id_tag_file"), "lists no idTags")
    for tag in tags:
        if not 0 < len(tag) <= 20:
            raise ScenarioError(t.key("id_tags"), f"an idTag has 1 to 20 characters (OCPP 1.6), got {tag!r}")
    minutes = t.range_("session_minutes", None, lo=0.1)
    energy = t.range_("target_energy_wh", None, lo=1)
    if minutes is None and energy is None:
        minutes = d.session_minutes
    drivers = Drivers(
        arrivals_per_hour=rates,
        plug_first_share=t.num("plug_first_share", d.plug_first_share, lo=0, hi=1),
        id_tags=tags,
        unknown_share=t.num("unknown_share", d.unknown_share, lo=0, hi=1),
        session_minutes=minutes,
        target_energy_wh=energy,
        end=cast("str", t.str_("end", d.end, choices=ENDINGS)),
        act_delay_s=t.num("act_delay_s", d.act_delay_s, lo=0),
        patience_s=t.num("patience_s", d.patience_s, lo=1),
    )
    t.done()
    return drivers


def _ev(t: _Table, index: int) -> EvModel:
    d = EvModel("default")
    ev = EvModel(
        name=cast("str", t.str_("name", f"ev{index}")),
        weight=t.num("weight", d.weight, lo=0),
        capacity_wh=t.num("capacity_wh", d.capacity_wh, lo=1000, hi=1_000_000),
        start_soc=cast("tuple[float, float]", t.range_("start_soc", d.start_soc, lo=0, hi=1)),
        max_power_w=t.num("max_power_w", d.max_power_w, lo=100, hi=400_000),
        phases=t.int_("phases", d.phases, lo=1, hi=3),
        taper_soc=t.num("taper_soc", d.taper_soc, lo=0.1, hi=1),
        min_power_w=t.num("min_power_w", d.min_power_w, lo=0),
    )
    if ev.phases == 2:
        raise ScenarioError(t.key("phases"), "must be 1 or 3, got 2")
    t.done()
    return ev


def _fault(t: _Table) -> Fault:
    kind = t.str_("kind", None, choices=FAULT_KINDS)
    if kind is None:
        raise ScenarioError(t.key("kind"), f"is required (one of {', '.join(FAULT_KINDS)})")
    fault = Fault(
        kind=kind,
        at_s=t.num("at_s", 0.0, lo=0),
        duration_s=t.num("duration_s", 5.0, lo=0),
        share=t.num("share", 0.1, lo=0, hi=1),
        delay_s=t.num("delay_s", 1.0, lo=0, hi=600),
    )
    t.done()
    return fault


def _checks(t: _Table) -> Checks:
    share = t.num("min_booted_share", 0.0, lo=0, hi=1)
    max_errors = t.int_("max_errors", 0, lo=0) if t.has("max_errors") else None
    t.done()
    return Checks(min_booted_share=share, max_errors=max_errors)


def parse(data: dict[str, Any], *, base_dir: Path | None = None, source: str = "<memory>") -> Scenario:
    """Validate a scenario given as TOML data; raises ScenarioError naming the key."""
    base = base_dir or Path.cwd()
    top = _Table(data, "")
    name = cast("str", top.str_("name", Path(source).stem if source != "<memory>" else "scenario"))
    seed = top.int_("seed", 0)
    duration = top.num("duration_s", 60.0, lo=0.1)
    scale = top.num("time_scale", 1.0, lo=0.001, hi=100_000)
    start_hour = top.num("start_hour", 8.0, lo=0, hi=23.999)
    tick = top.num("tick_s", 0.5, lo=0.05, hi=10)
    drain = top.num("drain_s", 30.0, lo=0, hi=3600)
    fleet = _fleet(_Table(top.raw("fleet") or {}, "fleet"))
    credentials = _credentials(_Table(top.raw("credentials") or {}, "credentials"), base)
    drivers = _drivers(_Table(top.raw("drivers") or {}, "drivers"), base)
    evs_raw = top.raw("ev")
    evs: tuple[EvModel, ...] = (EvModel("default"),)
    if evs_raw is not None:
        if not isinstance(evs_raw, list) or not evs_raw:
            raise ScenarioError("ev", "must be an array of tables ([[ev]])")
        evs = tuple(_ev(_Table(item, f"ev[{i}]"), i) for i, item in enumerate(evs_raw))
        if sum(ev.weight for ev in evs) <= 0:
            raise ScenarioError("ev.weight", "at least one EV model needs a weight > 0")
    faults_raw = top.raw("faults")
    faults: tuple[Fault, ...] = ()
    if faults_raw is not None:
        if not isinstance(faults_raw, list):
            raise ScenarioError("faults", "must be an array of tables ([[faults]])")
        faults = tuple(_fault(_Table(item, f"faults[{i}]")) for i, item in enumerate(faults_raw))
    checks = _checks(_Table(top.raw("checks") or {}, "checks"))
    top.done()
    scenario = Scenario(
        name=name,
        seed=seed,
        duration_s=duration,
        time_scale=scale,
        start_hour=start_hour,
        tick_s=tick,
        drain_s=drain,
        fleet=fleet,
        credentials=credentials,
        drivers=drivers,
        evs=evs,
        faults=faults,
        checks=checks,
        spawn_csms=not fleet.csms_urls,
        source=source,
    )
    for i, fault in enumerate(faults):
        if fault.kind == "csms_restart" and fleet.csms_urls:
            raise ScenarioError(
                f"faults[{i}].kind",
                "csms_restart needs the simulator to run the central system (no csms URL)",
            )
    return scenario


PACKAGED_SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def resolve(path: str | Path) -> Path:
    """The scenario file ``path`` names: a file, or the bare name of a packaged one (``demo``, ``ci-200``)."""
    p = Path(path)
    if not p.exists() and p.parent == Path(".") and not p.suffix:
        packaged = PACKAGED_SCENARIOS / f"{p.name}.toml"
        if packaged.is_file():
            return packaged
    return p


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file (a path, or the name of a packaged scenario)."""
    p = resolve(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ScenarioError("<file>", f"cannot read {p}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("<file>", f"{p} is not valid TOML: {exc}") from exc
    return parse(data, base_dir=p.parent, source=str(p))
