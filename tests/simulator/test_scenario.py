"""Scenario files: the shipped examples are valid; bad ones fail with the key's name. The EV model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.__main__ import main
from simulator.ev import Ev
from simulator.scenario import EvModel, ScenarioError, load, parse

SCENARIOS = Path(__file__).parents[2] / "simulator" / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_scenario_is_valid(path: Path) -> None:
    scenario = load(path)
    assert scenario.fleet.count >= 1 and scenario.name


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"fleet": {"count": 0}}, "fleet.count", "must be >= 1"),
        ({"fleet": {"count": "ten"}}, "fleet.count", "must be an integer"),
        ({"fleet": {"id_pattern": "CP-1"}}, "fleet.id_pattern", "must contain {n}"),
        ({"fleet": {"id_pattern": "CP-{x}"}}, "fleet.id_pattern", "must format with {n}"),
        ({"fleet": {"csms_urls": ["http://x"]}}, "fleet.csms_urls[0]", "ws:// or wss://"),
        ({"fleet": {"distribution": "nearest"}}, "fleet.distribution", "round-robin, random"),
        ({"fleet": {"ocpp_version": "1.5"}}, "fleet.ocpp_version", "must be one of 2.0.1, 1.6"),
        ({"fleet": {"conectors": 2}}, "fleet.conectors", "is not a known key"),
        (
            {"fleet": {"ocpp_versions": {"1.6": 0.5, "2.1": 0.5}}},
            'fleet.ocpp_versions."2.1"',
            "must be one of",
        ),
        ({"fleet": {"ocpp_versions": {"1.6": 0.5, "2.0.1": 0.6}}}, "fleet.ocpp_versions", "add up to 1"),
        ({"fleet": {"ocpp_versions": {"1.6": 1, "2.0.1": 0}}}, 'fleet.ocpp_versions."2.0.1"', "must be > 0"),
        ({"fleet": {"ocpp_versions": {"1.6": "half"}}}, 'fleet.ocpp_versions."1.6"', "must be a number"),
        ({"fleet": {"ocpp_versions": {}}}, "fleet.ocpp_versions", "a table of version = share"),
        (
            {"fleet": {"ocpp_version": "1.6", "ocpp_versions": {"1.6": 1}}},
            "fleet.ocpp_versions",
            "not both",
        ),
        (
            {"fleet": {"reconnect_min_s": 5, "reconnect_max_s": 1}},
            "fleet.reconnect_max_s",
            ">= reconnect_min_s",
        ),
        ({"drivers": {"arrivals_per_hour": [1, 2]}}, "drivers.arrivals_per_hour", "24"),
        ({"drivers": {"arrivals_per_hour": -1}}, "drivers.arrivals_per_hour", "must be >= 0"),
        ({"drivers": {"unknown_share": 1.5}}, "drivers.unknown_share", "must be <= 1"),
        ({"drivers": {"session_minutes": [60, 10]}}, "drivers.session_minutes", "min must not exceed max"),
        ({"drivers": {"id_tags": ["X" * 21]}}, "drivers.id_tags", "1 to 20 characters"),
        ({"drivers": {"end": "walk"}}, "drivers.end", "unplug, swipe"),
        ({"drivers": {"id_tag_file": "nope.txt"}}, "drivers.id_tag_file", "cannot read"),
        ({"credentials": {"password_pattern": "{who}"}}, "credentials.password_pattern", "{id} and {n}"),
        ({"ev": [{"capacity_wh": 10}]}, "ev[0].capacity_wh", "must be >= 1000"),
        ({"ev": [{"phases": 2}]}, "ev[0].phases", "1 or 3"),
        ({"ev": [{"start_soc": [0.5, 1.2]}]}, "ev[0].start_soc", "must be <= 1"),
        ({"faults": [{"at_s": 1}]}, "faults[0].kind", "is required"),
        ({"faults": [{"kind": "earthquake"}]}, "faults[0].kind", "must be one of"),
        ({"faults": [{"kind": "network_drop", "share": 2}]}, "faults[0].share", "must be <= 1"),
        (
            {"fleet": {"csms_url": "ws://127.0.0.1:1/ocpp"}, "faults": [{"kind": "csms_restart"}]},
            "faults[0].kind",
            "needs the simulator to run the central system",
        ),
        ({"time_scale": 0}, "time_scale", "must be >= 0.001"),
        ({"seed": 1.5}, "seed", "must be an integer"),
        ({"tick": 1}, "tick", "is not a known key"),
    ],
)
def test_bad_scenarios_name_the_key(data: dict[str, Any], key: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as error:
        parse(data, base_dir=tmp_path)
    assert error.value.key == key
    assert message in str(error.value)
    assert f"'{key}'" in str(error.value)


def test_the_cli_reports_a_bad_file_with_the_key_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[fleet]\ncount = 5\ndistribution = "nearest"\n')
    assert main(["run", "--scenario", str(bad), "--no-live"]) == 2
    assert "scenario key 'fleet.distribution'" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[fleet\n")
    assert main(["check", "--scenario", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_the_ev_takes_no_more_than_the_charger_offers_and_tapers_near_full() -> None:
    model = EvModel("t", capacity_wh=50_000, max_power_w=11_000, phases=3, taper_soc=0.8, min_power_w=500)
    ev = Ev(model, soc=0.5)
    assert ev.power_w(32, 230) == 11_000  # the on-board charger's limit
    assert ev.power_w(6, 230) == pytest.approx(6 * 230 * 3)  # a smart-charging limit of 6 A shows
    assert ev.power_w(None, 230) == 0.0  # no offer, no power
    ev.soc = 0.9
    assert ev.power_w(32, 230) == pytest.approx(500 + 10_500 * 0.5)
    ev.soc = 1.0
    assert ev.power_w(32, 230) == 0.0
    ev = Ev(model, soc=0.999)
    ev.take(1000)
    assert ev.soc == 1.0 and ev.taken_wh == 1000


def test_a_mixed_fleet_gives_each_version_its_share_of_the_chargers(tmp_path: Path) -> None:
    fleet = parse(
        {"fleet": {"count": 10, "ocpp_versions": {"1.6": 0.3, "2.0.1": 0.7}}}, base_dir=tmp_path
    ).fleet
    versions = [fleet.version_of(i) for i in range(fleet.count)]
    assert versions == ["1.6"] * 3 + ["2.0.1"] * 7
    single = parse({"fleet": {"count": 4, "ocpp_version": "2.0.1"}}, base_dir=tmp_path).fleet
    assert {single.version_of(i) for i in range(4)} == {"2.0.1"}
