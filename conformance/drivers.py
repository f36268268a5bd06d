"""Making the other side act: triggers (the central system sends a CALL) and actuation (a physical step).

Both come as a TOML profile (HTTP request templates, command templates) or as an operator prompt with a countdown.
Templates use ``{name}`` placeholders (unknown names are left alone, so JSON bodies need no escaping) and
``${ENV}`` / ``${ENV:-default}`` environment variables, resolved when the profile is loaded. A trigger's ``json``
table is a structured body instead (see `render`): a value that is one placeholder, ``"{payload.a.b}"``, takes the
step's parameter as JSON (number, object, list), ``?`` makes it optional, ``$each`` / ``$map`` / ``$value`` reshape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from conformance.model import Inconclusive

__all__ = [
    "POWER_STEPS",
    "Actuator",
    "CommandActuator",
    "InteractiveActuator",
    "InteractiveTrigger",
    "ProfileError",
    "Trigger",
    "TriggerFailed",
    "TriggerUnavailable",
    "WebhookTrigger",
    "fill",
    "kebab",
    "load_actuator",
    "load_trigger",
    "render",
]

PROFILES_DIR = Path(__file__).parent / "profiles"
COUNTDOWN_EVERY_S = 10.0  # an interactive prompt shows the time left this often
POWER_STEPS = ("power_cut", "power_restore")  # a profile's [process] provides both
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A structured placeholder: a dotted path (list items by index) from a root name, ``?`` when it may be missing.
_PATH = r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(\?)?"
_WHOLE = re.compile(r"\{" + _PATH + r"\}")
_DIRECTIVES = frozenset({"$value", "$each", "$item", "$map", "$to", "$default"})
_MISSING = object()  # an optional value that is absent: its key (or list item) is left out


class ProfileError(Exception):
    """A trigger or actuation profile cannot be used (bad TOML, unknown key, missing environment variable)."""


class TriggerUnavailable(Exception):
    """Nobody can make the central system send this action (no trigger, or the profile leaves it out)."""


class TriggerFailed(Exception):
    """The trigger was tried and did not work (HTTP error, unreachable endpoint)."""


def kebab(action: str) -> str:
    """``RemoteStartTransaction`` -> ``remote-start-transaction`` (the tzi-OCTT webhook spelling)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", action).lower()


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders that ``values`` knows; leave every other brace alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), template)


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``payload.chargingSchedule.0.id``), or _MISSING."""
    value: Any = values
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _placeholder(m: re.Match[str], values: Mapping[str, Any], where: str) -> Any:
    value = _lookup(values, m[1])
    if value is _MISSING and not m[2]:
        have = ", ".join(sorted(values["payload"])) if isinstance(values.get("payload"), Mapping) else ""
        raise ProfileError(
            f"{where}: the template needs {{{m[1]}}}, which this step does not give "
            f"(payload fields: {have or 'none'}; write {{{m[1]}?}} if it may be missing)"
        )
    return value


def render(template: Any, values: Mapping[str, Any], where: str = "json") -> Any:
    """A structured (``json``) template filled from ``values`` (``payload``, ``item``, ``cp``, profile vars ...).

    A string that is exactly one placeholder, ``"{payload.evseId}"``, becomes that value with its JSON type; one
    with text around placeholders is text (objects and lists in it as JSON). ``{path?}`` may be missing: the key
    (or list item) is then left out; a missing path without ``?`` is a ProfileError naming it. A table with
    ``$``-keys reshapes: ``{"$each" = "{payload.list}", "$item" = {...}}`` maps each element (``{item.x}``),
    ``{"$map" = "{payload.updateType}", "$to" = {Full = true}}`` translates a value, ``{"$value" = ...}`` takes
    one as is; each may have a ``"$default"`` used when its value is missing.
    """
    if isinstance(template, str):
        whole = _WHOLE.fullmatch(template)
        if whole:
            return _placeholder(whole, values, where)

        def text(m: re.Match[str]) -> str:
            value = _placeholder(m, values, where)
            if value is _MISSING:
                return ""
            return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

        return _WHOLE.sub(text, template)
    if isinstance(template, list):
        items = (render(v, values, f"{where}.{i}") for i, v in enumerate(template))
        return [v for v in items if v is not _MISSING]
    if isinstance(template, dict):
        if any(k.startswith("$") for k in template):
            return _directive(template, values, where)
        fields = ((k, render(v, values, f"{where}.{k}")) for k, v in template.items())
        return {k: v for k, v in fields if v is not _MISSING}
    return template


def _directive(table: dict[str, Any], values: Mapping[str, Any], where: str) -> Any:
    """One ``$each`` / ``$map`` / ``$value`` table of a structured template (see `render`)."""
    unknown = set(table) - _DIRECTIVES
    kinds = [k for k in ("$value", "$each", "$map") if k in table]
    if unknown or len(kinds) != 1:
        raise ProfileError(
            f"{where}: a $-table has exactly one of $value, $each, $map (with $item, $to, $default); "
            f"got {', '.join(sorted(table))}"
        )
    kind = kinds[0]
    value = render(table[kind], values, f"{where}.{kind}")
    if value is _MISSING:
        return table.get("$default", _MISSING)
    if kind == "$each":
        if not isinstance(value, list) or "$item" not in table:
            raise ProfileError(
                f"{where}: $each needs a list and an $item template, got {type(value).__name__}"
            )
        items = (render(table["$item"], {**values, "item": v}, f"{where}[{i}]") for i, v in enumerate(value))
        return [v for v in items if v is not _MISSING]
    if kind == "$map":
        to = table.get("$to")
        if not isinstance(to, dict) or not isinstance(value, str) or value not in to:
            raise ProfileError(f"{where}: $map has no $to entry for {value!r}")
        return to[value]
    return value


def _env(text: str, where: str) -> str:
    """Resolve ``${VAR}`` and ``${VAR:-default}``; a missing variable without a default is a ProfileError."""

    def one(m: re.Match[str]) -> str:
        value = os.environ.get(m[1])
        if value is None:
            if m[2] is None:
                raise ProfileError(f"{where}: environment variable {m[1]} is not set")
            return m[2]
        return value

    return _ENV.sub(one, text)


def _resolve(value: Any, where: str) -> Any:
    """Resolve environment variables in every string of a TOML value."""
    if isinstance(value, str):
        return _env(value, where)
    if isinstance(value, dict):
        return {k: _resolve(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, where) for v in value]
    return value


def _profile_path(name: str) -> Path:
    """A profile file, or a shipped profile by name (``bundled-csms``, ``tzi-octt``, ``chargepoint-agent`` ...)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = PROFILES_DIR / f"{name.removesuffix('.toml')}.toml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
    raise ProfileError(f"no profile file {name!r} (shipped profiles: {known})")


