"""The receipt log and market.sqlite: what a paid call keeps before it answers.

A write is kept once appended to the log (a killed process keeps it); the
flusher fsyncs the log and files it into SQLite; opening the files replays
what SQLite lacks. With sync_ms = 0 a write waits for the fsync covering it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.market import marketdb
from modelchain.market.marketdb import (
    MarketDB,
    MarketStoreError,
    ReceiptRow,
    decode_records,
    encode_record,
)

NEVER_MS = 3_600_000
"""A sync interval no test outlasts: the flusher runs only when asked (flush, close)."""


def receipt_row(i: int, *, channel: int | None = None, kind: str = "channel") -> ReceiptRow:
    """The i-th receipt: a voucher of 1000 + i on one of four channels, or a tx's."""
    return ReceiptRow(
        id=f"{i:064x}",
        created=1_700_000_000 + i,
        kind=kind,
        txid=f"{i:064x}"[::-1] if kind == "tx" else None,
        channel=f"{(i % 4 if channel is None else channel):064x}" if kind == "channel" else None,
        amount=1_000 + i if kind == "channel" else None,
        sig=f"{i:0128x}" if kind == "channel" else None,
        payer="ab" * 32,
        model="demo",
        version="1",
        height=i,
        body=f'{{"receipt":{i}}}',
    )


def write_rows(db: MarketDB, numbers: range) -> list[ReceiptRow]:
    """Write receipt_row(i) for each i, one write each; the rows written."""
    rows = [receipt_row(i) for i in numbers]
    for row in rows:
        db.write([row])
    return rows


@pytest.fixture
def open_db(tmp_path: Path) -> Iterator[Callable[..., MarketDB]]:
    """Opens MarketDBs on one path; each is closed at teardown (closing twice is fine)."""
    opened: list[MarketDB] = []

    def open_(sync_ms: int = NEVER_MS) -> MarketDB:
        db = MarketDB(tmp_path / "market.sqlite", sync_ms=sync_ms)
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()


def log_files(db: MarketDB) -> list[Path]:
    return sorted(db.log_dir.glob("*.log"))


def filed_ids(path: Path) -> set[str]:
    """Receipt ids in market.sqlite itself, read on a connection of the test's own."""
    conn = sqlite3.connect(str(path))
    try:
        return {row[0] for row in conn.execute("SELECT id FROM receipts")}
    finally:
        conn.close()


def abandon(db: MarketDB) -> None:
    """Leave `db` as a SIGKILL would: its flusher stopped without another pass, nothing
    more fsynced, filed or deleted; what it appended stays in the files (the page cache of
    a killed process), and its directory lock goes with it."""
    db.flush = lambda **_: None  # type: ignore[method-assign]
    db._stop.set()
    db._kick.set()
    db._flusher.join()
    db._closed = True
    for segment in db._segments:
        if segment.fd >= 0:
            os.close(segment.fd)
    db.db.conn.close()
    os.close(db._dir_lock)


def test_kept_receipt_is_readable_at_once_then_filed_and_its_log_deleted(
    open_db: Callable[..., MarketDB],
) -> None:
    db = open_db()
    rows = write_rows(db, range(6))
    assert filed_ids(db.path) == set()  # only in the log so far, and readable all the same
    assert db.receipt_body(rows[2].id) == rows[2].body
    assert db.receipt_ids(channel=rows[1].channel) == [rows[1].id, rows[5].id]
    assert {v.channel: v.amount for v in db.load_vouchers()} == {
        rows[i].channel: 1_000 + i for i in (2, 3, 4, 5)
    }
    db.flush()
    assert filed_ids(db.path) == {row.id for row in rows}
    assert db.receipt_body(rows[2].id) == rows[2].body
    assert db.receipt_ids(channel=rows[1].channel) == [rows[1].id, rows[5].id]
    db.close()
    assert log_files(db) == []


def test_receipt_of_a_tx_is_found_by_its_txid_before_and_after_filing(
    open_db: Callable[..., MarketDB],
) -> None:
    db = open_db()
    row = receipt_row(7, kind="tx")
    db.write([row])
    assert db.receipt_ids(txid=row.txid) == [row.id]
    assert db.receipt_ids(txid="00" * 32) == []
    db.flush()
    assert db.receipt_ids(txid=row.txid) == [row.id]


