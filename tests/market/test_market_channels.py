"""Paid inference by channel: vouchers checked per call, kept across a crash, claimed in time.

Same harness as the per-call tests (a regtest MarketNode, blocks mined by
hand, a fake runner). Claim tests drive the claim loop one pass at a time
(`run_once`) and move heights by mining blocks; one test runs the loop's own
thread and polls for its claim.
"""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import key_for, make_block
from hypothesis import given, settings
from hypothesis import strategies as st
from test_market_payments import (
    MODEL,
    OTHER_VERSION,
    OUTPUT_HASH,
    OUTPUTS,
    OWNER,
    PAYER,
    PRICE,
    VERSION,
    FakeCall,
    FakeRun,
    Market,
    ModelFailed,
    SealRecordingRun,
    request_hash,
    sha_of,
)
from test_marketdb import abandon

from modelchain.chain.errors import ModelchainError
from modelchain.contracts.channel import ChannelInfo, get_channel
from modelchain.contracts.voucher import sign_voucher
from modelchain.market import marketdb
from modelchain.market.channels import ClaimPolicy, compute_claim_reason
from modelchain.market.config import NodeConfig
from modelchain.market.marketdb import VoucherRow
from modelchain.market.node import MarketNode
from modelchain.market.payments import (
    KeyedLocks,
    PaymentError,
    VoucherPayment,
    validate_voucher_payment,
)
from modelchain.market.receipts import verify_receipt
from modelchain.web import create_app

STRANGER = key_for("stranger")
DEPOSIT = 20 * PRICE


@pytest.fixture
def open_market(tmp_path: Path) -> Iterator[Callable[..., Market]]:
    """Opens the test's Market (with `policy`, if given): models registered, payer and node
    funded; each one opened is closed at teardown."""
    opened: list[Market] = []

    def open_(policy: ClaimPolicy | None = None) -> Market:
        market = Market(tmp_path / "node", policy)
        opened.append(market)
        market.register_models()
        market.fund(PAYER.account, market.node.account)
        return market

    yield open_
    for market in opened:
        market.close()


@pytest.fixture
def market(open_market: Callable[..., Market]) -> Market:
    return open_market()


def open_channel(
    market: Market,
    *,
    deposit: int = DEPOSIT,
    blocks: int = 50,
    node: str | None = None,
    version: str = VERSION,
) -> str:
    """Open a channel from PAYER (expiry = height + blocks), mine it; its id."""
    tx = market.submit(
        PAYER,
        "channel",
        "open",
        {
            "model": MODEL,
            "version": version,
            "node": node or market.node.account,
            "deposit": deposit,
            "expiry": market.node.chain.height + blocks,
        },
    )
    market.mine()
    assert get_channel(market.node.store, tx.txid) is not None
    return tx.txid


def voucher(market: Market, channel: str, amount: int, key: Any = PAYER) -> dict[str, Any]:
    return {
        "channel": channel,
        "amount": amount,
        "sig": sign_voucher(key, market.chain_id, channel, amount),
    }


def pay(market: Market, channel: str, amount: int, label: str = "a") -> dict[str, Any]:
    return market.payments.infer_paid(
        market.call(label, voucher(market, channel, amount)), FakeRun()
    )


def claimed_events(market: Market) -> list[dict[str, Any]]:
    rows = market.node.store.db.execute(
        "SELECT e.data FROM events e JOIN chain c ON c.hash = e.block_hash"
        " WHERE e.type = 'channel-claimed'"
    ).fetchall()
    return [json.loads(row[0]) for row in rows]


# --- paying by voucher ------------------------------------------------------------------


def test_call_paid_by_voucher_answers_with_a_receipt_binding_the_channel(market: Market) -> None:
    channel = open_channel(market)
    run = FakeRun()
    answer = market.payments.infer_paid(market.call("a", voucher(market, channel, PRICE)), run)
    assert run.calls == 1
    assert answer["outputs"] == OUTPUTS
    receipt = answer["parameters"]["receipt"]
    assert verify_receipt(receipt, market.node.account)
    assert receipt["payment"] == {"kind": "channel", "channel": channel, "amount": PRICE}
    assert receipt["input_hash"] == request_hash("a")
    assert receipt["output_hash"] == OUTPUT_HASH
    assert market.payments.book.amount(channel) == PRICE
    assert market.payments.receipt_ids(channel=channel) == [answer["parameters"]["receipt_id"]]
    assert len(market.node.chain.mempool) == 0  # nothing on-chain per call


