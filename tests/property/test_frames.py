"""Frame parsing never fails with anything but an OCPPError, whatever the central system sends."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult

from chargepoint.csms.v16.adapter import V16Session, ocpp_time, parse_time

unpack = V16Session._unpack
readable_unique_id = V16Session._readable_unique_id

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
message_type_ids = st.sampled_from([2, 3, 4, 2.0, 3.0, "2", True, 0, 5, -1, None])
frame_like = st.builds(lambda head, rest: [head, *rest], message_type_ids, st.lists(json_values, max_size=6))
valid_frames = st.sampled_from(
    [
        '[2,"abc","Reset",{"type":"Soft"}]',
        '[3,"abc",{"status":"Accepted"}]',
        '[4,"abc","NotImplemented","",{}]',
    ]
)


def _check(text: str) -> None:
    try:
        result = unpack(text)
    except OCPPError:
        pass
    else:
        assert isinstance(result, Call | CallResult | CallError)
        if isinstance(result, Call):
            assert isinstance(result.unique_id, str) and isinstance(result.action, str)
            assert isinstance(result.payload, dict)
        if isinstance(result, CallResult):
            assert isinstance(result.payload, dict)
    uid = readable_unique_id(text)
    assert uid is None or isinstance(uid, str)


@settings(max_examples=300)
@given(st.text())
@example("")
@example("[")
@example("[2]")
@example('[2,"id"]')
@example('[2,"id","A",{},"extra"]')
@example("[NaN]")
@example("{}")
@example('"text"')
@example('  [ 2 , "x\\u0000", ')
def test_unpack_arbitrary_text(text: str) -> None:
    _check(text)


@settings(max_examples=300)
@given(json_values | frame_like)
def test_unpack_arbitrary_json(value: Any) -> None:
    _check(json.dumps(value))


@settings(max_examples=200)
@given(valid_frames, st.data())
def test_unpack_truncated_or_spliced_frames(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(frame)))
    junk = data.draw(st.text(max_size=5))
    _check(frame[:cut])
    _check(frame[:cut] + junk + frame[cut:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[2,"id-1","Reset",{}]', "id-1"),
        ('[2, "id-2", "Reset"', "id-2"),  # not JSON, but the uniqueId is readable: answer with a CallError
        ('[3,"id-3",{}]', None),  # only CALLs are answered
        ("[2, 5, 'x']", None),
        ("garbage", None),
    ],
)
def test_readable_unique_id(text: str, expected: str | None) -> None:
    assert readable_unique_id(text) == expected


def test_unpack_deeply_nested_frame() -> None:
    """json.loads raises RecursionError, not JSONDecodeError, on deep nesting; it must become an OCPPError."""
    text = "[" * 100_000
    with pytest.raises(OCPPError):
        unpack(text)


def test_readable_unique_id_deeply_nested_frame() -> None:
    """The uniqueId fallback must not raise RecursionError either."""
    assert readable_unique_id('[2,"x",' + "[" * 100_000) in (None, "x")


def test_unpack_huge_integer_literal() -> None:
    """json.loads raises a plain ValueError past 4300 integer digits; it must become an OCPPError."""
    text = '[2,"id","DataTransfer",{"vendorId":"x","data":' + "9" * 5000 + "}]"
    with pytest.raises(OCPPError):
        unpack(text)


# --- timestamps -------------------------------------------------------------------------------------------

_OCPP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@settings(max_examples=300)
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2),
        max_value=datetime(2999, 12, 30),
        timezones=st.timezones(),
    )
)
def test_ocpp_time_round_trips_to_the_millisecond(when: datetime) -> None:
    text = ocpp_time(when)
    assert _OCPP_TIME.match(text), text
    parsed = parse_time(text)
    expected = when.astimezone(UTC)
    expected = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert parsed == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123Z", datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # naive: taken as UTC
    ],
)
def test_parse_time_examples(text: str, expected: datetime) -> None:
    got = parse_time(text)
    assert got == expected and got.tzinfo is not None