def test_flusher_files_the_log_within_its_interval(open_db: Callable[..., MarketDB]) -> None:
    db = open_db(sync_ms=5)
    db.write([receipt_row(1)])
    deadline = time.monotonic() + 10
    while receipt_row(1).id not in filed_ids(db.path):
        assert time.monotonic() < deadline, "the flusher did not file the receipt"
        time.sleep(0.005)
    assert db.syncs >= 1


def test_receipts_only_in_the_log_are_filed_when_the_files_are_opened_again(
    open_db: Callable[..., MarketDB],
) -> None:
    db = open_db()
    rows = write_rows(db, range(10))
    abandon(db)
    assert filed_ids(db.path) == set() and log_files(db)
    reopened = open_db()
    assert filed_ids(db.path) == {row.id for row in rows}
    assert [p.stat().st_size for p in log_files(reopened)] == [0]  # replayed, then emptied
    assert {v.channel: v.amount for v in reopened.load_vouchers()} == {
        rows[i].channel: 1_000 + i for i in (6, 7, 8, 9)
    }


WRITER = """
import sys
from pathlib import Path
from test_marketdb import receipt_row
from modelchain.market.marketdb import MarketDB

db = MarketDB(Path(sys.argv[1]), sync_ms=int(sys.argv[2]))
for i in range(100_000):
    db.write([receipt_row(i)])
    print(receipt_row(i).id, flush=True)
"""


def test_every_receipt_a_killed_process_kept_is_there_after_it(tmp_path: Path) -> None:
    """A real SIGKILL at a random point of a stream of writes: every write that
    returned (its id printed) is in market.sqlite once the files are opened again."""
    path = tmp_path / "market.sqlite"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    for kill_after in (1, 57, 400):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(NEVER_MS)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        kept = [proc.stdout.readline().strip() for _ in range(kill_after)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        db = MarketDB(path, sync_ms=NEVER_MS)
        try:
            assert set(kept) <= filed_ids(path)
            assert all(db.receipt_body(receipt_id) is not None for receipt_id in kept)
        finally:
            db.close()


def test_torn_record_at_the_end_of_the_log_is_dropped_and_the_rest_filed(
    open_db: Callable[..., MarketDB],
) -> None:
    db = open_db()
    rows = write_rows(db, range(3))
    abandon(db)
    (segment,) = log_files(db)
    with segment.open("ab") as f:  # a power cut in the middle of the next append
        f.write(encode_record([receipt_row(3)])[:-5])
    reopened = open_db()
    assert filed_ids(db.path) == {row.id for row in rows}
    reopened.write([receipt_row(4)])  # the log goes on
    reopened.close()
    assert filed_ids(db.path) == {row.id for row in rows} | {receipt_row(4).id}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=10_000),
    st.binary(max_size=16),
)
def test_decoding_a_cut_log_gives_exactly_its_whole_records(
    sizes: list[int], cut: int, tail: bytes
) -> None:
    records = [[receipt_row(10 * n + i) for i in range(size)] for n, size in enumerate(sizes)]
    data = b"".join(encode_record(rows) for rows in records)
    cut = min(cut, len(data))
    rows, withdrawn, used = decode_records(data[:cut] + (tail if cut < len(data) else b""))
    assert withdrawn == set()
    ends = [len(b"".join(encode_record(r) for r in records[: n + 1])) for n in range(len(records))]
    whole = sum(1 for end in ends if end <= cut)
    assert rows == [row for record in records[:whole] for row in record]
    assert used == (ends[whole - 1] if whole else 0)


_texts = st.text(st.characters(codec="utf-8"), max_size=12)


