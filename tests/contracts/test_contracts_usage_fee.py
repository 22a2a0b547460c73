"""The usage_fee contract: one paid call, split exactly by the version's terms."""

from __future__ import annotations

import pytest
from contracts_harness import DEFAULT_FEE, FUNDS, PRICE, digest

from modelchain.chain.errors import TxInsufficientBalance
from modelchain.chain.execute import STATUS_OK
from modelchain.chain.params import MAX_AMOUNT


def pay_args(keys, **overrides):
    args = {
        "model": "resnet",
        "version": "1.0.0",
        "amount": PRICE,
        "node": keys.carol.account,
        "request": digest("request-1"),
    }
    args.update(overrides)
    return args


def test_pay_splits_the_price_between_owners_and_node(ledger, keys, model):
    receipt = ledger.call(keys.bob, "usage_fee", "pay", pay_args(keys))
    assert receipt.status == STATUS_OK
    # 1000 at 7000/2000/1000 bps: 700 + 200 + 100, nothing to round
    assert ledger.balance(keys.bob.account) == FUNDS - DEFAULT_FEE - 1000
    assert ledger.balance(keys.carol.account) == FUNDS + 100
    assert ledger.balance(keys.dave.account) == FUNDS + 200
    alice_after_registering = FUNDS - DEFAULT_FEE - 1_000_000
    assert ledger.balance(keys.alice.account) == alice_after_registering + 700


def test_pay_gives_the_rounding_remainder_to_the_first_owner(ledger, keys, register_args):
    # 3 owners at 3333 bps and a node at 1 bps: 1001 * 3333 // 10000 = 333 each, node 0,
    # so 1001 - 999 = 2 base units of remainder go to the first owner
    split = {
        "owners": [
            [keys.alice.account, 3333],
            [keys.dave.account, 3333],
            [keys.erin.account, 3333],
        ],
        "node": 1,
    }
    ledger.call(keys.alice, "registry", "register", register_args(price=1001, split=split))
    before = {key.account: ledger.balance(key.account) for key in keys.all()}
    receipt = ledger.call(keys.bob, "usage_fee", "pay", pay_args(keys, amount=1001))
    assert receipt.status == STATUS_OK
    gained = {key.account: ledger.balance(key.account) - before[key.account] for key in keys.all()}
    assert gained == {
        keys.alice.account: 335,
        keys.dave.account: 333,
        keys.erin.account: 333,
        keys.carol.account: 0,
        keys.bob.account: -1001 - DEFAULT_FEE,
    }
    shares = receipt.events[0].data["shares"]
    assert shares == [
        {"account": keys.alice.account, "role": "owner", "amount": 335},
        {"account": keys.dave.account, "role": "owner", "amount": 333},
        {"account": keys.erin.account, "role": "owner", "amount": 333},
        {"account": keys.carol.account, "role": "node", "amount": 0},
    ]


def test_pay_emits_usage_paid_naming_payer_version_node_request_and_shares(ledger, keys, model):
    args = pay_args(keys)
    receipt = ledger.call(keys.bob, "usage_fee", "pay", args)
    (event,) = receipt.events
    assert (event.contract, event.type) == ("usage_fee", "usage-paid")
    assert event.data == {
        "payer": keys.bob.account,
        "model": "resnet",
        "version": "1.0.0",
        "sha256": model["sha256"],
        "amount": 1000,
        "node": keys.carol.account,
        "request": args["request"],
        "shares": [
            {"account": keys.alice.account, "role": "owner", "amount": 700},
            {"account": keys.dave.account, "role": "owner", "amount": 200},
            {"account": keys.carol.account, "role": "node", "amount": 100},
        ],
    }
    assert event.index == (
        ("model", "resnet"),
        ("version", "resnet@1.0.0"),
        ("sha256", model["sha256"]),
        ("account", keys.bob.account),
        ("account", keys.alice.account),
        ("account", keys.dave.account),
        ("account", keys.carol.account),
    )


def test_an_owner_serving_and_paying_for_its_own_model_conserves_money(ledger, keys, model):
    total = ledger.total_balance()
    args = pay_args(keys, node=keys.alice.account)
    assert ledger.call(keys.alice, "usage_fee", "pay", args).status == STATUS_OK
    assert ledger.total_balance() == total


