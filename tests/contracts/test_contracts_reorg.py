"""Contract calls in blocks on random branches of a real node, checked against a replay.

A Hypothesis state machine grows blocks on any known block of a `ChainNode`
running every native contract, so the most-work tip jumps between branches
(reorgs). Each block carries calls made for its own branch, whose state is
replayed block by block from genesis: registrations, price changes,
deprecations, name transfers, per-call payments, channel opens, top-ups,
claims with fresh, stale, over-deposit and forged vouchers, and refunds.
Many calls fail and go in anyway: they pay their fee and change nothing
else. Runs of empty blocks let channels expire. Other rules re-mine a
block's calls on a sibling (same txids, so the same channel ids on both
branches), grow a branch to overtake the tip, offer a branch holding an
unaffordable call (its reorg must roll back), send calls to the mempool
and mine the node's own template, and restart the node.

After every step the node must hold exactly what a replay of its tip's
branch from genesis gives (state, receipts and events), money must be
conserved, escrows must hold what is owed, and no channel may have paid
out more than the highest voucher its payer signed. A rule proves that a
payer recovers the unclaimed rest of any open channel after its expiry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from factories import (
    FakeClock,
    branch_of,
    coins_issued,
    key_for,
    make_block,
    open_node,
    replay_chain,
    solve_header,
)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from modelchain.chain.block import Block
from modelchain.chain.contract import CallContext, escrow_account_of
from modelchain.chain.errors import InvalidBlock, InvalidTransaction, ModelchainError
from modelchain.chain.execute import STATUS_FAILED, STATUS_OK, Receipt, apply_tx, execute_block
from modelchain.chain.mempool import MempoolPolicy
from modelchain.chain.node import ChainNode, TipChange
from modelchain.chain.params import block_subsidy, regtest_params
from modelchain.chain.state import MemoryState, StateOverlay
from modelchain.chain.tx import Tx, make_tx
from modelchain.contracts import default_contracts
from modelchain.contracts.channel import CHANNEL, ChannelInfo, channel_key, get_channel
from modelchain.contracts.registry import REGISTRATION_FEE, get_model, get_version
from modelchain.contracts.voucher import sign_voucher

ACTORS = ("alice", "bob", "carol", "dave", "erin")
KEYS = {label: key_for(label) for label in ACTORS}
LABEL_OF = {key.account: label for label, key in KEYS.items()}
RICH = 10**10
POOR = REGISTRATION_FEE + 3_000
"""erin can afford one registration or a few small deposits: balance limits get hit."""
MINERS = ("miner", "other-miner")
NAMES = ("alpha", "beta")
VERSIONS = ("1", "2")
PRICES = (0, 1, 7, 1000)
FEES = (0, 1, 10)
SPLITS = (
    (("alice", 10_000),),
    (("alice", 7000), ("dave", 2000)),
    (("bob", 3333), ("carol", 3333), ("dave", 3333)),
    (("erin", 1),),
)
"""Owners and their basis points; the serving node gets the rest of 10000."""
CALLS = (
    *("register",) * 2,
    "set_price",
    "deprecate",
    "transfer",
    *("pay",) * 2,
    *("open",) * 3,
    *("topup",) * 2,
    *("claim",) * 5,
    *("refund",) * 2,
)
VOUCHERS = ("next", "next", "all", "stale", "over-deposit", "forged", "other-chain")
"""How a claim's voucher is made; only `next` and `all` can pay out."""
OTHER_CHAIN = "modelchain-elsewhere"
REGISTRY_ESCROW = escrow_account_of("registry")
CHANNEL_ESCROW = escrow_account_of(CHANNEL)


