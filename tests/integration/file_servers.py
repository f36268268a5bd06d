"""Real file servers on 127.0.0.1 for firmware and diagnostics tests: HTTP (aiohttp) and FTP (pyftpdlib).

The HTTP server serves ``files`` by path (404 for anything else) and keeps what is PUT or POSTed in ``uploads``.
The FTP server is pyftpdlib in a thread, rooted in a temporary directory; a file whose name starts with
``truncated`` is sent only half-way, as by a server that stops mid-transfer (SIZE still gives its full size).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

FTP_USER, FTP_PASSWORD = "fw", "secret"


class HttpFiles:
    """An aiohttp server on 127.0.0.1 with files to GET and a place for uploads."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_uploads = 0  # answer this many uploads with 503 first
        self.slow_once: set[str] = (
            set()
        )  # paths sent slowly (1 KB per 50 ms) the first time they are asked for
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("GET", request.path))
        data = self.files.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        if request.path not in self.slow_once:
            return web.Response(body=data)
        self.slow_once.discard(request.path)
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        for start in range(0, len(data), 1024):
            await response.write(data[start : start + 1024])
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if self.fail_uploads > 0:
            self.fail_uploads -= 1
            raise web.HTTPServiceUnavailable()
        if request.method == "POST":
            form = await request.post()
            field: Any = form["file"]
            self.uploads[f"{request.path}/{field.filename}"] = field.file.read()
        else:
            self.uploads[request.path] = await request.read()
        return web.Response(status=201)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/{tail:.*}", self._get)
        app.router.add_put("/{tail:.*}", self._upload)
        app.router.add_post("/{tail:.*}", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _TruncatingFS(AbstractedFS):  # type: ignore[misc]
    """Sends only the first half of a file named ``truncated*``: a transfer the server breaks off."""

    def open(self, filename: str, mode: str) -> Any:
        f = super().open(filename, mode)
        if "r" in mode and Path(filename).name.startswith("truncated"):
            data = f.read()
            f.close()
            half = io.BytesIO(data[: len(data) // 2])
            half.name = filename
            return half
        return f


class FtpFiles:
    """pyftpdlib on 127.0.0.1 in a thread; ``root`` is what it serves and where uploads land."""

    def __init__(self, root: Path) -> None:
        self.root = root
        authorizer = DummyAuthorizer()
        authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmw")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "abstracted_fs": _TruncatingFS})
        handler.passive_ports = None
        self.server = FTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"timeout": 0.1}, daemon=True
        )

    def url(self, path: str, *, credentials: bool = True) -> str:
        auth = f"{FTP_USER}:{FTP_PASSWORD}@" if credentials else ""
        return f"ftp://{auth}127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.close_all()
        self._thread.join(5)


@pytest.fixture
async def http_files() -> AsyncIterator[HttpFiles]:
    server = HttpFiles()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def ftp_files(tmp_path: Path) -> Iterator[FtpFiles]:
    root = tmp_path / "ftp"
    root.mkdir()
    server = FtpFiles(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
