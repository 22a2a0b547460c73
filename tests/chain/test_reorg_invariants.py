"""Random trees of blocks with random tip switches, checked against a replay.

A Hypothesis state machine grows blocks on any known block (so the most-work
tip jumps between branches), sometimes offers an invalid block, and after
every step checks that the node's state equals the state replayed from
genesis along its tip, that money is conserved, and that the tip is the
most-work valid block (the first seen among equals).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from factories import (
    FakeClock,
    branch_of,
    coins_issued,
    funded_params,
    key_for,
    make_block,
    open_node,
    replay_chain,
)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from modelchain.chain.block import Block
from modelchain.chain.errors import InvalidBlock
from modelchain.chain.tx import make_transfer

USERS = ("alice", "bob", "carol")
KEYS = {label: key_for(label) for label in USERS}
MINERS = ("miner", "other-miner")


class ReorgMachine(RuleBasedStateMachine):
    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="reorg-"))
        self.params = funded_params(*USERS, amount=1_000_000)
        self.clock = FakeClock(self.params.genesis_time + 10**7)
        self.node = open_node(self.dir, self.params, self.clock, verify_threads=1)
        self.by_hash: dict[str, Block] = {}
        self.seen_order: list[str] = []

    def teardown(self) -> None:
        self.node.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def branch(self, block_hash: str) -> list[Block]:
        return branch_of(self.by_hash, block_hash)

    @initialize(target=blocks)
    def genesis(self) -> str:
        return self.node.store.chain_hash_at(0) or ""

    @rule(
        target=blocks,
        parent=blocks,
        transfers=st.lists(
            st.tuples(st.sampled_from(USERS), st.sampled_from(USERS), st.integers(1, 400_000)),
            max_size=4,
        ),
        gap=st.integers(1, 40),
        miner=st.sampled_from(MINERS),
    )
    def extend(
        self, parent: str, transfers: list[tuple[str, str, int]], gap: int, miner: str
    ) -> str:
        parent_state = replay_chain(self.params, self.branch(parent))
        nonces: dict[str, int] = {}
        balances: dict[str, int] = {}
        txs = []
        for sender, receiver, amount in transfers:
            account = KEYS[sender].account
            balance, nonce = parent_state.read_account(account)
            balance = balances.get(sender, balance)
            nonce = nonces.get(sender, nonce)
            fee = 300
            if balance < amount + fee:
                continue
            txs.append(
                make_transfer(
                    KEYS[sender],
                    chain_id=self.params.chain_id,
                    nonce=nonce,
                    fee=fee,
                    to=KEYS[receiver].account,
                    amount=amount,
                )
            )
            balances[sender] = balance - amount - fee
            if receiver != sender:
                receiver_balance = balances.get(
                    receiver, parent_state.read_account(KEYS[receiver].account)[0]
                )
                balances[receiver] = receiver_balance + amount
            else:
                balances[sender] += amount
            nonces[sender] = nonce + 1
        record = self.node.index[parent]
        block = make_block(
            self.node,
            parent,
            txs,
            miner=key_for(miner).account,
            timestamp=record.header.timestamp + gap,
        )
        tip_before = self.node.tip.hash
        self.node.submit_block(block)
        if self.node.tip.hash not in (tip_before, block.hash) or (
            self.node.tip.hash == block.hash and parent != tip_before
        ):
            event("tip switched branch (reorg)")
        self.by_hash[block.hash] = block
        self.seen_order.append(block.hash)
        return block.hash

    @rule(parent=blocks, overpay=st.integers(1, 1000))
    def offer_invalid_block(self, parent: str, overpay: int) -> None:
        """A block paying itself too much is refused and never becomes the tip."""
        tip_before = self.node.tip.hash
        block = make_block(self.node, parent, reward=None)
        bad = make_block(
            self.node,
            parent,
            reward=block.txs[0].args["amount"] + overpay,
            timestamp=block.header.timestamp + 1,
        )
        with pytest.raises(InvalidBlock):
            self.node.submit_block(bad)
        assert self.node.tip.hash == tip_before

    @invariant()
    def state_equals_replay_from_genesis(self) -> None:
        expected = replay_chain(self.params, self.branch(self.node.tip.hash))
        assert self.node.store.snapshot() == expected.snapshot()

    @invariant()
    def money_is_conserved(self) -> None:
        issued = coins_issued(self.branch(self.node.tip.hash))
        total = sum(balance for _, balance, _ in self.node.store.iter_accounts())
        assert total == self.params.genesis_supply + issued

    @invariant()
    def tip_has_the_most_work_first_seen(self) -> None:
        valid = [r for h, r in self.node.index.items() if h not in self.node.invalid]
        most = max(r.work for r in valid)
        assert self.node.tip.work == most
        first = min((r for r in valid if r.work == most), key=lambda r: r.seq)
        assert self.node.tip.hash == first.hash


ReorgMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_state_after_any_reorg_equals_replay_from_genesis = ReorgMachine.TestCase
