"""The channel contract: open, top up, claim with vouchers, refund after expiry."""

from __future__ import annotations

import pytest
from contracts_harness import CHAIN_ID, CHANNEL_BLOCKS, DEFAULT_FEE, DEPOSIT, FUNDS, digest

from modelchain.chain.contract import escrow_account_of
from modelchain.chain.errors import TxInsufficientBalance
from modelchain.chain.execute import STATUS_OK
from modelchain.chain.params import MAX_AMOUNT
from modelchain.contracts.channel import CHANNEL, ChannelInfo, channel_key, get_channel
from modelchain.contracts.voucher import sign_voucher

ESCROW = escrow_account_of("channel")


def claim_args(keys, channel, amount, *, signer=None, chain_id=CHAIN_ID, for_channel=None):
    """A claim of `amount` on `channel`, signed by the payer (bob) unless told otherwise."""
    sig = sign_voucher(signer or keys.bob, chain_id, for_channel or channel, amount)
    return {"channel": channel, "amount": amount, "sig": sig}


def open_args(keys, **overrides):
    args = {
        "model": "resnet",
        "version": "1.0.0",
        "node": keys.carol.account,
        "deposit": DEPOSIT,
        "expiry": 1 + CHANNEL_BLOCKS,
    }
    args.update(overrides)
    return args


# --- open ------------------------------------------------------------------------


def test_open_escrows_the_deposit_under_the_opening_txid(ledger, keys, model):
    tx = ledger.make(keys.bob, "channel", "open", open_args(keys))
    receipt = ledger.apply(tx)
    assert receipt.status == STATUS_OK
    assert ledger.balance(keys.bob.account) == FUNDS - DEFAULT_FEE - DEPOSIT
    assert ledger.balance(ESCROW) == DEPOSIT
    info = get_channel(ledger, tx.txid)
    assert info == ChannelInfo(
        id=tx.txid,
        payer=keys.bob.account,
        node=keys.carol.account,
        model="resnet",
        version="1.0.0",
        sha256=model["sha256"],
        deposit=DEPOSIT,
        claimed=0,
        expiry=1 + CHANNEL_BLOCKS,
        opened_height=1,
        closed=False,
    )
    assert info.remaining == DEPOSIT
    assert ledger.read_storage(CHANNEL, channel_key(tx.txid)) == info.to_json()
    (event,) = receipt.events
    assert (event.contract, event.type) == ("channel", "channel-opened")
    assert event.data == {
        "channel": tx.txid,
        "payer": keys.bob.account,
        "node": keys.carol.account,
        "model": "resnet",
        "version": "1.0.0",
        "sha256": model["sha256"],
        "deposit": DEPOSIT,
        "expiry": 1 + CHANNEL_BLOCKS,
    }
    assert event.index == (
        ("channel", tx.txid),
        ("model", "resnet"),
        ("version", "resnet@1.0.0"),
        ("sha256", model["sha256"]),
        ("account", keys.bob.account),
        ("account", keys.carol.account),
    )


def test_open_without_balance_for_the_deposit_is_refused(ledger, keys, model):
    ledger.state.set_account(keys.erin.account, DEPOSIT + DEFAULT_FEE - 1, 0)
    with pytest.raises(TxInsufficientBalance):
        ledger.call(keys.erin, "channel", "open", open_args(keys))


def test_open_on_an_unknown_version_is_rejected(assert_fails, keys, model):
    args = open_args(keys, version="2.0.0")
    assert_fails(keys.bob, "channel", "open", args, "channel-unknown-version")


def test_open_on_a_deprecated_version_is_rejected(ledger, assert_fails, keys, model):
    ledger.call(keys.alice, "registry", "deprecate", {"name": "resnet", "version": "1.0.0"})
    assert_fails(keys.bob, "channel", "open", open_args(keys), "channel-deprecated-version")


def test_open_on_a_free_version_is_rejected(ledger, assert_fails, keys, register_args):
    ledger.call(keys.alice, "registry", "register", register_args(price=0))
    assert_fails(keys.bob, "channel", "open", open_args(keys), "channel-free-version")