def _load_toml(name: str) -> tuple[Path, dict[str, Any]]:
    path = _profile_path(name)
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: {exc}") from None


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ProfileError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})"
        )


def _countdown_line(stream: IO[str], text: str) -> None:
    print(text, file=stream, flush=True)


# ------------------------------------------------------------------------------------------------- triggers


class Trigger:
    """Makes the central system under test send a CALL to the simulated charger."""

    interactive = False

    def available(self, action: str) -> bool:
        """Whether this trigger can ask for ``action`` at all."""
        return False

    async def fire(self, action: str, payload: dict[str, Any], cp_id: str) -> str:
        """Ask the central system to send ``action`` with ``payload`` to ``cp_id``; returns a note for the trace."""
        raise TriggerUnavailable(f"no trigger for {action}: give --trigger FILE or --interactive")


@dataclass
class _Request:
    method: str
    url: str
    body: str | None
    headers: dict[str, str]


@dataclass
class WebhookTrigger(Trigger):
    """An HTTP request per action, from a TOML profile (see conformance/profiles/*.toml)."""

    default: dict[str, Any] | None
    actions: dict[str, dict[str, Any]]
    values: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    source: str = ""

    def _template(self, action: str) -> dict[str, Any] | None:
        table = self.actions.get(action, self.default)
        if table is None or table.get("skip"):
            return None
        return table

    def available(self, action: str) -> bool:
        """Whether the profile maps ``action`` to a request."""
        return self._template(action) is not None

    def request(self, action: str, payload: dict[str, Any], cp_id: str) -> _Request:
        """The HTTP request for ``action`` (exposed for tests and --dry-run-like checks)."""
        table = self._template(action)
        if table is None:
            raise TriggerUnavailable(f"the trigger profile {self.source} has no request for {action}")
        values = {
            **self.values,
            "cp": cp_id,
            "action": action,
            "action_kebab": kebab(action),
            "payload": json.dumps(payload, separators=(",", ":")),
        }
        values.update({f"payload_{k}": str(v) for k, v in payload.items() if not isinstance(v, dict | list)})
        headers = {k: fill(v, values) for k, v in {**self.headers, **table.get("headers", {})}.items()}
        if "json" in table:
            # A structured body: parameters keep their JSON types, nested objects and lists included.
            where = f"{self.source} [actions.{action}.json]"
            body: str | None = json.dumps(
                render(table["json"], {**values, "payload": payload}, where), separators=(",", ":")
            )
        else:
            text = table.get("body", "{payload}")
            body = None if text is None else fill(str(text), values)
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        return _Request(
            str(table.get("method", "POST")).upper(), fill(str(table["url"]), values), body, headers
        )

    async def fire(self, action: str, payload: dict[str, Any], cp_id: str) -> str:
        """Send the HTTP request; a non-2xx answer or a network error is TriggerFailed."""
        req = self.request(action, payload, cp_id)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as http,
                http.request(req.method, req.url, data=req.body, headers=req.headers) as response,
            ):
                text = (await response.text())[:300]
                if response.status >= 300:
                    raise TriggerFailed(f"{req.method} {req.url} answered HTTP {response.status}: {text}")
                return f"trigger {req.method} {req.url} -> HTTP {response.status}: {text}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TriggerFailed(f"{req.method} {req.url} failed: {exc!r}") from None


