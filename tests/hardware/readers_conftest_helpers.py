"""Emulated RFID hardware for the reader tests: pty pairs, a PN532 on the far end, pcscd + a virtual card.

Run as ``python -m tests.hardware.readers_conftest_helpers pcsc-ns DIR`` (inside ``unshare``) it is the
supervisor of a private pcscd and a vpcd virtual card, driven by line commands on stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from typing import IO

from chargepoint.errors import ReaderError
from chargepoint.ports import TokenReader
from hardware.serial_readers import (
    PN532_ACK,
    TFI_PN532,
    Pn532Decoder,
    pn532_encode,
    pn532_target_response,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
VPCD_PORT = 35963
# Private network (vpcd's port) and mount (/run) namespaces; --kill-child: nothing outlives the test's handle.
UNSHARE = ("unshare", "--net", "--mount", "--propagation", "private", "--kill-child", "--")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
# PC/SC part 3 ATR of a contactless MIFARE Classic 1K as a PC/SC reader presents it (T=1).
VICC_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")


# --------------------------------------------------------------------------------------------- collector


class TokenCollector:
    """Runs ``reader.tokens()`` in a task, like the station does; tokens and the final error land in a queue."""

    def __init__(self, reader: TokenReader) -> None:
        self.queue: asyncio.Queue[str | ReaderError | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(reader))

    async def _run(self, reader: TokenReader) -> None:
        try:
            async for token in reader.tokens():
                await self.queue.put(token)
        except ReaderError as exc:
            await self.queue.put(exc)

    async def next(self, timeout_s: float = 5.0) -> str | ReaderError | None:
        """The next token (None = ready) or the ReaderError that ended the iterator."""
        return await asyncio.wait_for(self.queue.get(), timeout_s)

    async def quiet_for(self, seconds: float) -> None:
        """Assert nothing is reported for ``seconds``."""
        await asyncio.sleep(seconds)
        assert self.queue.empty(), f"unexpected report: {self.queue.get_nowait()!r}"

    async def close(self) -> None:
        """Stop iterating (the driver's cleanup runs)."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


# --------------------------------------------------------------------------------------------- pty + PN532


class PtyPair:
    """A pseudo-terminal: the driver opens ``path``; the test (or an emulator) owns ``master``."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line discipline before pyserial configures the port
        self.path = os.ttyname(self._slave)
        self.closed = False

    def write(self, data: bytes) -> None:
        """Send ``data`` to the driver."""
        os.write(self.master, data)

    def read_available(self, timeout_s: float = 0.5) -> bytes:
        """What the driver wrote within ``timeout_s`` (b"" if nothing)."""
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:
            return b""

    def vanish(self) -> None:
        """Unplug: close both ends, so the driver's reads fail and the device node disappears."""
        if not self.closed:
            self.closed = True
            os.close(self.master)
            os.close(self._slave)


class EmulatedPn532:
    """A PN532 in HSU mode on the master end of a pty: ACKs every command and answers the ones we use."""

    def __init__(self, pty: PtyPair) -> None:
        self.pty = pty
        self.card_uid: bytes | None = None  # the card in the field now
        self.mute = False  # stop answering (a hung chip)
        self.commands: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pn532-emulator", daemon=True)

    def start(self) -> EmulatedPn532:
        """Start answering."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and wait for the thread."""
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        decoder = Pn532Decoder()
        while not self._stop.is_set() and not self.pty.closed:
            try:
                ready, _, _ = select.select([self.pty.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.pty.master, 4096)
            except (OSError, ValueError):
                return
            for frame in decoder.feed(data):
                if frame.kind != "data" or self.mute or len(frame.data) < 2:
                    continue
                command = frame.data[1]
                self.commands.append(command)
                reply = self._answer(command)
                with contextlib.suppress(OSError):
                    os.write(self.pty.master, PN532_ACK)
                    time.sleep(0.002)  # the real chip answers after the ACK, not in the same burst
                    os.write(self.pty.master, pn532_encode(reply))

    def _answer(self, command: int) -> bytes:
        if command == 0x4A:
            return pn532_target_response(self.card_uid)
        return bytes([TFI_PN532, command + 1])  # SAMConfiguration, RFConfiguration: empty success


# --------------------------------------------------------------------------------- pcscd in a namespace


def pcsc_unavailable_reason() -> str | None:
    """Why the pcscd namespace cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "needs root for unshare --net --mount"
    for tool in ("unshare", "pcscd", "mount", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not VPCD_DRIVER.exists():
        return f"vsmartcard-vpcd is not installed ({VPCD_DRIVER} missing)"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "true"], capture_output=True, timeout=10
    )
    if probe.returncode != 0:
        return f"unshare --net --mount failed: {probe.stderr.decode(errors='replace').strip()}"
    return None


class PcscNamespace:
    """A pcscd with the vpcd driver and a virtual card, in private network and mount namespaces.

    The supervisor (this module's ``pcsc-ns`` main) runs under ``unshare --net --mount``: it bind-mounts
    ``DIR/run`` over ``/run`` (pcscd 1.9 has its socket path compiled in), brings up ``lo`` and starts pcscd;
    vpcd's TCP port exists only in that namespace. The test process reaches pcscd through the socket file
    ``DIR/run/pcscd/pcscd.comm`` (a pathname UNIX socket works across network namespaces) named by
    ``PCSCLITE_CSOCK_NAME``.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket_path = base / "run" / "pcscd" / "pcscd.comm"
        self.log_path = base / "pcscd.log"
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the namespace and wait until pcscd serves the virtual reader."""
        (self.base / "run").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._proc = subprocess.Popen(
            [
                *UNSHARE,
                sys.executable,
                "-m",
                "tests.hardware.readers_conftest_helpers",
                "pcsc-ns",
                str(self.base),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._expect("ready", timeout_s)

    def command(self, line: str, timeout_s: float = 10.0) -> None:
        """Send one supervisor command (insert HEX | remove | stop-pcscd | start-pcscd) and wait for ok."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        self._expect("ok", timeout_s)

    def insert(self, uid_hex: str) -> None:
        """Put a card with this UID on the reader."""
        self.command(f"insert {uid_hex}")

    def remove(self) -> None:
        """Take the card away."""
        self.command("remove")

    def _expect(self, word: str, timeout_s: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        line = self._proc.stdout.readline().strip() if ready else "<timeout>"
        if line != word:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"pcsc namespace answered {line!r}, expected {word!r}; pcscd log:\n{log}")

    def close(self) -> None:
        """Stop the virtual card, pcscd and the namespace."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()  # --kill-child takes the supervisor (and its pdeathsig children) with it
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


# ---- inside the namespace


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: pcscd must not outlive the supervisor


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        data += chunk
    return data


def _vicc_serve(sock: socket.socket, uid: bytes) -> None:
    """Answer vpcd: 2-byte big-endian length + payload; 1-byte control codes, else a command APDU."""
    with contextlib.suppress(OSError, ConnectionError):
        while True:
            (length,) = struct.unpack(">H", _recv_exact(sock, 2))
            payload = _recv_exact(sock, length)
            if length == 1:
                if payload[0] == 0x04:  # get ATR; 0x00 power off, 0x01 power on, 0x02 reset need no answer
                    sock.sendall(struct.pack(">H", len(VICC_ATR)) + VICC_ATR)
                continue
            # GET DATA (UID) -> UID + 90 00; anything else -> 6D 00, INS not supported.
            answer = uid + b"\x90\x00" if payload[:4] == bytes.fromhex("FFCA0000") else b"\x6d\x00"
            sock.sendall(struct.pack(">H", len(answer)) + answer)


def _port_listening(port: int) -> bool:
    needle = f":{port:04X} 00000000:0000 0A"  # local port, any remote, state LISTEN
    return any(needle in Path(f).read_text() for f in ("/proc/net/tcp", "/proc/net/tcp6") if Path(f).exists())


def _start_pcscd(base: Path) -> subprocess.Popen[bytes]:
    conf = base / "reader.conf"
    conf.write_text(
        f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x{VPCD_PORT:04X}\n'
        f"LIBPATH {VPCD_DRIVER}\nCHANNELID 0x{VPCD_PORT:04X}\n"
    )
    socket_path = Path("/run/pcscd/pcscd.comm")
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    with contextlib.suppress(FileNotFoundError):
        Path("/run/pcscd/pcscd.pid").unlink()
    log = (base / "pcscd.log").open("ab")
    proc = subprocess.Popen(
        ["pcscd", "--foreground", "--config", str(conf), "--info"],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 8
    while not (socket_path.exists() and _port_listening(VPCD_PORT)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("pcscd did not come up")
        time.sleep(0.02)
    return proc


def _namespace_main(base: Path, out: IO[str]) -> None:
    # Private /run: pcscd writes /run/pcscd/pcscd.{comm,pid}; the test sees them under base/run.
    subprocess.run(["mount", "--bind", str(base / "run"), "/run"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    pcscd: subprocess.Popen[bytes] | None = _start_pcscd(base)
    card: socket.socket | None = None

    def remove_card() -> None:
        nonlocal card
        if card is not None:
            with contextlib.suppress(OSError):
                card.shutdown(socket.SHUT_RDWR)
            card.close()
            card = None

    def stop_pcscd() -> None:
        nonlocal pcscd
        if pcscd is not None:
            pcscd.terminate()
            try:
                pcscd.wait(5)
            except subprocess.TimeoutExpired:
                pcscd.kill()
                pcscd.wait()
            pcscd = None

    print("ready", file=out, flush=True)
    try:
        for line in sys.stdin:
            verb, _, arg = line.strip().partition(" ")
            if verb == "insert":
                remove_card()
                card = socket.create_connection(("127.0.0.1", VPCD_PORT), timeout=5)
                card.settimeout(None)
                threading.Thread(target=_vicc_serve, args=(card, bytes.fromhex(arg)), daemon=True).start()
            elif verb == "remove":
                remove_card()
            elif verb == "stop-pcscd":
                remove_card()
                stop_pcscd()
            elif verb == "start-pcscd":
                pcscd = _start_pcscd(base)
            elif (
                verb == "probe"
            ):  # is vpcd reachable from inside? (it must be, for the test to mean anything)
                print("ok" if _port_listening(VPCD_PORT) else "not-listening", file=out, flush=True)
                continue
            elif verb == "quit":
                break
            print("ok", file=out, flush=True)
    finally:
        remove_card()
        stop_pcscd()


if __name__ == "__main__":
    if sys.argv[1:2] == ["pcsc-ns"]:
        _namespace_main(Path(sys.argv[2]), sys.stdout)
    else:
        sys.exit(f"usage: {sys.argv[0]} pcsc-ns DIR")
