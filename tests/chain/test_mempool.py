"""Mempool policy: pending state, one tx per (sender, nonce), fees, bounds, future nonces.

The pool is tested on its own over a `MemoryState` (no node, no SQLite):
each test funds a few accounts and sets the policy bounds small, so one
extra tx shows the rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import key_for
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.chain.coin import CoinContract
from modelchain.chain.errors import InvalidTransaction, MempoolRejected, ModelchainError
from modelchain.chain.mempool import FUTURE, READY, Mempool, MempoolPolicy, fee_rate
from modelchain.chain.state import MemoryState
from modelchain.chain.tx import Tx, make_tx

NOW = 1_700_000_000
BALANCE = 10_000
FEE = 1_000


class NoteContract:
    """`note.write {text}`: takes nothing; lets a test choose a tx's size."""

    name = "note"

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        return None

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return 0

    def execute(self, view: Any, ctx: Any, method: str, args: dict[str, Any]) -> None:
        return None


CONTRACTS = {"coin": CoinContract(), "note": NoteContract()}


def pay(sender: str, *, nonce: int = 0, amount: int = 10, fee: int = FEE) -> Tx:
    return make_tx(
        key_for(sender),
        chain_id="modelchain-regtest",
        nonce=nonce,
        fee=fee,
        contract="coin",
        method="transfer",
        args={"to": key_for("bob").account, "amount": amount},
    )


def note(sender: str, *, text: str = "", nonce: int = 0, fee: int = FEE) -> Tx:
    return make_tx(
        key_for(sender),
        chain_id="modelchain-regtest",
        nonce=nonce,
        fee=fee,
        contract="note",
        method="write",
        args={"text": text},
    )


@pytest.fixture
def state() -> MemoryState:
    """alice, bob, carol, dave and erin hold BALANCE each, nonce 0."""
    chain = MemoryState()
    for label in ("alice", "bob", "carol", "dave", "erin"):
        chain.accounts[key_for(label).account] = (BALANCE, 0)
    return chain


def make_pool(**policy: Any) -> Mempool:
    return Mempool(CONTRACTS, MempoolPolicy(**policy))


def pool_view(pool: Mempool) -> tuple:
    """Everything the pool holds, comparable before and after a refused add."""
    return (
        sorted((txid, pool.status_of(txid)) for txid in pool.by_id),
        pool.total_bytes,
        pool.future_count,
        dict(pool.ready_spend),
    )


def refused(pool: Mempool, tx: Tx, state: MemoryState, now: int = NOW) -> ModelchainError:
    """The error `pool.add` raises for `tx`, having checked that nothing changed."""
    before = pool_view(pool)
    with pytest.raises((MempoolRejected, InvalidTransaction)) as err:
        pool.add(tx, state, now)
    assert pool_view(pool) == before
    return err.value


# --- fee per byte -------------------------------------------------------------


def fee_for_size_of(make) -> int:
    """A fee equal to the size of the tx that carries it (a 3-digit fee)."""
    size = make(fee=100).size
    assert 100 <= size < 1000
    return size


@pytest.mark.parametrize(("under", "admitted"), [(1, False), (0, True)])
def test_tx_paying_under_min_fee_per_byte_is_refused(state, under, admitted) -> None:
    pool = make_pool(min_fee_per_byte=1)
    fee = fee_for_size_of(lambda fee: pay("alice", fee=fee)) - under
    tx = pay("alice", fee=fee)
    if admitted:
        assert pool.add(tx, state, NOW).status == READY
    else:
        assert refused(pool, tx, state).code == "mempool-fee-too-low"


def test_min_fee_scales_with_the_policy_rate(state) -> None:
    pool = make_pool(min_fee_per_byte=3)
    tx = pay("alice", fee=FEE)
    assert tx.fee < 3 * tx.size
    assert refused(pool, tx, state).code == "mempool-fee-too-low"


# --- pending state ---------------------------------------------------------------


@pytest.mark.parametrize(("amount", "admitted"), [(3_001, False), (3_000, True)])
def test_tx_is_checked_against_balance_minus_pooled_spends(state, amount, admitted) -> None:
    pool = make_pool()
    pool.add(pay("alice", nonce=0, amount=5_000), state, NOW)  # spends 6_000 of 10_000
    second = pay("alice", nonce=1, amount=amount)  # spends amount + 1_000
    assert second.fee + amount <= BALANCE  # the chain balance alone would cover it
    if admitted:
        pool.add(second, state, NOW)
        assert pool.pending_balance(key_for("alice").account, state) == 0
    else:
        error = refused(pool, second, state)
        assert error.code == "tx-insufficient-balance"


