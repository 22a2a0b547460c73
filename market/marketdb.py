"""The market's own files: every receipt handed out, first in an append-only log,
then in SQLite.

A paid call must not answer before what it owes is kept: a node that restarts
never forgets a voucher it answered for. Yet waiting for an fsync on every call
costs a threaded Python node far more than the fsync (every waiting thread must
get the GIL back afterwards; bench/inference.py measured it), so a call keeps
its receipt by **appending** it to the receipt log, with the GIL held, and
answers at once. What is appended is in the kernel's page cache: a killed,
crashed or restarted node process keeps it. A flusher thread fsyncs the log
every `sync_ms` milliseconds (20 by default) and, at most every FILE_SECONDS,
files what it holds into `market.sqlite` (one transaction); a log segment is
deleted once all its receipts are filed. Opening the files files what the log
holds and SQLite lacks. So a power cut or kernel crash can lose about the last
`sync_ms` of receipts (more while a filing into SQLite is slow: the same thread
does both), as PostgreSQL's `synchronous_commit = off` can; a node
that must not lose even those runs with `sync_ms = 0`: every call then waits
for the fsync that covers it (group commit: concurrent calls share one).
Readers see a receipt as soon as it is appended.

Log records are `>II` (length, crc32) then a write's rows: a 0x01 byte and
the rows' fields tab-separated, rows split by NUL (encoding takes a few
microseconds of a paid call's GIL time, a JSON list several times that); a row
holding a tab or 0x02 in a field before the body, or a NUL anywhere, which no
receipt does, goes in a JSON list instead. A torn record at the end of a
segment (a power cut mid-append) is dropped on replay.

A receipt of a channel call keeps the payer's voucher (amount and
signature), so the vouchers a node accepted are read back from the receipts:
the highest amount per channel.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import sqlite_utils

from modelchain.chain.errors import ModelchainError
from modelchain.market import gilheld

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_SYNC_MS = 20
"""How often the receipt log is fsynced: what a power cut can lose at most."""
MAX_FILE_ROWS = 512
"""The most receipts one INSERT takes: at 12 values each, far under SQLite's 32766
parameters per statement (a filing of more runs several, in one transaction)."""
SEGMENT_BYTES = 4 * 1024 * 1024
"""A log segment past this size is closed and a new one started."""
FILE_SECONDS = 1.0
"""How often the flusher files what the log holds into SQLite (readers see it either way)."""
CLOSE_SECONDS = 30.0
"""How long close() waits for the flusher's last pass."""
WRITE_TIMEOUT_SECONDS = 30.0
"""How long a caller waits for its fsync (sync_ms = 0) before giving up with an error."""
_HEADER = struct.Struct(">II")


class MarketStoreError(ModelchainError):
    """The market's files could not keep a receipt (disk full, I/O error, closed)."""

    code = "market-store-failed"
    http_status = 503


class MarketDataInUse(MarketStoreError):
    """Another node process holds the data directory."""

    code = "node-data-in-use"


class ReceiptRow(NamedTuple):
    """A signed receipt as filed: its id, when, what paid for it, its canonical JSON.

    A tuple, so that filing and logging it take its values as they are.
    """

    id: str
    """sha256 of the signed receipt's canonical JSON."""
    created: int
    """Unix seconds when the node answered."""
    kind: str
    """`tx` or `channel`."""
    txid: str | None
    """The payment tx (kind `tx`)."""
    channel: str | None
    amount: int | None
    """The voucher's cumulative amount (kind `channel`)."""
    sig: str | None
    """The payer's voucher signature (kind `channel`): what a claim needs."""
    payer: str
    model: str
    version: str
    height: int
    body: str
    """The signed receipt, canonical JSON."""


COLUMNS = ReceiptRow._fields


class VoucherRow(NamedTuple):
    """The highest voucher a node accepted on one channel (a tuple: one is made per
    channel call, and a frozen dataclass takes several times as long to build)."""

    channel: str
    amount: int
    """Cumulative amount the payer allowed; only ever grows."""
    sig: str
    payer: str
    model: str
    version: str


