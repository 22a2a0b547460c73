"""Factories for contract tests: funded keys, a ledger, a registered model, an open channel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from contracts_harness import (
    CHANNEL_BLOCKS,
    DEFAULT_FEE,
    DEPOSIT,
    FUNDS,
    PRICE,
    Ledger,
    digest,
    key_for,
)

from modelchain.chain.encoding import check_canonical_value
from modelchain.chain.errors import NonCanonicalValue, TxBadCall
from modelchain.chain.execute import STATUS_FAILED, STATUS_OK, Receipt
from modelchain.chain.keys import KeyPair


@dataclass(frozen=True)
class Keys:
    alice: KeyPair
    """Registers the test model and owns its name."""
    bob: KeyPair
    """Pays for calls and opens channels."""
    carol: KeyPair
    """The serving node."""
    dave: KeyPair
    """Co-owner in the test model's split."""
    erin: KeyPair
    """A bystander."""

    def all(self) -> tuple[KeyPair, ...]:
        return (self.alice, self.bob, self.carol, self.dave, self.erin)


def is_canonical(value: Any) -> bool:
    try:
        check_canonical_value(value)
    except NonCanonicalValue:
        return False
    return True


@pytest.fixture
def keys() -> Keys:
    return Keys(*(key_for(name) for name in ("alice", "bob", "carol", "dave", "erin")))


@pytest.fixture
def ledger(keys: Keys) -> Ledger:
    return Ledger({key.account: FUNDS for key in keys.all()})


@pytest.fixture
def register_args(keys: Keys) -> Callable[..., dict[str, Any]]:
    """Args of a valid `registry.register`; keyword overrides replace fields."""

    def make(**overrides: Any) -> dict[str, Any]:
        name = overrides.get("name", "resnet")
        version = overrides.get("version", "1.0.0")
        args: dict[str, Any] = {
            "name": name,
            "version": version,
            "sha256": digest(f"model:{name}@{version}"),
            "price": PRICE,
            "split": {
                "owners": [[keys.alice.account, 7000], [keys.dave.account, 2000]],
                "node": 1000,
            },
            "metadata": {
                "description": "An image classifier.",
                "license": "MIT",
                "tags": ["vision", "classification"],
                "io_signature": {
                    "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 3, 224, 224]}],
                    "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 1000]}],
                    "opsets": {"": 17},
                    "ir_version": 8,
                },
            },
        }
        args.update(overrides)
        return args

    return make


@pytest.fixture
def model(ledger: Ledger, keys: Keys, register_args: Callable[..., dict[str, Any]]) -> dict:
    """`resnet@1.0.0`, price 1000, split alice 70% / dave 20% / node 10%, owned by alice."""
    args = register_args()
    receipt = ledger.call(keys.alice, "registry", "register", args)
    assert receipt.status == STATUS_OK, receipt
    return args


@pytest.fixture
def open_channel(ledger: Ledger, keys: Keys) -> Callable[..., str]:
    """Open a channel (bob -> carol on resnet@1.0.0 by default); returns its id."""

    def make(**overrides: Any) -> str:
        payer = overrides.pop("payer", keys.bob)
        args = {
            "model": "resnet",
            "version": "1.0.0",
            "node": keys.carol.account,
            "deposit": DEPOSIT,
            "expiry": ledger.height + CHANNEL_BLOCKS,
        }
        args.update(overrides)
        tx = ledger.make(payer, "channel", "open", args)
        receipt = ledger.apply(tx)
        assert receipt.status == STATUS_OK, receipt
        return tx.txid

    return make


@pytest.fixture
def channel(model: dict, open_channel: Callable[..., str]) -> str:
    """A channel bob -> carol with deposit 10000, expiring 10 blocks after opening."""
    return open_channel()


@pytest.fixture
def assert_fails(ledger: Ledger) -> Callable[..., Receipt]:
    """Execute a call that must fail with `code` and change nothing but fee and nonce."""

    def check(key: KeyPair, contract: str, method: str, args: dict[str, Any], code: str) -> Receipt:
        before = ledger.snapshot()
        receipt = ledger.call(key, contract, method, args)
        assert (receipt.status, receipt.code) == (STATUS_FAILED, code), receipt.message
        assert receipt.events == ()
        assert ledger.snapshot() == ledger.expect_fee_only(before, key.account, DEFAULT_FEE)
        return receipt

    return check


@pytest.fixture
def assert_bad_call(ledger: Ledger) -> Callable[..., TxBadCall]:
    """A call whose shape is wrong: refused with `code` before anything is charged.

    Args no tx can carry (integers beyond 2**53-1) go straight to `check_call`,
    which must refuse them too: it also guards calls that never were a tx.
    """

    def check(key: KeyPair, contract: str, method: str, args: Any, code: str) -> TxBadCall:
        before = ledger.snapshot()
        with pytest.raises(TxBadCall) as err:
            if is_canonical(args):
                ledger.call(key, contract, method, args)
            else:
                ledger.contracts[contract].check_call(method, args)
        assert err.value.code == code, err.value.message
        assert ledger.snapshot() == before
        return err.value

    return check