@pytest.mark.parametrize("expiry", [0, 1], ids=["before", "this-block"])
def test_open_with_an_expiry_not_after_this_block_is_rejected(assert_fails, keys, model, expiry):
    args = open_args(keys, expiry=expiry)
    assert_fails(keys.bob, "channel", "open", args, "channel-expiry-passed")


BAD_OPEN_ARGS = [
    ("missing-expiry", {"expiry": None}, "channel-bad-args"),
    ("extra-arg", {"channel": digest("x")}, "channel-bad-args"),
    ("model-bad", {"model": "res.net"}, "channel-bad-model"),
    ("version-bad", {"version": "@1"}, "channel-bad-version"),
    ("node-bad", {"node": "0x" + "a" * 62}, "channel-bad-node"),
    ("deposit-zero", {"deposit": 0}, "channel-bad-amount"),
    ("deposit-negative", {"deposit": -5}, "channel-bad-amount"),
    ("deposit-over-max", {"deposit": MAX_AMOUNT + 1}, "channel-bad-amount"),
    ("deposit-str", {"deposit": "10"}, "channel-bad-amount"),
    ("expiry-negative", {"expiry": -1}, "channel-bad-expiry"),
    ("expiry-str", {"expiry": "11"}, "channel-bad-expiry"),
    ("expiry-bool", {"expiry": True}, "channel-bad-expiry"),
]


@pytest.mark.parametrize(
    ("change", "code"),
    [(change, code) for _, change, code in BAD_OPEN_ARGS],
    ids=[case for case, _, _ in BAD_OPEN_ARGS],
)
def test_open_with_a_malformed_argument_is_refused(assert_bad_call, keys, model, change, code):
    args = {key: value for key, value in {**open_args(keys), **change}.items() if value is not None}
    assert_bad_call(keys.bob, "channel", "open", args, code)


def test_unknown_channel_method_is_refused(assert_bad_call, keys, model):
    assert_bad_call(
        keys.bob, "channel", "close", {"channel": digest("x")}, "channel-unknown-method"
    )


# --- topup -----------------------------------------------------------------------


def test_topup_adds_to_the_deposit_and_extends_the_expiry(ledger, keys, channel):
    args = {"channel": channel, "deposit": 500, "expiry": 20}
    receipt = ledger.call(keys.bob, "channel", "topup", args)
    assert receipt.status == STATUS_OK
    info = get_channel(ledger, channel)
    assert (info.deposit, info.expiry) == (DEPOSIT + 500, 20)
    assert ledger.balance(ESCROW) == DEPOSIT + 500
    (event,) = receipt.events
    assert event.type == "channel-topped-up"
    assert event.data == {
        "channel": channel,
        "payer": keys.bob.account,
        "added": 500,
        "deposit": DEPOSIT + 500,
        "old_expiry": 11,
        "expiry": 20,
    }
    assert ("channel", channel) in event.index


def test_topup_with_the_same_expiry_only_adds_deposit(ledger, keys, channel):
    args = {"channel": channel, "deposit": 1, "expiry": 11}
    assert ledger.call(keys.bob, "channel", "topup", args).status == STATUS_OK
    assert get_channel(ledger, channel).deposit == DEPOSIT + 1


def test_topup_of_nothing_extends_the_expiry_only(ledger, keys, channel):
    args = {"channel": channel, "deposit": 0, "expiry": 12}
    assert ledger.call(keys.bob, "channel", "topup", args).status == STATUS_OK
    assert (get_channel(ledger, channel).expiry, ledger.balance(ESCROW)) == (12, DEPOSIT)


def test_topup_after_expiry_reopens_claims_until_the_new_expiry(ledger, keys, channel):
    ledger.advance(CHANNEL_BLOCKS + 1)  # height 12 > expiry 11
    args = {"channel": channel, "deposit": 0, "expiry": 30}
    assert ledger.call(keys.bob, "channel", "topup", args).status == STATUS_OK
    receipt = ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 10))
    assert receipt.status == STATUS_OK


