"""SQLite storage of the chain through sqlite-utils: blocks, state, undo, receipts.

Connecting or disconnecting a block (the block's status, its state changes,
undo data, receipts, events, the tip, mempool removals) is one SQLite
transaction with synchronous=FULL, so a crash at any point leaves the last
whole block and never half of one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from modelchain.chain.block import Block, Header, decode_body, decode_header
from modelchain.chain.encoding import canonical_bytes, canonical_bytes_unchecked, decode_canonical
from modelchain.chain.execute import Receipt
from modelchain.chain.state import ACCOUNT_ZERO, StateChanges
from modelchain.chain.tx import Tx, decode_tx

SCHEMA_VERSION = 1

STATUS_STORED = "stored"
"""Header and body passed the checks that need no state; not yet executed."""
STATUS_VALID = "valid"
"""Executed without error at least once."""
STATUS_INVALID = "invalid"
"""Failed a rule: never chosen again, nor any descendant."""


def encode_work(work: int) -> str:
    """Cumulative work as fixed-width hex, so text order is numeric order."""
    return f"{work:080x}"


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """A stored block's index entry (no body)."""

    hash: str
    header: Header
    work: int
    """Cumulative work from genesis up to and including this block."""
    status: str
    seq: int
    """Arrival order: among equal work, the block seen first wins."""

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def prev_hash(self) -> str:
        return self.header.prev_hash


MAX_CACHED_ACCOUNTS = 100_000
"""read_account's cache is emptied when it reaches this many accounts."""
MEMPOOL_ROWS_PER_INSERT = 300
"""Mempool rows one INSERT statement takes (3 values each, under SQLite's 999 limit)."""


class _MempoolRows:
    """Group commit of mempool rows on their own connection.

    A writer whose row is not committed yet either leads (takes every row waiting, inserts
    them in one transaction) or waits for the leader of the moment. Each commit costs one
    SQLite transaction and a wait for the GIL after it, not one per tx: per-call payments
    admitted from many threads at once (bench/inference.py) queued on one commit each.
    """

    def __init__(self, conn: sqlite3.Connection, store_lock: threading.RLock) -> None:
        self._conn = conn
        self._store_lock = store_lock
        """Held around each commit, as by the main connection's transactions: a commit
        landing inside one that read before it writes would fail its write at once
        (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out)."""
        self._cond = threading.Condition()
        self._waiting: list[tuple[str, bytes, int]] = []
        self._queued = 0
        """Rows handed to write() so far; a row's number is its place in that order."""
        self._finished = 0
        """Rows up to this number are committed, or their commit failed (in _failed)."""
        self._leading = False
        self._failed: dict[tuple[int, int], list[Any]] = {}
        """(first, last) row numbers of a failed commit: [its error, writers yet to hear]."""

    def write(self, row: tuple[str, bytes, int]) -> None:
        """Returns once `row` is committed; raises the error its commit failed with."""
        with self._cond:
            self._queued += 1
            mine = self._queued
            self._waiting.append(row)
            while self._finished < mine and self._leading:
                self._cond.wait()
            if self._finished >= mine:  # a leader took it
                self._hear_failure(mine)
                return
            self._leading = True
            rows, self._waiting = self._waiting, []
            first, last = self._finished + 1, self._queued
        error: BaseException | None = None
        try:
            with self._store_lock:
                self._commit(rows)
        except BaseException as exc:
            error = exc
            raise
        finally:
            with self._cond:
                if error is not None and len(rows) > 1:  # the others it held hear of it too
                    self._failed[first, last] = [error, len(rows) - 1]
                self._finish(last)

    def _commit(self, rows: list[tuple[str, bytes, int]]) -> None:
        """All of `rows` in one transaction: one statement up to MEMPOOL_ROWS_PER_INSERT
        rows (the SQLite module lets the GIL go around each statement's every step, and on
        a busy node each such step costs a wait to get it back), chunks in a BEGIN beyond."""
        conn = self._conn
        chunks = [
            rows[start : start + MEMPOOL_ROWS_PER_INSERT]
            for start in range(0, len(rows), MEMPOOL_ROWS_PER_INSERT)
        ]
        if len(chunks) == 1:  # autocommit: the statement is its own transaction
            self._insert(chunks[0])
            return
        conn.execute("BEGIN")
        try:
            for chunk in chunks:
                self._insert(chunk)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _insert(self, rows: list[tuple[str, bytes, int]]) -> None:
        values = ", ".join(["(?, ?, ?)"] * len(rows))
        self._conn.execute(
            f"INSERT OR IGNORE INTO mempool(txid, raw, added) VALUES {values}",
            [value for row in rows for value in row],
        )

    def _finish(self, last: int) -> None:
        """Under the condition: rows up to `last` are done; the next writer may lead."""
        self._leading = False
        self._finished = last
        self._cond.notify_all()

    def _hear_failure(self, mine: int) -> None:
        """Under the condition: raise, as an error of its own, the error of the failed
        commit that held row `mine` (one object raised in many threads would gather all
        their tracebacks)."""
        for (first, last), entry in self._failed.items():
            if first <= mine <= last:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._failed[first, last]
                error = entry[0]
                try:
                    own = type(error)(*error.args) if isinstance(error, Exception) else None
                except Exception:  # noqa: BLE001 - a class that cannot be remade so
                    own = None
                if own is None:
                    own = RuntimeError(f"the mempool commit holding this tx failed: {error!r}")
                raise own from error