def digest(label: str) -> str:
    return hashlib.sha256(label.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Call:
    """One contract call to sign, and what the machine knows about it."""

    sender: str
    contract: str
    method: str
    args: dict[str, Any]
    fee: int
    voucher: str = ""
    """For a claim: the VOUCHERS kind of its voucher."""


class ContractReorgMachine(RuleBasedStateMachine):
    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="contracts-reorg-"))
        allocations = [(KEYS[label].account, RICH) for label in ACTORS if label != "erin"]
        allocations.append((KEYS["erin"].account, POOR))
        self.params = regtest_params(allocations=tuple(allocations))
        self.clock = FakeClock(self.params.genesis_time + 10**7)
        self.undone: list[tuple[int, int]] = []
        """(blocks, contract txs) each tip change disconnected, since the last submit."""
        self.node = self.open()
        self.by_hash: dict[str, Block] = {}
        self.receipts: dict[str, tuple[Receipt, ...]] = {}
        """Each block's receipts, computed when it was made on its parent's replayed state."""
        self.channels: dict[str, tuple[str, str]] = {}
        """Every channel opened on any branch: id -> (payer, node) labels."""
        self.signed: dict[str, int] = {}
        """Highest voucher amount each channel's payer ever signed for this chain."""
        self.files = 0
        self.states: dict[str, MemoryState] = {}
        """The state after each block, replayed block by block from genesis."""
        genesis = self.node.store.chain_hash_at(0)
        assert genesis is not None
        self.states[genesis] = replay_chain(self.params, [], default_contracts())

    def open(self) -> ChainNode:
        node = open_node(
            self.dir,
            self.params,
            self.clock,
            contracts=default_contracts(),
            policy=MempoolPolicy(min_fee_per_byte=0),  # fees here are tiny; keep every tx
            verify_threads=1,
        )
        node.listeners.append(self.on_tip_change)
        # durability is not under test here (tests/functional crash tests cover it)
        node.store.db.execute("PRAGMA synchronous=OFF")
        return node

    def on_tip_change(self, change: TipChange) -> None:
        if change.disconnected:
            txs = sum(len(block.txs) - 1 for block in change.disconnected)
            self.undone.append((len(change.disconnected), txs))

    def teardown(self) -> None:
        self.node.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- branches ----------------------------------------------------------------

    def branch(self, block_hash: str) -> list[Block]:
        """The blocks from height 1 up to `block_hash`, as this machine made them."""
        return branch_of(self.by_hash, block_hash)

    def state_at(self, block_hash: str) -> MemoryState:
        """The state after `block_hash` on its branch (shared: wrap it, never change it)."""
        return self.states[block_hash]

    def tip_branch_receipts(self) -> list[Receipt]:
        return [r for block in self.branch(self.node.tip.hash) for r in self.receipts[block.hash]]

    # --- making calls for a branch -------------------------------------------------

    def _actor(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(ACTORS))

    def _owner_or_anyone(self, data: st.DataObject, state: StateOverlay, name: str) -> str:
        model = get_model(state, name)
        if model is not None and data.draw(st.integers(0, 3)) > 0:
            return LABEL_OF[model.owner]
        return self._actor(data)

    def _pick_channel(self, data: st.DataObject, state: StateOverlay) -> str:
        """Mostly a channel open on this branch, else one closed here, one opened only
        on another branch, or one never opened."""
        here = [(cid, get_channel(state, cid)) for cid in sorted(self.channels)]
        pools = (
            [cid for cid, info in here if info is not None and not info.closed],
            [cid for cid, info in here if info is not None and info.closed],
            [cid for cid, info in here if info is None],
        )
        where = data.draw(st.sampled_from((0, 0, 0, 0, 0, 0, 1, 2, 3)), label="channel kind")
        if where < 3 and pools[where]:
            return data.draw(st.sampled_from(pools[where]), label="channel")
        return digest(f"unknown-channel-{data.draw(st.integers(0, 2))}")

    def _pick_version(self, data: st.DataObject, state: StateOverlay) -> tuple[str, str]:
        """Mostly a version registered on this branch, else any name and version."""
        registered = [
            (name, version)
            for name in NAMES
            for version in VERSIONS
            if get_version(state, name, version) is not None
        ]
        if registered and data.draw(st.integers(0, 4), label="registered") > 0:
            return data.draw(st.sampled_from(registered), label="model@version")
        return (
            data.draw(st.sampled_from(NAMES), label="model"),
            data.draw(st.sampled_from(VERSIONS), label="version"),
        )

    def draw_call(self, data: st.DataObject, state: StateOverlay, height: int) -> Call:
        """A call of a random kind, its args made to fit (or, often, to not fit) `state`."""
        kind = data.draw(st.sampled_from(CALLS), label="call")
        fee = data.draw(st.sampled_from(FEES), label="fee")
        if kind == "register":
            name = data.draw(st.sampled_from(NAMES), label="model")
            version = data.draw(st.sampled_from(VERSIONS), label="version")
        else:
            name, version = self._pick_version(data, state)
        if kind == "register":
            who = self._owner_or_anyone(data, state, name)
            self.files += 1
            reuse = self.files > 1 and data.draw(st.integers(0, 7)) == 0
            sha256 = digest(
                f"file-{data.draw(st.integers(1, self.files - 1)) if reuse else self.files}"
            )
            owners = data.draw(st.sampled_from(SPLITS), label="split")
            owners_json = [[KEYS[label].account, bps] for label, bps in owners]
            split = {"owners": owners_json, "node": 10_000 - sum(bps for _, bps in owners)}
            args = {
                "name": name,
                "version": version,
                "sha256": sha256,
                "price": data.draw(st.sampled_from(PRICES), label="price"),
                "split": split,
            }
            return Call(who, "registry", "register", args, fee)
        if kind == "set_price":
            who = self._owner_or_anyone(data, state, name)
            price = data.draw(st.sampled_from(PRICES), label="price")
            return Call(
                who,
                "registry",
                "set_price",
                {"name": name, "version": version, "price": price},
                fee,
            )
        if kind == "deprecate":
            who = self._owner_or_anyone(data, state, name)
            args: dict[str, Any] = {"name": name, "version": version}
            successor = data.draw(st.none() | st.sampled_from(VERSIONS), label="successor")
            if successor is not None and successor != version:
                args["successor"] = successor
            return Call(who, "registry", "deprecate", args, fee)
        if kind == "transfer":
            who = self._owner_or_anyone(data, state, name)
            to = KEYS[self._actor(data)].account
            return Call(who, "registry", "transfer", {"name": name, "to": to}, fee)
        if kind == "pay":
            info = get_version(state, name, version)
            price = info.price if info is not None else 0
            amount = max(1, price + data.draw(st.sampled_from((0, 0, 0, 1, -1)), label="off"))
            args = {
                "model": name,
                "version": version,
                "amount": amount,
                "node": KEYS[self._actor(data)].account,
                "request": digest(f"request-{data.draw(st.integers(0, 10**6))}"),
            }
            return Call(self._actor(data), "usage_fee", "pay", args, fee)
        if kind == "open":
            args = {
                "model": name,
                "version": version,
                "node": KEYS[self._actor(data)].account,
                "deposit": data.draw(st.integers(1, 5000), label="deposit"),
                "expiry": max(0, height + data.draw(st.integers(-1, 12), label="lifetime")),
            }
            return Call(self._actor(data), CHANNEL, "open", args, fee)
        channel_id = self._pick_channel(data, state)
        channel = get_channel(state, channel_id)
        payer, node = self.channels.get(channel_id, ("alice", "bob"))
        by_party = data.draw(st.sampled_from((True, True, True, False)), label="by party")
        if kind == "topup":
            who = payer if by_party else self._actor(data)
            base = channel.expiry if channel is not None else height
            args = {
                "channel": channel_id,
                "deposit": data.draw(st.integers(0, 3000), label="added"),
                "expiry": max(0, base + data.draw(st.integers(-1, 8), label="extend")),
            }
            return Call(who, CHANNEL, "topup", args, fee)
        if kind == "refund":
            who = payer if by_party else self._actor(data)
            return Call(who, CHANNEL, "refund", {"channel": channel_id}, fee)
        who = node if by_party else self._actor(data)
        voucher = data.draw(st.sampled_from(VOUCHERS), label="voucher")
        claimed = channel.claimed if channel is not None else 0
        deposit = channel.deposit if channel is not None else 1
        if voucher == "next":  # mostly within the deposit, leaving room for more claims
            step = data.draw(st.integers(1, max(1, (deposit - claimed) // 2) + 50), label="step")
            amount = claimed + step
        elif voucher == "all":
            amount = max(1, deposit)
        elif voucher == "stale":
            amount = max(1, claimed - data.draw(st.integers(0, 50), label="back"))
        elif voucher == "over-deposit":
            amount = deposit + data.draw(st.integers(1, 1000), label="over")
        else:
            amount = claimed + 1
        signer, chain_id = payer, self.params.chain_id
        if voucher == "forged":
            signer = data.draw(st.sampled_from([a for a in ACTORS if a != payer]), label="forger")
        elif voucher == "other-chain":
            chain_id = OTHER_CHAIN
        if voucher in ("next", "all", "stale", "over-deposit"):
            # the payer signed it, whether or not any claim ever goes through
            self.signed[channel_id] = max(self.signed.get(channel_id, 0), amount)
        sig = sign_voucher(KEYS[signer], chain_id, channel_id, amount)
        args = {"channel": channel_id, "amount": amount, "sig": sig}
        return Call(who, CHANNEL, "claim", args, fee, voucher=voucher)

    def try_call(
        self, call: Call, state: StateOverlay, height: int, timestamp: int, miner: str
    ) -> tuple[Tx, Receipt] | None:
        """Sign `call` with the sender's next nonce on `state` and run it there.

        None (and `state` unchanged) when no block may include it; the caller
        then leaves it out.
        """
        key = KEYS[call.sender]
        tx = make_tx(
            key,
            chain_id=self.params.chain_id,
            nonce=state.nonce(key.account),
            fee=call.fee,
            contract=call.contract,
            method=call.method,
            args=call.args,
        )
        ctx = CallContext(
            self.params.chain_id, height, timestamp, miner, tx.txid, tx.sender, tx.fee
        )
        attempt = state.child()
        before = get_channel(state, call.args["channel"]) if call.method == "claim" else None
        try:
            receipt = apply_tx(attempt, tx, 0, ctx, default_contracts())
        except InvalidTransaction as exc:
            event(f"{call.contract}.{call.method}: left out ({exc.code})")
            return None
        attempt.commit()
        event(f"{call.contract}.{call.method}: {receipt.code or receipt.status}")
        if call.method == "claim":
            self.check_claim(call, before, receipt)
        if call.method == "open" and receipt.status == STATUS_OK:
            # known at once, so a later call of the same block may use it
            self.channels[tx.txid] = (call.sender, LABEL_OF[call.args["node"]])
        return tx, receipt

    def check_claim(self, call: Call, before: ChannelInfo | None, receipt: Receipt) -> None:
        """Only the payer's own voucher for this chain, above the claimed and within the
        deposit, pays out; and it pays out exactly the difference."""
        if call.voucher in ("stale", "over-deposit", "forged", "other-chain") and (
            call.voucher != "stale" or (before is not None and before.claimed >= 1)
        ):
            assert receipt.status == STATUS_FAILED, (call, receipt)
        if receipt.status == STATUS_OK:
            assert before is not None
            amount = call.args["amount"]
            assert before.claimed < amount <= before.deposit
            assert amount <= self.signed[before.id]
            assert receipt.events[0].data["paid"] == amount - before.claimed
            if before.claimed:
                event("claim on a channel claimed from before")

    def build_block(
        self,
        parent: str,
        calls: list[Call] | None,
        data: st.DataObject | None,
        *,
        gap: int = 10,
        miner: str = "miner",
        reward: str = "full",
        count: int = 0,
    ) -> Block:
        """A block on `parent` with calls valid for that branch (drawn from `data` when
        `calls` is None), its receipts remembered."""
        record = self.node.index[parent]
        height = record.height + 1
        timestamp = record.header.timestamp + gap
        miner_account = key_for(miner).account
        parent_state = self.state_at(parent)
        overlay = StateOverlay(parent_state)
        txs: list[Tx] = []
        for index in range(count if calls is None else len(calls)):
            call = calls[index] if calls is not None else self.draw_call(data, overlay, height)
            made = self.try_call(call, overlay, height, timestamp, miner_account)
            if made is not None:
                txs.append(made[0])
        fees = sum(tx.fee for tx in txs)
        amount = {
            "full": block_subsidy(height, self.params) + fees,
            "fees-only": fees,
            "nothing": 0,
        }[reward]
        block = make_block(
            self.node, parent, txs, miner=miner_account, timestamp=timestamp, reward=amount
        )
        self.remember(block, parent_state)
        return block

    def remember(self, block: Block, parent_state: MemoryState | None = None) -> None:
        """Keep the state and receipts that executing `block` on its parent's replayed
        state gives, and the channels it opens."""
        if parent_state is None:
            parent_state = self.state_at(block.header.prev_hash)
        overlay, outcome = execute_block(parent_state, block, self.params, default_contracts())
        self.receipts[block.hash] = outcome.receipts
        state = MemoryState()
        state.accounts = dict(parent_state.accounts)
        state.storage = dict(parent_state.storage)
        state.apply_changes(overlay.changes)
        self.states[block.hash] = state
        for tx, receipt in zip(block.txs[1:], outcome.receipts[1:], strict=True):
            if tx.contract == CHANNEL and tx.method == "open" and receipt.status == STATUS_OK:
                self.channels[tx.txid] = (LABEL_OF[tx.sender], LABEL_OF[tx.args["node"]])

    def submit(self, block: Block) -> str:
        parent = block.header.prev_hash
        tip_before = self.node.tip.hash
        self.undone.clear()
        self.node.submit_block(block)
        self.by_hash[block.hash] = block
        tip = self.node.tip.hash
        if self.undone:
            event("tip switched branch (reorg)")
            depth = max(blocks for blocks, _ in self.undone)
            event(f"reorg disconnected {depth if depth < 4 else '4+'} block(s)")
            if any(txs for _, txs in self.undone):
                event("reorg undid contract calls")
        elif tip == tip_before:
            event("block stayed on a side branch")
        else:
            assert parent == tip_before
        return block.hash

    # --- rules ---------------------------------------------------------------------

    @initialize(target=blocks)
    def a_priced_model_with_an_open_channel(self):
        """Start from a paid version with a channel on it, so most runs reach claims."""
        genesis = self.node.store.chain_hash_at(0)
        assert genesis is not None
        split = {
            "owners": [[KEYS["alice"].account, 7000], [KEYS["dave"].account, 2000]],
            "node": 1000,
        }
        register = {
            "name": "alpha",
            "version": "1",
            "sha256": digest("file-0"),
            "price": 1000,
            "split": split,
        }
        channel = {
            "model": "alpha",
            "version": "1",
            "node": KEYS["carol"].account,
            "deposit": 5000,
            "expiry": 9,
        }
        calls = [
            Call("alice", "registry", "register", register, 10),
            Call("bob", CHANNEL, "open", channel, 10),
        ]
        block = self.build_block(genesis, calls, None)
        assert all(r.status == STATUS_OK for r in self.receipts[block.hash])
        return self.submit(block)

    @rule(
        target=blocks,
        parent=blocks,
        data=st.data(),
        count=st.integers(0, 6),
        gap=st.integers(1, 40),
        miner=st.sampled_from(MINERS),
        reward=st.sampled_from(("full", "full", "fees-only", "nothing")),
        at_genesis=st.sampled_from((False,) * 9 + (True,)),
    )
    def extend(self, parent, data, count, gap, miner, reward, at_genesis):
        """A block of calls on `parent`, or now and then on genesis: a branch where
        the first model and channel never existed."""
        if at_genesis:
            parent = self.node.store.chain_hash_at(0)
        block = self.build_block(
            parent, None, data, gap=gap, miner=miner, reward=reward, count=count
        )
        return self.submit(block)

    @rule(target=blocks, data=st.data(), depth=st.integers(1, 4), miner=st.sampled_from(MINERS))
    def overtake_the_tip(self, data, depth, miner):
        """A branch of call blocks forking `depth` blocks below the tip, grown until it
        has more work: the node disconnects the calls of the old branch for these."""
        tip = self.node.tip
        # at least at height 1: forks from genesis are `extend`'s, now and then
        parent = self.node.ancestor(tip, max(1, tip.height - depth)).hash
        for _ in range(3 * depth + 10):
            count = data.draw(st.integers(0, 2), label="calls")
            parent = self.submit(self.build_block(parent, None, data, miner=miner, count=count))
            if self.node.tip.hash == parent:
                return parent
        raise AssertionError(f"a branch from {depth} blocks down never took over the tip")

    @rule(target=blocks, parent=blocks, count=st.integers(1, 6), miner=st.sampled_from(MINERS))
    def advance(self, parent, count, miner):
        """Empty blocks on `parent`, so that channels on that branch expire."""
        for _ in range(count):
            parent = self.submit(self.build_block(parent, [], None, miner=miner))
        return parent

    @rule(parent=blocks, data=st.data(), gap=st.integers(1, 30))
    def offer_a_branch_with_an_unaffordable_deposit(self, parent, data, gap):
        """A block whose call may spend more than its sender has never connects: offered
        on the tip it is refused at once; on a side branch it is stored unexecuted, and
        the reorg that its branch later asks for fails and puts the old tip back."""
        tip_before = self.node.tip.hash
        snapshot = self.node.store.snapshot()
        if self.node.tip.height - self.node.index[parent].height > 3:
            parent = self.node.tip.prev_hash  # a shorter reorg: the test stays fast
        state = self.state_at(parent)
        key = KEYS[self._actor(data)]
        balance, nonce = state.read_account(key.account)
        args = {
            "model": "alpha",
            "version": "1",
            "node": KEYS["carol"].account,
            "deposit": balance + 1,
            "expiry": self.node.index[parent].height + 5,
        }
        tx = make_tx(
            key,
            chain_id=self.params.chain_id,
            nonce=nonce,
            fee=0,
            contract=CHANNEL,
            method="open",
            args=args,
        )
        record = self.node.index[parent]
        block = make_block(self.node, parent, [tx], timestamp=record.header.timestamp + gap)
        with pytest.raises(InvalidBlock):
            for _ in range(200):  # grow its branch until it has more work than the tip
                self.node.submit_block(block)
                block = make_block(self.node, block.hash)
        if parent != tip_before:
            event("a reorg onto an invalid block was rolled back")
        assert self.node.tip.hash == tip_before
        assert self.node.store.snapshot() == snapshot

    @rule(
        target=blocks,
        original=blocks,
        gap=st.integers(1, 40),
        miner=st.sampled_from(MINERS),
    )
    def remine_on_a_sibling(self, original, gap, miner):
        """The same calls in a sibling block: on both branches the same txids, so the
        same channel ids, and a payer's vouchers are good on either."""
        block = self.by_hash.get(original)
        if block is None or len(block.txs) == 1:
            return multiple()
        record = self.node.index[block.header.prev_hash]
        sibling = make_block(
            self.node,
            record.hash,
            block.txs[1:],
            miner=key_for(miner).account,
            timestamp=record.header.timestamp + gap,
        )
        if sibling.hash == block.hash:
            return multiple()
        self.remember(sibling)
        event("same calls mined on a sibling block")
        return self.submit(sibling)

    @rule()
    def restart_the_node(self):
        """A node reopened from its data dir has the same tip, state and mempool."""
        tip, snapshot = self.node.tip.hash, self.node.store.snapshot()
        pooled = {entry.tx.txid for entry in self.node.mempool.entries()}
        self.node.close()
        self.node = self.open()
        assert self.node.tip.hash == tip
        assert self.node.store.snapshot() == snapshot
        assert {entry.tx.txid for entry in self.node.mempool.entries()} == pooled

    @rule(data=st.data(), count=st.integers(1, 4))
    def pool_calls(self, data, count):
        """Calls made for the tip, sent to the node's mempool: later blocks and reorgs
        leave some of them stale, which the pool must drop before a template takes them."""
        state = StateOverlay(self.state_at(self.node.tip.hash))
        for _ in range(count):
            call = self.draw_call(data, state, self.node.tip.height + 1)
            key = KEYS[call.sender]
            tx = make_tx(
                key,
                chain_id=self.params.chain_id,
                nonce=self.node.pending_nonce(key.account),
                fee=call.fee,
                contract=call.contract,
                method=call.method,
                args=call.args,
            )
            try:
                self.node.submit_tx(tx)
            except ModelchainError as exc:
                event(f"mempool refused {call.contract}.{call.method} ({exc.code})")
                continue
            event(f"mempool took {call.contract}.{call.method}")

    @rule(target=blocks, gap=st.integers(1, 40))
    def mine_the_mempool(self, gap):
        """The calls that reorgs returned to the mempool, mined by the node's own template
        on the tip, make a valid block (each one still fits the new branch)."""
        tip = self.node.tip
        template = self.node.block_template(
            key_for("miner").account, now=tip.header.timestamp + gap
        )
        block = Block(solve_header(template.header), template.txs)
        event("mined pooled txs" if len(block.txs) > 1 else "mined an empty template")
        self.remember(block)
        block_hash = self.submit(block)
        assert self.node.tip.hash == block_hash
        return block_hash

    def open_channels_on_tip(self) -> list[str]:
        return [
            channel_id
            for channel_id in sorted(self.channels)
            if (info := get_channel(self.node.store, channel_id)) is not None and not info.closed
        ]

    @rule(target=blocks, data=st.data())
    def payer_recovers_the_rest_after_expiry(self, data):
        """Whatever was claimed on this branch, once past expiry the payer's refund,
        mined on the tip, returns exactly deposit - claimed."""
        open_ids = self.open_channels_on_tip()
        if not open_ids:
            return multiple()
        channel_id = data.draw(st.sampled_from(open_ids))
        info = get_channel(self.node.store, channel_id)
        assert info is not None
        while self.node.tip.height + 1 <= info.expiry:
            self.submit(self.build_block(self.node.tip.hash, [], None))
        payer_before = self.node.balance(info.payer)
        escrow_before = self.node.balance(CHANNEL_ESCROW)
        refund = Call(LABEL_OF[info.payer], CHANNEL, "refund", {"channel": channel_id}, 0)
        block = self.build_block(self.node.tip.hash, [refund], None)
        assert len(block.txs) == 2
        block_hash = self.submit(block)
        assert self.node.tip.hash == block_hash
        receipt = self.node.store.receipt_row(block.txs[1].txid)
        assert receipt is not None and receipt["status"] == STATUS_OK, receipt
        rest = info.deposit - info.claimed
        assert self.node.balance(info.payer) == payer_before + rest
        assert self.node.balance(CHANNEL_ESCROW) == escrow_before - rest
        after = get_channel(self.node.store, channel_id)
        assert after is not None and after.closed and after.claimed == info.claimed
        event("payer recovered the rest after expiry")
        return block_hash

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def state_equals_replay_from_genesis(self):
        chain = self.branch(self.node.tip.hash)
        store = self.node.store
        assert [store.chain_hash_at(h) for h in range(1, len(chain) + 1)] == [b.hash for b in chain]
        expected = replay_chain(self.params, chain, default_contracts())
        assert self.node.store.snapshot() == expected.snapshot()

    @invariant()
    def receipts_and_events_equal_replay_from_genesis(self):
        """The audit log after any reorg holds exactly the tip branch's receipts and
        events, in chain order: none left over from a disconnected block."""
        expected_receipts = []
        expected_events = []
        for block in self.branch(self.node.tip.hash):
            for r in self.receipts[block.hash]:
                expected_receipts.append((block.hash, r.index, r.txid, r.status, r.code, r.fee))
                expected_events.extend((r.txid, e.contract, e.type, e.data) for e in r.events)
        db = self.node.store.db
        receipts = db.execute(
            "SELECT block_hash, idx, txid, status, code, fee FROM receipts ORDER BY height, idx"
        ).fetchall()
        assert [tuple(row) for row in receipts] == expected_receipts
        events = db.execute("SELECT txid, contract, type, data FROM events ORDER BY id").fetchall()
        assert [(t, c, k, json.loads(d)) for t, c, k, d in events] == expected_events
        for txid, *_ in expected_events[-3:]:  # and the lookups the audit queries use
            found = self.node.store.events_for_tx(txid)
            assert [(e["contract"], e["type"], e["data"]) for e in found] == [
                (c, k, d) for t, c, k, d in expected_events if t == txid
            ]

    @invariant()
    def tx_lookups_and_mempool_follow_the_tip(self):
        """The latest txs are found where the tip branch mined them, and no pooled tx is
        also mined or stale."""
        store = self.node.store
        for block in self.branch(self.node.tip.hash)[-3:]:
            for index, tx in enumerate(block.txs):
                assert store.tx_location(tx.txid) == (block.hash, block.height, index)
        for entry in self.node.mempool.entries():
            assert store.tx_location(entry.tx.txid) is None
            assert entry.tx.nonce >= self.node.nonce(entry.tx.sender)

    @invariant()
    def money_is_conserved(self):
        issued = coins_issued(self.branch(self.node.tip.hash))
        total = sum(balance for _, balance, _ in self.node.store.iter_accounts())
        assert total == self.params.genesis_supply + issued

    @invariant()
    def escrows_hold_exactly_what_is_owed(self):
        store = self.node.store
        channels = [ChannelInfo.from_json(v) for _, v in store.iter_storage(CHANNEL, "channel/")]
        assert store.read_account(CHANNEL_ESCROW)[0] == sum(c.remaining for c in channels)
        versions = list(store.iter_storage("registry", "version/"))
        assert store.read_account(REGISTRY_ESCROW)[0] == REGISTRATION_FEE * len(versions)

    @invariant()
    def no_channel_pays_more_than_the_highest_voucher(self):
        """On the tip: claimed <= the highest voucher the payer signed, claimed + remaining
        = deposit while open, and claimed is what the claims on this branch paid out."""
        paid: dict[str, int] = {}
        refunded: dict[str, int] = {}
        for receipt in self.tip_branch_receipts():
            for ev in receipt.events:
                if ev.type == "channel-claimed":
                    paid[ev.data["channel"]] = paid.get(ev.data["channel"], 0) + ev.data["paid"]
                    shares = sum(share["amount"] for share in ev.data["shares"])
                    assert shares == ev.data["paid"]
                elif ev.type == "channel-refunded":
                    refunded[ev.data["channel"]] = ev.data["refunded"]
        for channel_id in self.channels:
            info = get_channel(self.node.store, channel_id)
            if info is None:
                continue
            assert info.claimed <= self.signed.get(channel_id, 0)
            assert info.claimed == paid.get(channel_id, 0)
            assert info.claimed <= info.deposit
            if info.closed:
                assert info.claimed + refunded[channel_id] == info.deposit
            else:
                assert info.claimed + info.remaining == info.deposit
                assert channel_id not in refunded
        stored = {k for k, _ in self.node.store.iter_storage(CHANNEL, "channel/")}
        assert stored <= {channel_key(channel_id) for channel_id in self.channels}


ContractReorgMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_contract_state_after_any_reorg_equals_replay_and_money_is_conserved = (
    ContractReorgMachine.TestCase
)
