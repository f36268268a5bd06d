"""The agent's SQLite store against a real database file: atomic writes, FIFO outbox, overflow, auth data."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.core.events import (
    MeterReadings,
    OutboxKind,
    OutboxMessage,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from chargepoint.core.model import (
    AuthStatus,
    IdTagInfo,
    Measurand,
    ReadingContext,
    Sample,
    SampledValue,
    StopReason,
)
from chargepoint.errors import StorageError
from chargepoint.store import Store

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ACCEPTED = IdTagInfo(AuthStatus.ACCEPTED)
BLOCKED = IdTagInfo(AuthStatus.BLOCKED)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "agent.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


def start_event(cid: int, tag: str = "TAG1", meter: int = 0) -> TransactionStarted:
    return TransactionStarted(f"TX-{tag}", cid, tag, meter, T0)


def begin(store: Store, cid: int = 1, tag: str = "TAG1", meter: int = 1000) -> int:
    return store.begin_transaction(start_event(cid, tag, meter))


def update(n: int) -> TransactionUpdated:
    """A meter event told apart by its connector id."""
    return TransactionUpdated("TX", n, ())


def ended(meter_stop_wh: int, reason: StopReason = StopReason.LOCAL, cid: int = 1) -> TransactionEnded:
    return TransactionEnded("TX", cid, meter_stop_wh, T0, reason)


def stop_sample(energy_wh: float) -> Sample:
    return Sample(
        T0,
        ReadingContext.SAMPLE_PERIODIC,
        (SampledValue(Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, energy_wh),),
    )


def drain(store: Store) -> list[OutboxMessage]:
    out = []
    while (head := store.outbox_head()) is not None:
        out.append(head)
        store.acknowledge(head.seq)
    return out


def test_creates_parent_directory_and_uses_wal(db_path: Path, store: Store) -> None:
    assert db_path.is_file()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_begin_transaction_records_row_and_queues_start(store: Store) -> None:
    local_id = begin(store, cid=2, tag="ABC", meter=1500)
    (tx,) = store.active_transactions()
    assert (tx.local_id, tx.connector_id, tx.id_tag, tx.meter_start_wh) == (local_id, 2, "ABC", 1500)
    assert tx.started_at == T0 and tx.last_meter_wh == 1500 and tx.active
    assert tx.transaction_id == "TX-ABC" and store.csms_transaction_id(local_id) is None
    head = store.outbox_head()
    assert head is not None
    assert (head.kind, head.local_tx_id, head.attempts) == (OutboxKind.START, local_id, 0)
    assert head.event() == start_event(2, "ABC", 1500)


def test_begin_transaction_is_atomic(store: Store) -> None:
    """When the start message cannot be queued, no transaction row is left behind."""
    with pytest.raises(TypeError):
        store.begin_transaction(TransactionStarted("TX", 1, object(), 0, T0))  # type: ignore[arg-type]
    assert store.active_transactions() == []
    assert store.outbox_size() == 0
    assert store.transaction(1) is None  # the row inserted before the failure was rolled back
    local_id = begin(store)  # and the store is usable again, not stuck inside a transaction
    assert [tx.local_id for tx in store.active_transactions()] == [local_id]


def test_outbox_is_fifo_across_kinds(store: Store) -> None:
    a = begin(store, 1, "A")
    store.record_meter(a, 1100, T0, message=update(1))
    store.queue(MeterReadings(2, ()))
    b = begin(store, 2, "B")
    store.record_meter(b, 1200, T0, message=update(3))
    assert store.end_transaction(a, ended(1150))
    store.record_meter(b, 1300, T0, message=update(5))
    kinds = [(m.kind, m.local_tx_id) for m in drain(store)]
    assert kinds == [
        (OutboxKind.START, a),
        (OutboxKind.METER, a),
        (OutboxKind.METER, None),
        (OutboxKind.START, b),
        (OutboxKind.METER, b),
        (OutboxKind.STOP, a),
        (OutboxKind.METER, b),
    ]
    assert store.outbox_size() == 0


def test_acknowledge_removes_and_records_csms_id(store: Store) -> None:
    local_id = begin(store)
    head = store.outbox_head()
    assert head is not None
    store.acknowledge(head.seq, csms_tx_id=4711, local_tx_id=local_id)
    assert store.outbox_size() == 0
    tx = store.transaction(local_id)
    assert tx is not None and store.csms_transaction_id(local_id) == 4711
    by_csms = store.transaction_by_csms_id(4711)
    assert by_csms is not None and by_csms.local_id == local_id
    assert store.transaction_by_csms_id(1) is None


def test_acknowledge_unknown_seq_is_harmless(store: Store) -> None:
    begin(store)
    store.acknowledge(999)
    assert store.outbox_size() == 1


def test_record_meter_never_lowers_last_meter(store: Store) -> None:
    local_id = begin(store, meter=1000)
    store.record_meter(local_id, 1500, T0 + timedelta(minutes=1))
    store.record_meter(local_id, 1200, T0 + timedelta(minutes=2))
    tx = store.transaction(local_id)
    assert tx is not None and tx.last_meter_wh == 1500
    store.record_meter(local_id, 1600, T0 + timedelta(minutes=3))
    tx = store.transaction(local_id)
    assert tx is not None and tx.last_meter_wh == 1600 and tx.last_meter_at == T0 + timedelta(minutes=3)


def test_record_meter_appends_stop_data(store: Store) -> None:
    local_id = begin(store)
    store.record_meter(local_id, 1100, T0, stop_data=stop_sample(1))
    store.record_meter(local_id, 1200, T0, stop_data=stop_sample(2), message=update(1))
    tx = store.transaction(local_id)
    assert tx is not None and tx.stop_data == (stop_sample(1), stop_sample(2))
    assert [m.kind for m in drain(store)] == [OutboxKind.START, OutboxKind.METER]


def test_end_transaction_is_idempotent(store: Store) -> None:
    local_id = begin(store)
    # Writes are queued to the writer thread; their future gives the result once committed.
    assert store.end_transaction(local_id, ended(2000, StopReason.REMOTE)).result() is True
    assert store.end_transaction(local_id, ended(3000, StopReason.LOCAL)).result() is False
    assert [m.event() for m in drain(store)][1:] == [ended(2000, StopReason.REMOTE)]
    tx = store.transaction(local_id)
    assert tx is not None and not tx.active and tx.last_meter_wh == 2000
    assert store.active_transactions() == []
    assert store.end_transaction(12345, ended(0)).result() is False
    assert store.outbox_size() == 0


def test_overflow_drops_oldest_meter_values_never_start_or_stop(db_path: Path) -> None:
    store = Store(db_path, outbox_limit=10)
    local_id = begin(store)
    for n in range(20):
        store.record_meter(local_id, 1000 + n, T0, message=update(n))
    assert store.end_transaction(local_id, ended(1020))
    left = drain(store)
    assert [m.kind for m in left] == [OutboxKind.START] + [OutboxKind.METER] * 8 + [OutboxKind.STOP]
    assert [m.payload["connector_id"] for m in left if m.kind == OutboxKind.METER] == list(range(12, 20))
    dead = store.dead_letters()
    assert [d["kind"] for d in dead] == [OutboxKind.METER] * 12
    assert {d["reason"] for d in dead} == {"outbox overflow"}
    assert [d["seq"] for d in dead] == sorted(d["seq"] for d in dead)
    store.close()


def test_overflow_keeps_start_and_stop_even_past_the_limit(db_path: Path) -> None:
    store = Store(db_path, outbox_limit=10)
    ids = [begin(store, cid=1, tag=f"T{n}") for n in range(8)]
    for local_id in ids:
        store.end_transaction(local_id, ended(1000))
    assert store.outbox_size() == 16
    assert store.dead_letters() == []
    store.queue(MeterReadings(1, ()))  # nothing droppable but itself: the queue just grows
    assert store.outbox_size() == 17


def test_give_up_moves_to_dead_letters(store: Store) -> None:
    local_id = begin(store)
    head = store.outbox_head()
    assert head is not None
    assert store.count_attempt(head.seq).result() == 1
    assert store.count_attempt(head.seq).result() == 2
    store.give_up(head.seq, "CSMS refused")
    assert store.outbox_size() == 0
    (dead,) = store.dead_letters()
    assert (dead["seq"], dead["kind"], dead["local_tx_id"], dead["reason"]) == (
        head.seq,
        OutboxKind.START,
        local_id,
        "CSMS refused",
    )
    assert store.count_attempt(head.seq).result() == 0


def test_local_list_full_and_differential_updates(store: Store) -> None:
    assert store.local_list_version() == 0
    store.local_list_update(1, True, {"A": ACCEPTED, "B": BLOCKED, "C": ACCEPTED})
    assert store.local_list_version() == 1 and store.local_list_size() == 3
    store.local_list_update(2, False, {"B": ACCEPTED, "C": None, "D": BLOCKED})
    assert store.local_list_version() == 2
    assert {t: store.local_get(t) for t in "ABCD"} == {"A": ACCEPTED, "B": ACCEPTED, "C": None, "D": BLOCKED}
    store.local_list_update(3, True, {"E": ACCEPTED})
    assert store.local_list_size() == 1
    assert store.local_get("A") is None and store.local_get("E") == ACCEPTED
    store.local_list_update(4, True, {})
    assert store.local_list_size() == 0 and store.local_list_version() == 4


def test_local_list_ids_leave_the_auth_cache(store: Store) -> None:
    for tag in ("A", "B", "C", "D"):
        store.cache_put(tag, ACCEPTED)
    store.local_list_update(1, True, {"A": BLOCKED})
    store.local_list_update(2, False, {"B": ACCEPTED, "C": None})
    assert store.cache_get("A") is None
    assert store.cache_get("B") is None
    assert store.cache_get("C") is None  # a deletion also clears the stale cache entry
    assert store.cache_get("D") == ACCEPTED
    store.cache_clear()
    assert store.cache_get("D") is None


def test_cache_round_trips_expiry_and_parent(store: Store) -> None:
    info = IdTagInfo(AuthStatus.ACCEPTED, T0 + timedelta(days=1), "PARENT")
    store.cache_put("X", info)
    assert store.cache_get("X") == info
    store.cache_put("X", BLOCKED)
    assert store.cache_get("X") == BLOCKED


def test_data_survives_close_and_reopen(db_path: Path) -> None:
    store = Store(db_path)
    store.put_setting("heartbeat_interval_s", "42")
    store.put("operative.1", "0")
    local_id = begin(store, cid=1, tag="KEEP", meter=700)
    store.record_meter(local_id, 900, T0 + timedelta(minutes=5), message=update(1))
    store.cache_put("C", BLOCKED)
    store.local_list_update(7, True, {"L": ACCEPTED})
    store.queue(MeterReadings(1, ()))
    store.close()

    again = Store(db_path)
    assert again.settings() == {"heartbeat_interval_s": "42"}
    assert again.get("operative.1") == "0" and again.get("nope", "d") == "d"
    (tx,) = again.active_transactions()
    assert (tx.local_id, tx.id_tag, tx.last_meter_wh) == (local_id, "KEEP", 900)
    assert tx.last_meter_at == T0 + timedelta(minutes=5)
    assert [m.kind for m in drain(again)] == [OutboxKind.START, OutboxKind.METER, OutboxKind.METER]
    assert again.cache_get("C") == BLOCKED
    assert again.local_get("L") == ACCEPTED and again.local_list_version() == 7
    assert begin(again) > local_id  # ids are never reused
    again.close()


def test_directory_path_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        Store(tmp_path)


def test_garbage_file_is_a_storage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 400)
    with pytest.raises(StorageError):
        Store(junk)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_is_a_storage_error(db_path: Path) -> None:
    Store(db_path).close()
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db_path) + suffix)
        if p.exists():
            p.chmod(0o444)
    with pytest.raises(StorageError):
        s = Store(db_path)
        s.put("k", "v").result()


def test_read_only_database_write_is_a_storage_error_and_rolls_back(store: Store) -> None:
    # A read-only connection (what a read-only mount gives, even to root); query_only makes every write fail.
    # Writes are queued: their failure comes with their future, or with sync()/flush() from a mark().
    writer = store._file._wdb
    store.sync()
    writer.execute("PRAGMA query_only = ON")
    with pytest.raises(StorageError):
        store.put("k", "v").result()
    mark = store.mark()
    begin(store)
    with pytest.raises(StorageError):
        store.sync(since=mark)
    mark = store.mark()
    store.local_list_update(1, True, {"A": ACCEPTED})
    with pytest.raises(StorageError):
        store.sync(since=mark)
    writer.execute("PRAGMA query_only = OFF")
    assert not writer.in_transaction
    assert store.active_transactions() == [] and store.outbox_size() == 0 and store.local_list_version() == 0


def test_constraint_violation_is_a_storage_error(store: Store) -> None:
    mark = store.mark()
    store.begin_transaction(TransactionStarted("TX", 1, None, 0, T0))  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        store.sync(since=mark)
    assert store.active_transactions() == [] and store.outbox_size() == 0


def test_read_after_close_is_a_storage_error(db_path: Path) -> None:
    store = Store(db_path)
    store.close()
    with pytest.raises(StorageError):
        store.outbox_head()


def test_write_after_close_is_a_storage_error(db_path: Path) -> None:
    store = Store(db_path)
    store.close()
    with pytest.raises(StorageError):
        store.put("k", "v").result()


async def test_group_commit_many_concurrent_writes_fewer_commits_all_durable(db_path: Path) -> None:
    """Writes queued while a commit is on its way go into the next single transaction (one fsync); after flush()
    every one of them is on disk, as a second connection sees. A real lock holds the first commit back, so the
    batching does not depend on timing."""
    store = Store(db_path)
    store.sync()
    file = store._file
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # the writer's next commit waits here
    commits_before = file.commits
    writes = 500
    for n in range(writes):
        store.put(f"k{n}", str(n))  # returns at once: the event loop never waits for the disk
    local_id = begin(store)
    store.record_meter(local_id, 1234, T0, message=update(1))
    locker.execute("ROLLBACK")
    locker.close()
    await store.flush()
    assert file.commits - commits_before <= 3  # the first write alone, then the rest together
    with sqlite3.connect(db_path) as other:
        (count,) = other.execute("SELECT COUNT(*) FROM kv WHERE key LIKE 'k%'").fetchone()
        (meter,) = other.execute(
            "SELECT last_meter_wh FROM transactions WHERE local_id = ?", (local_id,)
        ).fetchone()
    assert count == writes and meter == 1234
    store.close()


async def test_a_failing_write_in_a_group_fails_alone(db_path: Path) -> None:
    """Each write of a group commit runs in its own savepoint: one that fails rolls back alone."""
    store = Store(db_path)
    store.sync()
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    good = store.put("before", "1")
    mark = store.mark()
    store.begin_transaction(TransactionStarted("TX", 1, None, 0, T0))  # type: ignore[arg-type]  # NOT NULL violated
    after = store.put("after", "2")
    locker.execute("ROLLBACK")
    locker.close()
    with pytest.raises(StorageError):
        await store.flush(since=mark)
    good.result()
    after.result()
    assert store.get("before") == "1" and store.get("after") == "2" and store.active_transactions() == []
    store.close()


async def test_a_write_whose_waiter_went_away_fails_nothing(db_path: Path) -> None:
    """A task awaiting a write (asyncio.wrap_future) may be cancelled; that does not cancel the write's future, the
    write itself stands and the other writes of its group still succeed (it once failed the whole batch)."""
    store = Store(db_path)
    store.sync()
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # hold the group back until every write is queued
    before = store.put("before", "1")
    mark = store.mark()
    abandoned = store.put("abandoned", "2")
    waiter = asyncio.ensure_future(asyncio.wrap_future(abandoned))
    await asyncio.sleep(0)
    waiter.cancel()  # wrap_future tries to cancel the concurrent future too: a queued write refuses
    after = store.put("after", "3")
    locker.execute("ROLLBACK")
    locker.close()
    await store.flush(since=mark)  # no StorageError
    before.result()
    after.result()
    abandoned.result()
    assert waiter.cancelled() and not abandoned.cancelled()
    assert (store.get("before"), store.get("abandoned"), store.get("after")) == ("1", "2", "3")
    store.close()


async def test_a_cancelled_flush_leaves_the_other_flushes_waiting(db_path: Path) -> None:
    """Two tasks flush the same pending write and one is cancelled (a sampler stopped as the driver's card stops
    the session): the other still waits for the commit and returns normally. The cancel once cancelled the write's
    future under both, so the card's stop died with CancelledError and its transaction stayed open."""
    store = Store(db_path)
    store.sync()
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # the write stays pending until the lock goes
    write = store.put("meter", "1")
    sampler = asyncio.ensure_future(store.flush())
    stopper = asyncio.ensure_future(store.flush())
    await asyncio.sleep(0)
    sampler.cancel()
    await asyncio.sleep(0)
    assert not stopper.done()  # still waiting for the commit, not cancelled with the sampler
    locker.execute("ROLLBACK")
    locker.close()
    await stopper  # returns; before the fix: CancelledError
    write.result()  # committed, not cancelled
    assert sampler.cancelled()
    assert store.get("meter") == "1"
    store.close()


