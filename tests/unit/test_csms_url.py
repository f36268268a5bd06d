"""``csms.url`` as a base URL or a ``{station_id}`` template: validated at load, built the same way everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from chargepoint.config import parse
from chargepoint.csms_url import station_url, template_error
from chargepoint.errors import ConfigError
from simulator.scenario import ScenarioError
from simulator.scenario import parse as parse_scenario


def config(url: str) -> dict[str, Any]:
    return {
        "station": {"id": "CP-1"},
        "csms": {"url": url},
        "storage": {"path": ":memory:"},
        "connectors": [
            {"id": 1, "relay": {"driver": "sim"}, "meter": {"driver": "sim"}, "plug": {"driver": "sim"}}
        ],
    }


@pytest.mark.parametrize(
    ("url", "station_id", "expected"),
    [
        ("ws://h/ocpp", "CP-1", "ws://h/ocpp/CP-1"),
        ("ws://h/ocpp/", "CP-1", "ws://h/ocpp/CP-1"),
        ("ws://h/ocpp/{station_id}/", "CP-1", "ws://h/ocpp/CP-1/"),
        ("ws://h/ocpp?id={station_id}", "CP-1", "ws://h/ocpp?id=CP-1"),
        ("ws://h/{station_id}/ws?cp={station_id}", "CP-1", "ws://h/CP-1/ws?cp=CP-1"),
        # In a path, sub-delims stay as they are; "|" is kept raw as it always was appended.
        ("ws://h/ocpp/{station_id}/", "A*B+C=D@E|F", "ws://h/ocpp/A*B+C=D@E|F/"),
        ("ws://h/ocpp", "A*B+C=D@E|F", "ws://h/ocpp/A*B+C=D@E|F"),
        # In a query everything but the unreserved characters is percent-encoded.
        ("ws://h/ocpp?id={station_id}", "A*B+C=D@E|F", "ws://h/ocpp?id=A%2AB%2BC%3DD%40E%7CF"),
    ],
)
def test_station_url(url: str, station_id: str, expected: str) -> None:
    assert station_url(url, station_id) == expected


def test_template_keeps_its_trailing_slash_through_the_config() -> None:
    """A base URL loses its trailing slashes (the id is appended after one); a template is kept as written."""
    assert parse(config("ws://h:9000/ocpp/")).csms.url == "ws://h:9000/ocpp"
    assert parse(config("ws://h:9000/ocpp/{station_id}/")).csms.url == "ws://h:9000/ocpp/{station_id}/"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ws://h/ocpp/{id}", "unknown placeholder {id}"),
        ("ws://h/ocpp/{chargePointId}/", "unknown placeholder {chargePointId}"),
        ("ws://h/ocpp/{station_id:>8}", "unknown placeholder"),
        ("ws://h/ocpp/{}", "unknown placeholder {}"),
        ("ws://h/ocpp/{station_id", "unmatched brace"),
        ("ws://h/ocpp/station_id}", "unmatched brace"),
        ("ws://{station_id}.example.com/ocpp", "path or query only"),
        ("ws://h/ocpp#{station_id}", "fragment"),
        ("ws://h/ocpp#", "fragment"),
        ("http://h/ocpp/{station_id}", "ws:// or wss://"),
    ],
)
def test_bad_template_is_a_config_error_naming_the_key(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(config(url))
    assert err.value.key == "csms.url"
    assert words in str(err.value)


def test_scenario_urls_are_checked_the_same_way() -> None:
    """The fleet simulator takes the same templates, and refuses the same mistakes."""
    spec = parse_scenario({"fleet": {"csms_url": "ws://127.0.0.1:9000/ocpp/{station_id}/"}}).fleet
    assert spec.csms_urls == ("ws://127.0.0.1:9000/ocpp/{station_id}/",)
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"fleet": {"csms_urls": ["ws://127.0.0.1:9000/ocpp/{cp}"]}})
    assert err.value.key == "fleet.csms_urls[0]"


def test_every_valid_template_builds_a_url_without_braces() -> None:
    for url in ("ws://h/a/{station_id}/", "wss://h:1/a?x=1&id={station_id}", "ws://h/a"):
        assert template_error(url) is None
        assert "{" not in station_url(url, "CP-1")