def test_vouchers_raised_by_at_least_the_price_are_each_accepted(market: Market) -> None:
    channel = open_channel(market)
    for amount in (PRICE, 2 * PRICE, 4 * PRICE):  # paying more than the price is allowed
        pay(market, channel, amount)
    assert market.payments.book.amount(channel) == 4 * PRICE


def test_replayed_voucher_is_refused(market: Market) -> None:
    channel = open_channel(market)
    pay(market, channel, PRICE)
    run = FakeRun()
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(market.call("b", voucher(market, channel, PRICE)), run)
    assert (err.value.code, err.value.http_status) == ("payment-replayed", 409)
    assert run.calls == 0
    assert market.payments.book.amount(channel) == PRICE


def _bad_voucher_cases(market: Market) -> dict[str, tuple[dict[str, Any], str, int]]:
    good = open_channel(market)
    pay(market, good, PRICE)
    elsewhere = open_channel(market, node=STRANGER.account)
    other_model = open_channel(market, version=OTHER_VERSION)
    small = open_channel(market, deposit=2 * PRICE)
    margin = market.payments.policy.margin_blocks
    expiring = open_channel(market, blocks=margin + 1)
    closing = open_channel(market, blocks=2)
    market.mine(2)
    market.submit(PAYER, "channel", "refund", {"channel": closing})
    market.mine()
    return {
        "not raised by the price": (
            voucher(market, good, 2 * PRICE - 1),
            "voucher-too-low",
            402,
        ),
        "lower than accepted": (voucher(market, good, PRICE - 1), "voucher-too-low", 402),
        "over the deposit": (voucher(market, small, 3 * PRICE), "voucher-over-deposit", 402),
        "signed by a stranger": (
            voucher(market, good, 2 * PRICE, STRANGER),
            "voucher-bad-signature",
            400,
        ),
        "unknown channel": (voucher(market, "cd" * 32, PRICE), "channel-unknown", 402),
        "channel of another node": (
            voucher(market, elsewhere, PRICE),
            "channel-wrong-node",
            400,
        ),
        "channel of another version": (
            voucher(market, other_model, PRICE),
            "channel-wrong-model",
            400,
        ),
        "within the claim margin": (voucher(market, expiring, PRICE), "channel-expiring", 402),
        "refunded channel": (voucher(market, closing, PRICE), "channel-closed", 402),
        "amount not an integer": (
            voucher(market, good, 2 * PRICE) | {"amount": "2002"},
            "payment-malformed",
            400,
        ),
        "sig not hex": (
            voucher(market, good, 2 * PRICE) | {"sig": "zz"},
            "payment-malformed",
            400,
        ),
    }


BAD_VOUCHER_NAMES = [
    "not raised by the price",
    "lower than accepted",
    "over the deposit",
    "signed by a stranger",
    "unknown channel",
    "channel of another node",
    "channel of another version",
    "within the claim margin",
    "refunded channel",
    "amount not an integer",
    "sig not hex",
]


@pytest.mark.parametrize("name", BAD_VOUCHER_NAMES)
def test_bad_voucher_is_refused_without_running_or_counting(market: Market, name: str) -> None:
    payment, code, status = _bad_voucher_cases(market)[name]
    books_before = {row.channel: row.amount for row in market.payments.book.all()}
    run = FakeRun()
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(market.call("z", payment), run)
    assert (err.value.code, err.value.http_status) == (code, status)
    if status == 402:
        assert err.value.detail["quote"]["price"] == PRICE
    assert run.calls == 0
    assert {row.channel: row.amount for row in market.payments.book.all()} == books_before


def test_failed_run_does_not_count_the_voucher(market: Market) -> None:
    channel = open_channel(market)
    pay(market, channel, PRICE)
    with pytest.raises(ModelFailed):
        market.payments.infer_paid(
            market.call("b", voucher(market, channel, 2 * PRICE)), FakeRun(fail=ModelFailed())
        )
    assert market.payments.book.amount(channel) == PRICE
    assert len(market.payments.receipt_ids(channel=channel)) == 1
    pay(market, channel, 2 * PRICE, "b")  # the same voucher pays the retry
    assert market.payments.book.amount(channel) == 2 * PRICE


