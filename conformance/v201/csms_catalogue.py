"""The OCPP 2.0.1 central-system catalogue: the core module's cases, then the conditional blocks D, H, K and M."""

from __future__ import annotations

from conformance.csms_runner import CsmsContext
from conformance.model import Case
from conformance.v201 import csms_blocks, csms_cases

__all__ = ["CASES"]

CASES: list[Case[CsmsContext]] = [*csms_cases.CASES, *csms_blocks.CASES]
_ids = [c.id for c in CASES]
if len(set(_ids)) != len(_ids):
    raise RuntimeError(f"duplicate case ids: {sorted({i for i in _ids if _ids.count(i) > 1})}")
