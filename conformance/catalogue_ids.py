"""Which OCTT case ids of this suite could not be confirmed in a public source, and why.

The ids and titles were checked (2026-12) against public material: the OCA OCPP 2.0.1 Part 6 test case document
(FINAL 2023-06-30) and the OCPP 1.6 Compliancy Testing Tool test case document (trial 2025-06) as quoted per
case on ocpplab.com, the test case docstrings of tzi-OCTT (CSMS side, 1.6 and 2.0.1) and EVtivity's published
OCTT result lists (OCPP 1.6 charge point and CSMS, OCPP 2.1 charging station and CSMS, whose ids repeat the
2.0.1 ones). Every case id not listed here was found with its title (up to letter case and punctuation) in at
least one of them. A case listed here keeps its id, and `--list` and every report say "id unconfirmed".
"""

from __future__ import annotations

__all__ = ["UNCONFIRMED"]

UNCONFIRMED: dict[str, str] = {
    # OCPP 1.6, charge point side
    "TC_023_2_CS": (
        "the 1.6 test case document (2025-06) has one TC_023_CS (Authorize invalid); no public source lists an "
        "'Authorize expired' charge point case under this id"
    ),
    "TC_023_3_CS": (
        "the 1.6 test case document (2025-06) has one TC_023_CS (Authorize invalid); no public source lists an "
        "'Authorize blocked' charge point case under this id"
    ),
    "TC_032_1_CS": (
        "public titles differ ('Power failure - stop transaction(s) before going down' in one list); the title "
        "here is not confirmed"
    ),
    "TC_032_2_CS": (
        "public titles differ ('Power failure - stop transaction(s) after going down' in one list); the title "
        "here is not confirmed"
    ),
    "TC_046_CS": (
        "public lists have TC_046_1_CS / TC_046_2_CS (reservation, then a local / remote start); this case "
        "reserves and cancels without a transaction"
    ),
    "TC_061_CS": (
        "public lists disagree: TC_061_CS in some, TC_061_1_CS / TC_061_2_CS (local / remote) in others"
    ),
    # OCPP 1.6, central system side
    "TC_002_CSMS": "not in the public CSMS lists checked (tzi-OCTT, EVtivity); the charge point side has TC_002_CS",
    "TC_037_2_CSMS": (
        "the public CSMS lists have TC_037_1 and TC_037_3 only; this id mirrors TC_037_2_CS "
        "(StopTransactionOnInvalidId = false)"
    ),
}
