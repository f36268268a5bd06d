"""A file server on 127.0.0.1 for the charger cases that make the charger download (firmware) or upload (logs)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["FileServer", "serve_files"]

MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # a charger cannot fill the runner's memory with an upload


@dataclass
class FileServer:
    """What the server offers (GET) and what it was sent (PUT or POST, by path)."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def serve_files(files: dict[str, bytes]) -> AsyncIterator[FileServer]:
    """Serve ``files`` (path -> bytes) over HTTP on an ephemeral 127.0.0.1 port while the block runs."""
    server = FileServer(files=dict(files))

    async def get(request: web.Request) -> web.Response:
        body = server.files.get(request.path)
        return web.Response(status=404) if body is None else web.Response(body=body)

    async def put(request: web.Request) -> web.Response:
        if len(server.uploads) >= 100:
            return web.Response(status=507)
        server.uploads[request.path] = await request.content.read(MAX_UPLOAD_BYTES)
        return web.Response(status=201)

    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    app.router.add_route("GET", "/{tail:.*}", get)
    app.router.add_route("PUT", "/{tail:.*}", put)
    app.router.add_route("POST", "/{tail:.*}", put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
