"""Agent configuration: one TOML file -> frozen dataclasses, validated once at start; errors name the key."""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from chargepoint import csms_url
from chargepoint.core.settings import BYTES_PER_MESSAGE, MIN_BYTES_PER_MESSAGE, SPECS
from chargepoint.errors import ConfigError

# The OCPP versions the agent speaks (csms/link.py ADAPTERS has one adapter for each).
OCPP_VERSIONS = ("2.0.1", "1.6")
MAX_SETTING_CHARS = 500  # OCPP 1.6 §7 KeyValue.value: CiString500Type
MAX_UNIX_SOCKET_PATH = 107  # sockaddr_un.sun_path is 108 bytes on Linux, NUL included
# OCPP 1.6 BootNotification.req: chargePointVendor and chargePointModel are CiString20Type, chargePointSerialNumber
# CiString25Type, firmwareVersion CiString50Type. A longer value fails the ocpp package's validation of every
# BootNotification before it is sent, so the charger never came online.
BOOT_FIELD_MAX_CHARS = {"vendor": 20, "model": 20, "serial_number": 25, "firmware_version": 50}
_STATION_ID = re.compile(r"[A-Za-z0-9*\-_=+|@.]{1,48}")


@dataclass(frozen=True)
class StationIdentity:
    """Who the charge point says it is."""

    id: str
    vendor: str = "OpenChargeStack"
    model: str = "PiCharger"
    serial_number: str | None = None
    firmware_version: str = "0.1.0"


@dataclass(frozen=True)
class CsmsConfig:
    """Where the central system is and how to talk to it."""

    url: str  # a base URL (the charge point id is appended) or a template with {station_id}
    ocpp_versions: tuple[str, ...] = ("1.6",)  # offered as subprotocols, most preferred first
    security_profile: int = 0
    password: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    response_timeout_s: float = 30.0
    boot_retry_s: float = 30.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    reconnect_jitter_s: float = 1.0
    max_message_bytes: int = 1 << 20
    # OCPP 2.0.1 DeviceDataCtrlr.BytesPerMessage (1.6 has no key; the same bound applies): the largest frame the
    # station sends, and the largest it tells the CSMS it takes. Lower it for a central system with a smaller
    # frame limit; it can be no more than max_message_bytes (what the station does take).
    bytes_per_message: int = BYTES_PER_MESSAGE


@dataclass(frozen=True)
class StorageConfig:
    """Where the agent keeps its state."""

    path: str
    durable: bool = True
    outbox_limit: int = 10_000


@dataclass(frozen=True)
class DriverConfig:
    """A hardware driver by name, with its own options."""

    driver: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectorConfig:
    """One connector and its hardware."""

    id: int
    relay: DriverConfig
    meter: DriverConfig
    plug: DriverConfig
    reader: DriverConfig | None
    max_current_a: float = 32.0
    phases: int = 3  # phases wired to the socket; W limits become A over these (3: the safe default)
    voltage_v: float = 230.0  # nominal line-to-neutral voltage


INSTALLERS = ("auto", "command", "simulated")
UPLOAD_METHODS = ("PUT", "POST")


@dataclass(frozen=True)
class FirmwareConfig:
    """Firmware updates and diagnostics uploads: where files go, their bounds, and how firmware is installed."""

    directory: str  # work directory for downloads and archives
    installer: str = "auto"  # auto: the command if given, else simulated when every connector is simulated
    install_command: tuple[str, ...] = ()  # run without a shell, the firmware file's path appended
    install_timeout_s: float = 600.0
    max_download_bytes: int = 256 << 20
    transfer_timeout_s: float = 600.0  # one download or upload attempt, from connect to the last byte
    manufacturer_roots: str | None = None  # PEM bundle of ManufacturerRootCertificates (signed updates)
    log_files: tuple[str, ...] = ()  # files (globs) collected by GetDiagnostics / GetLog DiagnosticsLog
    security_log_files: tuple[str, ...] = ()  # files (globs) collected by GetLog SecurityLog
    upload_method: str = "PUT"  # HTTP(S) uploads: PUT the archive to location/name, or POST it as a form
    max_log_bytes: int = 16 << 20  # read from the end of each log file at most