@pytest.mark.parametrize(
    ("who", "change", "code"),
    [
        ("carol", {}, "channel-not-payer"),
        ("bob", {"expiry": 10}, "channel-expiry-earlier"),
        ("bob", {"deposit": 0, "expiry": 11}, "channel-topup-noop"),
        ("bob", {"channel": digest("no such channel")}, "channel-unknown"),
    ],
    ids=["not-payer", "earlier-expiry", "noop", "unknown"],
)
def test_topup_rejected(assert_fails, keys, channel, who, change, code):
    args = {"channel": channel, "deposit": 100, "expiry": 11, **change}
    assert_fails(getattr(keys, who), "channel", "topup", args, code)


def test_topup_keeping_a_passed_expiry_is_rejected(ledger, assert_fails, keys, channel):
    ledger.advance(CHANNEL_BLOCKS)  # height 11: expiry 11 is this block, not after it
    args = {"channel": channel, "deposit": 100, "expiry": 11}
    assert_fails(keys.bob, "channel", "topup", args, "channel-expiry-passed")


def test_topup_beyond_the_largest_amount_is_rejected(ledger, assert_fails, keys, channel):
    ledger.state.set_account(keys.bob.account, MAX_AMOUNT, ledger.nonce(keys.bob.account))
    args = {"channel": channel, "deposit": MAX_AMOUNT - DEPOSIT + 1, "expiry": 11}
    assert_fails(keys.bob, "channel", "topup", args, "channel-deposit-too-large")


def test_topup_of_a_deprecated_version_is_rejected(ledger, assert_fails, keys, channel):
    ledger.call(keys.alice, "registry", "deprecate", {"name": "resnet", "version": "1.0.0"})
    args = {"channel": channel, "deposit": 100, "expiry": 11}
    assert_fails(keys.bob, "channel", "topup", args, "channel-deprecated-version")


def test_topup_of_a_closed_channel_is_rejected(ledger, assert_fails, keys, channel):
    ledger.advance(CHANNEL_BLOCKS + 1)
    ledger.call(keys.bob, "channel", "refund", {"channel": channel})
    args = {"channel": channel, "deposit": 100, "expiry": 40}
    assert_fails(keys.bob, "channel", "topup", args, "channel-closed")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"channel": "ab" * 31}, "channel-bad-id"),
        ({"channel": 5}, "channel-bad-id"),
        ({"deposit": -1}, "channel-bad-amount"),
        ({"deposit": MAX_AMOUNT + 1}, "channel-bad-amount"),
        ({"expiry": -3}, "channel-bad-expiry"),
        ({"expiry": None}, "channel-bad-args"),
        ({"node": "x"}, "channel-bad-args"),
    ],
)
def test_topup_with_a_malformed_argument_is_refused(assert_bad_call, keys, channel, change, code):
    args = {"channel": channel, "deposit": 100, "expiry": 11, **change}
    args = {key: value for key, value in args.items() if value is not None}
    assert_bad_call(keys.bob, "channel", "topup", args, code)


# --- claim -----------------------------------------------------------------------


def test_claim_pays_the_voucher_split_by_the_version_terms(ledger, keys, channel):
    before = {key.account: ledger.balance(key.account) for key in keys.all()}
    receipt = ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 1001))
    assert receipt.status == STATUS_OK
    # 1001 at 7000/2000/1000 bps: 700 + 200 + 100 rounded down, 1 left for the first owner
    gained = {key.account: ledger.balance(key.account) - before[key.account] for key in keys.all()}
    assert gained == {
        keys.alice.account: 701,
        keys.dave.account: 200,
        keys.carol.account: 100 - DEFAULT_FEE,
        keys.bob.account: 0,
        keys.erin.account: 0,
    }
    assert ledger.balance(ESCROW) == DEPOSIT - 1001
    info = get_channel(ledger, channel)
    assert (info.claimed, info.remaining) == (1001, DEPOSIT - 1001)
    (event,) = receipt.events
    assert event.type == "channel-claimed"
    assert event.data == {
        "channel": channel,
        "payer": keys.bob.account,
        "node": keys.carol.account,
        "model": "resnet",
        "version": "1.0.0",
        "sha256": info.sha256,
        "amount": 1001,
        "paid": 1001,
        "remaining": DEPOSIT - 1001,
        "shares": [
            {"account": keys.alice.account, "role": "owner", "amount": 701},
            {"account": keys.dave.account, "role": "owner", "amount": 200},
            {"account": keys.carol.account, "role": "node", "amount": 100},
        ],
    }
    assert event.index == (
        ("channel", channel),
        ("model", "resnet"),
        ("version", "resnet@1.0.0"),
        ("sha256", info.sha256),
        ("account", keys.bob.account),
        ("account", keys.carol.account),
        ("account", keys.alice.account),
        ("account", keys.dave.account),
    )


