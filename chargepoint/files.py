"""The FilePort: HTTP(S)/FTP transfers, diagnostics archives, signature checks and the firmware installer.

Everything here touches the network, the disk or a subprocess, so nothing of it runs on the event loop's thread
except awaiting: HTTP through aiohttp, FTP through the standard library's ftplib in an executor (a thread per
transfer; no extra dependency, and ftplib's socket timeout bounds every stall), file writes and hashing in the
executor. Every transfer is bounded in size (``max_download_bytes``) and time (``transfer_timeout_s``); every
failure is a ``TransferError`` or ``InstallError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import glob
import hashlib
import io
import itertools
import json
import logging
import os
import re
import tarfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from chargepoint.config import FirmwareConfig
from chargepoint.core.file_jobs import shown
from chargepoint.errors import InstallError, TransferError

log = logging.getLogger(__name__)

SCHEMES = frozenset({"http", "https", "ftp"})
_FTP_ERRORS: tuple[type[BaseException], ...] = (*ftplib.all_errors, ValueError)
CHUNK_BYTES = 64 * 1024
MAX_VERSION_CHARS = 50  # OCPP 1.6 BootNotification firmwareVersion: CiString50Type
# Keys whose values never leave the charger in a diagnostics archive (passwords, AuthorizationKey, keys, tokens).
SECRET_KEY = re.compile(r"(?i)(pass(word|wd)?|secret|token|authori[sz]ation_?key|private|(^|_)key$)")
_ASSIGNMENT = re.compile(r'^(\s*"?([A-Za-z0-9_.\-]+)"?\s*=\s*)(.+)$')
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_LOG_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})")
SIMULATED_MAGIC = (
    b"FIRMWARE "  # a simulated image: "FIRMWARE <version>\n..." (version reported after the reboot)
)
SIMULATED_FAIL = b"FIRMWARE-FAIL"  # a simulated image the simulated installer refuses


def redact(text: str) -> str:
    """A configuration's text with the values of secret keys and any PEM private key replaced."""
    text = _PEM_PRIVATE.sub("-----REDACTED PRIVATE KEY-----", text)
    lines = []
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and SECRET_KEY.search(match.group(2)):
            line = f'{match.group(1)}"***"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def redact_mapping(values: dict[str, Any]) -> dict[str, Any]:
    """A mapping with the values of secret keys replaced."""
    return {k: ("***" if SECRET_KEY.search(k) else v) for k, v in values.items()}


def lines_between(text: str, start: datetime | None, stop: datetime | None) -> str:
    """The log lines stamped within [start, stop] (a line without a stamp goes with the line before it).

    Stamps are read as UTC: the agent logs in UTC (``logging`` asctime on a UTC machine, or ISO 8601)."""
    if start is None and stop is None:
        return text
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        match = _LOG_TIME.match(line)
        if match:
            try:
                when = datetime.fromisoformat(match.group(1).replace(" ", "T")).replace(tzinfo=UTC)
            except ValueError:
                when = None
            if when is not None:
                keep = (start is None or when >= start) and (stop is None or when <= stop)
        if keep:
            kept.append(line)
    return "".join(kept)


