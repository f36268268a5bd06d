"""The OCPP 2.0.1 central-system catalogue: the core module's cases and those of the conditional blocks D, H, K, M."""

from __future__ import annotations

from conformance.csms_runner import CsmsContext
from conformance.model import Case
from conformance.v201 import csms_blocks, csms_cases

__all__ = ["CASES"]

# By functional block, the catalogue's cases before this project's stricter ones, then by id: the M cases of both
# modules side by side in --list and in the reports.
CASES: list[Case[CsmsContext]] = sorted(
    [*csms_cases.CASES, *csms_blocks.CASES], key=lambda c: (c.block, not c.catalogue, c.id)
)
_ids = [c.id for c in CASES]
if len(set(_ids)) != len(_ids):
    raise RuntimeError(f"duplicate case ids: {sorted({i for i in _ids if _ids.count(i) > 1})}")
