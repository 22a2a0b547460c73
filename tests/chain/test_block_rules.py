"""One bad block per consensus rule, each checked by its reason code.

Every block here is honest but for the one rule it breaks: it is built on
the node's tip with `make_block`, then `forge` changes one header field or
the body and solves the proof of work again. Errors come from
`node.submit_block`; a bad tx inside a block is `block-bad-tx` naming the
tx's own code in `detail["tx_code"]`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from factories import FakeClock, funded_params, key_for, make_block, open_node

from modelchain.chain.block import HEADER_BYTES, Block, decode_block
from modelchain.chain.encoding import sha256d
from modelchain.chain.errors import InvalidBlock
from modelchain.chain.params import block_subsidy
from modelchain.chain.pow import compute_median_time, hash_meets_target
from modelchain.chain.tx import make_reward, make_tx, tx_from_json

FEE = 1_000


def submit_error(node, block: Block) -> InvalidBlock:
    """The InvalidBlock that submitting `block` raises (fails the test if none)."""
    with pytest.raises(InvalidBlock) as err:
        node.submit_block(block)
    return err.value


def reward_tx(block: Block, **changes):
    """A reward for `block`'s height and miner with fields changed (built as JSON)."""
    fields = block.txs[0].to_json() | changes
    return tx_from_json(fields)


# --- header rules ------------------------------------------------------------


def test_block_with_unknown_version_is_rejected(node, forge) -> None:
    block = forge(make_block(node, solve=False), version=2)
    assert submit_error(node, block).code == "block-bad-version"


@pytest.mark.parametrize("height", [0, 2, 5])
def test_block_whose_height_is_not_parent_plus_one_is_rejected(node, forge, height) -> None:
    honest = make_block(node, solve=False)
    reward = make_reward(node.params.chain_id, height, honest.header.miner, 50_000_000)
    block = forge(honest, txs=[reward], height=height)
    assert submit_error(node, block).code == "block-bad-height"


