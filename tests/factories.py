"""Plain factories for chain tests: nodes on a temp dir and blocks on any parent.

Imported by conftest fixtures and by tests that need them outside fixtures
(Hypothesis state machines).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from modelchain.chain.block import BLOCK_VERSION, Block, Header, compute_block_merkle_root
from modelchain.chain.coin import CoinContract
from modelchain.chain.contract import ContractRegistry
from modelchain.chain.encoding import sha256d
from modelchain.chain.execute import execute_block
from modelchain.chain.keys import KeyPair
from modelchain.chain.node import ChainNode
from modelchain.chain.params import ChainParams, block_subsidy, regtest_params
from modelchain.chain.pow import hash_meets_target
from modelchain.chain.state import MemoryState, StateOverlay
from modelchain.chain.store import ChainStore
from modelchain.chain.tx import Tx, make_reward

GENESIS_FUNDS = 1_000_000_000
T = TypeVar("T")


def key_for(label: str) -> KeyPair:
    return KeyPair.from_seed(hashlib.sha256(label.encode("utf-8")).digest())


MINER = key_for("miner")


def funded_params(*labels: str, amount: int = GENESIS_FUNDS, **overrides: object) -> ChainParams:
    allocations = tuple((key_for(label).account, amount) for label in labels)
    return regtest_params(allocations=allocations, **overrides)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def open_node(
    path: Path, params: ChainParams, clock: FakeClock | None = None, **kw: object
) -> ChainNode:
    clock = clock or FakeClock(params.genesis_time + 10**6)
    return ChainNode(ChainStore(path / "chain.sqlite"), params, clock=clock, **kw)  # type: ignore[arg-type]


def solve_header(header: Header) -> Header:
    """The first nonce from 0 that meets the target (regtest: about two tries)."""
    nonce = 0
    while True:
        candidate = replace(header, nonce=nonce)
        if hash_meets_target(sha256d(candidate.to_bytes()), candidate.target):
            return candidate
        nonce += 1


def make_block(
    node: ChainNode,
    parent_hash: str | None = None,
    txs: Sequence[Tx] = (),
    *,
    miner: str | None = None,
    timestamp: int | None = None,
    reward: int | None = None,
    fees: int | None = None,
    solve: bool = True,
) -> Block:
    """A block on `parent_hash` (default: the tip) carrying `txs`, with a full reward."""
    parent = node.index[parent_hash or node.tip.hash]
    facts = node.parent_facts(parent)
    height = parent.height + 1
    miner = miner or MINER.account
    if fees is None:
        fees = sum(tx.fee for tx in txs)
    if reward is None:
        reward = block_subsidy(height, node.params) + fees
    all_txs = (make_reward(node.params.chain_id, height, miner, reward), *txs)
    header = Header(
        version=BLOCK_VERSION,
        height=height,
        prev_hash=parent.hash,
        merkle_root=compute_block_merkle_root(all_txs),
        timestamp=timestamp if timestamp is not None else parent.header.timestamp + 10,
        target=facts.expected_target,
        miner=miner,
        nonce=0,
    )
    if solve:
        header = solve_header(header)
    return Block(header, all_txs)


def mine_tip(node: ChainNode, miner: str | None = None) -> Block:
    """Mine the node's own template on its tip and submit it."""
    template = node.block_template(miner or MINER.account, now=node.tip.header.timestamp + 10)
    block = Block(solve_header(template.header), template.txs)
    node.submit_block(block)
    return block


def replay_chain(
    params: ChainParams, blocks: Sequence[Block], contracts: ContractRegistry | None = None
) -> MemoryState:
    """The state reached by executing `blocks` (genesis excluded) from genesis."""
    state = MemoryState()
    genesis = StateOverlay(state)
    for account, amount in params.genesis_allocations:
        genesis.credit(account, amount)
    state.apply_changes(genesis.changes)
    contracts = contracts or {"coin": CoinContract()}
    for block in blocks:
        overlay, _ = execute_block(state, block, params, contracts)
        state.apply_changes(overlay.changes)
    return state


def branch_of(blocks_by_hash: Mapping[str, Block], block_hash: str) -> list[Block]:
    """The blocks from height 1 up to `block_hash`, following prev_hash through
    `blocks_by_hash` (the blocks a test made; genesis is not among them)."""
    chain: list[Block] = []
    while block_hash in blocks_by_hash:
        block = blocks_by_hash[block_hash]
        chain.append(block)
        block_hash = block.header.prev_hash
    return chain[::-1]


def coins_issued(blocks: Sequence[Block]) -> int:
    """The coins `blocks` created: each reward less the fees it collects (which only move)."""
    issued = 0
    for block in blocks:
        fees = sum(tx.fee for tx in block.txs[1:])
        issued += block.txs[0].args["amount"] - fees
    return issued


def main_chain(node: ChainNode) -> list[Block]:
    """The node's blocks from height 1 to its tip."""
    blocks = []
    for height in range(1, node.height + 1):
        block = node.block_at(height)
        assert block is not None
        blocks.append(block)
    return blocks


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "") -> T:
    """Polls `predicate` until it returns something true, and returns that; fails naming
    `what` (or the predicate) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what or predicate.__name__}"
            )
        time.sleep(0.01)
