"""One report for both runners: JUnit XML, a self-contained HTML page and JSON, and the exit status."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.model import CaseResult, Verdict

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SETUP", "Report"]

EXIT_OK, EXIT_FAILED, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class Report:
    """Every case result of one run, with what was tested and how the run ended."""

    runner: str  # "csms" or "charger"
    ocpp_version: str
    target: str  # the URL or listen address under test
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None
    results: list[CaseResult] = field(default_factory=list)
    interrupted: bool = False
    not_run: list[str] = field(default_factory=list)  # ids of the selected cases an interruption left unrun
    setup_error: str = ""  # a run-wide setup error (e.g. the charger never connected)

    @property
    def name(self) -> str:
        """The suite name, e.g. ``conformance-csms-1.6``."""
        return f"conformance-{self.runner}-{self.ocpp_version}"

    def counts(self, block: str | None = None) -> dict[str, int]:
        """How many cases (of ``block``, if given) ended with each verdict."""
        counter = Counter(str(r.verdict) for r in self.results if block is None or r.block == block)
        return {str(v): counter.get(str(v), 0) for v in Verdict}

    def blocks(self) -> list[str]:
        """Functional blocks in the order their first case ran."""
        return list(dict.fromkeys(r.block for r in self.results))

    def exit_status(self) -> int:
        """0 all passed (inconclusive and not applicable allowed), 1 a case failed, 2 a setup error."""
        if self.setup_error or any(r.verdict is Verdict.SETUP_ERROR for r in self.results):
            return EXIT_SETUP
        if any(r.verdict is Verdict.FAILED for r in self.results):
            return EXIT_FAILED
        return EXIT_INTERRUPTED if self.interrupted else EXIT_OK

    def summary_line(self) -> str:
        """One line for the terminal."""
        c = self.counts()
        parts = [f"{c[str(v)]} {v}" for v in Verdict if c[str(v)]]
        extra = " (interrupted: partial report)" if self.interrupted else ""
        setup = f"; setup error: {self.setup_error}" if self.setup_error else ""
        return f"{self.name}: {len(self.results)} cases: {', '.join(parts) or 'none run'}{extra}{setup}"

    # ---- JSON ------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The whole report as a JSON-ready dict."""
        return {
            "suite": self.name,
            "runner": self.runner,
            "ocpp_version": self.ocpp_version,
            "target": self.target,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "interrupted": self.interrupted,
            "not_run": self.not_run,
            "setup_error": self.setup_error,
            "exit_status": self.exit_status(),
            "summary": self.counts(),
            "blocks": {b: self.counts(b) for b in self.blocks()},
            "cases": [r.to_json() for r in self.results],
        }

    def write_json(self, path: str | Path) -> None:
        """Write the JSON report."""
        Path(path).write_text(
            json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    # ---- JUnit -----------------------------------------------------------------------------------------------

    def to_junit(self) -> str:
        """JUnit XML: one testcase per case (classname = block), failures, errors and skipped as JUnit knows them."""
        c = self.counts()
        suites = ET.Element("testsuites", name=self.name)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=self.name,
            tests=str(len(self.results)),
            failures=str(c["failed"]),
            errors=str(c["setup_error"]),
            skipped=str(c["inconclusive"] + c["not_applicable"]),
            timestamp=self.started.isoformat(),
            time=f"{sum(r.duration_s for r in self.results):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        meta = [("target", self.target), ("ocpp_version", self.ocpp_version)]
        if self.interrupted:
            meta += [("interrupted", "true"), ("not_run", ",".join(self.not_run))]
        for key, value in meta:
            ET.SubElement(props, "property", name=key, value=value)
        for r in self.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{self.name}.{r.block}",
                name=f"{r.id} {r.title}",
                time=f"{r.duration_s:.3f}",
            )
            if r.id_unconfirmed:
                ET.SubElement(
                    ET.SubElement(case, "properties"),
                    "property",
                    name="id_unconfirmed",
                    value=r.id_unconfirmed,
                )
            details = _steps_text(r) + "\n\n" + _trace_text(r)
            if r.verdict is Verdict.FAILED:
                ET.SubElement(case, "failure", message=r.reason, type="failed").text = details
            elif r.verdict is Verdict.SETUP_ERROR:
                ET.SubElement(case, "error", message=r.reason, type="setup_error").text = details
            elif r.verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_APPLICABLE):
                ET.SubElement(case, "skipped", message=f"{r.verdict}: {r.reason}")
            ET.SubElement(case, "system-out").text = details
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

    def write_junit(self, path: str | Path) -> None:
        """Write the JUnit XML report."""
        Path(path).write_text(self.to_junit(), encoding="utf-8")

    # ---- HTML ------------------------------------------------------------------------------------------------

    def to_html(self) -> str:
        """A self-contained HTML page: summary per block, then each case's steps and timestamped frame trace."""
        e = html.escape
        rows = []
        for block in self.blocks():
            c = self.counts(block)
            rows.append(
                f"<tr><td>{e(block)}</td>"
                + "".join(f'<td class="n {v}">{c[str(v)]}</td>' for v in Verdict)
                + "</tr>"
            )
        cases = []
        for r in self.results:
            steps = "".join(
                f'<li class="{s.verdict}"><span class="badge {s.verdict}">{e(str(s.verdict))}</span> '
                f"{e(s.title)}{(' &mdash; ' + e(s.reason)) if s.reason else ''}"
                f' <span class="t">{s.duration_s:.3f} s</span></li>'
                for s in r.steps
            )
            trace = "".join(
                f'<tr class="{e(t.direction)}"><td>{e(t.ts.isoformat(timespec="milliseconds"))}</td>'
                f"<td>{e(t.direction)}</td><td><code>{e(t.text)}</code></td></tr>"
                for t in r.trace
            )
            extra = "" if r.catalogue else ' <span class="x">(project check, not an OCTT id)</span>'
            if r.id_unconfirmed:
                extra += f' <span class="x" title="{e(r.id_unconfirmed)}">(id unconfirmed)</span>'
            cases.append(
                f'<details class="case {r.verdict}" id="{e(r.id)}"><summary>'
                f'<span class="badge {r.verdict}">{e(str(r.verdict))}</span> <b>{e(r.id)}</b> {e(r.title)}'
                f' <span class="blk">[{e(r.block)}]</span>{extra} <span class="t">{r.duration_s:.2f} s</span>'
                f"</summary>"
                f'<p class="reason">{e(r.reason)}</p><ol class="steps">{steps}</ol>'
                f'<table class="trace"><tr><th>time (UTC)</th><th>dir</th><th>frame / event</th></tr>{trace}</table>'
                f"</details>"
            )
        head = "".join(f"<th>{e(str(v))}</th>" for v in Verdict)
        total = self.counts()
        totals = "".join(f'<td class="n {v}">{total[str(v)]}</td>' for v in Verdict)
        status = {EXIT_OK: "PASSED", EXIT_FAILED: "FAILED", EXIT_SETUP: "SETUP ERROR"}.get(
            self.exit_status(), "INTERRUPTED"
        )
        notes = ""
        if self.interrupted:
            notes += "<p class='warn'>Interrupted: this report is partial.</p>"
        if self.setup_error:
            notes += f"<p class='warn'>Setup error: {e(self.setup_error)}</p>"
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(self.name)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
td.n {{ text-align: right; }} .badge {{ display: inline-block; min-width: 7em; padding: 0 4px; border-radius: 3px;
color: #fff; background: #777; font-size: 12px; text-align: center; }}
.badge.passed {{ background: #2a7a2a; }} .badge.failed {{ background: #b22; }}
.badge.inconclusive {{ background: #b80; }} .badge.setup_error {{ background: #639; }}
details.case {{ margin: 4px 0; border: 1px solid #ddd; padding: 2px 6px; }}
.t, .blk, .x {{ color: #666; font-size: 12px; }} .reason {{ font-weight: bold; }} .warn {{ color: #b22; }}
table.trace td {{ font-size: 12px; vertical-align: top; }} table.trace code {{ white-space: pre-wrap;
word-break: break-all; }} tr.sent td {{ background: #eef; }} tr.received td {{ background: #efe; }}
tr.event td {{ background: #f7f7f7; }}
</style></head><body>
<h1>{e(self.name)}: {status}</h1>
<p>Target: <code>{e(self.target)}</code>; OCPP {e(self.ocpp_version)}; started {e(self.started.isoformat())};
finished {e(self.finished.isoformat() if self.finished else "-")}; exit status {self.exit_status()}.</p>
{notes}
<h2>Summary per functional block</h2>
<table class="summary"><tr><th>block</th>{head}</tr>{"".join(rows)}<tr><th>total</th>{totals}</tr></table>
<h2>Cases</h2>
{"".join(cases)}
</body></html>
"""

    def write_html(self, path: str | Path) -> None:
        """Write the HTML report."""
        Path(path).write_text(self.to_html(), encoding="utf-8")

    def write(self, *, junit: str | None, html_path: str | None, json_path: str | None) -> None:
        """Write every report asked for."""
        if junit:
            self.write_junit(junit)
        if html_path:
            self.write_html(html_path)
        if json_path:
            self.write_json(json_path)


def _steps_text(r: CaseResult) -> str:
    """The steps of a case as plain text."""
    lines = [f"{r.id} {r.title}: {r.verdict}" + (f": {r.reason}" if r.reason else "")]
    lines += [f"  [{s.verdict}] {s.title}" + (f": {s.reason}" if s.reason else "") for s in r.steps]
    return "\n".join(lines)


def _trace_text(r: CaseResult) -> str:
    """The frame trace of a case as plain text."""
    arrows = {"sent": ">>", "received": "<<", "event": "--"}
    return "\n".join(
        f"{t.ts.isoformat(timespec='milliseconds')} {arrows.get(t.direction, '--')} {t.text}" for t in r.trace
    )