@pytest.mark.parametrize("factor", [(1, 2), (3, 4), (1, 16)])
def test_block_whose_target_is_not_the_expected_one_is_rejected(node, forge, factor) -> None:
    honest = make_block(node, solve=False)
    numerator, denominator = factor
    block = forge(honest, target=honest.header.target * numerator // denominator)
    assert submit_error(node, block).code == "block-bad-target"


def test_block_whose_hash_is_above_its_target_is_rejected(node) -> None:
    unsolved = make_block(node, solve=False)
    nonce = 0
    target = unsolved.header.target
    while hash_meets_target(sha256d(replace(unsolved.header, nonce=nonce).to_bytes()), target):
        nonce += 1
    block = Block(replace(unsolved.header, nonce=nonce), unsolved.txs)
    assert submit_error(node, block).code == "block-bad-pow"
    assert node.height == 0


def test_block_whose_miner_is_not_an_account_is_malformed(node, forge) -> None:
    honest = make_block(node, solve=False)
    miner = honest.header.miner.upper()  # the same bytes, but not an account id
    reward = make_reward(node.params.chain_id, 1, miner, block_subsidy(1, node.params))
    block = forge(honest, txs=[reward], miner=miner)
    assert submit_error(node, block).code == "block-malformed"


def build_times(node, offsets: list[int]) -> None:
    """Extend the tip with blocks at genesis time + each offset."""
    genesis_time = node.params.genesis_time
    for offset in offsets:
        node.submit_block(make_block(node, timestamp=genesis_time + offset))


# times of blocks 1..11: the window of 11 times is not in chain order
WINDOW_OFFSETS = [10, 20, 30, 40, 50, 100, 90, 80, 70, 60, 200]
SORTED_MEDIAN_OFFSET = 60  # sorted: 10 ... 50, 60, 70 ... 100, 200; chain-order middle is 100


@pytest.mark.parametrize("delta", [0, -1, -50])
def test_block_with_timestamp_at_or_before_median_past_is_rejected(node, delta) -> None:
    build_times(node, WINDOW_OFFSETS)
    timestamp = node.params.genesis_time + SORTED_MEDIAN_OFFSET + delta
    block = make_block(node, timestamp=timestamp)
    assert submit_error(node, block).code == "block-time-too-old"


def test_block_after_sorted_median_of_last_11_is_accepted_though_before_parent(node) -> None:
    build_times(node, WINDOW_OFFSETS)
    # the chain-order middle of the window (block 6, offset 100) would refuse 61
    times = [node.block_at(h).header.timestamp for h in range(1, 12)]
    assert compute_median_time(times) == node.params.genesis_time + SORTED_MEDIAN_OFFSET
    block = make_block(node, timestamp=node.params.genesis_time + SORTED_MEDIAN_OFFSET + 1)
    assert block.header.timestamp < node.tip.header.timestamp
    node.submit_block(block)
    assert node.tip.hash == block.hash


def test_block_more_than_max_future_seconds_ahead_is_rejected(node, clock) -> None:
    block = make_block(node, timestamp=clock.now + node.params.max_future_seconds + 1)
    assert submit_error(node, block).code == "block-time-too-new"
    assert node.height == 0


def test_block_exactly_max_future_seconds_ahead_is_accepted(node, clock) -> None:
    block = make_block(node, timestamp=clock.now + node.params.max_future_seconds)
    node.submit_block(block)
    assert node.tip.hash == block.hash


@pytest.mark.parametrize("how", ["retry_future_blocks", "resubmit"])
def test_too_new_block_is_not_cached_invalid_and_is_accepted_once_its_time_has_come(
    node, clock, how
) -> None:
    block = make_block(node, timestamp=clock.now + node.params.max_future_seconds + 30)
    assert submit_error(node, block).code == "block-time-too-new"
    assert block.hash not in node.invalid
    clock.now += 29
    assert node.retry_future_blocks() == []  # its time has not come yet
    assert node.height == 0
    clock.now += 1
    if how == "retry_future_blocks":
        [result] = node.retry_future_blocks()
        assert result.status == "accepted"
    else:
        assert node.submit_block(block).status == "accepted"
    assert node.tip.hash == block.hash


# --- body against header -----------------------------------------------------


def test_other_body_under_a_stored_header_is_a_duplicate_and_changes_nothing(
    node, make_transfer_tx
) -> None:
    honest = make_block(node, txs=[make_transfer_tx("alice")])
    node.submit_block(honest)
    mutated = Block(honest.header, honest.txs[:1])
    assert node.submit_block(mutated).status == "duplicate"
    assert node.get_block(honest.hash) == honest


def test_block_whose_header_root_is_not_its_txs_root_is_rejected(node, forge) -> None:
    honest = make_block(node, solve=False)
    block = forge(honest, merkle_root="ab" * 32)
    assert submit_error(node, block).code == "block-bad-merkle-root"


def drop_last(block: Block) -> tuple:
    return block.txs[:-1]


def add_one(block: Block) -> tuple:
    return (*block.txs, make_transfer_like(block, nonce=2))


def swap(block: Block) -> tuple:
    return (block.txs[0], block.txs[2], block.txs[1])


def repeat_last(block: Block) -> tuple:
    return (*block.txs, block.txs[-1])


def make_transfer_like(block: Block, nonce: int):
    return make_tx(
        key_for("alice"),
        chain_id=block.txs[0].chain_id,
        nonce=nonce,
        fee=FEE,
        contract="coin",
        method="transfer",
        args={"to": key_for("bob").account, "amount": 1},
    )


@pytest.mark.parametrize("mutate", [drop_last, add_one, swap, repeat_last])
def test_body_not_matching_its_header_does_not_poison_the_honest_block(
    node, make_transfer_tx, mutate
) -> None:
    txs = [make_transfer_tx("alice", nonce=0), make_transfer_tx("alice", nonce=1)]
    honest = make_block(node, txs=txs)
    mutated = Block(honest.header, mutate(honest))
    assert mutated.hash == honest.hash
    assert submit_error(node, mutated).code == "block-bad-merkle-root"
    assert honest.hash not in node.invalid
    assert node.submit_block(honest).status == "accepted"
    assert node.tip.hash == honest.hash


def oversize_node(tmp_path: Path, clock: FakeClock, limit: int):
    params = funded_params("alice", "bob", "carol", max_block_bytes=limit)
    return open_node(tmp_path, params, clock, verify_threads=1)


def block_size(reward_and_txs) -> int:
    return HEADER_BYTES + sum(4 + tx.size for tx in reward_and_txs)


@pytest.mark.parametrize(("over", "accepted"), [(1, False), (0, True)])
def test_block_over_max_block_bytes_is_rejected(
    tmp_path, clock, make_transfer_tx, over, accepted
) -> None:
    tx = make_transfer_tx("alice")
    reward = make_reward("modelchain-regtest", 1, key_for("miner").account, 50_000_000 + FEE)
    node = oversize_node(tmp_path, clock, block_size([reward, tx]) - over)
    try:
        block = make_block(node, txs=[tx])
        assert block.size == block_size([reward, tx])
        if accepted:
            node.submit_block(block)
            assert node.tip.hash == block.hash
        else:
            assert submit_error(node, block).code == "block-too-large"
    finally:
        node.close()


def test_block_with_the_same_tx_twice_is_rejected(node, forge, make_transfer_tx) -> None:
    tx = make_transfer_tx("alice")
    honest = make_block(node, txs=[tx], solve=False)
    block = forge(honest, txs=[*honest.txs, tx])
    assert submit_error(node, block).code == "block-duplicate-tx"


@pytest.mark.parametrize("body", ["empty", "transfer-first"])
def test_block_without_a_reward_first_is_rejected(node, forge, make_transfer_tx, body) -> None:
    honest = make_block(node, txs=[make_transfer_tx("alice")], solve=False)
    txs = () if body == "empty" else honest.txs[1:]
    assert submit_error(node, forge(honest, txs=txs)).code == "block-missing-reward"


def test_block_with_a_second_reward_is_rejected(node, forge, make_transfer_tx) -> None:
    honest = make_block(node, txs=[make_transfer_tx("alice")], solve=False)
    second = make_reward(node.params.chain_id, 1, honest.header.miner, 0)
    block = forge(honest, txs=[*honest.txs, second])
    assert submit_error(node, block).code == "block-extra-reward"


@pytest.mark.parametrize(
    "changes",
    [
        {"args": {"to": key_for("alice").account, "amount": 50_000_000}},  # not header.miner
        {"nonce": 2},  # not the height
        {"chain_id": "another-chain"},
        {"fee": 1},
        {"method": "mint"},
        {"args": {"to": key_for("miner").account, "amount": 50_000_000, "memo": "x"}},
        {"args": {"to": key_for("miner").account, "amount": -1}},
        {"args": {"to": key_for("miner").account, "amount": "50000000"}},
    ],
    ids=["pays-another", "nonce", "chain", "fee", "method", "extra-arg", "negative", "text"],
)
def test_reward_not_shaped_for_its_block_is_rejected(node, forge, changes) -> None:
    honest = make_block(node, solve=False)
    block = forge(honest, txs=[reward_tx(honest, **changes)])
    assert submit_error(node, block).code == "block-bad-reward"


def test_reward_above_subsidy_plus_fees_is_rejected(node, make_transfer_tx) -> None:
    txs = [make_transfer_tx("alice", fee=FEE), make_transfer_tx("bob", fee=2 * FEE)]
    allowed = block_subsidy(1, node.params) + 3 * FEE
    block = make_block(node, txs=txs, reward=allowed + 1)
    error = submit_error(node, block)
    assert error.code == "block-reward-too-high"
    assert node.height == 0


@pytest.mark.parametrize("below", [0, 1, 50_000_000 + 3 * FEE])
def test_reward_up_to_subsidy_plus_fees_is_accepted(node, make_transfer_tx, below) -> None:
    txs = [make_transfer_tx("alice", fee=FEE), make_transfer_tx("bob", fee=2 * FEE)]
    allowed = block_subsidy(1, node.params) + 3 * FEE
    miner = key_for("miner").account
    node.submit_block(make_block(node, txs=txs, reward=allowed - below))
    assert node.height == 1
    assert node.balance(miner) == allowed - below


def test_block_bytes_cut_short_are_malformed(node) -> None:
    data = make_block(node, txs=()).to_bytes()
    for cut in (HEADER_BYTES - 1, HEADER_BYTES + 2, len(data) - 1):
        with pytest.raises(InvalidBlock) as err:
            decode_block(data[:cut])
        assert err.value.code == "block-malformed"


def test_block_bytes_holding_a_non_canonical_tx_are_malformed_naming_the_tx_code(node) -> None:
    block = make_block(node, txs=())
    raw = block.txs[0].raw.replace(b'{"args"', b'{ "args"', 1)
    data = block.header.to_bytes() + len(raw).to_bytes(4, "big") + raw
    with pytest.raises(InvalidBlock) as err:
        decode_block(data)
    assert err.value.code == "block-malformed"
    assert err.value.detail["tx_code"] == "tx-malformed"


# --- txs inside a block ----------------------------------------------------------


def bad_signature(make_transfer_tx):
    good = make_transfer_tx("alice")
    fields = good.to_json() | {"sig": make_transfer_tx("alice", amount=11).sig}
    return tx_from_json(fields)


def wrong_chain(make_transfer_tx):
    return make_transfer_tx("alice", chain_id="modelchain-other")


def nonce_too_high(make_transfer_tx):
    return make_transfer_tx("alice", nonce=1)


def unfunded_sender(make_transfer_tx):
    return make_transfer_tx("dave", "bob")


def spends_more_than_balance(make_transfer_tx):
    return make_transfer_tx("alice", amount=10**9 - FEE + 1)


def unknown_contract(make_transfer_tx):
    return make_tx(
        key_for("alice"),
        chain_id="modelchain-regtest",
        nonce=0,
        fee=FEE,
        contract="nosuch",
        method="transfer",
        args={"to": key_for("bob").account, "amount": 10},
    )


def bad_call(make_transfer_tx):
    return make_transfer_tx("alice", amount=0)


@pytest.mark.parametrize(
    ("build", "tx_code"),
    [
        (bad_signature, "tx-bad-signature"),
        (wrong_chain, "tx-wrong-chain"),
        (nonce_too_high, "tx-nonce-too-high"),
        (unfunded_sender, "tx-insufficient-balance"),
        (spends_more_than_balance, "tx-insufficient-balance"),
        (unknown_contract, "tx-unknown-contract"),
        (bad_call, "tx-bad-call"),
    ],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_block_with_an_invalid_tx_is_rejected_naming_the_tx_rule(
    node, make_transfer_tx, build, tx_code
) -> None:
    before = node.store.snapshot()
    block = make_block(node, txs=[build(make_transfer_tx)])
    error = submit_error(node, block)
    assert (error.code, error.detail["tx_code"]) == ("block-bad-tx", tx_code)
    assert node.height == 0
    assert node.store.snapshot() == before


def test_block_whose_txs_together_spend_more_than_the_sender_has_is_rejected(
    node, make_transfer_tx, funds
) -> None:
    everything_but_fees = funds - 2 * FEE
    first = make_transfer_tx("alice", nonce=0, amount=everything_but_fees - 5)
    second = make_transfer_tx("alice", nonce=1, amount=6)
    error = submit_error(node, make_block(node, txs=[first, second]))
    assert (error.code, error.detail["tx_code"]) == ("block-bad-tx", "tx-insufficient-balance")
    assert error.detail["txid"] == second.txid
    # one unit less and the block spends exactly everything
    second = make_transfer_tx("alice", nonce=1, amount=5)
    node.submit_block(make_block(node, txs=[first, second]))
    assert node.balance(key_for("alice").account) == 0


def test_block_replaying_a_tx_already_in_the_chain_is_rejected(node, make_transfer_tx) -> None:
    tx = make_transfer_tx("alice")
    node.submit_block(make_block(node, txs=[tx]))
    error = submit_error(node, make_block(node, txs=[tx]))
    assert (error.code, error.detail["tx_code"]) == ("block-bad-tx", "tx-nonce-too-low")


def test_tx_over_max_tx_bytes_in_a_block_is_rejected(tmp_path, clock, make_transfer_tx) -> None:
    tx = make_transfer_tx("alice")
    params = funded_params("alice", max_tx_bytes=tx.size - 1)
    node = open_node(tmp_path, params, clock, verify_threads=1)
    try:
        error = submit_error(node, make_block(node, txs=[tx]))
        assert (error.code, error.detail["tx_code"]) == ("block-bad-tx", "tx-too-large")
    finally:
        node.close()


# --- what is remembered as invalid -------------------------------------------------


def child_of(node, forge, parent: Block) -> Block:
    """A block on `parent` built by hand (the node may not have stored `parent`)."""
    height = parent.height + 1
    template = make_block(node, solve=False)
    reward = make_reward(
        node.params.chain_id, height, template.header.miner, block_subsidy(height, node.params)
    )
    return forge(
        template,
        txs=[reward],
        prev_hash=parent.hash,
        height=height,
        timestamp=parent.header.timestamp + 10,
    )


@pytest.mark.parametrize("build", [spends_more_than_balance, bad_signature])
def test_block_rejected_for_a_bad_tx_is_remembered_invalid_with_its_descendants(
    node, forge, make_transfer_tx, build
) -> None:
    bad = make_block(node, txs=[build(make_transfer_tx)])
    assert submit_error(node, bad).code == "block-bad-tx"
    assert submit_error(node, bad).code == "block-known-invalid"
    child = child_of(node, forge, bad)
    assert submit_error(node, child).code == "block-known-invalid"
    assert submit_error(node, child).code == "block-known-invalid"
    grandchild = child_of(node, forge, child)
    assert submit_error(node, grandchild).code == "block-known-invalid"
    assert node.height == 0


def test_descendant_stored_before_its_ancestor_failed_is_invalid_too(
    node, make_transfer_tx
) -> None:
    main = make_block(node)
    node.submit_block(main)
    node.submit_block(make_block(node))  # main chain: height 2
    genesis = node.store.chain_hash_at(0)
    bad = make_block(node, genesis, txs=[spends_more_than_balance(make_transfer_tx)])
    node.submit_block(bad)  # a side branch with less work is stored, not executed
    child = make_block(node, bad.hash)
    node.submit_block(child)  # ties the main chain: the first seen stays
    grandchild = make_block(node, child.hash)
    assert submit_error(node, grandchild).code == "block-known-invalid"
    for block in (bad, child, grandchild):
        assert submit_error(node, block).code == "block-known-invalid"
    assert node.height == 2
    assert node.block_at(1).hash == main.hash
