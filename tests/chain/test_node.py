"""The node: fork choice by most work, reorgs, orphans, failed calls, tx admission.

Side branches are built with `make_block(node, parent_hash)` on any stored
block; blocks a node must not know yet come from a second node on the same
parameters (`source`), so they arrive out of order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import (
    funded_params,
    key_for,
    main_chain,
    make_block,
    mine_tip,
    open_node,
    replay_chain,
)

from modelchain.chain import node as node_module
from modelchain.chain.contract import ContractError
from modelchain.chain.errors import InvalidBlock, ModelchainError
from modelchain.chain.mempool import MempoolPolicy
from modelchain.chain.params import block_subsidy
from modelchain.chain.pow import compute_work
from modelchain.chain.tx import Tx, make_tx, tx_from_json

FEE = 1_000


def account(label: str) -> str:
    return key_for(label).account


def mempool_rows(node) -> set[str]:
    return {row[0] for row in node.store.db.execute("SELECT txid FROM mempool").fetchall()}


@pytest.fixture
def source(tmp_path: Path, chain_params, clock):
    """A second node on the same chain: builds blocks the node under test has not seen."""
    (tmp_path / "source").mkdir()
    other = open_node(tmp_path / "source", chain_params, clock, verify_threads=1)
    yield other
    other.close()


def extend(node, parent_hash: str, count: int, *, step: int = 10, **kw: Any) -> list:
    """Submit `count` blocks on `parent_hash`, each `step` seconds after its parent."""
    blocks = []
    for _ in range(count):
        parent = node.index[parent_hash]
        block = make_block(node, parent_hash, timestamp=parent.header.timestamp + step, **kw)
        node.submit_block(block)
        blocks.append(block)
        parent_hash = block.hash
    return blocks


def genesis_hash(node) -> str:
    return node.store.chain_hash_at(0)


# --- fork choice -----------------------------------------------------------------


def test_tie_in_work_keeps_the_block_seen_first(node) -> None:
    first = make_block(node, miner=account("alice"))
    second = make_block(node, miner=account("bob"))
    node.submit_block(first)
    assert node.submit_block(second).status == "accepted"
    assert node.tip.hash == first.hash
    assert node.index[first.hash].work == node.index[second.hash].work


def test_branch_with_more_work_becomes_the_tip(node) -> None:
    [a1] = extend(node, genesis_hash(node), 1, miner=account("alice"))
    b1, b2 = extend(node, genesis_hash(node), 2, miner=account("bob"))
    assert node.tip.hash == b2.hash
    assert not node.is_on_main_chain(a1.hash)
    assert node.store.snapshot() == replay_chain(node.params, [b1, b2]).snapshot()


def test_most_work_wins_over_most_blocks(node) -> None:
    """Fast blocks retarget to a 4x harder block at height 10: 14 blocks' work in 10."""
    slow = extend(node, genesis_hash(node), 12, step=11, miner=account("bob"))
    assert node.tip.hash == slow[-1].hash
    fast = extend(node, genesis_hash(node), 10, step=1, miner=account("alice"))
    assert fast[-1].header.target == slow[0].header.target // 4
    assert node.index[fast[-1].hash].work > node.index[slow[-1].hash].work
    assert node.tip.hash == fast[-1].hash
    assert node.height == 10


def test_cumulative_work_sums_each_blocks_work_from_genesis(node) -> None:
    blocks = extend(node, genesis_hash(node), 3)
    per_block = compute_work(node.params.initial_target)
    assert node.index[blocks[-1].hash].work == 4 * per_block  # genesis counts too


def test_branch_with_an_invalid_block_is_never_chosen(node, make_transfer_tx, funds) -> None:
    spend = make_transfer_tx("alice", nonce=0)
    [a1] = extend(node, genesis_hash(node), 1, txs=[spend])
    [a2] = extend(node, a1.hash, 1)
    before = node.store.snapshot()
    overspend = make_transfer_tx("bob", amount=funds)  # cannot pay its fee too
    b1 = make_block(node, genesis_hash(node), [overspend], miner=account("bob"))
    node.submit_block(b1)  # less work: stored, not executed yet
    b2 = make_block(node, b1.hash, miner=account("bob"))
    node.submit_block(b2)  # equal work: the first seen stays
    b3 = make_block(node, b2.hash, miner=account("bob"))
    with pytest.raises(InvalidBlock):
        node.submit_block(b3)  # most work, but b1 fails when connected
    assert node.tip.hash == a2.hash
    assert node.store.snapshot() == before
    assert {b1.hash, b2.hash, b3.hash} <= set(node.invalid)
    assert node.store.receipt_row(spend.txid)["block_hash"] == a1.hash
    assert len(node.mempool) == 0 and mempool_rows(node) == set()
    b4 = make_block(node, b3.hash, miner=account("bob"))
    with pytest.raises(InvalidBlock) as err:
        node.submit_block(b4)
    assert err.value.code == "block-known-invalid"
    assert node.tip.hash == a2.hash