def test_accepted_vouchers_survive_a_crash(
    tmp_path: Path, open_market: Callable[..., Market]
) -> None:
    """Answered vouchers are kept: a node opened on the data dir of one whose receipt log
    was left as a kill leaves it (nothing more fsynced or filed) knows them."""
    market = open_market()
    channel = open_channel(market)
    for calls in range(1, 6):
        pay(market, channel, calls * PRICE, f"call-{calls}")
    abandon(market.payments.db)
    reopened = Market(tmp_path / "node")
    try:
        row = reopened.payments.book.get(channel)
        assert row is not None and row.amount == 5 * PRICE
        assert row.sig == voucher(market, channel, 5 * PRICE)["sig"]
        run = FakeRun()
        with pytest.raises(PaymentError) as err:  # and still refuses the old ones
            reopened.payments.infer_paid(
                reopened.call("x", voucher(market, channel, 5 * PRICE)), run
            )
        assert err.value.code == "payment-replayed"
        assert len(reopened.payments.receipt_ids(channel=channel)) == 5
    finally:
        reopened.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=25 * PRICE), max_size=25))
def test_accepted_vouchers_only_grow_by_at_least_the_price(amounts: list[int]) -> None:
    node = key_for("node").account
    channel = "ab" * 32
    info = ChannelInfo(
        id=channel,
        payer=PAYER.account,
        node=node,
        model=MODEL,
        version=VERSION,
        sha256=sha_of("m"),
        deposit=DEPOSIT,
        claimed=0,
        expiry=100,
        opened_height=1,
        closed=False,
    )
    prepared = FakeCall(MODEL, VERSION, sha_of("m"), PRICE, (), sha_of("r"), None, None)
    accepted = 0
    for amount in amounts:
        try:
            validate_voucher_payment(
                VoucherPayment(channel, amount, "00" * 64),
                info,
                prepared,
                node,
                10,
                accepted,
                ClaimPolicy(),
            )
        except PaymentError:
            continue
        assert accepted + PRICE <= amount <= DEPOSIT
        accepted = amount


# --- claiming ---------------------------------------------------------------------------


def test_claim_reason_rules() -> None:
    policy = ClaimPolicy(margin_blocks=6, threshold_calls=10)
    assert compute_claim_reason(5, 5, 1, 0, 100, policy) is None  # nothing new
    assert compute_claim_reason(9, 0, 1, 0, 100, policy) is None  # under threshold
    assert compute_claim_reason(10, 0, 1, 0, 100, policy) == "threshold"
    assert compute_claim_reason(1, 0, 1, 93, 100, policy) is None
    assert compute_claim_reason(1, 0, 1, 94, 100, policy) == "expiry"
    assert compute_claim_reason(1, 0, 1, 99, 100, policy) == "expiry"
    assert compute_claim_reason(1, 0, 1, 100, 100, policy) is None  # too late to be mined


def test_claim_loop_claims_once_unclaimed_passes_the_threshold(
    open_market: Callable[..., Market],
) -> None:
    market = open_market(ClaimPolicy(threshold_calls=3))
    channel = open_channel(market)
    pay(market, channel, PRICE, "1")
    pay(market, channel, 2 * PRICE, "2")
    assert market.payments.claims.run_once() == []
    pay(market, channel, 3 * PRICE, "3")
    claims = market.payments.claims.run_once()
    assert [tx.args["amount"] for tx in claims] == [3 * PRICE]
    assert market.payments.claims.run_once() == []  # pending: not sent twice
    status = market.payments.channel_status(channel)
    assert status["claim_pending"] == {"txid": claims[0].txid, "amount": 3 * PRICE}
    owner_before = market.node.chain.balance(OWNER.account)
    market.mine()
    info = get_channel(market.node.store, channel)
    assert info is not None and info.claimed == 3 * PRICE
    [event] = claimed_events(market)
    assert event["paid"] == 3 * PRICE
    owner_share = 3 * PRICE - 3 * PRICE * 1_000 // 10_000
    assert market.node.chain.balance(OWNER.account) == owner_before + owner_share
    assert market.payments.claims.run_once() == []
    assert market.payments.channel_status(channel)["unclaimed"] == 0


