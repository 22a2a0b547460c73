"""SQLite storage: a block's write is all or nothing, undo restores, restarts resume.

Atomicity is shown by `ChainStore.connect_block(..., fail_after=step)`,
which raises in the middle of the write: every table (state, tip, chain,
undo, receipts, events, mempool) must then read exactly as before.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import funded_params, key_for, make_block, mine_tip, open_node, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.chain import store as store_module
from modelchain.chain.block import Block
from modelchain.chain.contract import ContractError
from modelchain.chain.errors import InvalidBlock
from modelchain.chain.params import block_subsidy
from modelchain.chain.pow import compute_work
from modelchain.chain.store import MEMPOOL_ROWS_PER_INSERT, ChainStore, InjectedFailure
from modelchain.chain.tx import Tx, make_tx

FEE = 1_000
USERS = ("alice", "bob", "carol")


class KvContract:
    """`kv.set {key, value}`, `kv.delete {key}`, `kv.fail {}`: storage to undo."""

    name = "kv"

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        return None

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return 0

    def execute(self, view: Any, ctx: Any, method: str, args: dict[str, Any]) -> None:
        if method == "set":
            view.put(args["key"], args["value"])
            view.emit("set", {"key": args["key"]}, (("key", args["key"]),))
        elif method == "delete":
            view.delete(args["key"])
        else:
            view.put("never", 1)
            raise ContractError("asked to fail")


CONTRACTS = {"kv": KvContract()}


def call(sender: str, nonce: int, contract: str, method: str, args: dict[str, Any]) -> Tx:
    return make_tx(
        key_for(sender),
        chain_id="modelchain-regtest",
        nonce=nonce,
        fee=FEE,
        contract=contract,
        method=method,
        args=args,
    )


def pay(sender: str, to: str, nonce: int, amount: int) -> Tx:
    return call(sender, nonce, "coin", "transfer", {"to": key_for(to).account, "amount": amount})


def dump(store) -> dict[str, list]:
    """Every row of every table, in a stable order."""
    tables = [
        row[0]
        for row in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
    ]
    return {
        table: sorted(store.db.execute(f"SELECT * FROM [{table}]").fetchall(), key=repr)
        for table in tables
    }


def without(tables: dict[str, list], *names: str) -> dict[str, list]:
    return {name: rows for name, rows in tables.items() if name not in names}


@pytest.fixture
def kv_node(tmp_path: Path, chain_params, clock):
    chain = open_node(tmp_path, chain_params, clock, verify_threads=1, contracts=CONTRACTS)
    yield chain
    chain.close()


def busy_block(node) -> Block:
    """A block on the tip touching balances, storage and events; its txs also pooled."""
    txs = [
        pay("alice", "dave", 0, 500),
        call("bob", 0, "kv", "set", {"key": "k", "value": [1, "x"]}),
        call("carol", 0, "kv", "fail", {}),
    ]
    for tx in txs:
        node.submit_tx(tx)
    block = make_block(node, txs=txs)
    parent = node.index[block.header.prev_hash]
    node.store.save_block(block, parent.work + compute_work(block.header.target), 99)
    return block


# --- atomicity -----------------------------------------------------------------------


def test_account_reads_never_keep_a_value_from_an_unfinished_write(kv_node) -> None:
    store = kv_node.store
    alice = key_for("alice").account
    before = store.read_account(alice)  # now cached
    block = busy_block(kv_node)
    overlay, outcome = kv_node._execute(block)
    with pytest.raises(InjectedFailure):
        store.connect_block(block, overlay.changes, outcome.receipts, fail_after="state")
    assert store.read_account(alice) == before
    with pytest.raises(InjectedFailure):
        with store.atomic():
            store._write_changes(overlay.changes)
            uncommitted = store.read_account(alice)
            raise InjectedFailure("roll back")
    assert uncommitted != before
    assert store.read_account(alice) == before  # not the rolled-back value
    store.connect_block(block, overlay.changes, outcome.receipts)
    assert store.read_account(alice) == uncommitted  # committed now, read afresh


@pytest.mark.parametrize("step", ["state", "tip", "receipts"])
def test_block_write_failing_halfway_changes_nothing(kv_node, step) -> None:
    node = kv_node
    block = busy_block(node)
    overlay, outcome = node._execute(block)
    before = dump(node.store)
    with pytest.raises(InjectedFailure):
        node.store.connect_block(block, overlay.changes, outcome.receipts, fail_after=step)
    assert dump(node.store) == before
    assert node.store.tip_hash() == block.header.prev_hash
    # the store is usable afterwards: the same write then goes through whole
    node.store.connect_block(block, overlay.changes, outcome.receipts)
    after = dump(node.store)
    assert node.store.tip_hash() == block.hash
    assert after["mempool"] == []
    assert len(after["receipts"]) == 4 and len(after["events"]) == 3


def test_block_write_failing_halfway_leaves_it_after_a_restart_too(
    tmp_path, chain_params, clock
) -> None:
    node = open_node(tmp_path, chain_params, clock, verify_threads=1, contracts=CONTRACTS)
    block = busy_block(node)
    overlay, outcome = node._execute(block)
    before = without(dump(node.store), "blocks")
    with pytest.raises(InjectedFailure):
        node.store.connect_block(block, overlay.changes, outcome.receipts, fail_after="receipts")
    node.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1, contracts=CONTRACTS)
    try:
        # the saved block is connected on restart, the half write left no trace
        assert node.tip.hash == block.hash
        node.store.disconnect_block(block, block.txs[1:], 0)
        rows = without(dump(node.store), "blocks")
        assert without(rows, "mempool") == without(before, "mempool")
        assert {r[0] for r in rows["mempool"]} == {r[0] for r in before["mempool"]}
    finally:
        node.close()


def test_disconnect_restores_every_table_and_reconnect_redoes_it(kv_node) -> None:
    node = kv_node
    block = busy_block(node)
    overlay, outcome = node._execute(block)
    before = dump(node.store)
    node.store.connect_block(block, overlay.changes, outcome.receipts)
    connected = dump(node.store)
    node.store.disconnect_block(block, block.txs[1:], now=0)
    undone = dump(node.store)
    # the block stays known (and valid); its txs are back in the pool's table
    assert without(undone, "blocks", "mempool") == without(before, "blocks", "mempool")
    assert {r[0] for r in undone["mempool"]} == {tx.txid for tx in block.txs[1:]}
    node.store.connect_block(block, overlay.changes, outcome.receipts)
    assert dump(node.store) == connected


def kv_ops():
    key = st.sampled_from(["a", "b", "c"])
    value = st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=5), st.none())
    transfer = st.tuples(
        st.just("coin"),
        st.sampled_from(USERS),
        st.sampled_from((*USERS, "dave")),
        st.integers(1, 10**6),
    )
    put = st.tuples(st.just("set"), st.sampled_from(USERS), key, value)
    delete = st.tuples(st.just("delete"), st.sampled_from(USERS), key, st.none())
    fail = st.tuples(st.just("fail"), st.sampled_from(USERS), st.none(), st.none())
    return st.lists(st.one_of(transfer, put, delete, fail), max_size=8)


def ops_to_txs(ops: list[tuple], node) -> list[Tx]:
    """Txs doing `ops` in order, numbered from each sender's nonce on the node."""
    nonces = {label: node.nonce(key_for(label).account) for label in USERS}
    txs = []
    for kind, sender, a, b in ops:
        nonce = nonces[sender]
        nonces[sender] += 1
        if kind == "coin":
            txs.append(pay(sender, a, nonce, b))
        elif kind == "set":
            txs.append(call(sender, nonce, "kv", "set", {"key": a, "value": b}))
        elif kind == "delete":
            txs.append(call(sender, nonce, "kv", "delete", {"key": a}))
        else:
            txs.append(call(sender, nonce, "kv", "fail", {}))
    return txs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=kv_ops(), second=kv_ops())