# --- the log's records ---------------------------------------------------------------


_TABBED = b"\x01"
"""First byte of a record of tab-separated rows (a JSON record starts with `[` or `{`)."""
_NONE = "\x02"
"""A field that is None, in a tab-separated row."""


def encode_record(rows: Sequence[ReceiptRow]) -> bytes:
    """One log record holding `rows`: tab-separated (see the module), else a JSON list."""
    texts = []
    for row in rows:
        id_, created, kind, txid, channel, amount, sig, payer, model, version, height, body = row
        if type(created) is not int or type(height) is not int or type(body) is not str:
            break
        if not type(id_) is type(kind) is type(payer) is type(model) is type(version) is str:
            break
        nones = 0
        if txid is None:
            txid, nones = _NONE, nones + 1
        if channel is None:
            channel, nones = _NONE, nones + 1
        if amount is None:
            amount, nones = _NONE, nones + 1
        elif type(amount) is not int:
            break
        if sig is None:
            sig, nones = _NONE, nones + 1
        if not type(txid) is type(channel) is type(sig) is str:
            break
        head = (
            f"{id_}\t{created}\t{kind}\t{txid}\t{channel}\t{amount}\t{sig}\t{payer}\t"
            f"{model}\t{version}\t{height}\t"
        )
        # a separator inside a field would split it (the body is last: only NUL counts)
        if head.count("\t") != 11 or head.count(_NONE) != nones or "\x00" in head:
            break
        if "\x00" in body:
            break
        texts.append(head + body)
    else:
        if texts:
            text = "\x00".join(texts)
            return _frame(_TABBED + text.encode("utf-8", "surrogatepass"))
    return _frame(json.dumps(rows, separators=(",", ":")).encode())


def _decode_tabbed(payload: bytes) -> list[ReceiptRow]:
    rows = []
    for entry in payload[1:].decode("utf-8", "surrogatepass").split("\x00"):
        id_, created, kind, txid, channel, amount, sig, payer, model, version, height, body = (
            entry.split("\t", 11)
        )
        rows.append(
            ReceiptRow(
                id_,
                int(created),
                kind,
                None if txid == _NONE else txid,
                None if channel == _NONE else channel,
                None if amount == _NONE else int(amount),
                None if sig == _NONE else sig,
                payer,
                model,
                version,
                int(height),
                body,
            )
        )
    return rows


def encode_withdrawal(ids: Sequence[str]) -> bytes:
    """One log record withdrawing the receipts `ids` appended earlier: their callers were
    told the call failed, so a replay must not file them."""
    return _frame(json.dumps({"withdrawn": list(ids)}, separators=(",", ":")).encode())


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> tuple[list[ReceiptRow], set[str], int]:
    """The rows and the withdrawn ids of the whole records at the start of `data`, and
    how many bytes those records take.

    Reading stops at the first record that is cut short or does not match its
    checksum: what an append interrupted by a power cut leaves.
    """
    rows: list[ReceiptRow] = []
    withdrawn: set[str] = set()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            if payload[:1] == _TABBED:
                rows.extend(_decode_tabbed(payload))
                offset = start + length
                continue
            value = json.loads(payload)
            if isinstance(value, dict):
                withdrawn.update(str(receipt_id) for receipt_id in value["withdrawn"])
            else:
                rows.extend(ReceiptRow(*values) for values in value)
        except (ValueError, TypeError, KeyError):  # a checksum collision on garbage
            break
        offset = start + length
    return rows, withdrawn, offset


def append_record(fd: int, record: bytes) -> None:
    """Append `record` to `fd` (opened O_APPEND); raises OSError unless all of it went in.

    One write(2) with the GIL held (market/gilheld.py): an append to the page cache takes a
    few microseconds, far less than getting the GIL back on a busy node."""
    written = gilheld.write(fd, record)
    if written != len(record):
        raise OSError(errno.ENOSPC, f"short write: {written} of {len(record)} bytes")


