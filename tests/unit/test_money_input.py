"""Amounts typed in the currency's own units become integer minor units at the boundary (issue 16 item 11)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backend_stub.web.formatting import format_amount_input, format_fee, parse_amount


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("5", "EUR", 500),
        ("5.5", "EUR", 550),
        ("5,50", "EUR", 550),
        (" 12.34 ", "EUR", 1234),
        ("0.01", "EUR", 1),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("0.595", "EUR"),  # more digits than the currency has
        ("5.", "EUR"),
        (".5", "EUR"),
        ("5.0", "JPY"),
        ("-5", "EUR"),
        ("1e3", "EUR"),
        ("NaN", "EUR"),
        ("Infinity", "EUR"),
        ("\u0665", "EUR"),  # an Arabic-Indic digit: ASCII only
        ("1 000", "EUR"),
        ("9" * 13, "EUR"),
        ("", "EUR"),
    ],
)
def test_parse_amount_refuses(text: str, currency: str) -> None:
    with pytest.raises(ValueError, match=f"in {currency}"):
        parse_amount(text, currency)


def test_amounts_shown_in_the_currencys_digits() -> None:
    assert format_amount_input(500, "EUR") == "5.00"
    assert format_amount_input(500, "JPY") == "500"
    assert format_fee(Decimal("0.595"), "EUR") == "0.60 EUR"
    assert format_fee(Decimal("0.594"), "EUR") == "0.59 EUR"