def test_pay_without_balance_for_fee_and_amount_is_refused(ledger, keys, model):
    ledger.state.set_account(keys.erin.account, PRICE + DEFAULT_FEE - 1, 0)
    with pytest.raises(TxInsufficientBalance):
        ledger.call(keys.erin, "usage_fee", "pay", pay_args(keys))


# --- rejected --------------------------------------------------------------------


def test_pay_of_an_unknown_version_is_rejected(assert_fails, keys, model):
    args = pay_args(keys, version="9.0.0")
    assert_fails(keys.bob, "usage_fee", "pay", args, "usage-unknown-version")


def test_pay_of_an_unknown_model_is_rejected(assert_fails, keys, model):
    args = pay_args(keys, model="nothing")
    assert_fails(keys.bob, "usage_fee", "pay", args, "usage-unknown-version")


def test_pay_of_a_deprecated_version_is_rejected(ledger, assert_fails, keys, model):
    ledger.call(keys.alice, "registry", "deprecate", {"name": "resnet", "version": "1.0.0"})
    assert_fails(keys.bob, "usage_fee", "pay", pay_args(keys), "usage-deprecated-version")


def test_pay_of_a_free_version_is_rejected(ledger, assert_fails, keys, register_args):
    ledger.call(keys.alice, "registry", "register", register_args(price=0))
    assert_fails(keys.bob, "usage_fee", "pay", pay_args(keys, amount=1), "usage-free-version")


@pytest.mark.parametrize("amount", [PRICE - 1, PRICE + 1])
def test_pay_of_another_amount_than_the_price_is_rejected(assert_fails, keys, model, amount):
    args = pay_args(keys, amount=amount)
    assert_fails(keys.bob, "usage_fee", "pay", args, "usage-wrong-price")


def test_a_price_change_never_takes_more_than_the_payer_signed(ledger, keys, model):
    signed = ledger.make(keys.bob, "usage_fee", "pay", pay_args(keys))
    raise_price = {"name": "resnet", "version": "1.0.0", "price": 5000}
    assert ledger.call(keys.alice, "registry", "set_price", raise_price).status == STATUS_OK
    before = ledger.snapshot()
    receipt = ledger.apply(signed)
    assert receipt.code == "usage-wrong-price"
    assert ledger.snapshot() == ledger.expect_fee_only(before, keys.bob.account, DEFAULT_FEE)


BAD_PAY_ARGS = [
    ("missing-request", {"request": None}, "usage-bad-args"),
    ("extra-arg", {"tip": 1}, "usage-bad-args"),
    ("model-bad", {"model": "Res_Net"}, "usage-bad-model"),
    ("version-bad", {"version": "1.0.0/x"}, "usage-bad-version"),
    ("amount-zero", {"amount": 0}, "usage-bad-amount"),
    ("amount-negative", {"amount": -1000}, "usage-bad-amount"),
    ("amount-over-max", {"amount": MAX_AMOUNT + 1}, "usage-bad-amount"),
    ("amount-str", {"amount": "1000"}, "usage-bad-amount"),
    ("amount-bool", {"amount": True}, "usage-bad-amount"),
    ("node-bad", {"node": "carol"}, "usage-bad-node"),
    ("request-short", {"request": "ab" * 31}, "usage-bad-request"),
    ("request-upper", {"request": "AB" * 32}, "usage-bad-request"),
]


@pytest.mark.parametrize(
    ("change", "code"),
    [(change, code) for _, change, code in BAD_PAY_ARGS],
    ids=[case for case, _, _ in BAD_PAY_ARGS],
)
def test_pay_with_a_malformed_argument_is_refused(assert_bad_call, keys, model, change, code):
    args = pay_args(keys)
    args.update(change)
    args = {key: value for key, value in args.items() if value is not None}
    assert_bad_call(keys.bob, "usage_fee", "pay", args, code)


def test_unknown_usage_fee_method_is_refused(assert_bad_call, keys, model):
    assert_bad_call(keys.bob, "usage_fee", "refund", pay_args(keys), "usage-unknown-method")