def test_disconnect_then_reconnect_restores_the_exact_state(first, second) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="store-"))
    params = funded_params(*USERS)
    node = open_node(workdir, params, verify_threads=1, contracts=CONTRACTS)
    try:
        # the first block makes state for the second one to overwrite and delete
        node.submit_block(make_block(node, txs=ops_to_txs(first, node)))
        block = make_block(node, txs=ops_to_txs(second, node))
        overlay, outcome = node._execute(block)
        before = node.store.snapshot()
        node.store.connect_block(block, overlay.changes, outcome.receipts)
        after = node.store.snapshot()
        node.store.disconnect_block(block, (), now=0)
        assert node.store.snapshot() == before
        node.store.connect_block(block, overlay.changes, outcome.receipts)
        assert node.store.snapshot() == after
    finally:
        node.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --- restarts --------------------------------------------------------------------------------


def test_reopened_node_has_the_same_tip_state_and_receipts(tmp_path, chain_params, clock) -> None:
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    tx = pay("alice", "bob", 0, 10)
    node.submit_tx(tx)
    for _ in range(3):
        mine_tip(node)
    tip, state, receipt = node.tip, node.store.snapshot(), node.store.receipt_row(tx.txid)
    index = dict(node.index)
    node.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    try:
        assert node.tip == tip
        assert node.store.snapshot() == state
        assert node.store.receipt_row(tx.txid) == receipt
        assert node.index == index
        mine_tip(node)
        assert node.height == 4
    finally:
        node.close()


