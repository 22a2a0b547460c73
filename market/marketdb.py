"""The market's own SQLite file: every receipt handed out, group-committed.

Paid calls must not answer before what they owe is on disk (a restarted node
never forgets a voucher it answered for), yet one fsync per call would cap a
node at a few hundred calls a second on a slow disk. So commits are grouped,
by their callers: a call that finds no commit under way commits at once
whatever has queued up, as a single multi-row INSERT (one statement is one
transaction, synchronous=FULL), then wakes every caller whose rows it held
and hands the lead to the first call that queued meanwhile. Concurrent calls
share one commit, a lone call waits for one commit only, and no other thread
has to be woken (and get the GIL back) before a commit can start.

A receipt of a channel call keeps the payer's voucher (amount and
signature), so the vouchers a node accepted are read back from the receipts:
the highest amount per channel.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import sqlite_utils

from modelchain.chain.errors import ModelchainError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_GROUP_WRITES = 512
"""The most receipts one commit takes (the rest wait for the next one): at 12 values
each, far under SQLite's 32766 parameters per statement."""
WRITE_TIMEOUT_SECONDS = 30.0
"""How long a caller waits for its commit before giving up with an error."""


class MarketStoreError(ModelchainError):
    """The market database could not write (disk full, I/O error, closed)."""

    code = "market-store-failed"
    http_status = 503


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    """A signed receipt as filed: its id, when, what paid for it, its canonical JSON."""

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


COLUMNS = tuple(f.name for f in fields(ReceiptRow))


@dataclass(frozen=True, slots=True)
class VoucherRow:
    """The highest voucher a node accepted on one channel."""

    channel: str
    amount: int
    """Cumulative amount the payer allowed; only ever grows."""
    sig: str
    payer: str
    model: str
    version: str


class _Write:
    """Rows queued for a commit, and the caller waiting for it."""

    __slots__ = ("rows", "wake", "finished", "lead", "error")

    def __init__(self, rows: Sequence[ReceiptRow]) -> None:
        self.rows = rows
        self.wake = threading.Event()
        """Set once the rows are committed (or failed), or when the caller is to lead."""
        self.finished = False
        self.lead = False
        self.error: BaseException | None = None


class MarketDB:
    """`<data>/market.sqlite`: the receipts this node signed. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.Lock()
        """Serialises use of the one connection (the writer's commits, readers)."""
        self._migrate()
        self._queue_lock = threading.Lock()
        """Guards _pending and _leading."""
        self._pending: list[_Write] = []
        self._leading = False
        """A caller is committing (or about to): the others queue behind it."""
        self._counts = threading.Lock()
        self.waiting = 0
        """Callers waiting for their commit now."""
        self.commits = 0
        """Commits made since the file was opened (each a group of writes)."""
        self._closed = False

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
        columns = {f.name: str for f in fields(ReceiptRow)}
        columns.update(created=int, amount=int, height=int)
        self.db["receipts"].create(columns, pk="id")
        self.db["receipts"].create_index(["txid"])
        self.db["receipts"].create_index(["channel", "amount"])

    # --- writing -----------------------------------------------------------

    def write(self, rows: Sequence[ReceiptRow]) -> None:
        """File `rows` in the next group commit; return once they are durable.

        Raises MarketStoreError (none of them filed) when the commit fails, the
        database is closed, or no commit took them within WRITE_TIMEOUT_SECONDS.
        """
        if self._closed:
            raise MarketStoreError("the market database is closed")
        item = _Write(rows)
        with self._counts:
            self.waiting += 1
        try:
            with self._queue_lock:
                self._pending.append(item)
                item.lead = not self._leading
                self._leading = True
            while not item.finished:
                if item.lead:
                    self._lead()
                elif not item.wake.wait(WRITE_TIMEOUT_SECONDS) and self._give_up(item):
                    raise MarketStoreError(f"no commit within {WRITE_TIMEOUT_SECONDS:.0f} s")
        finally:
            with self._counts:
                self.waiting -= 1
        if item.error is not None:
            raise MarketStoreError(f"the market database failed to write: {item.error}")

    def _lead(self) -> None:
        """Commit everything queued, then hand the lead on (or put it down)."""
        with self._queue_lock:
            batch, self._pending = self._pending, []
        try:
            self._commit(batch)
        finally:
            with self._queue_lock:
                if self._pending:
                    following = self._pending[0]
                    following.lead = True
                    following.wake.set()
                else:
                    self._leading = False

    def _give_up(self, item: _Write) -> bool:
        """After a wait timed out: withdraw `item` unless it was taken meanwhile."""
        with self._queue_lock:
            if item.finished or item.lead:
                return False  # committed, or it must lead now: carry on
            self._pending.remove(item)
            return True

    def _commit(self, writes: list[_Write]) -> None:
        rows = [row for item in writes for row in item.rows]
        try:
            if rows:
                # one statement, so one transaction and one call into SQLite: the
                # writer does not wait for the GIL between statements of a batch
                values = ", ".join(["(" + ", ".join("?" * len(COLUMNS)) + ")"] * len(rows))
                sql = f"INSERT OR IGNORE INTO receipts({', '.join(COLUMNS)}) VALUES {values}"
                params = [value for row in rows for value in astuple(row)]
                with self.lock:
                    self.db.conn.execute(sql, params)
                    self.commits += 1
        except Exception as exc:  # every caller hears of it; the writer carries on
            log.exception("market database commit of %d receipts failed", len(rows))
            for item in writes:
                item.error = exc
        for item in writes:
            item.finished = True
            item.wake.set()

    def close(self) -> None:
        """Refuse new writes, wait for the commit under way, close the file."""
        if self._closed:
            return
        self._closed = True
        with self.lock:  # a commit in progress holds it
            self.db.conn.close()

    # --- reading -----------------------------------------------------------

    def load_vouchers(self) -> list[VoucherRow]:
        """The highest voucher filed per channel."""
        with self.lock:
            # SQLite takes the bare columns from the row holding the MAX
            rows = self.db.execute(
                "SELECT channel, MAX(amount), sig, payer, model, version FROM receipts"
                " WHERE kind = 'channel' GROUP BY channel"
            ).fetchall()
        return [VoucherRow(*row) for row in rows]

    def receipt_body(self, receipt_id: str) -> str | None:
        """The stored receipt's canonical JSON, or None."""
        with self.lock:
            row = self.db.execute("SELECT body FROM receipts WHERE id = ?", [receipt_id]).fetchone()
        return row[0] if row else None

    def receipt_ids(self, *, txid: str | None = None, channel: str | None = None) -> list[str]:
        """Ids of the receipts for one payment tx, or for one channel (oldest first)."""
        with self.lock:
            if txid is not None:
                rows = self.db.execute("SELECT id FROM receipts WHERE txid = ?", [txid])
            else:
                rows = self.db.execute(
                    "SELECT id FROM receipts WHERE channel = ? ORDER BY amount", [channel]
                )
            return [row[0] for row in rows.fetchall()]
