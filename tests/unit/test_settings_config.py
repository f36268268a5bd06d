"""Runtime settings (typed, validated, persisted) and the agent's TOML configuration (errors name the key)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chargepoint.agent import Agent
from chargepoint.config import AgentConfig, load, parse
from chargepoint.core.model import Measurand
from chargepoint.core.settings import SPECS, Kind, Settings, SettingSpec
from chargepoint.errors import ConfigError
from chargepoint.store import Store
from hardware.factory import build_ports
from hardware.sim import SimMeter, SimPlug, SimRelay

# --- SettingSpec ------------------------------------------------------------------------------------------


def _example_values(spec: SettingSpec) -> list[Any]:
    if spec.kind is Kind.BOOL:
        return [True, False]
    if spec.kind is Kind.INT:
        lo = spec.min_value if spec.min_value is not None else -5
        hi = spec.max_value if spec.max_value is not None else 10_000
        return sorted({lo, hi, (lo + hi) // 2, spec.default})
    if spec.kind is Kind.MEASURANDS:
        return [(), (Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,), tuple(Measurand), spec.default]
    if spec.kind is Kind.HEX:  # 16-40 bytes as hex (the empty default means "none set" and is never parsed)
        return ["00" * 16, "ABcd" * 20]
    if spec.kind is Kind.PASSWORD:  # a 1.6 key as hex or a 2.0.1 passwordString (the empty default: none set)
        return ["00" * 16, "ABcd" * 20, "Pass-word:1234567", "*-_=:+|@.Abc1234"]
    if spec.choices:
        return [*spec.choices, ",".join(spec.choices), spec.default]
    return ["", "0.RST", "Core,LocalAuthListManagement", spec.default]


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_parse_format_round_trip(spec: SettingSpec) -> None:
    for value in _example_values(spec):
        text = spec.format(value)
        assert spec.parse(text) == value
        assert spec.format(spec.parse(text)) == text


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_default_is_valid(spec: SettingSpec) -> None:
    if spec.write_only:
        # A secret's empty default means "none set" (the configured password applies); the CSMS cannot set it.
        assert spec.default == ""
        with pytest.raises(ValueError):
            spec.parse(spec.format(spec.default))
        return
    assert spec.parse(spec.format(spec.default)) == spec.default


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("local_pre_authorize", " TRUE ", True),
        ("local_pre_authorize", "False", False),
        ("heartbeat_interval_s", " 42 ", 42),
        (
            "meter_values_sampled_data",
            "Energy.Active.Import.Register, Power.Active.Import,",
            (Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, Measurand.POWER_ACTIVE_IMPORT),
        ),
        ("stop_txn_sampled_data", "", ()),
    ],
)
def test_parse_is_lenient_about_case_and_spaces(name: str, text: str, expected: Any) -> None:
    assert SPECS[name].parse(text) == expected


@pytest.mark.parametrize(
    ("name", "text", "must_mention"),
    [
        ("heartbeat_interval_s", "-1", ">= 0"),
        ("heartbeat_interval_s", "86401", "<= 86400"),
        ("connection_timeout_s", "0", ">= 1"),
        ("transaction_message_attempts", "101", "<= 100"),
        ("heartbeat_interval_s", "abc", "integer"),
        ("heartbeat_interval_s", "1.5", "integer"),
        ("local_pre_authorize", "yes", "true or false"),
        ("local_pre_authorize", "1", "true or false"),
        ("meter_values_sampled_data", "Energy.Active.Import.Register,Bogus", "Energy.Active.Import.Register"),
        ("meter_values_sampled_data", ",".join(m.value for m in [*Measurand, Measurand.SOC]), "at most"),
        ("tx_start_point", "EnergyTransfer", "not supported"),
        ("tx_start_point", "DataSigned", "not supported"),
        ("tx_stop_point", "ParkingBayOccupancy", "not supported"),
        ("tx_start_point", "Plugged", "EVConnected, Authorized, PowerPathClosed"),
        ("tx_start_point", "", "EVConnected"),
        ("tx_stop_point", "Authorized,Authorized", "twice"),
    ],
)
def test_bad_value_names_setting_and_allowed_range(name: str, text: str, must_mention: str) -> None:
    with pytest.raises(ValueError) as err:
        SPECS[name].parse(text)
    assert name in str(err.value)
    assert must_mention in str(err.value)


# --- Settings ---------------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = Settings()
    assert set(s.names()) == set(SPECS)
    for name, spec in SPECS.items():
        assert s[name] == spec.default
        assert s.text(name) == spec.format(spec.default)


def test_set_text_persists_through_on_change_and_reloads(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    s = Settings(store.settings(), on_change=store.put_setting)
    assert s.set_text("heartbeat_interval_s", " 120 ") is False
    assert s.set_text("websocket_ping_interval_s", "30") is True  # needs a reconnect
    s.set_text("meter_values_sampled_data", "Energy.Active.Import.Register,Voltage")
    assert s.get_int("heartbeat_interval_s") == 120
    assert store.settings()["heartbeat_interval_s"] == "120"
    store.close()

    reopened = Store(tmp_path / "agent.db")
    again = Settings(reopened.settings())
    assert again.get_int("heartbeat_interval_s") == 120
    assert again.get_int("websocket_ping_interval_s") == 30
    assert again.measurands("meter_values_sampled_data") == (
        Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
        Measurand.VOLTAGE,
    )
    reopened.close()


def test_one_chargers_change_does_not_leak_to_others_of_the_same_configuration() -> None:
    """Chargers of one scenario share their configuration's values (copy-on-write): a value one of them sets, or
    had stored, is its own; going back to the shared value and changing it again stays its own too."""
    overrides = {"heartbeat_interval_s": 60, "number_of_connectors": 1}
    a, b = Settings(overrides=dict(overrides)), Settings(overrides=dict(overrides))
    c = Settings({"heartbeat_interval_s": "90"}, overrides=dict(overrides))
    assert a.get_int("heartbeat_interval_s") == b.get_int("heartbeat_interval_s") == 60
    assert c.get_int("heartbeat_interval_s") == 90
    heard: list[str] = []
    b.listeners.append(heard.append)
    a.set_text("heartbeat_interval_s", "120")
    a.set_text("meter_values_sampled_data", "Voltage")
    assert a.get_int("heartbeat_interval_s") == 120 and a.measurands("meter_values_sampled_data") == (
        Measurand.VOLTAGE,
    )
    assert b.get_int("heartbeat_interval_s") == 60 and c.get_int("heartbeat_interval_s") == 90
    assert b.measurands("meter_values_sampled_data") == SPECS["meter_values_sampled_data"].default
    assert heard == []  # b's listeners hear b's changes only
    c.set_text("heartbeat_interval_s", "60")  # back to the configuration's value
    a.set_text("heartbeat_interval_s", "60")
    b.set_text("heartbeat_interval_s", "30")
    assert (a.get_int("heartbeat_interval_s"), b.get_int("heartbeat_interval_s")) == (60, 30)
    assert c.get_int("heartbeat_interval_s") == 60 and heard == ["heartbeat_interval_s"]
    # Another configuration has its own values, whatever was built before it.
    assert Settings(overrides={"heartbeat_interval_s": 45}).get_int("heartbeat_interval_s") == 45
    assert Settings().get_int("heartbeat_interval_s") == SPECS["heartbeat_interval_s"].default


def test_read_only_raises_permission_error_and_does_not_persist() -> None:
    calls: list[tuple[str, str]] = []
    s = Settings(on_change=lambda n, v: calls.append((n, v)))
    with pytest.raises(PermissionError, match="number_of_connectors"):
        s.set_text("number_of_connectors", "4")
    assert s.get_int("number_of_connectors") == SPECS["number_of_connectors"].default
    assert calls == []


def test_bad_value_is_not_persisted() -> None:
    calls: list[tuple[str, str]] = []
    s = Settings(on_change=lambda n, v: calls.append((n, v)))
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        s.set_text("heartbeat_interval_s", "-5")
    assert s.get_int("heartbeat_interval_s") == 300
    assert calls == []


def test_unknown_name_raises_key_error() -> None:
    with pytest.raises(KeyError):
        Settings().set_text("no_such_setting", "1")


def test_failed_persist_leaves_value_unchanged() -> None:
    def boom(name: str, value: str) -> None:
        raise OSError("disk full")

    s = Settings(on_change=boom)
    with pytest.raises(OSError):
        s.set_text("heartbeat_interval_s", "10")
    assert s.get_int("heartbeat_interval_s") == 300


def test_on_change_receives_canonical_text() -> None:
    calls: list[tuple[str, str]] = []
    s = Settings(on_change=lambda n, v: calls.append((n, v)))
    s.set_text("local_pre_authorize", " TRUE ")
    s.set_text("heartbeat_interval_s", " 07 ")
    assert calls == [("local_pre_authorize", "true"), ("heartbeat_interval_s", "7")]


def test_stored_values_skip_read_only_unknown_and_unparsable() -> None:
    s = Settings(
        {
            "heartbeat_interval_s": "60",
            "number_of_connectors": "9",  # read-only: the hardware decides
            "gone_in_this_version": "1",
            "connection_timeout_s": "not a number",
        }
    )
    assert s.get_int("heartbeat_interval_s") == 60
    assert s.get_int("number_of_connectors") == 1
    assert s.get_int("connection_timeout_s") == SPECS["connection_timeout_s"].default


# --- config.parse -----------------------------------------------------------------------------------------


def minimal() -> dict[str, Any]:
    return {
        "station": {"id": "CP-1"},
        "csms": {"url": "ws://localhost:9000/ocpp/"},
        "storage": {"path": "state/agent.db"},
        "connectors": [
            {"id": 1, "relay": {"driver": "sim"}, "meter": {"driver": "sim"}, "plug": {"driver": "sim"}},
        ],
    }


def test_minimal_config_parses(tmp_path: Path) -> None:
    cfg = parse(minimal(), base_dir=tmp_path)
    assert isinstance(cfg, AgentConfig)
    assert cfg.station.id == "CP-1"
    assert cfg.csms.url == "ws://localhost:9000/ocpp"
    assert cfg.csms.security_profile == 0
    assert cfg.storage.path == str(tmp_path / "state/agent.db")
    assert [c.id for c in cfg.connectors] == [1]
    assert cfg.connectors[0].reader is None
    assert cfg.settings == {}


def test_settings_section_is_normalized_to_text(tmp_path: Path) -> None:
    data = minimal()
    data["settings"] = {
        "heartbeat_interval_s": 30,
        "local_pre_authorize": True,
        "meter_values_sampled_data": ["Energy.Active.Import.Register", "Voltage"],
    }
    cfg = parse(data, base_dir=tmp_path)
    assert cfg.settings == {
        "heartbeat_interval_s": "30",
        "local_pre_authorize": "true",
        "meter_values_sampled_data": "Energy.Active.Import.Register,Voltage",
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[last] = value

    return apply


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[part]
        del node[last]

    return apply


def _second_connector(cid: int) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        extra = copy.deepcopy(data["connectors"][0])
        extra["id"] = cid
        data["connectors"].append(extra)

    return apply


BAD_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing station.id", _delete("station.id"), "station.id"),
    ("station.id with a slash", _set("station.id", "a/b"), "station.id"),
    ("missing [station]", _delete("station"), "station"),
    ("csms.url is http", _set("csms.url", "http://localhost:9000"), "csms.url"),
    ("csms.url has no host", _set("csms.url", "ws://"), "csms.url"),
    ("profile 1 without password", _set("csms.security_profile", 1), "csms.password"),
    ("profile 2 over ws://", lambda d: d["csms"].update(security_profile=2, password="pw"), "csms.url"),
    ("profile out of range", _set("csms.security_profile", 4), "csms.security_profile"),
    ("profile is a bool", _set("csms.security_profile", True), "csms.security_profile"),
    ("unknown top-level key", _set("stations", {}), "stations"),
    ("unknown key inside [csms]", _set("csms.uri", "ws://x"), "csms.uri"),
    ("unknown key inside a connector", _set("connectors.0.colour", "red"), "connectors[0].colour"),
    ("connector ids with a gap", _second_connector(3), "connectors"),
    ("duplicate connector ids", _second_connector(1), "connectors"),
    ("no connectors", _set("connectors", []), "connectors"),
    ("connector without meter", lambda d: d["connectors"][0].pop("meter"), "connectors[0].meter"),
    ("meter is not a table", _set("connectors.0.meter", "sim"), "connectors[0].meter"),
    ("response_timeout_s not a number", _set("csms.response_timeout_s", "x"), "csms.response_timeout_s"),
    ("response_timeout_s too large", _set("csms.response_timeout_s", 601), "csms.response_timeout_s"),
    (
        "reconnect max < min",
        lambda d: d["csms"].update(reconnect_min_s=10, reconnect_max_s=5),
        "csms.reconnect_max_s",
    ),
    ("outbox_limit too small", _set("storage.outbox_limit", 9), "storage.outbox_limit"),
    ("ocpp_version unsupported", _set("csms.ocpp_version", "1.5"), "csms.ocpp_version"),
    ("ocpp_versions unsupported", _set("csms.ocpp_versions", ["2.0.1", "1.5"]), "csms.ocpp_versions"),
    ("ocpp_versions empty", _set("csms.ocpp_versions", []), "csms.ocpp_versions"),
    ("ocpp_versions repeated", _set("csms.ocpp_versions", ["1.6", "1.6"]), "csms.ocpp_versions"),
    ("ocpp_versions not a list", _set("csms.ocpp_versions", "1.6"), "csms.ocpp_versions"),
    (
        "ocpp_version and ocpp_versions",
        lambda d: d["csms"].update(ocpp_version="1.6", ocpp_versions=["1.6"]),
        "csms.ocpp_version",
    ),
    ("ca_file missing", _set("csms.ca_file", "no-such-ca.pem"), "csms.ca_file"),
    ("unknown setting", _set("settings.heartbeat_interval", 10), "settings.heartbeat_interval"),
    ("negative heartbeat", _set("settings.heartbeat_interval_s", -1), "settings.heartbeat_interval_s"),
    ("float for an int setting", _set("settings.heartbeat_interval_s", 1.5), "settings.heartbeat_interval_s"),
    ("int for a bool setting", _set("settings.local_pre_authorize", 1), "settings.local_pre_authorize"),
    ("unknown key in [agent]", _set("agent.poll_s", 1), "agent.poll_s"),
    ("meter_poll_s too small", _set("agent.meter_poll_s", 0.001), "agent.meter_poll_s"),
    ("bytes_per_message too small", _set("csms.bytes_per_message", 4095), "csms.bytes_per_message"),
    ("bytes_per_message not an int", _set("csms.bytes_per_message", 4096.0), "csms.bytes_per_message"),
    (
        "bytes_per_message over max_message_bytes",
        lambda d: d["csms"].update(bytes_per_message=8192, max_message_bytes=4096),
        "csms.bytes_per_message",
    ),
    ("max_message_bytes under 4,096", _set("csms.max_message_bytes", 4095), "csms.max_message_bytes"),
    (
        "bytes_per_message as a setting",
        _set("settings.bytes_per_message", 4096),
        "settings.bytes_per_message",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "key"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_names_the_key(
    tmp_path: Path, name: str, mutate: Callable[[dict[str, Any]], None], key: str
) -> None:
    data = minimal()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse(data, base_dir=tmp_path)
    assert err.value.key == key
    assert repr(key) in str(err.value)


def test_bytes_per_message_is_the_stations_own_to_lower(tmp_path: Path) -> None:
    """BytesPerMessage is read-only to the CSMS, but a station whose CSMS takes smaller frames configures it:
    65,000 by default, no more than the station itself takes (max_message_bytes), at least 4,096."""
    assert parse(minimal(), base_dir=tmp_path).csms.bytes_per_message == 65_000
    data = minimal()
    data["csms"]["bytes_per_message"] = 4096
    assert parse(data, base_dir=tmp_path).csms.bytes_per_message == 4096
    data = minimal()
    data["csms"]["max_message_bytes"] = 32_768  # a smaller intake lowers the default with it
    assert parse(data, base_dir=tmp_path).csms.bytes_per_message == 32_768
    data["csms"]["bytes_per_message"] = 40_000
    with pytest.raises(ConfigError, match=r"max_message_bytes \(32768\)"):
        parse(data, base_dir=tmp_path)
    data = minimal()
    data["settings"] = {"bytes_per_message": 4096}
    with pytest.raises(ConfigError, match=r"csms\.bytes_per_message"):
        parse(data, base_dir=tmp_path)


def test_configured_bytes_per_message_is_the_stations_setting(tmp_path: Path) -> None:
    """The agent's settings report the configured value (GetVariables, and every size guard reads it), and the
    CSMS still cannot change it."""
    data = minimal()
    data["csms"]["bytes_per_message"] = 5000
    data["storage"]["path"] = str(tmp_path / "agent.db")
    agent = Agent(parse(data, base_dir=tmp_path))
    store = Store(str(tmp_path / "agent.db"))
    try:
        settings = agent._settings(store)
        assert settings.get_int("bytes_per_message") == 5000
        with pytest.raises(PermissionError):
            settings.set_text("bytes_per_message", "65000")
    finally:
        store.close()


def test_bad_setting_message_carries_the_allowed_range(tmp_path: Path) -> None:
    data = minimal()
    data["settings"] = {"heartbeat_interval_s": -1}
    with pytest.raises(ConfigError, match=">= 0"):
        parse(data, base_dir=tmp_path)


def test_list_setting_with_non_string_items_is_a_config_error(tmp_path: Path) -> None:
    """','.join() on non-strings raised TypeError."""
    data = minimal()
    data["settings"] = {"meter_values_sampled_data": [1, 2]}
    with pytest.raises(ConfigError) as err:
        parse(data, base_dir=tmp_path)
    assert err.value.key == "settings.meter_values_sampled_data"


def test_malformed_url_is_a_config_error(tmp_path: Path) -> None:
    """urlparse() raises ValueError on a broken IPv6 literal."""
    data = minimal()
    data["csms"]["url"] = "ws://[::1/ocpp"
    with pytest.raises(ConfigError) as err:
        parse(data, base_dir=tmp_path)
    assert err.value.key == "csms.url"


def test_nan_is_out_of_range(tmp_path: Path) -> None:
    """TOML allows nan, and nan passes every < / > bound check."""
    data = minimal()
    data["csms"]["response_timeout_s"] = math.nan
    with pytest.raises(ConfigError) as err:
        parse(data, base_dir=tmp_path)
    assert err.value.key == "csms.response_timeout_s"


@pytest.mark.parametrize(
    ("station_id", "profile"),
    [
        # '?' would connect as another identity, '#' is an invalid URI, a space breaks the request line,
        # ':' breaks the Basic-auth user-id.
        pytest.param("CP?1", 0, id="question-mark"),
        pytest.param("CP#1", 0, id="hash"),
        pytest.param("CP 1", 0, id="space"),
        pytest.param("CP:1", 1, id="colon-with-basic-auth"),
        pytest.param("", 0, id="empty"),
        pytest.param("x" * 49, 0, id="too-long"),
    ],
)
def test_station_id_must_fit_url_and_basic_auth(tmp_path: Path, station_id: str, profile: int) -> None:
    data = minimal()
    data["station"]["id"] = station_id
    data["csms"].update(security_profile=profile, password="secret-password")
    with pytest.raises(ConfigError) as err:
        parse(data, base_dir=tmp_path)
    assert err.value.key == "station.id"


def test_load_reports_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[station\nid = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(bad)
    assert err.value.key == "<file>"
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "missing.toml")
    assert err.value.key == "<file>"


def test_load_resolves_paths_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "station.toml").write_text(
        '[station]\nid = "CP-9"\n[csms]\nurl = "wss://csms.example/ocpp"\n'
        '[storage]\npath = "agent.db"\n'
        '[[connectors]]\nid = 1\nrelay = { driver = "sim" }\nmeter = { driver = "sim", phases = 3 }\n'
        'plug = { driver = "sim" }\nreader = { driver = "sim" }\n',
        encoding="utf-8",
    )
    cfg = load(tmp_path / "station.toml")
    assert cfg.storage.path == str(tmp_path / "agent.db")
    # The sim meter's old ``phases`` option is moved to the connector, which owns it now.
    assert cfg.connectors[0].meter.options == {} and cfg.connectors[0].phases == 3
    assert cfg.source == str(tmp_path / "station.toml")


# --- hardware.factory -------------------------------------------------------------------------------------


def test_build_ports_sim() -> None:
    data = minimal()
    data["connectors"][0]["meter"] = {"driver": "sim", "phases": 3, "energy_wh": 100}
    cfg = parse(data)
    ports, sim = build_ports(0, cfg.connectors[0])
    assert isinstance(ports.relay, SimRelay) and ports.relay is sim.relay
    assert isinstance(ports.plug, SimPlug) and ports.plug is sim.plug
    assert isinstance(ports.meter, SimMeter) and ports.meter.phases == 3
    assert ports.meter.energy_wh == 100.0
    assert ports.reader is None and sim.reader is None


def test_build_ports_unknown_driver_names_the_key() -> None:
    data = minimal()
    data["connectors"][0]["meter"] = {"driver": "modbus-nonexistent"}
    cfg = parse(data)
    with pytest.raises(ConfigError) as err:
        build_ports(0, cfg.connectors[0])
    assert err.value.key == "connectors[0].meter.driver"
    assert "modbus-nonexistent" in str(err.value)


@pytest.mark.parametrize(
    ("meter", "key"),
    [
        ({"driver": "sim", "phases": 2}, "connectors[0].meter.phases"),
        ({"driver": "sim", "phases": "3"}, "connectors[0].meter.phases"),
        ({"driver": "sim", "port": "/dev/ttyUSB0"}, "connectors[0].meter.port"),
    ],
)
def test_build_ports_bad_sim_options(meter: dict[str, Any], key: str) -> None:
    data = minimal()
    data["connectors"][0]["meter"] = meter
    with pytest.raises(ConfigError) as err:
        build_ports(0, parse(data).connectors[0])
    assert err.value.key == key


@pytest.mark.parametrize(
    ("csms", "expected"),
    [
        ({}, ("1.6",)),
        ({"ocpp_version": "2.0.1"}, ("2.0.1",)),
        ({"ocpp_versions": ["2.0.1", "1.6"]}, ("2.0.1", "1.6")),
        ({"ocpp_versions": ["1.6", "2.0.1"]}, ("1.6", "2.0.1")),
    ],
)
def test_ocpp_versions_keep_the_order_of_preference(
    tmp_path: Path, csms: dict[str, Any], expected: tuple[str, ...]
) -> None:
    data = minimal()
    data["csms"].update(csms)
    assert parse(data, base_dir=tmp_path).csms.ocpp_versions == expected