def _credentials(url: str) -> tuple[str, str, str, int | None, str]:
    """Scheme, user, password, port and unquoted path of a URL (anonymous FTP when it names no user)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise TransferError(f"bad port in {shown(url)}") from exc
    user = unquote(parts.username) if parts.username else "anonymous"
    password = unquote(parts.password) if parts.password else ("anonymous@" if user == "anonymous" else "")
    return parts.scheme.lower(), user, password, port, unquote(parts.path)


class FileTransfers:
    """The FilePort on aiohttp, ftplib, tarfile, cryptography and a subprocess."""

    def __init__(
        self,
        config: FirmwareConfig,
        *,
        simulated_hardware: bool,
        config_text: Callable[[], str] = str,
        store_summary: Callable[[], dict[str, Any]] = dict,
        manufacturer_roots: Callable[[], list[str]] | None = None,
    ) -> None:
        self.config = config
        self.simulated = config.installer == "simulated" or (
            config.installer == "auto" and not config.install_command and simulated_hardware
        )
        self._config_text = config_text
        self._store_summary = store_summary
        self._installed_roots = manufacturer_roots or list
        self._attempts = itertools.count(1)

    @property
    def directory(self) -> Path:
        """The work directory (downloads, archives)."""
        # Built when used, not kept: a Path per charger (its parsed parts, interned) is ~0.25 KB a fleet pays for
        # a directory that a charger touches only during a firmware or diagnostics job.
        return Path(self.config.directory)

    # helpers
    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _path(self, name: str) -> Path:
        # Names are ours (firmware.download, diagnostics-<id>-<time>.tar.gz), never the CSMS's.
        return self.directory / Path(name).name

    def supports(self, url: str) -> bool:
        """True for http, https and ftp URLs with a host."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        return parts.scheme.lower() in SCHEMES and bool(parts.hostname)

    def discard(self, path: str) -> None:
        """Remove a file of the work directory and its part files (missing is fine), off the event loop."""
        try:
            asyncio.get_running_loop().run_in_executor(None, self._remove, path)
        except RuntimeError:  # no loop running (a caller outside the agent)
            self._remove(path)

    def _remove(self, path: str) -> None:
        with contextlib.suppress(OSError):
            self._path(path).unlink()
        for part in self.directory.glob(f"{glob.escape(Path(path).name)}.*.part"):
            with contextlib.suppress(OSError):
                part.unlink()

    # download
    async def download(self, url: str, name: str) -> str:
        """Fetch ``url`` into ``name`` within the size and time bounds; the file's path."""
        if not self.supports(url):
            raise TransferError(f"unsupported location {shown(url)}")
        target = self._path(name)
        # A part file of its own per attempt: an FTP thread of a canceled download may still be writing its own.
        part = target.with_name(f"{target.name}.{next(self._attempts)}.part")
        aborted = threading.Event()  # tells an FTP thread to stop when its download is canceled
        await self._io(lambda: self.directory.mkdir(parents=True, exist_ok=True))
        try:
            if urlsplit(url).scheme.lower() == "ftp":
                await self._io(self._ftp_get, url, part, aborted)
            else:
                await self._http_get(url, part)
            await self._io(os.replace, part, target)
        except BaseException:
            aborted.set()
            await self._io(lambda: part.unlink(missing_ok=True))
            raise
        return str(target)

    async def _http_get(self, url: str, part: Path) -> None:
        import aiohttp  # imported on the first transfer: ~15 MB the agent does not carry until then

        limit = self.config.max_download_bytes
        timeout = aiohttp.ClientTimeout(total=self.config.transfer_timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, allow_redirects=True, max_redirects=5) as response,
            ):
                if response.status >= 400:
                    raise TransferError(f"HTTP {response.status} for {shown(url)}")
                if response.content_length is not None and response.content_length > limit:
                    raise TransferError(f"{response.content_length} bytes is more than {limit}")
                out = await self._io(part.open, "wb")
                try:
                    received = 0
                    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                        received += len(chunk)
                        if received > limit:
                            raise TransferError(f"more than {limit} bytes")
                        await self._io(out.write, chunk)
                    await self._io(_sync_close, out)
                finally:
                    out.close()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise TransferError(f"download of {shown(url)} failed: {type(exc).__name__}: {exc}") from exc

    def _ftp(self, url: str) -> tuple[ftplib.FTP, str]:
        _, user, password, port, path = _credentials(url)
        host = urlsplit(url).hostname or ""
        ftp = ftplib.FTP(timeout=min(self.config.transfer_timeout_s, 60.0))
        ftp.connect(host, port or 21)
        ftp.login(user, password)
        return ftp, path

    def _ftp_get(self, url: str, part: Path, aborted: threading.Event) -> None:
        """RETR in this (executor) thread, bounded in size and total time; the server's SIZE must match."""
        limit = self.config.max_download_bytes
        deadline = time.monotonic() + self.config.transfer_timeout_s
        try:
            ftp, path = self._ftp(url)
            try:
                ftp.voidcmd("TYPE I")
                expected = None
                with contextlib.suppress(ftplib.error_perm):
                    expected = ftp.size(path)
                if expected is not None and expected > limit:
                    raise TransferError(f"{expected} bytes is more than {limit}")
                received = 0
                with part.open("wb") as out:

                    def write(block: bytes) -> None:
                        nonlocal received
                        received += len(block)
                        if received > limit:
                            raise TransferError(f"more than {limit} bytes")
                        if time.monotonic() > deadline:
                            raise TransferError("transfer took too long")
                        if aborted.is_set():
                            raise TransferError("download canceled")
                        out.write(block)

                    ftp.retrbinary(f"RETR {path}", write, blocksize=CHUNK_BYTES)
                    out.flush()
                    os.fsync(out.fileno())
                if expected is not None and received != expected:
                    raise TransferError(f"transfer ended after {received} of {expected} bytes")
            finally:
                with contextlib.suppress(Exception):
                    ftp.close()
        except _FTP_ERRORS as exc:
            if isinstance(exc, TransferError):
                raise
            raise TransferError(f"FTP download failed: {type(exc).__name__}: {exc}") from exc

    # upload
    async def upload(self, path: str, url: str, file_name: str) -> None:
        """PUT/POST (HTTP) or STOR (FTP) the file at ``path`` as ``file_name``."""
        if not self.supports(url):
            raise TransferError(f"unsupported location {shown(url)}")
        if urlsplit(url).scheme.lower() == "ftp":
            await self._io(self._ftp_put, path, url, file_name)
            return
        import aiohttp

        data: bytes = await self._io(Path(path).read_bytes)
        target = url if not url.endswith("/") else url + file_name
        timeout = aiohttp.ClientTimeout(total=self.config.transfer_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                if self.config.upload_method == "POST":
                    form = aiohttp.FormData()
                    form.add_field("file", data, filename=file_name, content_type="application/gzip")
                    request = session.post(url, data=form)
                else:
                    request = session.put(target, data=data, headers={"Content-Type": "application/gzip"})
                async with request as response:
                    if response.status >= 400:
                        raise TransferError(f"HTTP {response.status} from {shown(url)}")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise TransferError(f"upload to {shown(url)} failed: {type(exc).__name__}: {exc}") from exc

    def _ftp_put(self, path: str, url: str, file_name: str) -> None:
        try:
            ftp, directory = self._ftp(url)
            try:
                # A location naming a directory (ending in /) gets the file's name; one naming a file is used as is.
                target = directory + file_name if not directory or directory.endswith("/") else directory
                with open(path, "rb") as data:
                    ftp.storbinary(f"STOR {target}", data, blocksize=CHUNK_BYTES)
            finally:
                with contextlib.suppress(Exception):
                    ftp.close()
        except _FTP_ERRORS as exc:
            raise TransferError(f"FTP upload failed: {type(exc).__name__}: {exc}") from exc

    # diagnostics
    async def build_archive(
        self, kind: str, file_name: str, start: datetime | None, stop: datetime | None
    ) -> str:
        """A tar.gz of the logs within [start, stop], the redacted configuration and a store summary."""
        try:
            summary = self._store_summary()  # store reads: on the loop, like every other read of the store
        except Exception as exc:
            log.exception("cannot collect the store summary")
            summary = {"error": f"{type(exc).__name__}"}
        patterns = self.config.security_log_files if kind == "security_log" else self.config.log_files
        target = self._path(file_name)
        try:
            await self._io(self._write_archive, target, patterns, start, stop, summary, kind)
        except (OSError, tarfile.TarError) as exc:
            raise TransferError(f"cannot build {file_name}: {exc}") from exc
        return str(target)

    def _write_archive(
        self,
        target: Path,
        patterns: tuple[str, ...],
        start: datetime | None,
        stop: datetime | None,
        summary: dict[str, Any],
        kind: str,
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w:gz") as tar:
            for pattern in patterns:
                for name in sorted(glob.glob(pattern)):
                    text = _tail(Path(name), self.config.max_log_bytes)
                    _add(tar, f"logs/{Path(name).name}", lines_between(text, start, stop).encode())
            if kind != "security_log":
                _add(tar, "config.toml", redact(self._config_text()).encode())
                _add(tar, "store-summary.json", json.dumps(summary, indent=2, default=str).encode())

    # signed firmware (Security whitepaper ed. 2 §4.4)
    def _roots(self) -> list[str]:
        """PEM bundles of the ManufacturerRootCertificates: installed ones, then the config file's."""
        bundles = list(self._installed_roots())
        path = self.config.manufacturer_roots
        if path is not None:
            try:
                bundles.append(Path(path).read_text(encoding="ascii"))
            except (OSError, UnicodeError):
                log.exception("cannot read the manufacturer root certificates")
        return bundles

    def check_signing_certificate(self, pem: str, now: datetime) -> str | None:
        """Why a firmware signing certificate is not trusted at ``now`` (``firmware_signing``)."""
        from chargepoint import (
            firmware_signing,  # cryptography is imported when firmware is signed, not at start
        )

        return firmware_signing.untrusted_because(pem, self._roots(), now)

    async def verify_signature(self, path: str, certificate_pem: str, signature_b64: str) -> bool:
        """True if the signature (base64) is the certificate's SHA-256 signature over the file."""
        from chargepoint import firmware_signing

        try:
            digest: bytes = await self._io(_sha256, path)
        except OSError:
            return False
        return firmware_signing.signature_verifies(digest, certificate_pem, signature_b64)

    # installing
    async def install(self, path: str) -> str | None:
        """Run the install hook (or the simulated installer); the version it reports (last stdout line)."""
        if self.config.install_command and not self.simulated:
            return await self._run_installer(path)
        if self.simulated:
            head: bytes = await self._io(_head, path)
            if head.startswith(SIMULATED_FAIL):
                raise InstallError("the simulated installer refused the image")
            if head.startswith(SIMULATED_MAGIC):
                return (
                    head[len(SIMULATED_MAGIC) :]
                    .split(b"\n", 1)[0]
                    .decode("ascii", "replace")
                    .strip()[:MAX_VERSION_CHARS]
                    or None
                )
            return None
        raise InstallError("no installer configured (firmware.install_command)")

    async def _run_installer(self, path: str) -> str | None:
        command = [*self.config.install_command, path]
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise InstallError(f"cannot run {command[0]!r}: {exc}") from exc
        try:
            async with asyncio.timeout(self.config.install_timeout_s):
                out, err = await proc.communicate()
        except TimeoutError as exc:
            await _kill(proc)
            raise InstallError(
                f"installer did not finish within {self.config.install_timeout_s:g} s"
            ) from exc
        except asyncio.CancelledError:
            await _kill(proc)  # the agent stops: the install is reported failed at the next start
            raise
        if proc.returncode != 0:
            raise InstallError(
                f"installer exited with {proc.returncode}: {err.decode(errors='replace')[-200:]}"
            )
        lines = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1][:MAX_VERSION_CHARS] if lines else None


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


def _sync_close(out: io.BufferedWriter) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()


def _sha256(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(128)


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path.name}: {exc.strerror})\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))