def test_a_later_claim_pays_only_the_increase(ledger, keys, channel):
    ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 1000))
    escrow = ledger.balance(ESCROW)
    receipt = ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 3000))
    assert receipt.status == STATUS_OK
    assert receipt.events[0].data["paid"] == 2000
    assert ledger.balance(ESCROW) == escrow - 2000
    assert get_channel(ledger, channel).claimed == 3000


def test_claim_of_the_whole_deposit_at_the_expiry_height_succeeds(ledger, keys, channel):
    ledger.advance(CHANNEL_BLOCKS)  # height 11 == expiry
    receipt = ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, DEPOSIT))
    assert receipt.status == STATUS_OK
    assert ledger.balance(ESCROW) == 0


def test_claim_on_a_deprecated_version_still_settles(ledger, keys, channel):
    ledger.call(keys.alice, "registry", "deprecate", {"name": "resnet", "version": "1.0.0"})
    receipt = ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 50))
    assert receipt.status == STATUS_OK


def test_claim_by_anyone_but_the_node_is_rejected(assert_fails, keys, channel):
    args = claim_args(keys, channel, 100)
    assert_fails(keys.bob, "channel", "claim", args, "channel-not-node")
    assert_fails(keys.erin, "channel", "claim", args, "channel-not-node")


def test_claim_after_expiry_is_rejected(ledger, assert_fails, keys, channel):
    ledger.advance(CHANNEL_BLOCKS + 1)
    args = claim_args(keys, channel, 100)
    assert_fails(keys.carol, "channel", "claim", args, "channel-expired")


def test_claim_of_a_voucher_over_the_deposit_is_rejected(assert_fails, keys, channel):
    args = claim_args(keys, channel, DEPOSIT + 1)
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-over-deposit")


@pytest.mark.parametrize("stale", [999, 1000], ids=["below", "equal"])
def test_claim_not_above_the_last_claim_is_rejected(ledger, assert_fails, keys, channel, stale):
    ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 1000))
    args = claim_args(keys, channel, stale)
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-stale")


def test_replaying_a_claim_is_rejected(ledger, assert_fails, keys, channel):
    args = claim_args(keys, channel, 1000)
    ledger.call(keys.carol, "channel", "claim", args)
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-stale")


def test_voucher_of_another_channel_is_rejected(assert_fails, keys, channel, open_channel):
    other = open_channel()
    args = claim_args(keys, channel, 100, for_channel=other)
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-invalid")


def test_voucher_for_another_chain_is_rejected(assert_fails, keys, channel):
    args = claim_args(keys, channel, 100, chain_id="modelchain-main")
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-invalid")


def test_voucher_signed_by_someone_else_than_the_payer_is_rejected(assert_fails, keys, channel):
    args = claim_args(keys, channel, 100, signer=keys.carol)
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-invalid")


def test_voucher_claimed_for_more_than_it_says_is_rejected(assert_fails, keys, channel):
    args = {**claim_args(keys, channel, 100), "amount": 101}
    assert_fails(keys.carol, "channel", "claim", args, "channel-voucher-invalid")


def test_claim_on_an_unknown_channel_is_rejected(assert_fails, keys, channel):
    other = digest("no such channel")
    args = claim_args(keys, other, 100)
    assert_fails(keys.carol, "channel", "claim", args, "channel-unknown")