@given(
    st.lists(
        st.builds(
            ReceiptRow,
            id=_texts,
            created=st.integers(0, 2**40),
            kind=st.sampled_from(["tx", "channel", "a\tb"]),
            txid=st.none() | _texts,
            channel=st.none() | _texts,
            amount=st.none() | st.integers(1, 2**62),
            sig=st.none() | _texts,
            payer=_texts,
            model=_texts,
            version=_texts,
            height=st.integers(0, 2**31),
            body=st.text(st.characters(codec="utf-8"), max_size=40),
        ),
        max_size=3,
    )
)
def test_any_rows_come_back_from_the_log_as_they_were_written(rows: list[ReceiptRow]) -> None:
    """Tabs, NULs, the None marker or empty strings in any field do not garble a row."""
    record = encode_record(rows)
    assert decode_records(record) == (rows, set(), len(record))


def test_a_receipt_is_logged_tab_separated_and_an_older_json_record_still_replays() -> None:
    rows = [receipt_row(1), receipt_row(2, kind="tx")]
    record = encode_record(rows)
    assert record[8:9] == b"\x01"  # after the length and the crc32
    assert record.count(b"\t") == 22
    old = json.dumps(rows, separators=(",", ":")).encode()  # how logs were written before
    framed = struct.pack(">II", len(old), zlib.crc32(old)) + old
    assert decode_records(framed + record) == (rows + rows, set(), len(framed) + len(record))