@dataclass(frozen=True)
class AgentConfig:
    """The whole configuration of one agent."""

    station: StationIdentity
    csms: CsmsConfig
    storage: StorageConfig
    connectors: tuple[ConnectorConfig, ...]
    control_socket: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    meter_poll_s: float = 1.0
    unlock_supported: bool = False
    source: str = "<memory>"
    firmware: FirmwareConfig | None = None  # None: defaults next to the store (``firmware_config``)


def firmware_config(config: AgentConfig) -> FirmwareConfig:
    """The firmware settings, with the work directory next to the store when not configured."""
    if config.firmware is not None:
        return config.firmware
    return FirmwareConfig(directory=_default_files_dir(config.storage.path, config.station.id))


def _default_files_dir(store_path: str, station_id: str) -> str:
    if store_path == ":memory:":
        import tempfile

        return str(Path(tempfile.gettempdir()) / f"chargepoint-files-{station_id}")
    return str(Path(store_path).parent / "files")


class _Section:
    """Reads typed values out of one TOML table, naming the full key in every error."""

    def __init__(self, data: Any, prefix: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(prefix, "must be a table")
        self.data = data
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(
        self,
        name: str,
        kind: type | tuple[type, ...],
        default: Any = ...,
        *,
        lo: float | None = None,
        hi: float | None = None,
        choices: tuple[Any, ...] | None = None,
    ) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                raise ConfigError(self.key(name), "is required")
            return default
        value: Any = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(self.key(name), f"must be {names}, got {type(value).__name__} {value!r}")
        number = cast("float", value)
        if number != number:  # NaN passes every comparison
            raise ConfigError(self.key(name), "must be a number, got nan")
        if lo is not None and number < lo:
            raise ConfigError(self.key(name), f"must be >= {lo:g}, got {value!r}")
        if hi is not None and number > hi:
            raise ConfigError(self.key(name), f"must be <= {hi:g}, got {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value

    def table(self, name: str, required: bool = True) -> _Section | None:
        self.used.add(name)
        if name not in self.data:
            if required:
                raise ConfigError(self.key(name), "is required")
            return None
        return _Section(self.data[name], self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "is not a known key")


def _bytes_per_message(cs: _Section, max_message_bytes: int) -> int:
    """``csms.bytes_per_message``: by default the usual BytesPerMessage, or max_message_bytes if that is smaller."""
    key = "bytes_per_message"
    value: int = cs.get(key, int, min(BYTES_PER_MESSAGE, max_message_bytes), lo=MIN_BYTES_PER_MESSAGE)
    if value > max_message_bytes:
        # The CSMS sizes what it sends by BytesPerMessage (GetVariables, SetVariables): a frame between the two
        # would be refused by the station's WebSocket and drop the link.
        raise ConfigError(
            cs.key(key),
            f"must be <= csms.max_message_bytes ({max_message_bytes}), the most the station takes",
        )
    return value


# Driver options that name a file; a relative one is taken relative to the config file, like every other path.
_PATH_OPTIONS = frozenset({"map"})


def _driver(section: _Section, name: str, base: Path, required: bool = True) -> DriverConfig | None:
    table = section.table(name, required)
    if table is None:
        return None
    driver = table.get("driver", str)
    options = {k: v for k, v in table.data.items() if k != "driver"}
    for option in _PATH_OPTIONS & options.keys():
        value = options[option]
        if isinstance(value, str) and not Path(value).is_absolute():
            options[option] = str(base / value)
    return DriverConfig(driver, options)


# A connector's phases: single-phase or three-phase sockets. Two-phase supplies exist (IT grids) but their W->A
# conversion depends on how the phases are wired, so they are refused rather than guessed.
PHASES = (1, 3)
# Nominal line-to-neutral voltages of the world's grids (100 V Japan .. 277 V US commercial), with margin.
MIN_VOLTAGE_V = 100.0
MAX_VOLTAGE_V = 480.0


def _legacy_sim_meter(
    key: str, meter: DriverConfig, phases: int | None, voltage_v: float | None
) -> tuple[DriverConfig, int | None, float | None]:
    """Move the sim meter's old ``phases``/``voltage_v`` options to the connector, where they now belong.

    They used to set only the simulated meter, while smart charging assumed 3 phases at 230 V. The connector's keys
    are the source of truth now; an old config keeps working (its meter keys become the connector's), and a meter
    key that contradicts the connector's is an error rather than a silent choice."""
    if meter.driver != "sim":
        return meter, phases, voltage_v
    options = dict(meter.options)
    section = _Section(options, key)
    old_phases = section.get("phases", int, None, choices=PHASES)
    old_voltage_v = section.get("voltage_v", float, None, lo=MIN_VOLTAGE_V, hi=MAX_VOLTAGE_V)
    connector = key.rsplit(".", 1)[0]
    for name, old, new in (("phases", old_phases, phases), ("voltage_v", old_voltage_v, voltage_v)):
        if old is not None and new is not None and old != new:
            raise ConfigError(
                f"{key}.{name}", f"is {old!r} but {connector}.{name} is {new!r}; set {connector}.{name} only"
            )
        options.pop(name, None)
    return (
        DriverConfig(meter.driver, options),
        phases if phases is not None else old_phases,
        voltage_v if voltage_v is not None else old_voltage_v,
    )


def _ocpp_versions(cs: _Section) -> tuple[str, ...]:
    """``csms.ocpp_versions`` (a non-empty list without repeats, most preferred first), or the older single
    ``csms.ocpp_version``; not both."""
    if "ocpp_version" in cs.data:
        if "ocpp_versions" in cs.data:
            raise ConfigError("csms.ocpp_version", "give either ocpp_version or ocpp_versions, not both")
        return (cs.get("ocpp_version", str, choices=OCPP_VERSIONS),)
    versions = cs.get("ocpp_versions", list, ["1.6"])
    if not versions:
        raise ConfigError("csms.ocpp_versions", "must name at least one version")
    for version in versions:
        if version not in OCPP_VERSIONS:
            raise ConfigError(
                "csms.ocpp_versions", f"must list versions from {', '.join(OCPP_VERSIONS)}, got {version!r}"
            )
    if len(set(versions)) != len(versions):
        raise ConfigError("csms.ocpp_versions", "names a version twice")
    return tuple(versions)


def _check_tls_files(csms: CsmsConfig) -> None:
    """Load the CA and client certificate as the link will; a file that is not what it should be fails here, once,
    instead of at every reconnect."""
    try:
        context = ssl.create_default_context(cafile=csms.ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError("csms.ca_file", f"is not a usable PEM CA file: {exc}") from None
    if csms.security_profile == 3 and csms.client_cert:
        try:
            context.load_cert_chain(csms.client_cert, csms.client_key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                "csms.client_cert", f"and csms.client_key are not a usable PEM certificate and key: {exc}"
            ) from None


def parse(data: dict[str, Any], *, base_dir: Path | None = None, source: str = "<memory>") -> AgentConfig:
    """Validate a parsed TOML document into an AgentConfig; raises ConfigError naming the bad key."""
    root = _Section(data, "")
    base = base_dir or Path.cwd()

    st = root.table("station")
    assert st is not None
    station = StationIdentity(
        id=st.get("id", str),
        vendor=st.get("vendor", str, "OpenChargeStack"),
        model=st.get("model", str, "PiCharger"),
        serial_number=st.get("serial_number", str, None),
        firmware_version=st.get("firmware_version", str, "0.1.0"),
    )
    for name, limit in BOOT_FIELD_MAX_CHARS.items():
        value = getattr(station, name)
        if value is not None and len(value) > limit:
            raise ConfigError(
                f"station.{name}", f"must be at most {limit} characters (OCPP 1.6 BootNotification)"
            )
    # The id goes into the URL path and the Basic-auth user-id, so only URL-safe characters and no ':'
    # (the identifier character set of the OCPP security whitepaper, less ':').
    if not _STATION_ID.fullmatch(station.id):
        raise ConfigError("station.id", f"must be 1-48 of A-Z a-z 0-9 * - _ = + | @ . , got {station.id!r}")
    st.done()

    cs = root.table("csms")
    assert cs is not None
    url = cs.get("url", str)
    url_error = csms_url.template_error(url)
    if url_error is not None:
        raise ConfigError("csms.url", url_error)
    scheme = urlparse(url).scheme
    profile = cs.get("security_profile", int, 0, choices=(0, 1, 2, 3))

    def path_opt(name: str) -> str | None:
        value = cs.get(name, str, None)
        if value is None:
            return None
        resolved = (base / value) if not Path(value).is_absolute() else Path(value)
        if not resolved.is_file():
            raise ConfigError(f"csms.{name}", f"file {str(resolved)!r} does not exist")
        return str(resolved)

    # At least what the station may say it takes (BytesPerMessage, below): a SetChargingProfile of PeriodsPerSchedule
    # periods is over 2 KB.
    max_message_bytes = cs.get("max_message_bytes", int, 1 << 20, lo=MIN_BYTES_PER_MESSAGE, hi=64 << 20)
    csms = CsmsConfig(
        url=csms_url.normalize(url),
        ocpp_versions=_ocpp_versions(cs),
        security_profile=profile,
        password=cs.get("password", str, None),
        ca_file=path_opt("ca_file"),
        client_cert=path_opt("client_cert"),
        client_key=path_opt("client_key"),
        response_timeout_s=cs.get("response_timeout_s", float, 30.0, lo=0.1, hi=600),
        boot_retry_s=cs.get("boot_retry_s", float, 30.0, lo=0.1, hi=86400),
        reconnect_min_s=cs.get("reconnect_min_s", float, 1.0, lo=0.01, hi=3600),
        reconnect_max_s=cs.get("reconnect_max_s", float, 60.0, lo=0.01, hi=86400),
        reconnect_jitter_s=cs.get("reconnect_jitter_s", float, 1.0, lo=0, hi=3600),
        max_message_bytes=max_message_bytes,
        bytes_per_message=_bytes_per_message(cs, max_message_bytes),
    )
    cs.done()
    if profile in (1, 2) and not csms.password:
        raise ConfigError("csms.password", f"is required for security profile {profile}")
    if profile >= 2 and scheme != "wss":
        raise ConfigError("csms.url", f"must be wss:// for security profile {profile}")
    if profile == 3 and not (csms.client_cert and csms.client_key):
        raise ConfigError("csms.client_cert", "and csms.client_key are required for security profile 3")
    if csms.reconnect_max_s < csms.reconnect_min_s:
        raise ConfigError("csms.reconnect_max_s", "must be >= csms.reconnect_min_s")
    if scheme == "wss":
        _check_tls_files(csms)

    sto = root.table("storage")
    assert sto is not None
    raw_path = sto.get("path", str)
    db_path = raw_path if raw_path == ":memory:" or Path(raw_path).is_absolute() else str(base / raw_path)
    storage = StorageConfig(
        path=db_path,
        durable=sto.get("durable", bool, True),
        outbox_limit=sto.get("outbox_limit", int, 10_000, lo=10, hi=10_000_000),
    )
    sto.done()

    raw_connectors = root.data.get("connectors")
    root.used.add("connectors")
    if not isinstance(raw_connectors, list) or not raw_connectors:
        raise ConfigError("connectors", "must be a non-empty array of tables ([[connectors]])")
    connectors = []
    for index, raw in enumerate(raw_connectors):
        c = _Section(raw, f"connectors[{index}]")
        relay, meter, plug = _driver(c, "relay", base), _driver(c, "meter", base), _driver(c, "plug", base)
        assert relay and meter and plug
        phases = c.get("phases", int, None, choices=PHASES)
        voltage_v = c.get("voltage_v", float, None, lo=MIN_VOLTAGE_V, hi=MAX_VOLTAGE_V)
        meter, phases, voltage_v = _legacy_sim_meter(c.key("meter"), meter, phases, voltage_v)
        connectors.append(
            ConnectorConfig(
                id=c.get("id", int, lo=1, hi=99),
                relay=relay,
                meter=meter,
                plug=plug,
                reader=_driver(c, "reader", base, required=False),
                max_current_a=c.get("max_current_a", float, 32.0, lo=6, hi=500),
                phases=3 if phases is None else phases,
                voltage_v=230.0 if voltage_v is None else voltage_v,
            )
        )
        c.done()
    ids = [c.id for c in connectors]
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise ConfigError("connectors", f"ids must be 1..{len(ids)} without gaps, got {ids}")

    settings: dict[str, str] = {}
    ocpp_table = root.table("settings", required=False)
    if ocpp_table is not None:
        for name, value in ocpp_table.data.items():
            spec = SPECS.get(name)
            if spec is None:
                raise ConfigError(f"settings.{name}", f"is not a known setting ({', '.join(sorted(SPECS))})")
            if spec.readonly:
                # Read-only keys report what this agent can do (GetConfiguration); the bounds among them
                # (profiles installed, local list length, ...) keep a central system from filling the store.
                where = " (its own value is csms.bytes_per_message)" if name == "bytes_per_message" else ""
                raise ConfigError(f"settings.{name}", f"is read-only: the agent reports its own value{where}")
            if isinstance(value, list) and not all(isinstance(item, str) for item in value):
                raise ConfigError(f"settings.{name}", "must be a list of strings")
            text = (
                ("true" if value else "false")
                if isinstance(value, bool)
                else (",".join(value) if isinstance(value, list) else str(value))
            )
            try:
                spec.parse(text)
            except ValueError as exc:
                raise ConfigError(f"settings.{name}", str(exc)) from None
            if len(text) > MAX_SETTING_CHARS:
                # OCPP 1.6 §7 KeyValue.value is CiString500: a longer value would make every
                # GetConfiguration answer fail validation.
                raise ConfigError(f"settings.{name}", f"must be at most {MAX_SETTING_CHARS} characters")
            settings[name] = text

    ctl = root.table("control", required=False)
    control_socket = None
    if ctl is not None:
        sock = ctl.get("socket", str, None)
        if sock is not None and not sock.strip():
            # "" would resolve to the config's directory, and the agent died unlinking it at start.
            raise ConfigError("control.socket", "must be the path of a Unix socket file, got ''")
        control_socket = sock if sock is None or Path(sock).is_absolute() else str(base / sock)
        if control_socket is not None and len(os.fsencode(control_socket)) > MAX_UNIX_SOCKET_PATH:
            # Linux sun_path holds 108 bytes with the NUL: a longer path failed at start with OSError, and
            # the agent exited as after a crash (restarted in a loop) instead of as for a bad config.
            raise ConfigError(
                "control.socket",
                f"must be a path of at most {MAX_UNIX_SOCKET_PATH} bytes (a Unix socket), got {control_socket!r}",
            )
        ctl.done()

    firmware = None
    fw = root.table("firmware", required=False)
    if fw is not None:
        firmware = _firmware(fw, base, storage.path, station.id)
        fw.done()

    agent = root.table("agent", required=False)
    meter_poll_s, unlock_supported = 1.0, False
    if agent is not None:
        meter_poll_s = agent.get("meter_poll_s", float, 1.0, lo=0.05, hi=60)
        unlock_supported = agent.get("unlock_supported", bool, False)
        agent.done()
    root.done()
    return AgentConfig(
        station,
        csms,
        storage,
        tuple(connectors),
        control_socket,
        settings,
        meter_poll_s,
        unlock_supported,
        source,
        firmware,
    )


def _firmware(fw: _Section, base: Path, store_path: str, station_id: str) -> FirmwareConfig:
    """The [firmware] table."""

    def path(value: str) -> str:
        return value if Path(value).is_absolute() else str(base / value)

    def strings(name: str) -> tuple[str, ...]:
        value = fw.get(name, list, [])
        if not all(isinstance(item, str) and item for item in value):
            raise ConfigError(fw.key(name), "must be a list of non-empty strings")
        return tuple(value)

    command = strings("install_command")
    installer = fw.get("installer", str, "auto", choices=INSTALLERS)
    if installer == "command" and not command:
        raise ConfigError(fw.key("install_command"), "is required when firmware.installer is 'command'")
    roots = fw.get("manufacturer_roots", str, None)
    if roots is not None and not Path(path(roots)).is_file():
        raise ConfigError(fw.key("manufacturer_roots"), f"file {path(roots)!r} does not exist")
    directory = fw.get("directory", str, None)
    return FirmwareConfig(
        directory=path(directory) if directory else _default_files_dir(store_path, station_id),
        installer=installer,
        install_command=command,
        install_timeout_s=fw.get("install_timeout_s", float, 600.0, lo=1, hi=86400),
        max_download_bytes=fw.get("max_download_bytes", int, 256 << 20, lo=1024, hi=16 << 30),
        transfer_timeout_s=fw.get("transfer_timeout_s", float, 600.0, lo=1, hi=86400),
        manufacturer_roots=path(roots) if roots else None,
        log_files=tuple(path(p) for p in strings("log_files")),
        security_log_files=tuple(path(p) for p in strings("security_log_files")),
        upload_method=fw.get("upload_method", str, "PUT", choices=UPLOAD_METHODS),
        max_log_bytes=fw.get("max_log_bytes", int, 16 << 20, lo=1024, hi=1 << 30),
    )


def load(path: str | Path) -> AgentConfig:
    """Read and validate a TOML configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {p}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<file>", f"{p} is not valid TOML: {exc}") from exc
    return parse(data, base_dir=p.resolve().parent, source=str(p))
