"""The version table: each OCPP version is one catalogue per runner plus its wire details (no other version ifs).

OCPP 2.0.1 is one more entry: its subprotocol, schema version, and its catalogues (TC_X_NN_CSMS cases written
against the same CSMS context; TC_X_NN_CS cases against the charger context of 2.0.1, which plays a 2.0.1 CSMS).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.model import Case

__all__ = ["VERSIONS", "OcppVersion", "by_schema"]


@dataclass(frozen=True)
class OcppVersion:
    """What a runner needs to know about one OCPP version."""

    name: str  # as given to --version
    subprotocol: str
    schema_version: str  # the version string ocpp.messages.validate_payload takes
    csms_catalogue: str  # module with CASES for the CSMS runner (we play the charger)
    charger_catalogue: str | None  # module with CASES for the charger runner (None: not written yet)
    charger_context_class: str = "conformance.charger_runner:ChargerContext"  # the CSMS we play, module:class
    request_form: str = "{action}.req"  # how failure texts name a request of this version
    response_form: str = "{action}.conf"  # ... and its answer

    def request_name(self, action: str) -> str:
        """``Reset.req`` (1.6) or ``ResetRequest`` (2.0.1)."""
        return self.request_form.format(action=action)

    def response_name(self, action: str) -> str:
        """``Reset.conf`` (1.6) or ``ResetResponse`` (2.0.1)."""
        return self.response_form.format(action=action)

    def csms_cases(self) -> Sequence[Case[Any]]:
        """The central-system cases of this version."""
        return list(importlib.import_module(self.csms_catalogue).CASES)

    def charger_cases(self) -> Sequence[Case[Any]]:
        """The charge-point cases of this version (none while its catalogue is not written)."""
        if self.charger_catalogue is None:
            return []
        return list(importlib.import_module(self.charger_catalogue).CASES)

    def charger_context(self) -> Any:
        """The charger runner's context class of this version (it plays this version's central system)."""
        module, _, name = self.charger_context_class.partition(":")
        return getattr(importlib.import_module(module), name)


VERSIONS: dict[str, OcppVersion] = {
    v.name: v
    for v in (
        OcppVersion("1.6", "ocpp1.6", "1.6", "conformance.v16.csms_cases", "conformance.v16.charger_cases"),
        OcppVersion(
            "2.0.1",
            "ocpp2.0.1",
            "2.0.1",
            "conformance.v201.csms_catalogue",
            "conformance.v201.charger_catalogue",
            "conformance.v201.charger:V201ChargerContext",
            "{action}Request",
            "{action}Response",
        ),
    )
}


def by_schema(schema_version: str) -> OcppVersion:
    """The version whose schema version string is ``schema_version``."""
    return next(v for v in VERSIONS.values() if v.schema_version == schema_version)
