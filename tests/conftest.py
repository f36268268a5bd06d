"""Suite-wide fixtures: what every test process shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from backend_stub.store import records

# scrypt's cost parameter for passwords hashed by the tests' own processes. Production's 2**14 (~16 MiB, 50-175 ms a
# hash on these machines) is the point of a password hash, but the suite hashes thousands: every fleet test seeds
# 200-300 chargers and then the central system checks each password at boot, which made the fleet tests spend
# most of their time in scrypt. The hash keeps its format and stores its parameters, so verification (also in a
# central-system subprocess) runs the same code at the stored cost; a wrong password still fails; the cost of an
# unknown charger's dummy check stays production's. tests/unit/test_csms_store.py checks production's cost.
TEST_SCRYPT_N = 2**4
PRODUCTION_SCRYPT_N = records._SCRYPT_N


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashes() -> Iterator[None]:
    """Hash the tests' passwords at TEST_SCRYPT_N instead of production's cost (see above)."""
    with mock.patch.object(records, "_SCRYPT_N", TEST_SCRYPT_N):
        yield


# Run order. Under xdist (`--maxschedchunk 1`, pyproject.toml) each worker is handed the next test as it frees up, in
# this order: the whole-process tests marked slow (the longest take minutes of mostly wall-clock waiting) start
# first, and the many short unit tests come last to even out the end, so one worker does not run a long suite alone
# while the other idles. Within each rank the collection order (and so module fixtures' reuse) is kept.
TESTS = Path(__file__).parent
_DIRECTORY_RANK = {
    "conformance": 0,
    "simulator": 0,
    "load": 0,
    "integration": 1,
    "hardware": 1,
    "web": 1,
    "unit": 3,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, then by directory (process-level tests before property tests before unit tests)."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        inside = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        directory = inside[0] if len(inside) > 1 else ""  # ("<directory>", ..., "test_x.py")
        return (item.get_closest_marker("slow") is None, _DIRECTORY_RANK.get(directory, 2))

    items.sort(key=rank)