def test_seq_no_numbers_a_transactions_messages_without_a_gap(store: Store) -> None:
    """0, 1, 2, ... per transaction as the central system acknowledges them; a dead letter leaves no gap."""
    a = begin(store, 1, "A")
    store.record_meter(a, 1100, T0, message=update(1))
    store.queue(MeterReadings(9, ()))
    b = begin(store, 2, "B")
    store.record_meter(a, 1200, T0, message=update(2))
    store.record_meter(a, 1300, T0, message=update(3))
    assert store.end_transaction(a, ended(1300))
    numbered: list[tuple[int | None, int | None]] = []
    while (head := store.outbox_head()) is not None:
        if head.kind == OutboxKind.METER and head.payload["connector_id"] == 2:
            store.give_up(head.seq, "refused")  # never delivered: it takes no number
            continue
        numbered.append((head.local_tx_id, head.seq_no))
        store.acknowledge(head.seq)
        store.acknowledge(head.seq)  # a repeated acknowledgement counts once
    assert numbered == [(a, 0), (a, 1), (None, None), (b, 0), (a, 2), (a, 3)]


def test_seq_no_survives_a_restart_and_a_resent_message_keeps_its_number(db_path: Path) -> None:
    store = Store(db_path)
    local_id = begin(store)
    store.record_meter(local_id, 1100, T0, message=update(1))
    store.record_meter(local_id, 1200, T0, message=update(2))
    head = store.outbox_head()
    assert head is not None and head.seq_no == 0
    store.acknowledge(head.seq)
    head = store.outbox_head()
    assert head is not None and head.seq_no == 1  # sent, then the agent dies before the answer
    store.close()

    again = Store(db_path)
    resent = again.outbox_head()
    assert resent is not None and (resent.seq, resent.seq_no) == (head.seq, 1)
    again.acknowledge(resent.seq)
    last = again.outbox_head()
    assert last is not None and last.seq_no == 2
    again.close()


def test_overflow_leaves_no_gap_in_seq_no(db_path: Path) -> None:
    store = Store(db_path, outbox_limit=5)
    local_id = begin(store)
    for n in range(10):
        store.record_meter(local_id, 1000 + n, T0, message=update(n))
    assert store.end_transaction(local_id, ended(1010))
    left = drain(store)
    assert len(left) == 5 and len(store.dead_letters()) == 7  # start, 3 of the 10 samples, stop
    assert [m.seq_no for m in left] == list(range(5))
    store.close()


def test_lookup_by_station_transaction_id_uses_an_index(db_path: Path) -> None:
    """2.0.1 addresses every transaction by the station's own id: finding it must not scan the whole table (a
    long-lived charger keeps thousands of finished transactions), on new files and on migrated old ones."""
    Store(str(db_path)).close()
    db = sqlite3.connect(db_path)
    plan = " ".join(
        str(row[-1])
        for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM transactions WHERE station = ? AND tx_id = ? "
            "ORDER BY local_id DESC LIMIT 1",
            ("", "tx-1"),
        )
    )
    db.close()
    assert "transactions_tx" in plan, plan
