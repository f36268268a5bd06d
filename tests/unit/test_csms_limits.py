"""Cutting a request to a charger's own message limits (``backend_stub.ocpp.limits``): by items, by the bytes of the
whole OCPP-J frame, and the versions of a local list sent in parts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_stub.errors import CommandFailed
from backend_stub.ocpp.framing import dumps
from backend_stub.ocpp.limits import UNIQUE_ID_CHARS, frame_bytes, parse_limit, split, versions_for


def entry(n: int, width: int = 10) -> dict[str, Any]:
    return {
        "idToken": {"idToken": f"T{n:0{width}d}", "type": "Central"},
        "idTokenInfo": {"status": "Accepted"},
    }


BASE = {"versionNumber": 9, "updateType": "Differential"}


@pytest.mark.parametrize(
    ("text", "limit"),
    [("4", 4), (" 12 ", 12), ("2147483647", 2**31 - 1), ("0", None), ("-1", None), ("1e3", None),
     ("2147483648", None), ("", None), ("٣", None), (None, None), (7, None), ("99999999999", None)],
)  # fmt: skip
def test_a_reported_limit_is_a_positive_32_bit_decimal(text: object, limit: int | None) -> None:
    assert parse_limit(text) == limit


def test_frame_bytes_is_the_whole_call_as_sent() -> None:
    payload = {"versionNumber": 1, "updateType": "Full", "localAuthorizationList": [entry(1)]}
    sent = dumps([2, "x" * UNIQUE_ID_CHARS, "SendLocalList", payload])
    assert frame_bytes("SendLocalList", payload) == len(sent.encode())
    # Non-ASCII text counts in UTF-8 bytes, as a charger's BytesPerMessage does.
    assert frame_bytes("X", {"a": "é"}) == frame_bytes("X", {"a": "e"}) + 1


def test_parts_keep_to_the_item_limit_in_order() -> None:
    items = [entry(n) for n in range(10)]
    parts = split("SendLocalList", BASE, "localAuthorizationList", items, 4, None)
    assert [len(p) for p in parts] == [4, 4, 2]
    assert [i for p in parts for i in p] == items


def test_parts_keep_to_the_byte_limit_with_every_comma_counted() -> None:
    items = [entry(n) for n in range(10)]
    one = frame_bytes("SendLocalList", {**BASE, "localAuthorizationList": items[:1]})
    limit = frame_bytes("SendLocalList", {**BASE, "localAuthorizationList": items[:3]})
    parts = split("SendLocalList", BASE, "localAuthorizationList", items, None, limit)
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert all(frame_bytes("SendLocalList", {**BASE, "localAuthorizationList": p}) <= limit for p in parts)
    # One byte less and three no longer fit.
    tighter = split("SendLocalList", BASE, "localAuthorizationList", items, None, limit - 1)
    assert len(tighter[0]) == 2
    assert one < limit


def test_an_item_too_large_on_its_own_is_too_large() -> None:
    items = [entry(1), entry(2, width=400)]
    limit = frame_bytes("SendLocalList", {**BASE, "localAuthorizationList": items[:1]})
    with pytest.raises(CommandFailed) as caught:
        split("SendLocalList", BASE, "localAuthorizationList", items, None, limit)
    assert caught.value.code == CommandFailed.TOO_LARGE and "item 1 " in caught.value.description


def test_nothing_to_send_is_one_empty_part() -> None:
    assert split("SendLocalList", BASE, "localAuthorizationList", [], 1, 10) == [[]]


def test_the_versions_of_the_parts_end_at_the_asked_one() -> None:
    assert versions_for(1, 5, "SendLocalList") == 5
    assert versions_for(5, 5, "SendLocalList") == 1
    with pytest.raises(CommandFailed) as caught:
        versions_for(6, 5, "SendLocalList")
    assert caught.value.code == CommandFailed.TOO_LARGE and "at least 6" in caught.value.description


@given(
    st.lists(st.text(max_size=30), max_size=40),
    st.one_of(st.none(), st.integers(1, 8)),
    st.one_of(st.none(), st.integers(150, 600)),
)
def test_split_keeps_every_item_once_in_order_within_both_limits(
    tokens: list[str], max_items: int | None, max_bytes: int | None
) -> None:
    items = [{"idTag": t} for t in tokens]
    try:
        parts = split(
            "SendLocalList", {"listVersion": 1}, "localAuthorizationList", items, max_items, max_bytes
        )
    except CommandFailed:
        assert max_bytes is not None
        assert any(
            frame_bytes("SendLocalList", {"listVersion": 1, "localAuthorizationList": [i]}) > max_bytes
            for i in items
        )
        return
    assert [i for p in parts for i in p] == items
    for part in parts:
        assert part or not items
        assert max_items is None or len(part) <= max_items
        size = frame_bytes("SendLocalList", {"listVersion": 1, "localAuthorizationList": part})
        assert max_bytes is None or size <= max_bytes
    assert json.loads(json.dumps(parts)) == parts