def test_reorg_returns_still_valid_txs_of_disconnected_blocks_to_the_mempool(
    node, make_transfer_tx
) -> None:
    kept = make_transfer_tx("alice", nonce=0)
    conflicting = make_transfer_tx("bob", nonce=0, amount=10)
    winner = make_transfer_tx("bob", nonce=0, amount=20)  # same sender and nonce
    [a1] = extend(node, genesis_hash(node), 1, txs=[kept, conflicting])
    changes = []
    node.listeners.append(changes.append)
    b1 = make_block(node, genesis_hash(node), [winner], miner=account("bob"))
    node.submit_block(b1)
    [b2] = extend(node, b1.hash, 1, miner=account("bob"))
    assert node.tip.hash == b2.hash
    assert kept.txid in node.mempool
    assert conflicting.txid not in node.mempool and winner.txid not in node.mempool
    assert node.store.receipt_row(kept.txid) is None
    assert node.store.tx_location(kept.txid) is None
    assert mempool_rows(node) == {kept.txid}
    [change] = [c for c in changes if c.disconnected]
    assert [b.hash for b in change.disconnected] == [a1.hash]
    assert [b.hash for b in change.connected] == [b1.hash, b2.hash]
    # the returned tx is mined again on the new chain
    block = mine_tip(node)
    assert kept in block.txs


def test_reorg_back_and_forth_restores_the_same_state(node, make_transfer_tx) -> None:
    a_blocks = extend(node, genesis_hash(node), 1, txs=[make_transfer_tx("alice")])
    a_blocks += extend(node, a_blocks[0].hash, 1, txs=[make_transfer_tx("bob")])
    a_state = node.store.snapshot()
    b_blocks = extend(node, genesis_hash(node), 3, miner=account("bob"))
    assert node.tip.hash == b_blocks[-1].hash
    extend(node, a_blocks[-1].hash, 2)
    assert node.height == 4
    assert main_chain(node)[:2] == a_blocks
    replayed = replay_chain(node.params, main_chain(node)).snapshot()
    assert node.store.snapshot() == replayed
    assert replay_chain(node.params, a_blocks).snapshot() == a_state


# --- orphans -----------------------------------------------------------------------


def test_orphan_waits_until_its_parent_arrives_then_all_connect(node, source) -> None:
    blocks = extend(source, genesis_hash(source), 3)
    for block in reversed(blocks[1:]):
        result = node.submit_block(block)
        assert (result.status, result.code) == ("orphan", "block-unknown-parent")
    assert node.height == 0
    assert node.submit_block(blocks[0]).status == "accepted"
    assert node.tip.hash == blocks[-1].hash
    assert not node.orphans


def test_orphan_pool_is_bounded_evicting_the_oldest(node, source, monkeypatch) -> None:
    monkeypatch.setattr(node_module, "MAX_ORPHAN_BLOCKS", 3)
    [parent] = extend(source, genesis_hash(source), 1)
    children = [
        make_block(source, parent.hash, timestamp=parent.header.timestamp + 1 + i) for i in range(4)
    ]
    for child in children:
        assert node.submit_block(child).status == "orphan"
    assert list(node.orphans) == [child.hash for child in children[1:]]
    node.submit_block(parent)
    assert children[0].hash not in node.index
    assert all(child.hash in node.index for child in children[1:])
    assert node.tip.hash == children[1].hash  # equal work: the first seen
    assert not node.orphans


def test_orphan_that_turns_out_invalid_is_rejected_when_its_parent_arrives(
    node, source, forge
) -> None:
    [parent] = extend(source, genesis_hash(source), 1)
    child = make_block(source, parent.hash, solve=False)
    bad_child = forge(child, version=9)
    assert node.submit_block(bad_child).status == "orphan"
    node.submit_block(parent)
    assert node.tip.hash == parent.hash
    assert bad_child.hash not in node.index and not node.orphans


