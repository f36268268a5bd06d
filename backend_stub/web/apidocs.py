"""Interactive REST API docs at ``/api/docs``: Swagger UI over ``/api/openapi.json``.

Swagger UI 5 (the first to read OpenAPI 3.1) comes from the ``swagger-ui-py`` package, whose static files are
served from this server: no CDN, so the docs work on a site without internet access and every script on the page
is from this origin. The package's own page is not used: it starts Swagger UI from an inline script, which the
dashboard's content security policy forbids. The page is public, as the
description is; trying a call needs the admin token (the Authorize button) or a dashboard session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import swagger_ui  # type: ignore[import-untyped]  # ships no type hints
from aiohttp import web

DOCS_PATH: Final = "/api/docs"
ASSETS_PATH: Final = DOCS_PATH + "/assets"
SWAGGER_UI_FILES: Final = Path(swagger_ui.__file__).parent / "static"

# As the dashboard's policy, but Swagger UI positions elements with inline style attributes (no inline script).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

PAGE: Final = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>REST API · Charging central system</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<script src="{ASSETS_PATH}/swagger-ui-bundle.js" defer></script>
<script src="/static/apidocs.js" defer></script>
</head>
<body>
<p><a href="/">Back to the dashboard</a></p>
<div id="swagger-ui" data-spec-url="/api/openapi.json"></div>
</body>
</html>
"""


def is_docs_path(path: str) -> bool:
    """Whether ``path`` is the docs page or one of its assets (public, like the OpenAPI description)."""
    return path == DOCS_PATH or path.startswith(DOCS_PATH + "/")


async def page(request: web.Request) -> web.Response:
    """GET /api/docs: the Swagger UI page."""
    return web.Response(text=PAGE, content_type="text/html", headers=SECURITY_HEADERS)


def setup(app: web.Application) -> None:
    """Register the docs page and Swagger UI's files."""
    app.router.add_get(DOCS_PATH, page)
    app.router.add_static(ASSETS_PATH + "/", SWAGGER_UI_FILES, name="apidocs")