def test_claim_on_a_refunded_channel_is_rejected(ledger, assert_fails, keys, channel):
    ledger.advance(CHANNEL_BLOCKS + 1)
    ledger.call(keys.bob, "channel", "refund", {"channel": channel})
    args = claim_args(keys, channel, 100)
    assert_fails(keys.carol, "channel", "claim", args, "channel-closed")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": 0}, "channel-bad-amount"),
        ({"amount": -1}, "channel-bad-amount"),
        ({"amount": MAX_AMOUNT + 1}, "channel-bad-amount"),
        ({"sig": "ab" * 63}, "channel-bad-sig"),
        ({"sig": "ab" * 65}, "channel-bad-sig"),
        ({"sig": "AB" * 64}, "channel-bad-sig"),
        ({"sig": "ab" * 64 + "\n"}, "channel-bad-sig"),
        ({"sig": None}, "channel-bad-args"),
        ({"channel": "x" * 64}, "channel-bad-id"),
    ],
)
def test_claim_with_a_malformed_argument_is_refused(assert_bad_call, keys, channel, change, code):
    args = {**claim_args(keys, channel, 100), **change}
    args = {key: value for key, value in args.items() if value is not None}
    assert_bad_call(keys.carol, "channel", "claim", args, code)


# --- refund ----------------------------------------------------------------------


def test_refund_after_expiry_returns_the_unclaimed_rest_and_closes(ledger, keys, channel):
    ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, 2500))
    ledger.advance(CHANNEL_BLOCKS + 1)
    bob = ledger.balance(keys.bob.account)
    receipt = ledger.call(keys.bob, "channel", "refund", {"channel": channel})
    assert receipt.status == STATUS_OK
    assert ledger.balance(keys.bob.account) == bob - DEFAULT_FEE + DEPOSIT - 2500
    assert ledger.balance(ESCROW) == 0
    info = get_channel(ledger, channel)
    assert (info.closed, info.remaining) == (True, 0)
    (event,) = receipt.events
    assert event.type == "channel-refunded"
    assert event.data == {
        "channel": channel,
        "payer": keys.bob.account,
        "node": keys.carol.account,
        "refunded": DEPOSIT - 2500,
        "claimed": 2500,
        "deposit": DEPOSIT,
    }
    assert ("account", keys.bob.account) in event.index


def test_refund_of_a_fully_claimed_channel_closes_it_with_nothing_to_return(ledger, keys, channel):
    ledger.call(keys.carol, "channel", "claim", claim_args(keys, channel, DEPOSIT))
    ledger.advance(CHANNEL_BLOCKS + 1)
    receipt = ledger.call(keys.bob, "channel", "refund", {"channel": channel})
    assert receipt.status == STATUS_OK
    assert receipt.events[0].data["refunded"] == 0


@pytest.mark.parametrize("blocks", [0, CHANNEL_BLOCKS], ids=["opened", "at-expiry"])
def test_refund_before_expiry_is_rejected(ledger, assert_fails, keys, channel, blocks):
    ledger.advance(blocks)
    assert_fails(keys.bob, "channel", "refund", {"channel": channel}, "channel-not-expired")


def test_refund_by_anyone_but_the_payer_is_rejected(ledger, assert_fails, keys, channel):
    ledger.advance(CHANNEL_BLOCKS + 1)
    assert_fails(keys.carol, "channel", "refund", {"channel": channel}, "channel-not-payer")


def test_refunding_twice_is_rejected(ledger, assert_fails, keys, channel):
    ledger.advance(CHANNEL_BLOCKS + 1)
    ledger.call(keys.bob, "channel", "refund", {"channel": channel})
    assert_fails(keys.bob, "channel", "refund", {"channel": channel}, "channel-closed")


def test_refund_of_an_unknown_channel_is_rejected(assert_fails, keys, channel):
    args = {"channel": digest("nothing")}
    assert_fails(keys.bob, "channel", "refund", args, "channel-unknown")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({}, "channel-bad-args"),
        ({"channel": digest("x"), "amount": 1}, "channel-bad-args"),
        ({"channel": "0x" + "a" * 62}, "channel-bad-id"),
    ],
)
def test_refund_with_a_malformed_argument_is_refused(assert_bad_call, keys, args, code):
    assert_bad_call(keys.bob, "channel", "refund", args, code)


def test_get_channel_of_an_unknown_or_malformed_id_is_none(ledger, channel):
    assert get_channel(ledger, digest("nothing")) is None
    assert get_channel(ledger, "not an id") is None