class ChainStore:
    """One SQLite file holding one node's chain. Thread-safe through one lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.RLock()
        self._accounts: dict[str, tuple[int, int]] = {}
        """read_account's cache of committed accounts (see there)."""
        self._account_generation = 0
        self._writing = 0
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._mempool_conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False
        )
        """Writes mempool rows alone: synchronous=NORMAL, group-committed (_MempoolRows)."""
        self._mempool_conn.execute("PRAGMA synchronous=NORMAL")
        self._mempool_conn.execute("PRAGMA busy_timeout=10000")
        self._mempool_rows = _MempoolRows(self._mempool_conn, self.lock)

    def close(self) -> None:
        self._mempool_conn.close()
        self.db.conn.close()

    @contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        with self.lock:
            self._writing += 1
            self._forget_accounts()
            try:
                with self.db.atomic():
                    yield self.db
            finally:  # committed or rolled back: what was read meanwhile is not kept
                self._writing -= 1
                self._forget_accounts()

    def _forget_accounts(self) -> None:
        self._account_generation += 1
        self._accounts.clear()

    # --- schema ----------------------------------------------------------

    def _migrate(self) -> None:
        with self.atomic() as db:
            if "meta" not in db.table_names():
                db["meta"].create({"key": str, "value": str}, pk="key")
            version = self.get_meta("schema_version")
            if version is None:
                self._create_v1(db)
                self.set_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise RuntimeError(f"data was written by a newer modelchain (schema {version})")

    def _create_v1(self, db: sqlite_utils.Database) -> None:
        db["blocks"].create(
            {
                "hash": str,
                "height": int,
                "prev_hash": str,
                "header": bytes,
                "body": bytes,
                "work": str,
                "status": str,
                "invalid_code": str,
                "seq": int,
            },
            pk="hash",
        )
        db["blocks"].create_index(["prev_hash"])
        db["blocks"].create_index(["work"])
        db["chain"].create({"height": int, "hash": str}, pk="height")
        db["chain"].create_index(["hash"], unique=True)
        db["accounts"].create({"account": str, "balance": int, "nonce": int}, pk="account")
        db["storage"].create({"contract": str, "key": str, "value": str}, pk=("contract", "key"))
        db["undo"].create({"block_hash": str, "data": bytes}, pk="block_hash")
        db["receipts"].create(
            {
                "block_hash": str,
                "idx": int,
                "txid": str,
                "height": int,
                "status": str,
                "code": str,
                "message": str,
                "fee": int,
            },
            pk=("block_hash", "idx"),
        )
        db["receipts"].create_index(["txid"])
        db["events"].create(
            {
                "id": int,
                "block_hash": str,
                "height": int,
                "txid": str,
                "tx_idx": int,
                "ev_idx": int,
                "contract": str,
                "type": str,
                "data": str,
            },
            pk="id",
        )
        db["events"].create_index(["block_hash"])
        db["events"].create_index(["height"])
        db["events"].create_index(["contract", "type"])
        db["event_index"].create(
            {"event_id": int, "key": str, "value": str, "height": int},
            foreign_keys=[("event_id", "events", "id")],
        )
        db["event_index"].create_index(["key", "value", "height"])
        db["event_index"].create_index(["event_id"])
        db["mempool"].create({"txid": str, "raw": bytes, "added": int}, pk="txid")

    # --- meta --------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    # --- state reads (StateReader) ------------------------------------------

    def read_account(self, account: str) -> tuple[int, int]:
        """(balance, nonce) at the tip; (0, 0) for an account never seen.

        Answers from a cache between writes (mempool admission reads the same payers
        again and again): a read is kept only when no write transaction was open
        from its start to its end, and every write transaction empties the cache as
        it opens and as it ends, so a cached value is always one that was committed.
        """
        cached = self._accounts.get(account)
        if cached is not None:
            return cached
        generation = self._account_generation
        row = self.db.execute(
            "SELECT balance, nonce FROM accounts WHERE account = ?", [account]
        ).fetchone()
        value = (row[0], row[1]) if row else ACCOUNT_ZERO
        if not self._writing and generation == self._account_generation:
            if len(self._accounts) >= MAX_CACHED_ACCOUNTS:
                self._accounts.clear()
            self._accounts[account] = value
        return value

    def read_storage(self, contract: str, key: str) -> Any:
        row = self.db.execute(
            "SELECT value FROM storage WHERE contract = ? AND key = ?", [contract, key]
        ).fetchone()
        return json.loads(row[0]) if row else None

    def iter_accounts(self) -> Iterator[tuple[str, int, int]]:
        yield from self.db.execute(
            "SELECT account, balance, nonce FROM accounts ORDER BY account"
        ).fetchall()

    def iter_storage(self, contract: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
        rows = self.db.execute(
            "SELECT key, value FROM storage WHERE contract = ? AND key >= ? AND key < ? "
            "ORDER BY key",
            [contract, prefix, prefix + "\uffff"],
        ).fetchall()
        for key, value in rows:
            yield key, json.loads(value)

    def snapshot(self) -> dict[str, Any]:
        """The whole state, comparable with MemoryState.snapshot()."""
        accounts = {a: (b, n) for a, b, n in self.iter_accounts()}
        storage = {
            (c, k): json.loads(v)
            for c, k, v in self.db.execute(
                "SELECT contract, key, value FROM storage ORDER BY contract, key"
            ).fetchall()
        }
        return {"accounts": accounts, "storage": dict(sorted(storage.items()))}

    # --- blocks ------------------------------------------------------------

    def save_block(self, block: Block, work: int, seq: int, status: str = STATUS_STORED) -> None:
        """Store a block that passed the stateless checks (its own transaction)."""
        with self.atomic() as db:
            db.execute(
                "INSERT OR IGNORE INTO blocks(hash, height, prev_hash, header, body, work, status,"
                " invalid_code, seq) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?)",
                [
                    block.hash,
                    block.height,
                    block.header.prev_hash,
                    block.header.to_bytes(),
                    block.body_bytes(),
                    encode_work(work),
                    status,
                    seq,
                ],
            )

    def mark_invalid(self, hashes: Iterable[str], code: str) -> None:
        with self.atomic() as db:
            db.conn.executemany(
                "UPDATE blocks SET status = ?, invalid_code = ? WHERE hash = ?",
                [(STATUS_INVALID, code, h) for h in hashes],
            )

    def load_index(self) -> list[BlockRecord]:
        rows = self.db.execute(
            "SELECT hash, header, work, status, seq FROM blocks ORDER BY seq"
        ).fetchall()
        return [
            BlockRecord(h, decode_header(header), int(work, 16), status, seq)
            for h, header, work, status, seq in rows
        ]

    def load_block(self, block_hash: str) -> Block | None:
        row = self.db.execute(
            "SELECT header, body FROM blocks WHERE hash = ?", [block_hash]
        ).fetchone()
        if row is None:
            return None
        return Block(decode_header(row[0]), decode_body(row[1], max(len(row[1]), 1)))

    def load_block_bytes(self, block_hash: str) -> bytes | None:
        row = self.db.execute(
            "SELECT header, body FROM blocks WHERE hash = ?", [block_hash]
        ).fetchone()
        return row[0] + row[1] if row else None

    def chain_hash_at(self, height: int) -> str | None:
        row = self.db.execute("SELECT hash FROM chain WHERE height = ?", [height]).fetchone()
        return row[0] if row else None

    def chain_height_of(self, block_hash: str) -> int | None:
        """The height of `block_hash` if it is on the main chain, else None."""
        row = self.db.execute("SELECT height FROM chain WHERE hash = ?", [block_hash]).fetchone()
        return row[0] if row else None

    def tip_hash(self) -> str | None:
        return self.get_meta("tip")

    # --- connect / disconnect ---------------------------------------------

    def read_accounts(self, accounts: Iterable[str]) -> dict[str, tuple[int, int]]:
        """(balance, nonce) of many accounts in a few queries; absent ones are (0, 0)."""
        wanted = list(dict.fromkeys(accounts))
        found = dict.fromkeys(wanted, ACCOUNT_ZERO)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT account, balance, nonce FROM accounts WHERE account IN ({marks})", chunk
            ).fetchall()
            for account, balance, nonce in rows:
                found[account] = (balance, nonce)
        return found

    def _undo_for(self, changes: StateChanges) -> bytes:
        before = self.read_accounts(changes.accounts)
        accounts = []
        for account in sorted(changes.accounts):
            balance, nonce = before[account]
            rows_absent = (balance, nonce) == ACCOUNT_ZERO  # zero accounts have no row
            accounts.append([account, None, None] if rows_absent else [account, balance, nonce])
        storage = []
        for contract, key in sorted(changes.storage):
            row = self.db.execute(
                "SELECT value FROM storage WHERE contract = ? AND key = ?", [contract, key]
            ).fetchone()
            storage.append([contract, key, row[0] if row else None])
        return canonical_bytes({"accounts": accounts, "storage": storage})

    def _write_changes(self, changes: StateChanges) -> None:
        conn = self.db.conn
        upserts = []
        deletes = []
        for account, (balance, nonce) in changes.accounts.items():
            if (balance, nonce) == ACCOUNT_ZERO:
                deletes.append((account,))
            else:
                upserts.append((account, balance, nonce))
        conn.executemany(
            "INSERT INTO accounts(account, balance, nonce) VALUES (?, ?, ?) ON CONFLICT(account)"
            " DO UPDATE SET balance = excluded.balance, nonce = excluded.nonce",
            upserts,
        )
        conn.executemany("DELETE FROM accounts WHERE account = ?", deletes)
        store_rows = []
        store_deletes = []
        for (contract, key), value in changes.storage.items():
            if value is None:
                store_deletes.append((contract, key))
            else:
                store_rows.append((contract, key, canonical_bytes(value).decode("utf-8")))
        conn.executemany(
            "INSERT INTO storage(contract, key, value) VALUES (?, ?, ?) ON CONFLICT(contract, key)"
            " DO UPDATE SET value = excluded.value",
            store_rows,
        )
        conn.executemany("DELETE FROM storage WHERE contract = ? AND key = ?", store_deletes)

    def connect_block(
        self,
        block: Block,
        changes: StateChanges,
        receipts: Sequence[Receipt],
        *,
        pooled: Iterable[str] | None = None,
        fail_after: str | None = None,
    ) -> None:
        """Make `block` the tip with its state changes: all of it or nothing.

        `pooled` names the block's txs that have mempool rows (default: all of
        them); `fail_after` names a step after which to raise (tests prove atomicity).
        """
        block_hash = block.hash
        height = block.height
        with self.atomic() as db:
            conn = db.conn
            undo = self._undo_for(changes)
            self._write_changes(changes)
            _maybe_fail(fail_after, "state")
            conn.execute("INSERT INTO undo(block_hash, data) VALUES (?, ?)", [block_hash, undo])
            conn.execute("INSERT INTO chain(height, hash) VALUES (?, ?)", [height, block_hash])
            conn.execute(
                "UPDATE blocks SET status = ? WHERE hash = ? AND status != ?",
                [STATUS_VALID, block_hash, STATUS_INVALID],
            )
            self.set_meta("tip", block_hash)
            _maybe_fail(fail_after, "tip")
            self._write_receipts(block_hash, height, receipts)
            _maybe_fail(fail_after, "receipts")
            pooled = [tx.txid for tx in block.txs] if pooled is None else pooled
            conn.executemany("DELETE FROM mempool WHERE txid = ?", [(txid,) for txid in pooled])

    def _write_receipts(self, block_hash: str, height: int, receipts: Sequence[Receipt]) -> None:
        conn = self.db.conn
        conn.executemany(
            "INSERT INTO receipts(block_hash, idx, txid, height, status, code, message, fee)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (block_hash, r.index, r.txid, height, r.status, r.code, r.message, r.fee)
                for r in receipts
            ],
        )
        row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        next_id = row[0] + 1
        event_rows = []
        index_rows = []
        for receipt in receipts:
            for ev_idx, event in enumerate(receipt.events):
                event_rows.append(
                    (
                        next_id,
                        block_hash,
                        height,
                        receipt.txid,
                        receipt.index,
                        ev_idx,
                        event.contract,
                        event.type,
                        canonical_bytes_unchecked(event.data).decode("utf-8"),  # checked at emit
                    )
                )
                for key, value in dict.fromkeys(event.index):
                    index_rows.append((next_id, key, value, height))
                next_id += 1
        conn.executemany(
            "INSERT INTO events(id, block_hash, height, txid, tx_idx, ev_idx, contract, type, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            event_rows,
        )
        conn.executemany(
            "INSERT INTO event_index(event_id, key, value, height) VALUES (?, ?, ?, ?)",
            index_rows,
        )

    def disconnect_block(self, block: Block, returned: Sequence[Tx], now: int) -> None:
        """Undo the tip block: restore state, drop its receipts, return its txs to the pool."""
        block_hash = block.hash
        with self.atomic() as db:
            conn = db.conn
            tip = self.get_meta("tip")
            if tip != block_hash:
                raise RuntimeError(f"can only disconnect the tip {tip}, not {block_hash}")
            row = conn.execute(
                "SELECT data FROM undo WHERE block_hash = ?", [block_hash]
            ).fetchone()
            undo = decode_canonical(row[0])
            for account, balance, nonce in undo["accounts"]:
                if balance is None:
                    conn.execute("DELETE FROM accounts WHERE account = ?", [account])
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO accounts(account, balance, nonce) VALUES (?, ?, ?)",
                        [account, balance, nonce],
                    )
            for contract, key, value in undo["storage"]:
                if value is None:
                    conn.execute(
                        "DELETE FROM storage WHERE contract = ? AND key = ?", [contract, key]
                    )
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO storage(contract, key, value) VALUES (?, ?, ?)",
                        [contract, key, value],
                    )
            conn.execute("DELETE FROM undo WHERE block_hash = ?", [block_hash])
            conn.execute("DELETE FROM chain WHERE height = ?", [block.height])
            conn.execute("DELETE FROM receipts WHERE block_hash = ?", [block_hash])
            conn.execute(
                "DELETE FROM event_index WHERE event_id IN "
                "(SELECT id FROM events WHERE block_hash = ?)",
                [block_hash],
            )
            conn.execute("DELETE FROM events WHERE block_hash = ?", [block_hash])
            conn.executemany(
                "INSERT OR IGNORE INTO mempool(txid, raw, added) VALUES (?, ?, ?)",
                [(tx.txid, tx.raw, now) for tx in returned],
            )
            self.set_meta("tip", block.header.prev_hash)

    def connect_genesis(self, block: Block, changes: StateChanges, work: int) -> None:
        """Write genesis and its allocations in one transaction."""
        with self.atomic() as db:
            db.execute(
                "INSERT INTO blocks(hash, height, prev_hash, header, body, work, status,"
                " invalid_code, seq) VALUES (?, 0, ?, ?, ?, ?, ?, '', 0)",
                [
                    block.hash,
                    block.header.prev_hash,
                    block.header.to_bytes(),
                    b"",
                    encode_work(work),
                    STATUS_VALID,
                ],
            )
            self._write_changes(changes)
            db.execute(
                "INSERT INTO undo(block_hash, data) VALUES (?, ?)",
                [block.hash, canonical_bytes({"accounts": [], "storage": []})],
            )
            db.execute("INSERT INTO chain(height, hash) VALUES (0, ?)", [block.hash])
            self.set_meta("tip", block.hash)
            self.set_meta("genesis", block.hash)

    # --- mempool persistence -----------------------------------------------

    def save_mempool_tx(self, tx: Tx, added: int) -> None:
        """Keep a pooled tx for restarts; returns once its row is committed.

        Mempool rows are not consensus data: they are committed without an fsync
        of their own (synchronous=NORMAL in WAL mode survives a killed process,
        and the next block's FULL commit makes them durable), so admitting a tx
        does not wait on the disk. They go through a connection of their own, and
        rows written at the same time share one commit (_MempoolRows), taken under
        the store's lock once for them all. Never called inside one of the main
        connection's transactions (SQLite's write lock is not re-entrant).
        """
        self._mempool_rows.write((tx.txid, tx.raw, added))

    def delete_mempool_txs(self, txids: Iterable[str]) -> None:
        with self.atomic() as db:
            db.conn.executemany("DELETE FROM mempool WHERE txid = ?", [(t,) for t in txids])

    def load_mempool(self) -> list[tuple[Tx, int]]:
        rows = self.db.execute("SELECT raw, added FROM mempool ORDER BY added, txid").fetchall()
        result = []
        for raw, added in rows:
            try:
                result.append((decode_tx(raw), added))
            except Exception:  # noqa: BLE001 - a bad row is dropped, never fatal
                continue
        return result

    # --- lookups for queries ---------------------------------------------------

    def tx_location(self, txid: str) -> tuple[str, int, int] | None:
        row = self.db.execute(
            "SELECT block_hash, height, idx FROM receipts WHERE txid = ?", [txid]
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def receipt_row(self, txid: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT r.block_hash, r.idx, r.height, r.status, r.code, r.message, r.fee"
            " FROM receipts r JOIN chain c ON c.hash = r.block_hash WHERE r.txid = ?",
            [txid],
        ).fetchone()
        if row is None:
            return None
        keys = ("block_hash", "index", "height", "status", "code", "message", "fee")
        return dict(zip(keys, row, strict=True))

    def events_for_tx(self, txid: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE txid = ? ORDER BY height, tx_idx, ev_idx",
            [txid],
        ).fetchall()
        return [event_record(row) for row in rows]


EVENT_COLUMNS = "id, block_hash, height, txid, tx_idx, ev_idx, contract, type, data"
"""The events table's columns in the order `event_record` reads them."""


def event_record(row: Sequence[Any]) -> dict[str, Any]:
    """An events row (EVENT_COLUMNS) as the JSON the APIs answer with."""
    event_id, block_hash, height, txid, tx_idx, ev_idx, contract, type_, data = row
    return {
        "id": event_id,
        "block_hash": block_hash,
        "height": height,
        "txid": txid,
        "tx_index": tx_idx,
        "event_index": ev_idx,
        "contract": contract,
        "type": type_,
        "data": json.loads(data),
    }


class InjectedFailure(RuntimeError):
    """Raised inside a write on purpose, by tests proving atomicity."""


def _maybe_fail(fail_after: str | None, step: str) -> None:
    if fail_after == step:
        raise InjectedFailure(f"failure injected after {step}")