def test_pending_nonce_counts_the_senders_ready_txs(state) -> None:
    pool = make_pool()
    alice = key_for("alice").account
    for nonce in range(3):
        pool.add(pay("alice", nonce=nonce), state, NOW)
    assert pool.pending_nonce(alice, state) == 3
    assert pool.pending_balance(alice, state) == BALANCE - 3 * (FEE + 10)


def test_tx_with_a_nonce_already_used_on_chain_is_refused(state) -> None:
    state.accounts[key_for("alice").account] = (BALANCE, 4)
    assert refused(make_pool(), pay("alice", nonce=3), state).code == "tx-nonce-too-low"


def test_tx_from_an_account_that_cannot_pay_is_refused(state) -> None:
    assert refused(make_pool(), pay("frank"), state).code == "tx-insufficient-balance"


def test_same_tx_twice_is_already_known(state) -> None:
    pool = make_pool()
    tx = pay("alice")
    pool.add(tx, state, NOW)
    assert refused(pool, tx, state).code == "mempool-already-known"


def test_tx_calling_an_unknown_contract_is_refused(state) -> None:
    tx = make_tx(
        key_for("alice"),
        chain_id="modelchain-regtest",
        nonce=0,
        fee=FEE,
        contract="nosuch",
        method="x",
        args={},
    )
    assert refused(make_pool(), tx, state).code == "tx-unknown-contract"


# --- one tx per (sender, nonce) ------------------------------------------------------


@pytest.mark.parametrize("fee", [FEE, FEE - 1])
def test_tx_for_a_pooled_sender_nonce_without_a_higher_fee_is_refused(state, fee) -> None:
    pool = make_pool(min_fee_per_byte=0)
    pool.add(pay("alice", amount=10), state, NOW)
    rival = pay("alice", amount=20, fee=fee)
    assert refused(pool, rival, state).code == "mempool-replacement-fee-too-low"


def test_tx_for_a_pooled_sender_nonce_with_a_higher_fee_replaces_it(state) -> None:
    pool = make_pool()
    first = pay("alice", amount=10)
    pool.add(first, state, NOW)
    better = pay("alice", amount=20, fee=FEE + 1)
    result = pool.add(better, state, NOW)
    assert result.replaced == first.txid
    assert first.txid not in pool and better.txid in pool
    assert len(pool) == 1
    assert pool.total_bytes == better.size


def test_replacement_is_checked_without_the_spend_it_replaces(state) -> None:
    pool = make_pool()
    pool.add(pay("alice", amount=8_000), state, NOW)  # spends 9_000
    # 9_000 + 9_000 > 10_000, but the replaced tx's spend is not counted
    result = pool.add(pay("alice", amount=8_999, fee=FEE + 1), state, NOW)
    assert result.replaced is not None


def test_waiting_tx_for_a_pooled_sender_nonce_needs_a_higher_fee_too(state) -> None:
    pool = make_pool()
    pool.add(pay("alice", nonce=2), state, NOW)
    assert refused(pool, pay("alice", nonce=2, amount=11), state).code == (
        "mempool-replacement-fee-too-low"
    )
    result = pool.add(pay("alice", nonce=2, fee=FEE + 1), state, NOW)
    assert result.status == FUTURE and result.replaced is not None
    assert len(pool) == 1 and pool.future_count == 1


# --- bounds: count and bytes, evicting the lowest fee rate ----------------------------


def test_full_pool_evicts_the_lowest_fee_rate_for_a_better_tx(state) -> None:
    pool = make_pool(max_count=2)
    low, mid, high = pay("alice", fee=FEE), pay("bob", fee=2 * FEE), pay("carol", fee=3 * FEE)
    pool.add(low, state, NOW)
    pool.add(mid, state, NOW)
    result = pool.add(high, state, NOW)
    assert low.txid not in pool
    assert {mid.txid, high.txid} == set(pool.by_id)
    assert result.evicted == (low.txid,)