def test_claim_loop_claims_before_expiry_with_the_margin(market: Market) -> None:
    margin = market.payments.policy.margin_blocks
    channel = open_channel(market, blocks=margin + 6)
    expiry = get_channel(market.node.store, channel).expiry
    pay(market, channel, PRICE)  # far under the threshold
    while market.node.chain.height < expiry - margin:
        assert market.payments.claims.run_once() == []
        market.mine()
    assert market.node.chain.height == expiry - margin
    [claim] = market.payments.claims.run_once()
    assert claim.args == {
        "channel": channel,
        "amount": PRICE,
        "sig": voucher(market, channel, PRICE)["sig"],
    }
    market.mine()
    assert get_channel(market.node.store, channel).claimed == PRICE
    assert market.node.chain.height < expiry


def test_claim_that_left_the_mempool_is_sent_again(market: Market) -> None:
    channel = open_channel(market, blocks=8)  # opened within the claim window
    pay(market, channel, PRICE)
    market.mine()
    [first] = market.payments.claims.run_once()
    with market.node.chain.lock:  # dropped: evicted, or lost with a reorged branch
        market.node.chain.mempool.remove([first.txid])
    [again] = market.payments.claims.run_once()
    assert again.args["amount"] == PRICE
    market.mine()
    assert get_channel(market.node.store, channel).claimed == PRICE


def test_claim_reorged_out_is_claimed_again_on_the_new_branch(market: Market) -> None:
    channel = open_channel(market, blocks=8)
    pay(market, channel, PRICE)
    market.mine()
    [claim] = market.payments.claims.run_once()
    fork_parent = market.node.chain.tip.hash
    market.mine()
    assert get_channel(market.node.store, channel).claimed == PRICE
    # a heavier branch without the claim: the claim returns to the pool (or is sent anew)
    chain = market.node.chain
    first = make_block(chain, fork_parent)
    chain.submit_block(first)
    chain.submit_block(make_block(chain, first.hash))
    assert chain.tip.prev_hash == first.hash
    assert get_channel(market.node.store, channel).claimed == 0
    market.payments.claims.run_once()
    market.mine()
    assert get_channel(market.node.store, channel).claimed == PRICE
    assert claim.args["amount"] == PRICE


def test_node_without_funds_for_the_fee_claims_once_funded(tmp_path: Path) -> None:
    market = Market(tmp_path / "node", ClaimPolicy(threshold_calls=1))
    try:
        market.register_models()
        market.fund(PAYER.account)  # not the node
        channel = open_channel(market)
        pay(market, channel, PRICE)
        assert market.payments.claims.run_once() == []  # logged, retried later
        market.fund(market.node.account)
        [claim] = market.payments.claims.run_once()
        assert claim.args["amount"] == PRICE
    finally:
        market.close()


def test_claim_loop_gives_a_channel_up_after_three_failed_claims(
    open_market: Callable[..., Market],
) -> None:
    market = open_market(ClaimPolicy(threshold_calls=1))
    channel = open_channel(market)
    # a voucher the chain refuses (never accepted by the payments path: injected)
    bad = VoucherRow(
        channel,
        PRICE,
        voucher(market, channel, PRICE, STRANGER)["sig"],
        PAYER.account,
        MODEL,
        VERSION,
    )
    market.payments.book._rows[channel] = bad
    for _ in range(3):
        [claim] = market.payments.claims.run_once()
        market.mine()
        assert market.node.store.receipt_row(claim.txid)["status"] != "ok"
    assert market.payments.claims.run_once() == []


def test_claim_loop_thread_claims_when_a_block_arrives(open_market: Callable[..., Market]) -> None:
    market = open_market(ClaimPolicy(threshold_calls=1, poll_seconds=60))
    channel = open_channel(market)
    market.node.start()
    pay(market, channel, PRICE)
    market.mine()  # the tip change wakes the loop
    deadline = time.monotonic() + 10
    while market.payments.channel_status(channel)["claim_pending"] is None:
        assert time.monotonic() < deadline, "the claim loop did not claim after a block"
        time.sleep(0.01)


def test_claim_now_claims_a_channel_that_is_not_due(market: Market) -> None:
    channel = open_channel(market)
    pay(market, channel, PRICE)
    assert market.payments.claims.run_once() == []
    answer = market.payments.claim_now(channel)
    assert answer["amount"] == PRICE
    with pytest.raises(ModelchainError) as err:
        market.payments.claim_now(channel)
    assert err.value.code == "channel-nothing-to-claim"


# --- the HTTP routes --------------------------------------------------------------------