def test_failed_append_keeps_nothing_and_the_log_goes_on(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db()
    db.write([receipt_row(0)])

    def half_then_full(fd: int, record: bytes) -> None:
        os.write(fd, record[: len(record) // 2])  # a short write: disk full part way
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(marketdb, "append_record", half_then_full)
        with pytest.raises(MarketStoreError, match="No space left"):
            db.write([receipt_row(1)])
    assert db.receipt_body(receipt_row(1).id) is None
    db.write([receipt_row(2)])
    abandon(db)  # the half-written record was cut off: the one after it reads back
    open_db()
    assert filed_ids(db.path) == {receipt_row(0).id, receipt_row(2).id}


class _BrokenConnection:
    """A connection whose writes fail as a full disk would."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, params)

    def close(self) -> None:
        self.conn.close()


def test_failed_filing_keeps_the_receipts_in_the_log_and_files_them_later(
    open_db: Callable[..., MarketDB],
) -> None:
    db = open_db()
    rows = write_rows(db, range(4))
    working = db.db.conn
    db.db.conn = _BrokenConnection(working)  # type: ignore[assignment]
    try:
        with pytest.raises(sqlite3.OperationalError):
            db.flush()  # the flusher logs it and carries on; nothing is lost
    finally:
        db.db.conn = working
    assert filed_ids(db.path) == set()
    assert db.receipt_body(rows[3].id) == rows[3].body and log_files(db)
    db.write([receipt_row(4)])
    db.flush()  # files the failed batch first, then the new write
    assert filed_ids(db.path) == {row.id for row in rows} | {receipt_row(4).id}


def test_with_sync_ms_0_concurrent_writes_share_fsyncs_and_return_only_once_synced(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    synced: list[int] = []
    fdatasync = os.fdatasync

    def held_fdatasync(fd: int) -> None:
        gate.wait(10)
        fdatasync(fd)
        synced.append(fd)

    monkeypatch.setattr(marketdb.os, "fdatasync", held_fdatasync)
    db = open_db(sync_ms=0)
    returned: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: (db.write([receipt_row(i)]), returned.append(i)))
        for i in range(32)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while db.waiting < 32 and not returned:
        assert time.monotonic() < deadline, "the writes did not all wait"
        time.sleep(0.001)
    assert returned == []  # none answers before an fsync
    gate.set()
    for thread in threads:
        thread.join(10)
    assert sorted(returned) == list(range(32))
    assert 1 <= len(synced) <= 2  # the first write's fsync may have started alone


def test_failed_fsync_refuses_the_waiting_writes_keeps_none_and_takes_no_more(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db(sync_ms=0)
    db.write([receipt_row(0)])

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(marketdb.os, "fdatasync", eio)
        with pytest.raises(MarketStoreError, match="failed to sync"):
            db.write([receipt_row(1)])
    assert db.receipt_body(receipt_row(1).id) is None
    with pytest.raises(MarketStoreError, match="failed to sync"):
        db.write([receipt_row(2)])
    abandon(db)
    open_db()
    assert filed_ids(db.path) == {receipt_row(0).id}


def test_failed_fsync_after_answers_still_files_what_was_answered(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db()  # sync_ms > 0: a write answers before its fsync
    db.write([receipt_row(0)])
    with monkeypatch.context() as patch:
        patch.setattr(marketdb.os, "fdatasync", lambda fd: (_ for _ in ()).throw(OSError(5, "EIO")))
        db.flush()
    with pytest.raises(MarketStoreError, match="failed to sync"):
        db.write([receipt_row(1)])
    db.flush()
    assert filed_ids(db.path) == {receipt_row(0).id}


def test_full_segments_are_closed_and_deleted_once_filed(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marketdb, "SEGMENT_BYTES", 600)
    db = open_db()
    write_rows(db, range(3))
    db.flush()  # past the size: a new segment is started
    assert [p.name for p in log_files(db)] == ["00000001.log", "00000002.log"]
    db.write([receipt_row(3)])
    db.flush()  # the first one's receipts are all filed: it goes
    assert [p.name for p in log_files(db)] == ["00000002.log"]
    assert filed_ids(db.path) == {receipt_row(i).id for i in range(4)}


def test_closed_files_take_no_write(open_db: Callable[..., MarketDB]) -> None:
    db = open_db()
    db.close()
    with pytest.raises(MarketStoreError, match="closed"):
        db.write([receipt_row(0)])


def test_negative_sync_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync_ms"):
        MarketDB(tmp_path / "market.sqlite", sync_ms=-1)


def test_a_new_segment_that_cannot_be_made_leaves_every_receipt_kept(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marketdb, "SEGMENT_BYTES", 600)
    db = open_db()
    write_rows(db, range(3))

    def no_room(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(marketdb, "_Segment", no_room)
        with pytest.raises(OSError):
            db.flush()  # filed, but the next segment could not be started
    for i in range(3, 6):
        db.write([receipt_row(i)])  # the full segment takes them all the same
    db.flush()
    db.write([receipt_row(6)])
    abandon(db)
    open_db()
    assert filed_ids(db.path) == {receipt_row(i).id for i in range(7)}


def test_a_second_process_cannot_open_a_log_in_use(open_db: Callable[..., MarketDB]) -> None:
    db = open_db()
    with pytest.raises(MarketStoreError, match="in use by another modelchain node") as err:
        open_db()  # a second node on the same data directory would delete this one's log
    assert err.value.code == "node-data-in-use"
    db.close()
    open_db().write([receipt_row(0)])


def test_a_directory_that_cannot_be_locked_is_a_store_failure_not_in_use(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(marketdb.fcntl, "flock", no_locks)
    with pytest.raises(MarketStoreError, match="cannot lock") as err:
        open_db()
    assert err.value.code == "market-store-failed"


def test_with_sync_ms_0_a_write_whose_fsync_times_out_is_withdrawn_and_never_filed(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db(sync_ms=0)
    db.write([receipt_row(0)])
    gate = threading.Event()
    fdatasync = os.fdatasync

    def hung_disk(fd: int) -> None:
        gate.wait(10)
        fdatasync(fd)

    monkeypatch.setattr(marketdb, "WRITE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(marketdb.os, "fdatasync", hung_disk)
    with pytest.raises(MarketStoreError, match="no fsync within"):
        db.write([receipt_row(1)])  # the caller answers 503: its voucher must never count
    assert db.receipt_body(receipt_row(1).id) is None
    gate.set()
    db.flush()  # the fsync under way finishes; the withdrawn write is still not filed
    assert filed_ids(db.path) == {receipt_row(0).id}
    abandon(db)
    open_db()  # nor does a replay file it: the log says it was withdrawn
    assert filed_ids(db.path) == {receipt_row(0).id}


def test_a_write_answered_before_a_switch_to_sync_0_is_kept_when_the_next_fsync_fails(
    open_db: Callable[..., MarketDB], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db()
    db.write([receipt_row(0)])  # answered at once: sync_ms > 0
    db.sync_ms = 0

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(marketdb.os, "fdatasync", eio)
        with pytest.raises(MarketStoreError, match="failed to sync"):
            db.write([receipt_row(1)])  # waited, and was told it failed
    assert db.receipt_body(receipt_row(0).id) is not None
    assert db.receipt_body(receipt_row(1).id) is None
    db.flush()
    assert filed_ids(db.path) == {receipt_row(0).id}
    abandon(db)
    open_db()
    assert filed_ids(db.path) == {receipt_row(0).id}


class _WritingConnection:
    """A connection that, as a filing starts, lets another write in (a call answered
    while the flusher files): it lands in the segment being filed, after its snapshot."""

    def __init__(self, db: MarketDB, row: ReceiptRow) -> None:
        self.conn, self.db = db.db.conn, db
        self.row: ReceiptRow | None = row

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.startswith("INSERT") and self.row is not None:
            row, self.row = self.row, None
            self.db.write([row])
        return self.conn.execute(sql, params)

    def close(self) -> None:
        self.conn.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["write", "sync", "file", "file-racing", "kill"]), max_size=30))
def test_every_answered_receipt_is_filed_after_a_kill_whatever_the_interleaving(
    steps: list[str],
) -> None:
    """Small segments rotate often; flushes sync, file, or file while a write races in; a
    kill (then opening again) may come anywhere. Nothing answered is ever lost."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "market.sqlite"
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(marketdb, "SEGMENT_BYTES", 1_500)
            db = MarketDB(path, sync_ms=NEVER_MS)
            answered: set[str] = set()
            for n, step in enumerate(steps):
                if step == "write":
                    db.write([receipt_row(n)])
                    answered.add(receipt_row(n).id)
                elif step == "sync":
                    db.flush(file=False)
                elif step == "file":
                    db.flush()
                elif step == "file-racing":
                    working = db.db.conn
                    racing = _WritingConnection(db, receipt_row(n))
                    db.db.conn = racing  # type: ignore[assignment]
                    try:
                        db.flush()
                    finally:
                        db.db.conn = working
                    if racing.row is None:  # there was a filing, and the write raced in
                        answered.add(receipt_row(n).id)
                else:
                    abandon(db)
                    db = MarketDB(path, sync_ms=NEVER_MS)
                    assert filed_ids(path) == answered
            db.close()
            assert filed_ids(path) == answered
            assert [p.stat().st_size for p in sorted(db.log_dir.glob("*.log"))] == []


FLUSHING_WRITER = """
import sys
from pathlib import Path
from test_marketdb import receipt_row
from modelchain.market import marketdb

marketdb.SEGMENT_BYTES = 2_000  # rotating, filing and deleting all the time
marketdb.FILE_SECONDS = 0.002
db = marketdb.MarketDB(Path(sys.argv[1]), sync_ms=1)
for i in range(int(sys.argv[2]), 1_000_000):
    db.write([receipt_row(i)])
    print(receipt_row(i).id, flush=True)
"""


def test_a_kill_while_the_flusher_syncs_files_and_deletes_loses_no_answered_receipt(
    tmp_path: Path,
) -> None:
    path = tmp_path / "market.sqlite"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    kept: list[str] = []
    for kill_after in (3, 150, 40, 700, 90):
        proc = subprocess.Popen(
            [sys.executable, "-c", FLUSHING_WRITER, str(path), str(len(kept) * 10 + 10_000)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        kept += [proc.stdout.readline().strip() for _ in range(kill_after)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        MarketDB(path, sync_ms=NEVER_MS).close()
        assert set(kept) <= filed_ids(path)


def test_a_close_whose_last_filing_fails_keeps_the_log_for_the_next_opening(
    open_db: Callable[..., MarketDB],
) -> None:
    db = open_db()
    write_rows(db, range(3))
    db.db.conn = _BrokenConnection(db.db.conn)  # type: ignore[assignment]
    db.close()
    assert filed_ids(db.path) == set() and log_files(db)
    open_db()
    assert filed_ids(db.path) == {receipt_row(i).id for i in range(3)}
