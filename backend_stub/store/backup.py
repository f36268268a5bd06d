"""Online backup of a central-system store through SQLite's backup API, safe while the server writes."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from backend_stub.store.records import StoreError

BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote: the file, its size and pages, and SQLite's integrity check of it."""

    path: Path
    size_bytes: int
    pages: int
    integrity: str  # "ok", or the first problems PRAGMA integrity_check reported


def backup(db: str | Path, to: str | Path) -> BackupResult:
    """Copy ``db`` to ``to`` as one consistent snapshot, then check it; ``to`` appears only when complete.

    The copy runs in one step inside one read transaction: in WAL mode the server's writers carry on meanwhile,
    and the snapshot holds every transaction committed before it began (a step-wise copy would restart on
    every write by another connection and might never finish under load). Raises StoreError.
    """
    source_path, target = Path(db), Path(to)
    if not source_path.is_file():
        raise StoreError(f"no store at {source_path}")
    if target.resolve() == source_path.resolve():
        raise StoreError("the backup must go to another file than the store")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(source_path, timeout=BUSY_TIMEOUT_S)
        try:
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)
                # A single file: the copy carries the store's WAL mode; as a rollback-journal file it needs no
                # -wal/-shm next to it (restoring switches back to WAL at the first open).
                copy.execute("PRAGMA journal_mode=DELETE")
                problems = [row[0] for row in copy.execute("PRAGMA integrity_check(10)")]
                pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
            finally:
                copy.close()
        finally:
            source.close()
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backup of {source_path} to {target} failed: {exc}") from exc
    return BackupResult(target, target.stat().st_size, pages, "; ".join(problems))
