"""csms/fitting.py: whatever the entries and the room, every part fits, nothing that fits is lost or reordered,
and a message trimmed to fit keeps its end register and each kept MeterValue's timestamp."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.csms.fitting import json_chars, split_entries, split_meter_values, trim_meter_values

_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60)
_sampled = st.fixed_dictionaries({"value": st.integers(0, 10**9), "measurand": _text})
_meter_value = st.builds(
    lambda n, values: {"timestamp": f"2026-01-01T00:{n:02d}:00.000Z", "sampledValue": values},
    st.integers(0, 59),
    st.lists(_sampled, min_size=1, max_size=12),
)
_BASE = {"connectorId": 1, "transactionId": 2**31 - 1}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(_text, _text, max_size=4), max_size=30),
    st.integers(20, 800),
    st.none() | st.integers(1, 5),
)
def test_every_part_fits_and_the_entries_that_fit_keep_their_order(
    entries: list[dict[str, str]], room: int, max_items: int | None
) -> None:
    split = split_entries(room, _BASE, "data", entries, max_items=max_items)
    assert all(json_chars({**_BASE, "data": part}) <= room for part in split.parts)
    assert all(part and (max_items is None or len(part) <= max_items) for part in split.parts)
    fitting = [e for e in entries if json_chars({**_BASE, "data": [e]}) <= room]
    assert [e for part in split.parts for e in part] == fitting
    assert split.left_out == len(entries) - len(fitting)


@settings(max_examples=200, deadline=None)
@given(st.lists(_meter_value, min_size=1, max_size=8), st.integers(150, 1500))
def test_meter_values_lose_no_value_that_fits_and_keep_their_timestamps(
    values: list[dict[str, Any]], room: int
) -> None:
    split = split_meter_values(room, _BASE, "meterValue", values)
    assert all(json_chars({**_BASE, "meterValue": part}) <= room for part in split.parts)
    sent = [(mv["timestamp"], v) for part in split.parts for mv in part for v in mv["sampledValue"]]
    fits = [
        (mv["timestamp"], v)
        for mv in values
        for v in mv["sampledValue"]
        if json_chars({**_BASE, "meterValue": [{"timestamp": mv["timestamp"], "sampledValue": [v]}]}) <= room
    ]
    assert sent == fits
    assert split.left_out == sum(len(mv["sampledValue"]) for mv in values) - len(fits)


@settings(max_examples=200, deadline=None)
@given(st.lists(_meter_value, min_size=2, max_size=8), st.integers(150, 3000))
def test_a_trimmed_message_keeps_its_first_entry_and_the_newest_timestamp(
    values: list[dict[str, Any]], room: int
) -> None:
    payload: dict[str, Any] = {
        **_BASE,
        "meterValue": [dict(mv, sampledValue=list(mv["sampledValue"])) for mv in values],
    }
    first = payload["meterValue"][0]
    alone = json_chars({**_BASE, "meterValue": [first]})
    trim_meter_values(room, payload, "meterValue", keep=1)
    assert payload["meterValue"][0] is first  # kept whatever it costs (the end register)
    if alone + 1 < room:
        assert json_chars(payload) <= room
    kept = payload["meterValue"][1:]
    if kept:
        # The newest stays (trimmed, never moved): what goes is older, or its last values.
        assert kept[-1]["timestamp"] == values[-1]["timestamp"]
        assert kept[-1]["sampledValue"] == values[-1]["sampledValue"][: len(kept[-1]["sampledValue"])]