def test_pooled_txs_survive_a_restart(tmp_path, chain_params, clock) -> None:
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    ready = [pay("alice", "bob", n, 10) for n in range(2)]
    waiting = pay("bob", "alice", 3, 10)
    for tx in (*ready, waiting):
        node.submit_tx(tx)
    node.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    try:
        assert {tx.txid: node.mempool.status_of(tx.txid) for tx in (*ready, waiting)} == {
            ready[0].txid: "ready",
            ready[1].txid: "ready",
            waiting.txid: "future",
        }
        assert node.pending_nonce(key_for("alice").account) == 2
    finally:
        node.close()


def test_stored_pool_tx_no_longer_valid_is_dropped_on_restart(
    tmp_path, chain_params, clock
) -> None:
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    mine_tip(node)
    stale = pay("dave", "alice", 0, 10)  # dave has nothing
    node.store.save_mempool_tx(stale, clock.now)
    node.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    try:
        assert stale.txid not in node.mempool
        assert node.store.load_mempool() == []
    finally:
        node.close()


def test_restart_connects_a_better_branch_stored_before_a_crash(
    tmp_path, chain_params, clock, funds
) -> None:
    (tmp_path / "source").mkdir()
    source = open_node(tmp_path / "source", chain_params, clock, verify_threads=1)
    bob = key_for("bob").account
    b1, b2 = mine_tip(source, bob), mine_tip(source, bob)
    source.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    genesis = node.tip
    node.submit_block(make_block(node))
    # a crash after storing two better blocks, before connecting them
    b1_work = genesis.work + compute_work(b1.header.target)
    node.store.save_block(b1, b1_work, 10)
    node.store.save_block(b2, b1_work + compute_work(b2.header.target), 11)
    node.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    try:
        assert node.tip.hash == b2.hash
        assert node.balance(bob) == funds + 2 * block_subsidy(1, chain_params)
    finally:
        node.close()


def test_block_found_invalid_stays_invalid_after_a_restart(
    tmp_path, chain_params, clock, funds
) -> None:
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    bad = make_block(node, txs=[pay("alice", "bob", 0, funds)])
    with pytest.raises(InvalidBlock):
        node.submit_block(bad)
    node.close()
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    try:
        with pytest.raises(InvalidBlock) as err:
            node.submit_block(bad)
        assert err.value.code == "block-known-invalid"
    finally:
        node.close()


def test_data_dir_of_another_network_is_refused(tmp_path, chain_params, clock) -> None:
    open_node(tmp_path, chain_params, clock, verify_threads=1).close()
    other = funded_params(*USERS, chain_id="modelchain-other")
    with pytest.raises(InvalidBlock) as err:
        open_node(tmp_path, other, clock, verify_threads=1)
    assert err.value.code == "block-bad-genesis"


def test_data_written_by_a_newer_schema_is_refused(tmp_path, chain_params, clock) -> None:
    node = open_node(tmp_path, chain_params, clock, verify_threads=1)
    with node.store.atomic():
        node.store.set_meta("schema_version", "99")
    node.close()
    with pytest.raises(RuntimeError, match="newer"):
        open_node(tmp_path, chain_params, clock, verify_threads=1)


# --- mempool rows: group commit ------------------------------------------------------------