class InteractiveTrigger(Trigger):
    """Asks the operator on the terminal to make the central system act; the runner shows a countdown."""

    interactive = True

    def __init__(self, stream: IO[str] | None = None) -> None:
        """Prompt on ``stream`` (stderr by default)."""
        self.stream = stream if stream is not None else sys.stderr

    def available(self, action: str) -> bool:
        """An operator can be asked for anything."""
        return True

    async def fire(self, action: str, payload: dict[str, Any], cp_id: str) -> str:
        """Print what the operator should make the central system do."""
        _countdown_line(
            self.stream,
            f"\n>>> Make the central system send {action} to {cp_id} with:\n    {json.dumps(payload)}",
        )
        return f"operator asked to send {action}"


def load_trigger(name: str, extra: Mapping[str, str] | None = None) -> WebhookTrigger:
    """Load a trigger profile: ``[http]`` (base_url, headers, timeout_s), ``[default]``, ``[actions.X]`` and
    ``[versions."V".actions.X]`` (used instead of ``[actions.X]`` when the runner's ``ocpp_version`` is V)."""
    path, data = _load_toml(name)
    where = str(path)
    _only(data, {"http", "default", "actions", "vars", "versions"}, where)
    data = _resolve(data, where)
    http = data.get("http", {})
    _only(http, {"base_url", "headers", "timeout_s"}, f"{where} [http]")
    values = {k: str(v) for k, v in data.get("vars", {}).items()}
    if "base_url" in http:
        values["base_url"] = str(http["base_url"]).rstrip("/")
    values.update(extra or {})
    allowed = {"method", "url", "body", "json", "headers", "skip"}
    default = data.get("default")
    if default is not None:
        _only(default, allowed, f"{where} [default]")
        if "url" not in default:
            raise ProfileError(f"{where} [default]: needs url")
    actions = dict(data.get("actions", {}))
    versions = data.get("versions", {})
    for version, scoped in versions.items():
        _only(scoped, {"actions"}, f'{where} [versions."{version}"]')
    actions.update(versions.get(values.get("ocpp_version", ""), {}).get("actions", {}))
    for action, table in actions.items():
        _only(table, allowed, f"{where} [actions.{action}]")
        if "body" in table and "json" in table:
            raise ProfileError(f"{where} [actions.{action}]: body (text) or json (structured), not both")
        if "url" not in table and not table.get("skip") and default is None:
            raise ProfileError(f"{where} [actions.{action}]: needs url")
        if default is not None and not table.get("skip"):
            # The action's own body kind wins over the default's.
            base = {
                k: v
                for k, v in default.items()
                if k not in ("body", "json") or not {"body", "json"} & set(table)
            }
            actions[action] = {**base, **table}
    return WebhookTrigger(
        default, actions, values, dict(http.get("headers", {})), float(http.get("timeout_s", 30)), where
    )


