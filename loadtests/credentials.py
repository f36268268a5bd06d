"""The credentials file of a load run: one CSV row per charger with its password and idTags.

Format (header required)::

    charge_point_id,password,id_tags
    LT-CP-00000,4cV0...,LT00000000;LT00000002
    LT-CP-00001,,LT00000001

An empty password connects without HTTP Basic auth (security profile 0); `id_tags` is a `;`-separated list the
charger picks from for each session. No gevent here: the seed command imports this too.
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Credential", "CredentialsError", "generate", "read_credentials", "write_credentials"]

HEADER = ("charge_point_id", "password", "id_tags")
MAX_ID_TAG_LENGTH = 20  # OCPP 1.6 IdToken is CiString20Type


class CredentialsError(ValueError):
    """The credentials file is missing, malformed or empty; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Credential:
    """One charger's identity: its id, its password (None: no auth) and the idTags it charges with."""

    cp_id: str
    password: str | None
    id_tags: tuple[str, ...]


def read_credentials(path: str | Path) -> list[Credential]:
    """Read and check a credentials file; raises CredentialsError."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or tuple(reader.fieldnames[:3]) != HEADER:
                raise CredentialsError(f"{path}: the header must be {','.join(HEADER)}")
            rows: list[Credential] = []
            seen: set[str] = set()
            for line, row in enumerate(reader, start=2):
                cp_id = (row["charge_point_id"] or "").strip()
                if not cp_id or "/" in cp_id:
                    raise CredentialsError(f"{path}:{line}: charge_point_id must be non-empty without '/'")
                if cp_id in seen:
                    raise CredentialsError(f"{path}:{line}: charge_point_id {cp_id!r} appears twice")
                seen.add(cp_id)
                tags = tuple(t.strip() for t in (row["id_tags"] or "").split(";") if t.strip())
                if not tags:
                    raise CredentialsError(f"{path}:{line}: {cp_id} has no id_tags")
                too_long = [t for t in tags if len(t) > MAX_ID_TAG_LENGTH]
                if too_long:
                    raise CredentialsError(
                        f"{path}:{line}: idTag {too_long[0]!r} is longer than 20 characters"
                    )
                rows.append(Credential(cp_id, row["password"] or None, tags))
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc}") from exc
    if not rows:
        raise CredentialsError(f"{path}: no chargers")
    return rows


def write_credentials(path: str | Path, rows: Iterable[Credential]) -> None:
    """Write a credentials file (readable by the owner only: it holds passwords)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow([row.cp_id, row.password or "", ";".join(row.id_tags)])


def generate(
    chargers: int,
    cards: int,
    *,
    prefix: str = "LT-CP-",
    tag_prefix: str = "LT",
    passwords: bool = True,
    fixed_password: str | None = None,
) -> list[Credential]:
    """Credentials for `chargers` chargers sharing `cards` idTags round-robin (card j goes to charger j % N,
    and every charger gets at least card i % M)."""
    if chargers < 1 or cards < 1:
        raise ValueError("need at least one charger and one card")
    width = max(5, len(str(chargers - 1)))
    tags = [f"{tag_prefix}{j:08X}" for j in range(cards)]
    if len(tags[-1]) > MAX_ID_TAG_LENGTH:
        raise ValueError(f"tag prefix {tag_prefix!r} makes idTags longer than 20 characters")
    per_charger: list[list[str]] = [[] for _ in range(chargers)]
    for j, tag in enumerate(tags):
        per_charger[j % chargers].append(tag)
    for i, own in enumerate(per_charger):
        if not own:
            own.append(tags[i % cards])
    return [
        Credential(
            f"{prefix}{i:0{width}d}",
            (fixed_password or secrets.token_urlsafe(18)) if passwords else None,
            tuple(own),
        )
        for i, own in enumerate(per_charger)
    ]


def partition(rows: Sequence[Credential], index: int, count: int) -> list[Credential]:
    """The rows one of `count` load-generator processes uses: every count-th row from `index`."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"process index {index} is outside 0..{count - 1}")
    return list(rows[index::count])
