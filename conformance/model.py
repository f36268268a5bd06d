"""The case model both runners share: a case is data plus small step functions, and one verdict model."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from conformance.catalogue_ids import UNCONFIRMED

__all__ = [
    "Case",
    "CaseResult",
    "Fail",
    "Inconclusive",
    "NotApplicable",
    "SetupError",
    "Step",
    "StepResult",
    "TraceEntry",
    "Verdict",
]

Ctx = TypeVar("Ctx")


class Verdict(enum.StrEnum):
    """The outcome of one case (or step)."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"  # the case could not judge (a trigger or actuation nobody provided)
    NOT_APPLICABLE = "not_applicable"  # the system under test does not declare the feature
    SETUP_ERROR = "setup_error"  # the test setup is broken (a needed value is missing, a command failed)


class Outcome(Exception):
    """Raised by a step to end its case with a verdict other than passed."""

    verdict: Verdict = Verdict.FAILED

    def __init__(self, reason: str) -> None:
        """Keep the reason given to the user."""
        super().__init__(reason)
        self.reason = reason


class Fail(Outcome):
    """The system under test broke a rule; the reason cites what it did and the spec clause."""

    verdict = Verdict.FAILED


class Inconclusive(Outcome):
    """The case cannot judge (e.g. a step needs a trigger nobody provided)."""

    verdict = Verdict.INCONCLUSIVE


class NotApplicable(Outcome):
    """The system under test does not declare the feature this case tests."""

    verdict = Verdict.NOT_APPLICABLE


class SetupError(Outcome):
    """The test setup is broken (missing option, failing actuation command, nobody connected)."""

    verdict = Verdict.SETUP_ERROR


@dataclass(frozen=True)
class Step(Generic[Ctx]):
    """One step of a case: a title for the report and a small async function of the runner's context."""

    title: str
    run: Callable[[Ctx], Awaitable[None]]


@dataclass(frozen=True)
class Case(Generic[Ctx]):
    """A conformance case: catalogue id and title, functional block, setup needs, timeout and steps.

    ``needs`` names what the case requires from the setup (e.g. ``id_tag_blocked``, ``trigger``, ``plug``); the
    runner checks them before the run. ``cleanup`` steps always run, after a failure too.
    """

    id: str
    title: str
    block: str
    steps: tuple[Step[Ctx], ...]
    needs: frozenset[str] = frozenset()
    timeout_s: float = 60.0
    cleanup: tuple[Step[Ctx], ...] = ()
    catalogue: bool = True  # False: a stricter check of this project, not an OCTT test case id

    @property
    def id_unconfirmed(self) -> str:
        """Why this OCTT id (or its title) could not be confirmed in a public catalogue source ('' if it was)."""
        return UNCONFIRMED.get(self.id, "") if self.catalogue else ""


@dataclass
class TraceEntry:
    """One line of a case's frame trace: a frame or an event (handshake, trigger, actuation), timestamped."""

    ts: datetime
    direction: str  # "sent", "received", or "event"
    text: str

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict."""
        return {"ts": self.ts.isoformat(), "direction": self.direction, "text": self.text}


@dataclass
class StepResult:
    """What happened in one step."""

    title: str
    verdict: Verdict
    reason: str = ""
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The step as a JSON-ready dict."""
        return {
            "title": self.title,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class CaseResult:
    """The verdict of one case with its steps and its full frame trace."""

    id: str
    title: str
    block: str
    verdict: Verdict
    reason: str = ""
    started: datetime | None = None
    duration_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    trace: list[TraceEntry] = field(default_factory=list)
    catalogue: bool = True
    id_unconfirmed: str = ""  # why the OCTT id or title is not confirmed by a public source ('' if it is)

    def to_json(self) -> dict[str, Any]:
        """The case as a JSON-ready dict."""
        return {
            "id": self.id,
            "title": self.title,
            "block": self.block,
            "catalogue": self.catalogue,
            "id_unconfirmed": self.id_unconfirmed,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "started": self.started.isoformat() if self.started else None,
            "duration_s": round(self.duration_s, 3),
            "steps": [s.to_json() for s in self.steps],
            "trace": [t.to_json() for t in self.trace],
        }