# ------------------------------------------------------------------------------------------------- actuation


class Actuator:
    """Carries out a physical step at the charger under test (plug in, swipe a card, unplug, fault a meter)."""

    interactive = False

    def available(self, step: str) -> bool:
        """Whether this actuator can do ``step``."""
        return False

    async def do(self, step: str, **params: str) -> str:
        """Carry out ``step``; returns a note for the trace; raises ProfileError if it cannot be done."""
        raise ProfileError(f"no actuation for {step}: give --actuate FILE or --interactive")

    async def start(self) -> str:
        """Power the charger on before the suite waits for it (only a profile with ``[process]`` does)."""
        return ""

    async def close(self) -> None:
        """Power the charger off after the suite (only what ``start`` started)."""


@dataclass
class CommandActuator(Actuator):
    """A command per step, from a TOML profile (see conformance/profiles/chargepoint-agent.toml)."""

    steps: dict[str, str]
    values: dict[str, str]
    timeout_s: float = 20.0
    source: str = ""
    process: str = ""  # [process] command: the charger itself, run by the suite; power_cut kills it
    process_log: str = ""  # where its stdout and stderr go (default: discarded)
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    def available(self, step: str) -> bool:
        """Whether the profile has a command for ``step`` (power steps also come with a ``[process]``)."""
        return bool(self.steps.get(step)) or (bool(self.process) and step in POWER_STEPS)

    async def start(self) -> str:
        """Start the ``[process]`` command (the charger is powered on); nothing without one."""
        if not self.process or (self._proc is not None and self._proc.returncode is None):
            return ""
        argv = [fill(arg, self.values) for arg in shlex.split(self.process)]
        log = fill(self.process_log, self.values) if self.process_log else ""
        try:
            out = await asyncio.to_thread(open, log, "ab") if log else None
            try:
                # Its own process group: stopping the charger stops what it started too (a wrapper script's
                # child), and the terminal's Ctrl-C reaches only the suite, which then stops the charger itself.
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out if out is not None else asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                if out is not None:
                    out.close()  # the child has its own copy
        except OSError as exc:
            raise ProfileError(f"{self.source} [process]: cannot start {shlex.join(argv)}: {exc}") from None
        return f"power on: started {shlex.join(argv)} (pid {self._proc.pid})"

    async def close(self) -> None:
        """Stop the ``[process]`` charger at the end of the suite (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.timeout_s):
                await proc.wait()
        except TimeoutError:
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
        _signal_group(proc, signal.SIGKILL)  # what the charger left behind in its group

    async def _power(self, step: str) -> str:
        """A power cut is SIGKILL of the ``[process]`` charger (nothing runs after it); a restore starts it again."""
        if step == "power_restore":
            return await self.start() or "power on: the charger process is already running"
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return "power cut: the charger process was not running"
        _signal_group(proc, signal.SIGKILL)
        await proc.wait()
        return f"power cut: killed pid {proc.pid}"

    def command(self, step: str, params: Mapping[str, str]) -> list[str]:
        """The argv for ``step`` (no shell: arguments are split like a POSIX shell would)."""
        template = self.steps.get(step)
        if not template:
            raise ProfileError(f"the actuation profile {self.source} has no command for {step!r}")
        return [fill(arg, {**self.values, **params}) for arg in shlex.split(template)]

    async def do(self, step: str, **params: str) -> str:
        """Run the command; a non-zero exit or a timeout is a ProfileError (a setup error for the case)."""
        if step in POWER_STEPS and not self.steps.get(step) and self.process:
            return await self._power(step)
        argv = self.command(step, params)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ProfileError(
                f"actuation {step!r} ({shlex.join(argv)}) did not finish in {self.timeout_s:g} s"
            ) from None
        text = out.decode(errors="replace").strip()[:300]
        if proc.returncode != 0:
            raise ProfileError(f"actuation {step!r} ({shlex.join(argv)}) exited {proc.returncode}: {text}")
        return f"actuation {step}: {shlex.join(argv)} -> {text}"


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``proc`` leads (gone already is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class InteractiveActuator(Actuator):
    """Asks the operator to do the step and press Enter (or waits out a countdown)."""

    interactive = True
    TEXTS: dict[str, str] = {
        "plug": "Plug an EV into connector {connector}",
        "unplug": "Unplug the EV from connector {connector}",
        "swipe": "Present card {id_tag} at connector {connector}",
        "meter_fault_on": "Make the meter of connector {connector} fail",
        "meter_fault_off": "Repair the meter of connector {connector}",
        "reader_fault_on": "Make the card reader of connector {connector} fail",
        "reader_fault_off": "Repair the card reader of connector {connector}",
        "power_cut": "Cut the charger's power (keep it off)",
        "power_restore": "Restore the charger's power",
    }

    def __init__(self, stream: IO[str] | None = None, wait_s: float = 60.0) -> None:
        """Prompt on ``stream`` (stderr by default); give the operator ``wait_s`` per step."""
        self.stream = stream if stream is not None else sys.stderr
        self.wait_s = wait_s

    def available(self, step: str) -> bool:
        """An operator can do any physical step."""
        return step in self.TEXTS

    async def do(self, step: str, **params: str) -> str:
        """Prompt with a countdown; Enter on stdin goes on, no answer in time is inconclusive."""
        text = fill(self.TEXTS.get(step, step), params)
        _countdown_line(self.stream, f"\n>>> {text}, then press Enter ({self.wait_s:g} s)")
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[None] = loop.create_future()

        def on_input() -> None:
            line = sys.stdin.readline()
            if not entered.done():
                if line:
                    entered.set_result(None)
                else:  # stdin closed: nobody will answer
                    loop.remove_reader(sys.stdin.fileno())

        # A reader callback, not a thread blocked in readline(): Ctrl-C must not wait for the operator's Enter.
        loop.add_reader(sys.stdin.fileno(), on_input)
        deadline = loop.time() + self.wait_s
        try:
            while not entered.done():
                left = deadline - loop.time()
                if left <= 0:
                    _countdown_line(self.stream, "    (time is up: the case is inconclusive)")
                    raise Inconclusive(f"nobody answered the prompt '{text}' within {self.wait_s:g} s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, COUNTDOWN_EVERY_S)):
                        await asyncio.shield(entered)
                if not entered.done() and deadline - loop.time() > 0:
                    _countdown_line(self.stream, f"    {deadline - loop.time():.0f} s left")
        finally:
            loop.remove_reader(sys.stdin.fileno())
        return f"operator asked: {text}"


def load_actuator(name: str, extra: Mapping[str, str] | None = None) -> CommandActuator:
    """Load an actuation profile: ``[vars]``, ``[steps]`` (step -> command template), ``timeout_s``."""
    path, data = _load_toml(name)
    where = str(path)
    _only(data, {"vars", "steps", "timeout_s", "process"}, where)
    # Variables given on the command line win, and a profile variable is only resolved if it is still needed.
    raw_vars = {k: v for k, v in data.get("vars", {}).items() if k not in (extra or {})}
    values = {
        "python": sys.executable,
        **{k: str(v) for k, v in _resolve(raw_vars, f"{where} [vars]").items()},
    }
    values.update(extra or {})
    steps = data.get("steps", {})
    if not isinstance(steps, dict) or not all(isinstance(v, str) for v in steps.values()):
        raise ProfileError(f"{where} [steps]: each step is a command string")
    process = data.get("process", {})
    _only(process, {"command", "log"}, f"{where} [process]")
    if process and not isinstance(process.get("command"), str):
        raise ProfileError(f"{where} [process]: needs command")
    process = _resolve(process, f"{where} [process]")
    return CommandActuator(
        dict(_resolve(steps, f"{where} [steps]")),
        values,
        float(data.get("timeout_s", 20)),
        where,
        process.get("command", ""),
        str(process.get("log", "")),
    )