def test_channel_routes_show_accepted_claimed_and_claim(market: Market) -> None:
    channel = open_channel(market)
    pay(market, channel, PRICE)
    client = create_app(node=market.node).test_client()
    status = client.get(f"/api/v1/channels/{channel}").get_json()
    assert status["accepted"] == PRICE
    assert status["claimed"] == 0
    assert status["onchain"]["payer"] == PAYER.account
    assert status["accepting"] is True
    listed = client.get(f"/api/v1/channels?account={PAYER.account}").get_json()
    assert [c["channel"] for c in listed["channels"]] == [channel]
    mine = client.get("/api/v1/channels").get_json()
    assert [c["channel"] for c in mine["channels"]] == [channel]
    claimed = client.post(f"/api/v1/channels/{channel}/claim")
    assert claimed.status_code == 202
    assert claimed.get_json()["amount"] == PRICE
    missing = client.get(f"/api/v1/channels/{'ef' * 32}")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "channel-unknown"
    bad = client.get("/api/v1/channels/xyz")
    assert bad.status_code == 400


# --- durability -------------------------------------------------------------------------
# (the receipt log itself: tests/market/test_marketdb.py)


def test_voucher_that_cannot_be_kept_is_not_answered_nor_counted(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = open_channel(market)
    pay(market, channel, PRICE)

    def disk_full(fd: int, record: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(marketdb, "append_record", disk_full)
        with pytest.raises(ModelchainError) as err:
            pay(market, channel, 2 * PRICE, "b")
    assert (err.value.code, err.value.http_status) == ("market-store-failed", 503)
    assert market.payments.book.amount(channel) == PRICE
    assert len(market.payments.receipt_ids(channel=channel)) == 1
    pay(market, channel, 2 * PRICE, "b")  # once the disk works again, the same voucher pays
    assert market.payments.book.amount(channel) == 2 * PRICE


def test_an_uncontended_channel_call_leaves_its_signature_check_to_the_worker(
    market: Market,
) -> None:
    channel = open_channel(market)
    run = SealRecordingRun()
    market.payments.infer_paid(market.call("a", voucher(market, channel, PRICE)), run)
    (seal,) = run.seals
    assert seal.check is not None and seal.check[0] == PAYER.account
    assert seal.receipt.receipt["payment"] == {
        "kind": "channel",
        "channel": channel,
        "amount": PRICE,
    }


def test_a_forged_voucher_on_a_channel_others_wait_for_is_refused_before_any_run(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = open_channel(market)
    monkeypatch.setattr(market.payments._channels, "others_waiting", lambda key: True)
    run = SealRecordingRun()
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(market.call("a", voucher(market, channel, PRICE, STRANGER)), run)
    assert err.value.code == "voucher-bad-signature"
    assert run.seals == []  # the node checked it itself: it never waited for a worker
    market.payments.infer_paid(market.call("a", voucher(market, channel, PRICE)), run)
    assert run.seals[-1].check is None  # checked here already


def test_keyed_locks_see_callers_waiting_behind_the_holder() -> None:
    locks = KeyedLocks()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.hold("k"):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    assert not locks.others_waiting("k")

    def wait_in_line() -> None:
        with locks.hold("k"):
            pass

    waiter = threading.Thread(target=wait_in_line)
    waiter.start()
    deadline = time.monotonic() + 10
    while not locks.others_waiting("k"):
        assert time.monotonic() < deadline, "the second caller never queued"
        time.sleep(0.001)
    release.set()
    holder.join(10)
    waiter.join(10)
    assert not locks.others_waiting("k")


def test_once_the_receipt_log_cannot_sync_paid_calls_are_refused_before_any_run(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = open_channel(market)
    pay(market, channel, PRICE)

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(marketdb.os, "fdatasync", eio)
        market.payments.db.flush()
    run = FakeRun()
    with pytest.raises(ModelchainError) as err:
        market.payments.infer_paid(market.call("b", voucher(market, channel, 2 * PRICE)), run)
    assert (err.value.code, err.value.http_status) == ("market-store-failed", 503)
    assert run.calls == 0
    assert market.payments.book.amount(channel) == PRICE  # the answered voucher is kept


def test_the_node_config_sets_how_often_the_receipt_log_is_synced(tmp_path: Path) -> None:
    node = MarketNode(
        NodeConfig(data_dir=tmp_path / "n", network="regtest", mine=False, receipt_sync_ms=0)
    )
    try:
        assert node.payments.db.sync_ms == 0
    finally:
        node.close()