def _save_all_while_a_commit_waits(
    store: ChainStore, first: Tx, rest: list[Tx]
) -> dict[str, BaseException]:
    """Save `first` while another connection holds SQLite's write lock, then `rest` from
    threads of their own once `first`'s commit waits; release the lock; the errors by txid."""
    errors: dict[str, BaseException] = {}

    def save(tx: Tx) -> None:
        try:
            store.save_mempool_tx(tx, 1)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors[tx.txid] = exc

    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    threads = [threading.Thread(target=save, args=(tx,)) for tx in [first, *rest]]
    threads[0].start()
    wait_until(lambda: store._mempool_rows._leading, 10, "the first row's commit to start")
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: store._mempool_rows._queued == 1 + len(rest), 10, "the rest to queue")
    blocker.execute("ROLLBACK")
    blocker.close()
    for thread in threads:
        thread.join(30)
    return errors


@pytest.fixture
def mempool_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Factory: a ChainStore whose mempool statements take `per_insert` rows; closed after."""
    opened: list[ChainStore] = []

    def make(per_insert: int) -> ChainStore:
        monkeypatch.setattr(store_module, "MEMPOOL_ROWS_PER_INSERT", per_insert)
        opened.append(ChainStore(tmp_path / "chain.sqlite"))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.mark.parametrize("per_insert", [MEMPOOL_ROWS_PER_INSERT, 2])
def test_mempool_rows_saved_while_a_commit_waits_share_the_next_commit(
    mempool_store: Any, per_insert: int
) -> None:
    store = mempool_store(per_insert)
    statements: list[str] = []
    store._mempool_conn.set_trace_callback(lambda sql: statements.append(sql.split()[0]))
    txs = [pay("alice", "bob", nonce, 10) for nonce in range(6)]
    assert _save_all_while_a_commit_waits(store, txs[0], txs[1:]) == {}
    if per_insert >= 5:  # the first row's statement, then one for the five that waited
        assert statements == ["INSERT", "INSERT"]
    else:  # the five in one transaction, two rows a statement
        assert statements == ["INSERT", "BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]
    assert sorted(tx.txid for tx, _ in store.load_mempool()) == sorted(t.txid for t in txs)


@pytest.mark.parametrize("per_insert", [MEMPOOL_ROWS_PER_INSERT, 1])
def test_a_failed_mempool_commit_fails_every_save_it_held_and_keeps_none_of_them(
    mempool_store: Any, per_insert: int
) -> None:
    store = mempool_store(per_insert)
    first, good, bad, later = (pay("alice", "bob", nonce, 10) for nonce in range(4))
    store.db.execute(
        f"CREATE TRIGGER refuse BEFORE INSERT ON mempool WHEN NEW.txid = '{bad.txid}' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    errors = _save_all_while_a_commit_waits(store, first, [good, bad])
    assert set(errors) == {good.txid, bad.txid}  # one commit held both
    assert all(isinstance(error, sqlite3.IntegrityError) for error in errors.values())
    assert [tx.txid for tx, _ in store.load_mempool()] == [first.txid]
    store.save_mempool_tx(later, 2)  # the next save commits as ever
    assert {tx.txid for tx, _ in store.load_mempool()} == {first.txid, later.txid}
    assert store._mempool_rows._failed == {}  # every writer heard: nothing kept for them


def test_a_mempool_commit_waits_for_a_block_write_that_read_before_it_writes(
    mempool_store: Any,
) -> None:
    store = mempool_store(MEMPOOL_ROWS_PER_INSERT)
    tx = pay("alice", "bob", 0, 10)
    saver = threading.Thread(target=store.save_mempool_tx, args=(tx, 1))
    with store.atomic() as db:  # as connect_block does: read first, then write
        db.execute("SELECT count(*) FROM mempool").fetchone()
        saver.start()
        wait_until(lambda: store._mempool_rows._leading, 10, "the save to start its commit")
        with contextlib.suppress(AssertionError):  # the wait runs out: no commit comes
            wait_until(lambda: store._mempool_rows._finished, 0.5, "a commit (none may come)")
        assert store._mempool_rows._finished == 0
        store.set_meta("probe", "written")  # so no SQLITE_BUSY_SNAPSHOT here
    saver.join(30)
    assert [saved.txid for saved, _ in store.load_mempool()] == [tx.txid]