def test_full_pool_refuses_a_tx_paying_a_lower_fee_rate_than_all(state) -> None:
    pool = make_pool(max_count=2)
    pool.add(pay("bob", fee=2 * FEE), state, NOW)
    pool.add(pay("carol", fee=3 * FEE), state, NOW)
    assert refused(pool, pay("alice", fee=FEE), state).code == "mempool-full"


def test_pool_over_its_byte_bound_evicts_the_lowest_fee_rate(state) -> None:
    low, high = pay("alice", fee=FEE), pay("bob", fee=3 * FEE)
    pool = make_pool(max_bytes=low.size + high.size - 1)
    pool.add(low, state, NOW)
    result = pool.add(high, state, NOW)
    assert set(pool.by_id) == {high.txid}
    assert result.evicted == (low.txid,)
    assert pool.total_bytes == high.size


def test_refused_newcomer_evicts_nothing_even_after_cheaper_victims(state) -> None:
    small_low = note("alice", fee=400)
    small_high = note("bob", fee=4_000)
    # larger than both together, and its fee rate between theirs
    big = note("carol", text="x" * 1_500, fee=2 * 2_000)
    assert fee_rate(small_low) < fee_rate(big) < fee_rate(small_high)
    pool = make_pool(max_bytes=big.size + small_low.size // 2, min_fee_per_byte=0)
    pool.add(small_low, state, NOW)
    pool.add(small_high, state, NOW)
    # room for big means evicting small_low, then big itself: it is refused, and
    # small_low must still be there
    assert refused(pool, big, state).code == "mempool-full"
    assert small_low.txid in pool


def test_waiting_txs_count_against_the_pool_bounds(state) -> None:
    pool = make_pool(max_count=2)
    pool.add(pay("bob", fee=2 * FEE), state, NOW)
    pool.add(pay("carol", fee=3 * FEE), state, NOW)
    assert refused(pool, pay("alice", nonce=5, fee=FEE), state).code == "mempool-full"
    result = pool.add(pay("alice", nonce=5, fee=4 * FEE), state, NOW)
    assert result.status == FUTURE
    assert len(pool) == 2


def test_eviction_takes_a_senders_last_nonce_never_one_others_depend_on(state) -> None:
    pool = make_pool(max_count=2)
    head = pay("alice", nonce=0, fee=FEE)  # the lowest rate, but nonce 1 needs it
    tail = pay("alice", nonce=1, fee=2 * FEE)
    pool.add(head, state, NOW)
    pool.add(tail, state, NOW)
    pool.add(pay("bob", fee=3 * FEE), state, NOW)
    assert head.txid in pool and tail.txid not in pool


# --- future nonces -------------------------------------------------------------------


def test_tx_with_a_nonce_gap_waits_and_becomes_ready_when_the_gap_fills(state) -> None:
    pool = make_pool()
    later = pay("alice", nonce=2)
    assert pool.add(later, state, NOW).status == FUTURE
    assert pool.select(10**6) == []
    pool.add(pay("alice", nonce=1), state, NOW)
    assert pool.status_of(later.txid) == FUTURE
    assert pool.add(pay("alice", nonce=0), state, NOW).status == READY
    assert pool.status_of(later.txid) == READY
    assert [tx.nonce for tx in pool.select(10**6)] == [0, 1, 2]
    assert pool.future_count == 0


def test_waiting_tx_stays_waiting_while_the_pending_balance_cannot_pay_it(state) -> None:
    pool = make_pool()
    waiting = pay("alice", nonce=1, amount=5_000)
    pool.add(waiting, state, NOW)
    pool.add(pay("alice", nonce=0, amount=5_000), state, NOW)
    assert pool.status_of(waiting.txid) == FUTURE


def test_waiting_txs_per_sender_are_bounded(state) -> None:
    pool = make_pool(max_future_per_sender=2)
    pool.add(pay("alice", nonce=5), state, NOW)
    pool.add(pay("alice", nonce=6), state, NOW)
    assert refused(pool, pay("alice", nonce=7), state).code == "mempool-future-nonce-limit"
    assert pool.add(pay("bob", nonce=7), state, NOW).status == FUTURE


def test_waiting_txs_in_total_are_bounded(state) -> None:
    pool = make_pool(max_future_total=2)
    pool.add(pay("alice", nonce=5), state, NOW)
    pool.add(pay("bob", nonce=5), state, NOW)
    assert refused(pool, pay("carol", nonce=5), state).code == "mempool-future-nonce-limit"


@pytest.mark.parametrize(("waited", "kept"), [(600, True), (601, False)])
def test_waiting_tx_is_dropped_after_its_time_to_live(state, waited, kept) -> None:
    pool = make_pool(future_ttl_seconds=600)
    tx = pay("alice", nonce=3)
    pool.add(tx, state, NOW)
    dropped = pool.revalidate(state, NOW + waited)
    assert (tx.txid in pool) is kept
    assert dropped == ([] if kept else [tx.txid])
    assert pool.future_count == (1 if kept else 0)


# --- after the chain moves --------------------------------------------------------------


def test_revalidate_drops_txs_whose_nonce_the_chain_used(state) -> None:
    pool = make_pool()
    txs = [pay("alice", nonce=n) for n in range(3)]
    for tx in txs:
        pool.add(tx, state, NOW)
    state.accounts[key_for("alice").account] = (BALANCE, 2)  # a block took nonces 0 and 1
    assert sorted(pool.revalidate(state, NOW)) == sorted(tx.txid for tx in txs[:2])
    assert set(pool.by_id) == {txs[2].txid}


def test_revalidate_drops_txs_the_new_balance_no_longer_pays(state) -> None:
    pool = make_pool()
    txs = [pay("alice", nonce=n, amount=3_000) for n in range(2)]  # 4_000 each
    for tx in txs:
        pool.add(tx, state, NOW)
    state.accounts[key_for("alice").account] = (5_000, 0)
    assert pool.revalidate(state, NOW) == [txs[1].txid]


def test_revalidate_promotes_waiting_txs_whose_gap_the_chain_filled(state) -> None:
    pool = make_pool()
    waiting = pay("alice", nonce=2)
    pool.add(waiting, state, NOW)
    state.accounts[key_for("alice").account] = (BALANCE, 2)
    assert pool.revalidate(state, NOW) == []
    assert pool.status_of(waiting.txid) == READY


# --- selection for a block ----------------------------------------------------------------


def test_select_takes_the_best_fee_rate_first_and_each_senders_nonces_in_order(state) -> None:
    pool = make_pool()
    a0, a1 = pay("alice", nonce=0, fee=FEE), pay("alice", nonce=1, fee=5 * FEE)
    b0 = pay("bob", nonce=0, fee=3 * FEE)
    for tx in (a1, a0, b0):
        pool.add(tx, state, NOW)
    assert pool.select(10**6) == [b0, a0, a1]


def test_select_stays_within_the_byte_budget(state) -> None:
    pool = make_pool()
    txs = [pay(label, fee=FEE * (i + 1)) for i, label in enumerate(("alice", "bob", "carol"))]
    for tx in txs:
        pool.add(tx, state, NOW)
    budget = sum(tx.size + 4 for tx in txs) - 1
    chosen = pool.select(budget)
    assert chosen == [txs[2], txs[1]]


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(("add", "remove", "mine")),
            st.sampled_from(("alice", "bob")),
            st.integers(0, 6),
            st.integers(FEE, FEE + 50),
            st.integers(1, BALANCE // 3),
        ),
        max_size=40,
    )
)
@settings(max_examples=60)
def test_running_spend_totals_always_equal_the_sum_of_ready_spends(ops) -> None:
    """The pool keeps each sender's pending spend as a running total (O(1) admission);
    whatever happens it equals the sum over that sender's ready txs."""
    chain = MemoryState()
    for label in ("alice", "bob"):
        chain.accounts[key_for(label).account] = (BALANCE, 0)
    pool = make_pool(max_count=8)
    for op, sender, nonce, fee, amount in ops:
        if op == "add":
            try:
                pool.add(pay(sender, nonce=nonce, amount=amount, fee=fee), chain, NOW)
            except (MempoolRejected, InvalidTransaction):
                pass
        elif op == "remove" and pool.by_id:
            pool.remove([sorted(pool.by_id)[nonce % len(pool.by_id)]])
        elif op == "mine":
            account = key_for(sender).account
            balance, current = chain.accounts[account]
            chain.accounts[account] = (balance - amount, current + 1)
            pool.revalidate(chain, NOW)
        for account, pooled in pool.ready.items():
            assert pool.ready_spend[account] == sum(e.spend for e in pooled.values())
        assert set(pool.ready_spend) == set(pool.ready)