class _Segment:
    """One file of the receipt log."""

    __slots__ = ("path", "fd", "size", "dirty", "last_seq")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0
        self.dirty = False
        """Appended to since its last fsync."""
        self.last_seq: int | None = None
        """The sequence number of its last write, once it is closed for writing."""


@dataclass(slots=True)
class _Pending:
    """A write appended to the log and not yet filed."""

    seq: int
    rows: Sequence[ReceiptRow]
    waits: bool
    """Its caller waits for the fsync (sync_ms was 0 when it wrote)."""
    withdrawn: bool = False
    """Its caller was told it failed: never filed, and withdrawn in the log too."""


class MarketDB:
    """`<data>/market.sqlite` and its receipt log `<data>/market-log/`. Thread-safe.

    One process at a time: the log directory is locked (flock) while open.
    """

    def __init__(self, path: Path, sync_ms: int = DEFAULT_SYNC_MS) -> None:
        if sync_ms < 0:
            raise ValueError("sync_ms must be >= 0")
        self.path = path
        self.sync_ms = sync_ms
        """May be changed while open (bench/inference.py does): each write follows the
        value it finds, and the flusher's next pass too."""
        self.log_dir = path.parent / f"{path.stem}-log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = _lock_directory(self.log_dir)
        try:
            self._open_sqlite()
        except BaseException:
            os.close(self._dir_lock)
            raise

        self._log_lock = threading.Lock()
        """Guards the log's state below; never held across an fsync or a filing."""
        self._segments = [_Segment(self._segment_path(1))]
        _fsync_directory(self.log_dir)
        self._seq = 0
        """Writes appended so far (each write's sequence number)."""
        self._unfiled: dict[str, ReceiptRow] = {}
        """Receipts appended and not yet filed into SQLite, by id: readers see them too."""
        self._batch: list[_Pending] = []
        """Writes appended since the flusher last took them (to fsync)."""
        self._to_file: list[_Pending] = []
        """Writes fsynced (or answered for) and not yet filed into SQLite, in order."""
        self._synced = 0
        """Every write up to this sequence number is fsynced (set under the log lock)."""
        self._filed = 0
        """Every write up to this sequence number is filed into SQLite or withdrawn."""
        self._last_filing = time.monotonic()
        self._synced_cond = threading.Condition(self._log_lock)
        self._flush_lock = threading.Lock()
        """One flush at a time (the flusher's, or a caller's)."""
        self._broken: BaseException | None = None
        """An fsync failed: what was appended may be lost, so nothing more is taken."""
        self._closed = False
        self._counts = threading.Lock()
        self.waiting = 0
        """Callers waiting for their fsync now (sync_ms = 0)."""
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(
            target=self._run, name="modelchain-receipt-log", daemon=True
        )
        self._flusher.start()

    def _open_sqlite(self) -> None:
        """Open market.sqlite, bring its schema up, file what the log holds."""
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a filing is on disk before its log goes
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.Lock()
        """Serialises use of the one connection (filings, readers)."""
        self.syncs = 0
        """fsyncs of the log made since the files were opened."""
        self.filings = 0
        """Transactions that filed receipts into SQLite (replay's included)."""
        try:
            self._migrate()
            self._replay()
        except BaseException:
            conn.close()
            raise

    def _migrate(self) -> None:
        with self.lock, self.db.atomic():
            if "meta" not in self.db.table_names():
                self.db["meta"].create({"key": str, "value": str}, pk="key")
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._create_v1()
                self.db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})
            elif int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer modelchain")

    def _create_v1(self) -> None:
        columns: dict[str, type] = dict.fromkeys(COLUMNS, str)
        columns.update(created=int, amount=int, height=int)
        self.db["receipts"].create(columns, pk="id")
        self.db["receipts"].create_index(["txid"])
        self.db["receipts"].create_index(["channel", "amount"])

    def _segment_path(self, number: int) -> Path:
        return self.log_dir / f"{number:08d}.log"

    def _replay(self) -> None:
        """File what the log holds (a node that stopped without filing it), then empty it."""
        paths = sorted(self.log_dir.glob("*.log"))
        rows: list[ReceiptRow] = []
        withdrawn: set[str] = set()
        for path in paths:
            data = path.read_bytes()
            found, gone, used = decode_records(data)
            if used < len(data):
                log.warning(
                    "receipt log %s: dropped a torn record of %d bytes at its end",
                    path.name,
                    len(data) - used,
                )
            rows.extend(found)
            withdrawn |= gone
        kept = [row for row in rows if row.id not in withdrawn]
        if kept:
            self._file(kept)
            log.info("replayed %d receipts from the receipt log (each is filed once)", len(kept))
        for path in paths:
            path.unlink()

    # --- writing -----------------------------------------------------------

    def check_writable(self) -> None:
        """Raise MarketStoreError now if a write would be refused (closed, or an fsync
        failed): a paid call asks before it runs anything."""
        if self._closed:
            raise MarketStoreError("the market database is closed")
        if self._broken is not None:
            raise MarketStoreError(f"the receipt log failed to sync: {self._broken}")

    def write(self, rows: Sequence[ReceiptRow]) -> None:
        """Keep `rows`: return once they survive a killed node (with sync_ms = 0: once
        they are fsynced). Readers see them from then on.

        Raises MarketStoreError (none of them kept, nor ever filed) when the append
        or its fsync fails, the files are closed, or (sync_ms = 0) no fsync came
        within WRITE_TIMEOUT_SECONDS.
        """
        record = encode_record(rows)
        waits = self.sync_ms == 0
        with self._log_lock:
            if self._closed:
                raise MarketStoreError("the market database is closed")
            if self._broken is not None:
                raise MarketStoreError(f"the receipt log failed to sync: {self._broken}")
            segment = self._segments[-1]
            try:
                append_record(segment.fd, record)
            except OSError as exc:
                self._undo_append(segment)
                raise MarketStoreError(f"the receipt log failed to write: {exc}") from exc
            segment.size += len(record)
            segment.dirty = True
            self._seq += 1
            pending = _Pending(self._seq, rows, waits)
            self._batch.append(pending)
            for row in rows:
                self._unfiled[row.id] = row
        if waits:
            self._wait_synced(pending)

    def _undo_append(self, segment: _Segment) -> None:
        """Cut a failed append's partial bytes off, so later records stay readable."""
        try:
            os.ftruncate(segment.fd, segment.size)
        except OSError as exc:  # the log cannot be trusted past here: take nothing more
            log.error("receipt log %s could not be cut back: %s", segment.path.name, exc)
            self._broken = exc

    def _wait_synced(self, pending: _Pending) -> None:
        with self._counts:
            self.waiting += 1
        try:
            self._kick.set()
            with self._synced_cond:
                self._synced_cond.wait_for(
                    lambda: self._synced >= pending.seq or self._broken is not None,
                    WRITE_TIMEOUT_SECONDS,
                )
                if self._synced >= pending.seq:
                    return
                self._withdraw(pending)  # the caller hears of a failure: never file it
                if self._broken is not None:
                    raise MarketStoreError(f"the receipt log failed to sync: {self._broken}")
                raise MarketStoreError(f"no fsync within {WRITE_TIMEOUT_SECONDS:.0f} s")
        finally:
            with self._counts:
                self.waiting -= 1

    def _withdraw(self, pending: _Pending) -> None:
        """Under the log lock: forget a write whose caller is told it failed, and say so in
        the log, so that neither the flusher nor a replay files it."""
        if pending.withdrawn:
            return
        pending.withdrawn = True
        for row in pending.rows:
            self._unfiled.pop(row.id, None)
        segment = self._segments[-1]
        record = encode_withdrawal([row.id for row in pending.rows])
        try:
            append_record(segment.fd, record)
        except OSError as exc:  # the record stays in the log; only a crash replays it
            log.error("receipt log: withdrawing write %d failed: %s", pending.seq, exc)
            self._undo_append(segment)
            return
        segment.size += len(record)
        segment.dirty = True

    # --- the flusher ----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            # with sync_ms = 0 the writers wake it; it files once a second all the same
            self._kick.wait(self.sync_ms / 1000 if self.sync_ms else FILE_SECONDS)
            self._kick.clear()
            try:
                self.flush(file=time.monotonic() - self._last_filing >= FILE_SECONDS)
            except BaseException:  # the flusher outlives one bad pass; the log keeps the rows
                log.exception("receipt log flush failed")
        try:
            self.flush()
        except BaseException:  # close() keeps the log for the next opening to file
            log.exception("receipt log: the last flush before closing failed")

    def flush(self, *, file: bool = True) -> None:
        """Fsync what was appended; with `file`, file what is fsynced into SQLite.

        The flusher does this every sync_ms, filing every FILE_SECONDS.
        """
        with self._flush_lock:
            with self._log_lock:
                batch, self._batch = self._batch, []
                dirty = [segment for segment in self._segments if segment.dirty]
                for segment in dirty:
                    segment.dirty = False
                seq = self._seq
            if batch or dirty:
                try:
                    for segment in dirty:
                        os.fdatasync(segment.fd)
                except OSError as exc:
                    self._sync_failed(batch, exc)
                    return
                self.syncs += 1
                with self._synced_cond:  # the log lock: no write is withdrawn meanwhile
                    self._to_file.extend(p for p in batch if not p.withdrawn)
                    self._synced = seq
                    self._synced_cond.notify_all()
            if file:
                self._file_synced()

    def _sync_failed(self, batch: list[_Pending], exc: OSError) -> None:
        """An fsync failed: the kernel may have dropped what it held, so take nothing more.

        Writes already answered (their callers did not wait) are filed from memory.
        Writes whose callers still wait are withdrawn: they hear of the failure.
        """
        log.error("receipt log fsync failed; the node takes no more paid calls: %s", exc)
        with self._synced_cond:
            self._broken = exc
            unsynced = batch + self._batch
            self._batch = []
            for pending in unsynced:
                if pending.waits:
                    self._withdraw(pending)
                else:
                    self._to_file.append(pending)
            self._synced_cond.notify_all()

    def _file_synced(self) -> None:
        """File the fsynced writes into SQLite; delete the log segments all filed."""
        self._last_filing = time.monotonic()
        with self._log_lock:
            batch, self._to_file = self._to_file, []
        if not batch:
            return
        try:
            with self._log_lock:
                rows = [row for p in batch if not p.withdrawn for row in p.rows]
            self._file(rows)
        except BaseException:
            with self._log_lock:
                self._to_file[:0] = batch  # the next filing tries them again, in order
            raise
        with self._log_lock:
            for row in rows:
                self._unfiled.pop(row.id, None)
            self._filed = batch[-1].seq
            self._rotate()

    def _file(self, rows: Sequence[ReceiptRow]) -> None:
        """INSERT OR IGNORE `rows` into SQLite as one transaction."""
        if not rows:
            return
        with self.lock:
            conn = self.db.conn
            conn.execute("BEGIN")
            try:
                for start in range(0, len(rows), MAX_FILE_ROWS):
                    chunk = rows[start : start + MAX_FILE_ROWS]
                    values = ", ".join(["(" + ", ".join("?" * len(COLUMNS)) + ")"] * len(chunk))
                    conn.execute(
                        f"INSERT OR IGNORE INTO receipts({', '.join(COLUMNS)}) VALUES {values}",
                        [value for row in chunk for value in row],
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.filings += 1

    def _rotate(self) -> None:
        """Under the log lock: delete closed segments all filed; start a new one past the size."""
        current = self._segments[-1]
        kept = []
        for segment in self._segments[:-1]:
            if segment.last_seq is not None and segment.last_seq <= self._filed:
                self._delete(segment)
            else:
                kept.append(segment)
        self._segments = [*kept, current]
        if current.size >= SEGMENT_BYTES:
            fresh = _Segment(self._segment_path(int(current.path.stem) + 1))
            _fsync_directory(self.log_dir)  # the new file's name survives a power cut too
            current.last_seq = self._seq  # closed for writing only once the next one exists
            self._segments.append(fresh)

    @staticmethod
    def _delete(segment: _Segment) -> None:
        os.close(segment.fd)
        segment.fd = -1
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as exc:  # replaying it again files nothing twice (INSERT OR IGNORE)
            log.error("receipt log %s could not be deleted: %s", segment.path.name, exc)

    def close(self) -> None:
        """Refuse new writes, fsync and file what the log holds, close the files."""
        with self._log_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._kick.set()
        self._flusher.join(CLOSE_SECONDS)
        if self._flusher.is_alive():  # an fsync hangs: leave the files for the next opening
            log.error("receipt log: the flusher did not stop within %.0f s", CLOSE_SECONDS)
            return
        with self._log_lock:
            self._segments[-1].last_seq = self._seq
            for segment in self._segments:
                if segment.last_seq is not None and segment.last_seq <= self._filed:
                    self._delete(segment)
                elif segment.fd >= 0:
                    os.close(segment.fd)
        with self.lock:
            self.db.conn.close()
        os.close(self._dir_lock)

    # --- reading -----------------------------------------------------------

    def _unfiled_rows(self) -> list[ReceiptRow]:
        with self._log_lock:
            return list(self._unfiled.values())

    def load_vouchers(self) -> list[VoucherRow]:
        """The highest voucher kept per channel."""
        # unfiled first: a row only moves from there to SQLite, so none is missed
        unfiled = self._unfiled_rows()
        with self.lock:
            # SQLite takes the bare columns from the row holding the MAX
            rows = self.db.execute(
                "SELECT channel, MAX(amount), sig, payer, model, version FROM receipts"
                " WHERE kind = 'channel' GROUP BY channel"
            ).fetchall()
        highest = {row[0]: VoucherRow(*row) for row in rows}
        for row in unfiled:
            if row.kind != "channel" or row.channel is None or row.amount is None:
                continue
            known = highest.get(row.channel)
            if known is None or row.amount > known.amount:
                assert row.sig is not None
                highest[row.channel] = VoucherRow(
                    row.channel, row.amount, row.sig, row.payer, row.model, row.version
                )
        return list(highest.values())

    def receipt_body(self, receipt_id: str) -> str | None:
        """The kept receipt's canonical JSON, or None."""
        # unfiled first: a row only moves from there to SQLite, so none is missed
        with self._log_lock:
            unfiled = self._unfiled.get(receipt_id)
        if unfiled is not None:
            return unfiled.body
        with self.lock:
            row = self.db.execute("SELECT body FROM receipts WHERE id = ?", [receipt_id]).fetchone()
        return row[0] if row else None

    def receipt_ids(self, *, txid: str | None = None, channel: str | None = None) -> list[str]:
        """Ids of the receipts for one payment tx (as filed), or for one channel (lowest
        amount first)."""
        unfiled = list(_matching(self._unfiled_rows(), txid, channel))  # first: see above
        with self.lock:
            if txid is not None:
                found = self.db.execute("SELECT id, 0 FROM receipts WHERE txid = ?", [txid])
            else:
                found = self.db.execute(
                    "SELECT id, amount FROM receipts WHERE channel = ?", [channel]
                )
            rows = {row[0]: row[1] for row in found.fetchall()}
        for row in unfiled:
            rows.setdefault(row.id, row.amount or 0)
        return sorted(rows, key=lambda receipt_id: rows[receipt_id])


def _matching(
    rows: Sequence[ReceiptRow], txid: str | None, channel: str | None
) -> Iterator[ReceiptRow]:
    for row in rows:
        if (txid is not None and row.txid == txid) or (txid is None and row.channel == channel):
            yield row


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_directory(directory: Path) -> int:
    """An fd holding an exclusive flock on `directory`/LOCK; raises MarketStoreError when
    another process holds it (two nodes on one data directory would delete each other's
    receipt logs)."""
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):  # no locks here (ENOLCK, ...)
            raise MarketStoreError(f"cannot lock {directory}: {exc.strerror}") from exc
        raise MarketDataInUse(
            f"{directory} is in use by another modelchain node process ({exc.strerror})"
        ) from exc
    return fd
