"""The charge point's WebSocket URL: a central system's base URL plus the charge point id, or a template.

OCPP-J 1.6 §3.1.1 puts the charge point identity last in the URL path (``ws://host/ocpp/CP-1``), and that is what a
plain base URL gets. Some central systems route ``/ocpp/CP-1/`` (a trailing slash) or take the id in the query
(``/ocpp?id=CP-1``); their URL is written with a ``{station_id}`` placeholder, and the id goes there instead.

Pure functions without I/O, shared by the agent's config and link, the fleet simulator and the Locust users.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlparse

PLACEHOLDER = "{station_id}"
_FIELD = re.compile(r"\{([^{}]*)\}")
# Characters of a charge point id that may stand in a URL path as they are (RFC 3986 §3.3 sub-delims and "@",
# plus "|", which ids have always been sent with raw): a plain base URL keeps the URL it always had.
_PATH_SAFE = "*+=@|"


def template_error(url: str) -> str | None:
    """Why ``url`` is not a usable base URL or ``{station_id}`` template, or None when it is."""
    try:
        parsed = urlparse(url)
        scheme, hostname, netloc, fragment = parsed.scheme, parsed.hostname, parsed.netloc, parsed.fragment
    except ValueError:
        scheme, hostname, netloc, fragment = "", None, "", ""
    if scheme not in ("ws", "wss") or not hostname:
        return f"must be a ws:// or wss:// URL, got {url!r}"
    try:
        port = parsed.port  # raises for a port that is not a number 0..65535
    except ValueError:
        # websockets raises the same ValueError at every connect, which is no network error: the link crashed.
        port = 0
    if port == 0:
        return f"has a port that is not a number 1..65535, got {url!r}"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return f"must not contain spaces or control characters, got {url!r}"
    if parsed.username is not None or parsed.password is not None:
        return f"must not carry user:password (set csms.password), got {url!r}"
    if fragment or "#" in url:
        # RFC 6455 §3: a WebSocket URI has no fragment; websockets refuses to connect to one.
        return f"must not have a #fragment, got {url!r}"
    for name in _FIELD.findall(url):
        if name != "station_id":
            return f"has an unknown placeholder {{{name}}}; the only one is {PLACEHOLDER}, got {url!r}"
    if "{" in _FIELD.sub("", url) or "}" in _FIELD.sub("", url):
        return f"has an unmatched brace; write the placeholder as {PLACEHOLDER}, got {url!r}"
    if "{" in netloc:
        return f"may have {PLACEHOLDER} in the path or query only, got {url!r}"
    return None


def normalize(url: str) -> str:
    """A validated base URL without trailing slashes (the id is appended after one); a template as written."""
    return url if PLACEHOLDER in url else url.rstrip("/")


def station_url(url: str, station_id: str) -> str:
    """The URL charge point ``station_id`` connects to: ``url/station_id``, or ``url`` with the id (URL-encoded)
    in place of every ``{station_id}``."""
    if PLACEHOLDER not in url:
        return f"{url.rstrip('/')}/{quote(station_id, safe=_PATH_SAFE)}"
    query_at = url.find("?")
    parts = url.split(PLACEHOLDER)
    out = [parts[0]]
    offset = len(parts[0])
    for part in parts[1:]:
        # In a query "+" reads as a space and "=", "&" split fields (HTML form encoding, which most servers
        # apply to the query): there the id is encoded completely.
        in_query = 0 <= query_at < offset
        out.append(quote(station_id, safe="" if in_query else _PATH_SAFE))
        out.append(part)
        offset += len(PLACEHOLDER) + len(part)
    return "".join(out)