# --- a failed contract call -------------------------------------------------------------


class FlakyContract:
    """`flaky.pay {to, amount, fail}`: pays, stores, emits, then fails if asked to."""

    name = "flaky"

    class Refused(ContractError):
        code = "contract-test-refused"

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        return None

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return int(args["amount"])

    def execute(self, view: Any, ctx: Any, method: str, args: dict[str, Any]) -> None:
        view.transfer(ctx.sender, args["to"], args["amount"])
        view.put("last", args["amount"])
        view.emit("paid", {"amount": args["amount"]}, (("account", args["to"]),))
        if args["fail"]:
            raise self.Refused("asked to fail")


@pytest.fixture
def flaky_node(tmp_path: Path, chain_params, clock):
    chain = open_node(
        tmp_path, chain_params, clock, verify_threads=1, contracts={"flaky": FlakyContract()}
    )
    yield chain
    chain.close()


def flaky_call(fail: bool) -> Tx:
    return make_tx(
        key_for("alice"),
        chain_id="modelchain-regtest",
        nonce=0,
        fee=FEE,
        contract="flaky",
        method="pay",
        args={"to": account("dave"), "amount": 500, "fail": fail},
    )


def test_failed_call_changes_only_the_senders_nonce_and_fee_and_leaves_a_receipt(
    flaky_node, funds
) -> None:
    node = flaky_node
    before = node.store.snapshot()
    tx = flaky_call(fail=True)
    node.submit_tx(tx)
    block = mine_tip(node)
    assert tx in block.txs
    receipt = node.store.receipt_row(tx.txid)
    assert (receipt["status"], receipt["code"], receipt["fee"]) == (
        "failed",
        "contract-test-refused",
        FEE,
    )
    assert node.store.events_for_tx(tx.txid) == []
    miner = block.header.miner
    expected = dict(before["accounts"])
    expected[account("alice")] = (funds - FEE, 1)
    expected[miner] = (block_subsidy(1, node.params) + FEE, 0)
    assert node.store.snapshot() == {"accounts": expected, "storage": before["storage"]}


def test_succeeding_call_of_the_same_contract_keeps_its_changes_and_events(
    flaky_node, funds
) -> None:
    node = flaky_node
    tx = flaky_call(fail=False)
    node.submit_tx(tx)
    mine_tip(node)
    assert node.store.receipt_row(tx.txid)["status"] == "ok"
    assert [e["type"] for e in node.store.events_for_tx(tx.txid)] == ["paid"]
    assert node.store.read_account(account("alice")) == (funds - FEE - 500, 1)
    assert node.balance(account("dave")) == 500
    assert node.store.read_storage("flaky", "last") == 500


# --- txs submitted to the node --------------------------------------------------------------


def test_submitted_tx_with_a_bad_signature_is_refused(node, make_transfer_tx) -> None:
    good = make_transfer_tx("alice")
    forged = tx_from_json(good.to_json() | {"sig": make_transfer_tx("alice", amount=1).sig})
    with pytest.raises(ModelchainError) as err:
        node.submit_tx(forged)
    assert err.value.code == "tx-bad-signature"
    assert len(node.mempool) == 0 and mempool_rows(node) == set()


def test_submitted_tx_for_another_chain_is_refused(node, make_transfer_tx) -> None:
    with pytest.raises(ModelchainError) as err:
        node.submit_tx(make_transfer_tx("alice", chain_id="modelchain-main"))
    assert err.value.code == "tx-wrong-chain"


def test_submitted_tx_already_in_a_block_is_already_known(node, make_transfer_tx) -> None:
    tx = make_transfer_tx("alice")
    node.submit_block(make_block(node, txs=[tx]))
    with pytest.raises(ModelchainError) as err:
        node.submit_tx(tx)
    assert err.value.code == "mempool-already-known"


def test_submitted_txs_are_checked_against_the_pending_balance(
    node, make_transfer_tx, funds
) -> None:
    node.submit_tx(make_transfer_tx("alice", nonce=0, amount=funds - 2 * FEE))
    assert node.pending_balance(account("alice")) == FEE
    with pytest.raises(ModelchainError) as err:
        node.submit_tx(make_transfer_tx("alice", nonce=1, amount=1))
    assert err.value.code == "tx-insufficient-balance"
    assert node.pending_nonce(account("alice")) == 1


