"""Runs cases for either runner: setup needs checked first, one timeout per case, progress, partial reports."""

from __future__ import annotations

import asyncio
import fnmatch
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Protocol, TypeVar

from conformance.model import Case, CaseResult, Outcome, Step, StepResult, TraceEntry, Verdict
from conformance.report import Report

__all__ = ["BaseContext", "Progress", "missing_needs", "run_cases", "select_cases"]

CLEANUP_TIMEOUT_S = 15.0


@dataclass
class BaseContext:
    """What every runner's context has: the running case's trace, shared step variables and time scaling."""

    timeout_scale: float = 1.0
    trace: list[TraceEntry] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)

    def event(self, text: str) -> None:
        """Add a non-frame event (handshake, trigger, actuation, verdict note) to the trace."""
        self.trace.append(TraceEntry(datetime.now(UTC), "event", text))

    def scaled(self, seconds: float) -> float:
        """A wait scaled by ``--timeout-scale``."""
        return seconds * self.timeout_scale


class CaseHooks(Protocol):
    """What the engine calls around each case (the runner's context implements it)."""

    trace: list[TraceEntry]
    vars: dict[str, Any]
    timeout_scale: float

    def event(self, text: str) -> None:
        """Add an event to the trace."""

    async def begin_case(self, case: Case[Any]) -> None:
        """Prepare for a case (e.g. note where its part of the frame log starts)."""

    async def end_case(self, case: Case[Any]) -> None:
        """Tidy up after a case (close its connections, collect its frames into ``trace``)."""


class Progress:
    """Prints one line per case to a stream (stderr by default) while the suite runs."""

    def __init__(self, total: int, stream: IO[str] | None = None, quiet: bool = False) -> None:
        """Count from 1 to ``total``."""
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.index = 0

    def start(self, case: Case[Any]) -> None:
        """A case begins."""
        self.index += 1
        if not self.quiet:
            width = len(str(self.total))
            print(
                f"[{self.index:>{width}}/{self.total}] {case.id} {case.title} ...",
                file=self.stream,
                flush=True,
            )

    def done(self, result: CaseResult) -> None:
        """A case ended."""
        if not self.quiet:
            reason = f": {result.reason}" if result.reason else ""
            print(
                f"    {str(result.verdict).upper()} ({result.duration_s:.1f} s){reason}",
                file=self.stream,
                flush=True,
            )


Ctx = TypeVar("Ctx", bound=CaseHooks)


def select_cases(cases: Sequence[Case[Ctx]], pattern: str | None) -> list[Case[Ctx]]:
    """Cases whose id matches one of the comma-separated shell patterns (case-insensitive), all without one."""
    if not pattern:
        return list(cases)
    patterns = [p.strip().upper() for p in pattern.split(",") if p.strip()]
    return [
        c
        for c in cases
        if any(
            fnmatch.fnmatchcase(c.id.upper(), p) or fnmatch.fnmatchcase(c.block.upper(), p) for p in patterns
        )
    ]


def missing_needs(case: Case[Any], available: Iterable[str]) -> list[str]:
    """The setup needs of ``case`` the run does not have, sorted."""
    return sorted(case.needs - set(available))


async def _run_steps(ctx: Ctx, steps: tuple[Step[Ctx], ...], result: CaseResult) -> None:
    """Run steps in order until one ends the case; record each step."""
    for step in steps:
        began = time.monotonic()
        try:
            await step.run(ctx)
        except Outcome as outcome:
            result.steps.append(
                StepResult(step.title, outcome.verdict, outcome.reason, time.monotonic() - began)
            )
            result.verdict, result.reason = outcome.verdict, outcome.reason
            return
        except TimeoutError:
            result.steps.append(
                StepResult(step.title, Verdict.FAILED, "case timeout", time.monotonic() - began)
            )
            raise
        result.steps.append(StepResult(step.title, Verdict.PASSED, "", time.monotonic() - began))


async def _cleanup(ctx: Ctx, case: Case[Ctx], result: CaseResult) -> None:
    """Run the cleanup steps (each on its own) and then the runner's end-of-case hook, whatever happened."""
    limit_s = CLEANUP_TIMEOUT_S * ctx.timeout_scale
    for step in case.cleanup:
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(limit_s):
                await step.run(ctx)
            verdict, reason = Verdict.PASSED, ""
        except Outcome as outcome:
            verdict, reason = outcome.verdict, outcome.reason
        except Exception as exc:  # cleanup is best effort: it never changes the verdict
            verdict, reason = Verdict.INCONCLUSIVE, f"cleanup failed: {exc!r}"[:300]
        result.steps.append(StepResult(f"cleanup: {step.title}", verdict, reason, time.monotonic() - t0))
    try:
        async with asyncio.timeout(limit_s):
            await ctx.end_case(case)
    except Exception as exc:
        ctx.event(f"end of case hook failed: {exc!r}")


async def run_case(ctx: Ctx, case: Case[Ctx], unmet: dict[str, str]) -> CaseResult:
    """Run one case with its timeout and its cleanup steps; never raises but for cancellation."""
    result = CaseResult(
        case.id,
        case.title,
        case.block,
        Verdict.PASSED,
        started=datetime.now(UTC),
        catalogue=case.catalogue,
        id_unconfirmed=case.id_unconfirmed,
    )
    began = time.monotonic()
    ctx.trace = []
    ctx.vars = {}
    missing = [need for need in sorted(case.needs) if need in unmet]
    if missing:
        result.verdict = Verdict.INCONCLUSIVE
        result.reason = "setup: " + "; ".join(f"needs {unmet[n]}" for n in missing)
        return result
    timeout_s = case.timeout_s * ctx.timeout_scale
    try:
        await ctx.begin_case(case)
        async with asyncio.timeout(timeout_s):
            await _run_steps(ctx, case.steps, result)
    except TimeoutError:
        result.verdict = Verdict.FAILED
        result.reason = f"case timeout: not finished within {timeout_s:g} s"
    except Exception as exc:  # a bug in a step or an unexpected error: the case fails, the suite goes on
        result.verdict = Verdict.FAILED
        result.reason = f"unexpected error: {exc!r}"[:500]
    finally:
        await _cleanup(ctx, case, result)
        result.duration_s = time.monotonic() - began
        result.trace = ctx.trace
    return result


async def run_cases(
    ctx: Ctx,
    cases: Sequence[Case[Ctx]],
    report: Report,
    *,
    unmet: dict[str, str],
    progress: Progress | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Run ``cases`` in order into ``report``; a Ctrl-C (task cancellation) ends the run with a partial report.

    ``unmet`` maps each setup need the run lacks to the option that would provide it.
    """
    progress = progress or Progress(len(cases))
    for index, case in enumerate(cases):
        progress.start(case)
        try:
            result = await run_case(ctx, case, unmet)
        except asyncio.CancelledError:
            report.interrupted = True
            partial = CaseResult(
                case.id,
                case.title,
                case.block,
                Verdict.INCONCLUSIVE,
                "interrupted (Ctrl-C)",
                trace=ctx.trace,
                catalogue=case.catalogue,
                id_unconfirmed=case.id_unconfirmed,
            )
            report.results.append(partial)
            report.not_run = [c.id for c in cases[index + 1 :]]
            progress.done(partial)
            break
        report.results.append(result)
        progress.done(result)
        if on_result is not None:
            on_result(result)
    report.finished = datetime.now(UTC)
    return report