def test_mined_block_takes_pooled_txs_and_empties_the_pool(node, make_transfer_tx) -> None:
    txs = [make_transfer_tx("alice", nonce=n) for n in range(3)]
    for tx in txs:
        node.submit_tx(tx)
    block = mine_tip(node)
    assert list(block.txs[1:]) == txs
    assert len(node.mempool) == 0 and mempool_rows(node) == set()
    assert node.nonce(account("alice")) == 3


def test_evicted_txs_leave_the_stored_pool_too(tmp_path, chain_params, clock, make_transfer_tx):
    node = open_node(
        tmp_path, chain_params, clock, verify_threads=1, policy=MempoolPolicy(max_count=2)
    )
    try:
        low = make_transfer_tx("alice", fee=FEE)
        node.submit_tx(low)
        node.submit_tx(make_transfer_tx("bob", fee=2 * FEE))
        node.submit_tx(make_transfer_tx("carol", fee=3 * FEE))
        assert low.txid not in node.mempool
        assert mempool_rows(node) == set(node.mempool.by_id)
    finally:
        node.close()


def test_write_failing_mid_connect_leaves_the_node_on_the_last_whole_block(
    tmp_path, monkeypatch
) -> None:
    """A disk error while connecting propagates; nothing of the block is written, the
    node stays on the stored tip, and the same block connects once the store works."""
    node = open_node(tmp_path, funded_params("alice"))
    first = make_block(node)
    node.submit_block(first)
    second = make_block(node, first.hash)
    real_connect = node.store.connect_block

    def failing_connect(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(node.store, "connect_block", failing_connect)
    with pytest.raises(OSError):
        node.submit_block(second)
    assert node.tip.hash == first.hash == node.store.tip_hash()
    assert second.hash not in node.index
    monkeypatch.setattr(node.store, "connect_block", real_connect)
    node.submit_block(second)
    assert node.tip.hash == second.hash == node.store.tip_hash()
    node.close()


def test_orphan_without_valid_proof_of_work_is_refused_not_pooled(tmp_path: Path) -> None:
    """Junk with an unknown parent must cost real work before it takes an orphan slot."""
    from dataclasses import replace

    from modelchain.chain.block import Block
    from modelchain.chain.pow import hash_meets_target

    node = open_node(tmp_path, funded_params("alice"))
    template = make_block(node, solve=False)
    header = replace(template.header, prev_hash="ab" * 32)
    nonce = 0
    while hash_meets_target(bytes.fromhex(replace(header, nonce=nonce).hash), header.target):
        nonce += 1
    junk = Block(replace(header, nonce=nonce), template.txs)
    with pytest.raises(InvalidBlock) as err:
        node.submit_block(junk)
    assert err.value.code == "block-bad-pow"
    assert junk.hash not in node.orphans
    node.close()


def test_big_block_with_one_bad_signature_found_while_connecting_leaves_nothing_written(
    tmp_path: Path,
) -> None:
    """Blocks of many txs are written while their signatures verify on threads; one
    bad signature rolls the whole write back and the block is remembered invalid."""
    from modelchain.chain.node import PARALLEL_VERIFY_MIN
    from modelchain.chain.tx import make_transfer

    params = funded_params("alice")
    node = open_node(tmp_path, params, verify_threads=2)
    alice, bob = key_for("alice"), key_for("bob")
    txs = [
        make_transfer(alice, chain_id=params.chain_id, nonce=n, fee=500, to=bob.account, amount=1)
        for n in range(PARALLEL_VERIFY_MIN + 6)
    ]
    forged = dict(txs[-1].to_json())
    forged["sig"] = ("0" if forged["sig"][0] != "0" else "1") + forged["sig"][1:]
    txs[-1] = tx_from_json(forged)
    before = node.store.snapshot()
    block = make_block(node, txs=txs)
    with pytest.raises(InvalidBlock) as err:
        node.submit_block(block)
    assert (err.value.code, err.value.detail["tx_code"]) == ("block-bad-tx", "tx-bad-signature")
    assert node.height == 0 and node.store.tip_hash() == node.tip.hash
    assert node.store.snapshot() == before
    assert node.store.load_block(block.hash) is None
    assert node.store.receipt_row(txs[0].txid) is None
    assert block.hash in node.invalid
    node.close()
