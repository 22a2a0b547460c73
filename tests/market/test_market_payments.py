"""Paid inference per call: a signed usage_fee.pay tx, checked, run, then settled.

A real regtest MarketNode (no mining loop; blocks are mined by hand with
`mine_tip`) with a priced model version registered by the dev wallet, and a
fake runner standing in for the inference engine. The harness here is also
used by the channel tests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from factories import key_for, mine_tip

from modelchain.chain.errors import ModelchainError
from modelchain.chain.keys import KeyPair
from modelchain.chain.tx import Tx, make_transfer
from modelchain.contracts.registry import get_version
from modelchain.contracts.split import compute_shares
from modelchain.market.channels import ClaimPolicy
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.inference import Seal, SealRejected, seal_check_passes
from modelchain.market.node import MarketNode
from modelchain.market.payments import PaymentError, Payments
from modelchain.market.receipts import verify_receipt

PRICE = 1_001
MODEL = "summer"
VERSION = "1"
OTHER_VERSION = "2"
FREE_VERSION = "free"
OWNER = key_for("owner")
SPLIT = {"owners": [[OWNER.account, 9_000]], "node": 1_000}
FUNDS = 10_000_000
OUTPUTS = [{"name": "y", "datatype": "INT64", "shape": [1], "data": [42]}]
OUTPUT_HASH = hashlib.sha256(b"the outputs").hexdigest()


def sha_of(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def request_hash(label: str) -> str:
    return sha_of(f"request {label}")


@dataclass(frozen=True, slots=True)
class FakeCall:
    """Stands in for the inference engine's PreparedCall."""

    model: str
    version: str
    sha256: str
    price: int
    inputs: tuple[Any, ...]
    request_hash: str
    request_id: str | None
    parameters: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FakeResult:
    outputs: list[dict[str, Any]]
    output_hash: str
    receipt: tuple[dict[str, Any], bytes] | None = None
    """Left to the caller to sign, as a worker does when it cannot hash the outputs."""


@dataclass
class FakeRun:
    """A model run that answers (or raises `fail`), counting its calls. Like a worker, it
    checks the seal's signature first and refuses the call, not run, when it fails."""

    fail: Exception | None = None
    during: Callable[[], None] | None = None
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, prepared: Any, seal: Seal | None = None) -> FakeResult:
        if not seal_check_passes(seal):
            raise SealRejected("the payment's signature fails")
        with self.lock:
            self.calls += 1
        if self.during is not None:
            self.during()
        if self.fail is not None:
            raise self.fail
        return FakeResult(OUTPUTS, OUTPUT_HASH)


@dataclass
class SealRecordingRun(FakeRun):
    """A FakeRun that records the seal of every call handed to it."""

    seals: list[Any] = field(default_factory=list)

    def __call__(self, prepared: Any, seal: Any = None) -> Any:
        self.seals.append(seal)
        return super().__call__(prepared, seal)


class ModelFailed(ModelchainError):
    code = "infer-run-failed"
    http_status = 500


class Market:
    """A regtest node with `summer@1` at PRICE, `summer@2` at PRICE, `summer@free` at 0."""

    def __init__(self, path: Path, policy: ClaimPolicy | None = None) -> None:
        self.path = path
        self.node = MarketNode(NodeConfig(data_dir=path, network="regtest", mine=False))
        if policy is not None:
            self.node.payments.close()
            self.node.payments = Payments(self.node, policy)
        self.chain_id = self.node.params.chain_id
        self.dev = dev_wallet()

    @property
    def payments(self) -> Payments:
        return self.node.payments

    def register_models(self) -> None:
        for version, price in ((VERSION, PRICE), (OTHER_VERSION, PRICE), (FREE_VERSION, 0)):
            self.submit(
                self.dev,
                "registry",
                "register",
                {
                    "name": MODEL,
                    "version": version,
                    "sha256": sha_of(f"{MODEL}@{version}"),
                    "price": price,
                    "split": SPLIT,
                },
            )
        self.mine()

    def sign(self, key: KeyPair, contract: str, method: str, args: dict[str, Any], **kw) -> Tx:
        nonce = kw.pop("nonce", None)
        if nonce is None:
            nonce = self.node.chain.pending_nonce(key.account)
        return sign_call(
            key, kw.pop("chain_id", self.chain_id), nonce, contract, method, args, **kw
        )

    def submit(self, key: KeyPair, contract: str, method: str, args: dict[str, Any]) -> Tx:
        tx = self.sign(key, contract, method, args)
        self.node.submit_tx(tx)
        return tx

    def fund(self, *accounts: str, amount: int = FUNDS) -> None:
        for account in accounts:
            self.submit(self.dev, "coin", "transfer", {"to": account, "amount": amount})
        self.mine()

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            mine_tip(self.node.chain)

    def call(
        self,
        label: str = "a",
        payment: dict[str, Any] | None = None,
        version: str = VERSION,
        request_id: str | None = "req-1",
    ) -> FakeCall:
        info = get_version(self.node.store, MODEL, version)
        assert info is not None
        return FakeCall(
            model=MODEL,
            version=version,
            sha256=info.sha256,
            price=info.price,
            inputs=(),
            request_hash=request_hash(label),
            request_id=request_id,
            parameters=None if payment is None else {"payment": payment},
        )

    def pay_args(self, label: str = "a", **overrides: Any) -> dict[str, Any]:
        args = {
            "model": MODEL,
            "version": VERSION,
            "amount": PRICE,
            "node": self.node.account,
            "request": request_hash(label),
        }
        return args | overrides

    def pay_tx(self, payer: KeyPair, label: str = "a", **kw: Any) -> Tx:
        args = self.pay_args(label, **kw.pop("args", {}))
        return self.sign(payer, "usage_fee", "pay", args, **kw)

    def usage_events(self) -> list[dict[str, Any]]:
        rows = self.node.store.db.execute(
            "SELECT e.data FROM events e JOIN chain c ON c.hash = e.block_hash"
            " WHERE e.type = 'usage-paid'"
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def close(self) -> None:
        self.node.close()


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    market = Market(tmp_path / "node")
    market.register_models()
    yield market
    market.close()


PAYER = key_for("payer")


@pytest.fixture
def funded(market: Market) -> Market:
    market.fund(PAYER.account)
    return market


def tx_payment(tx: Tx) -> dict[str, Any]:
    return {"tx": tx.to_json()}


# --- free and unpaid calls -------------------------------------------------------------


def test_free_version_runs_without_payment_and_without_receipt(market: Market) -> None:
    run = FakeRun()
    answer = market.payments.infer_paid(market.call(version=FREE_VERSION), run)
    assert run.calls == 1
    assert answer["outputs"] == OUTPUTS
    assert "receipt" not in answer["parameters"]


def test_priced_call_without_payment_gets_402_with_a_quote(market: Market) -> None:
    run = FakeRun()
    prepared = market.call("q")
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(prepared, run)
    assert err.value.code == "payment-required"
    assert err.value.http_status == 402
    assert run.calls == 0
    quote = err.value.detail["quote"]
    assert quote["price"] == PRICE
    assert quote["node"] == market.node.account
    assert (quote["model"], quote["version"]) == (MODEL, VERSION)
    assert quote["sha256"] == prepared.sha256
    assert quote["chain_id"] == market.chain_id
    assert quote["request"] == prepared.request_hash
    assert quote["how"]["per_call"]["call"] == {
        "contract": "usage_fee",
        "method": "pay",
        "args": market.pay_args("q"),
    }
    assert set(quote["how"]["channel"]["payment"]) == {"channel", "amount", "sig"}
    assert quote["how"]["text"]
    assert err.value.to_json()["error"]["code"] == "payment-required"


# --- paying per call -------------------------------------------------------------------


def test_call_paid_by_tx_answers_with_a_receipt_and_settles_by_the_split(funded: Market) -> None:
    market = funded
    tx = market.pay_tx(PAYER, "a")
    run = FakeRun()
    answer = market.payments.infer_paid(market.call("a", tx_payment(tx)), run)
    assert run.calls == 1
    assert answer["model_name"] == MODEL and answer["model_version"] == VERSION
    assert answer["id"] == "req-1"
    assert answer["outputs"] == OUTPUTS
    receipt = answer["parameters"]["receipt"]
    assert verify_receipt(receipt, market.node.account)
    assert receipt["payment"] == {"kind": "tx", "txid": tx.txid}
    assert receipt["input_hash"] == request_hash("a")
    assert receipt["output_hash"] == OUTPUT_HASH
    assert receipt["price"] == PRICE
    assert receipt["model_sha256"] == sha_of(f"{MODEL}@{VERSION}")
    assert receipt["height"] == market.node.chain.height
    stored = market.payments.receipt(answer["parameters"]["receipt_id"])
    assert stored["receipt"] == receipt
    assert market.payments.receipt_ids(txid=tx.txid) == [answer["parameters"]["receipt_id"]]
    assert tx.txid in market.node.chain.mempool

    before = {a: market.node.chain.balance(a) for a in (OWNER.account, market.node.account)}
    market.mine()
    events = market.usage_events()
    assert len(events) == 1 and events[0]["request"] == request_hash("a")
    shares = compute_shares(
        PRICE, get_version(market.node.store, MODEL, VERSION).split, market.node.account
    )
    for share in shares:
        assert market.node.chain.balance(share.account) == before[share.account] + share.amount
    assert market.node.chain.balance(PAYER.account) == FUNDS - PRICE - tx.fee


def test_failed_run_is_not_charged_and_the_same_tx_pays_a_later_call(funded: Market) -> None:
    market = funded
    tx = market.pay_tx(PAYER, "a")
    failing = FakeRun(fail=ModelFailed("the model blew up"))
    with pytest.raises(ModelFailed):
        market.payments.infer_paid(market.call("a", tx_payment(tx)), failing)
    assert failing.calls == 1
    assert tx.txid not in market.node.chain.mempool
    market.mine()
    assert market.usage_events() == []
    assert market.node.chain.balance(PAYER.account) == FUNDS
    answer = market.payments.infer_paid(market.call("a", tx_payment(tx)), FakeRun())
    assert answer["parameters"]["receipt"]["payment"]["txid"] == tx.txid


def test_replayed_payment_tx_is_refused_while_pending_and_once_mined(funded: Market) -> None:
    market = funded
    tx = market.pay_tx(PAYER, "a")
    market.payments.infer_paid(market.call("a", tx_payment(tx)), FakeRun())
    for _ in range(2):
        run = FakeRun()
        with pytest.raises(PaymentError) as err:
            market.payments.infer_paid(market.call("a", tx_payment(tx)), run)
        assert err.value.code == "payment-replayed"
        assert err.value.http_status == 409
        assert run.calls == 0
        market.mine()
    assert len(market.usage_events()) == 1


def test_payment_reusing_a_pending_nonce_is_refused_rather_than_replacing(funded: Market) -> None:
    market = funded
    first = market.pay_tx(PAYER, "a")
    market.payments.infer_paid(market.call("a", tx_payment(first)), FakeRun())
    # same nonce, another request, a higher fee: it would replace the first in the pool
    second = market.pay_tx(PAYER, "b", nonce=first.nonce, fee=first.fee * 2)
    run = FakeRun()
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(market.call("b", tx_payment(second)), run)
    assert err.value.code == "payment-nonce-used"
    assert run.calls == 0
    assert first.txid in market.node.chain.mempool


def _bad_payments(market: Market) -> dict[str, tuple[dict[str, Any], str, int]]:
    """name -> (parameters.payment, expected code, expected status) for call "a"."""
    broke = key_for("broke")
    stranger = key_for("stranger")
    good = market.pay_tx(PAYER, "a")
    resigned = good.to_json() | {"sig": market.pay_tx(stranger, "a").sig}
    return {
        "wrong model version": (
            tx_payment(market.pay_tx(PAYER, args={"version": OTHER_VERSION})),
            "payment-wrong-model",
            400,
        ),
        "underpaying": (
            tx_payment(market.pay_tx(PAYER, args={"amount": PRICE - 1})),
            "payment-wrong-amount",
            402,
        ),
        "another node": (
            tx_payment(market.pay_tx(PAYER, args={"node": stranger.account})),
            "payment-wrong-node",
            400,
        ),
        "another request": (
            tx_payment(market.pay_tx(PAYER, "b")),
            "payment-wrong-request",
            400,
        ),
        "another chain": (
            tx_payment(market.pay_tx(PAYER, chain_id="modelchain-other")),
            "payment-wrong-chain",
            400,
        ),
        "not a usage fee": (
            tx_payment(market.sign(PAYER, "coin", "transfer", {"to": OWNER.account, "amount": 5})),
            "payment-wrong-contract",
            400,
        ),
        "signed by someone else": ({"tx": resigned}, "payment-bad-signature", 400),
        "unsigned": (
            {"tx": good.to_json() | {"sig": "00" * 64}},
            "payment-bad-signature",
            400,
        ),
        "not a tx": ({"tx": {"hello": 1}}, "payment-malformed", 400),
        "neither form": ({"cheque": 5}, "payment-malformed", 400),
        "bad call args": (
            tx_payment(market.pay_tx(PAYER, args={"request": "xyz"})),
            "payment-malformed",
            400,
        ),
        "payer without funds": (
            tx_payment(market.pay_tx(broke)),
            "payment-insufficient-funds",
            402,
        ),
        "nonce gap": (
            tx_payment(
                market.pay_tx(PAYER, nonce=market.node.chain.pending_nonce(PAYER.account) + 1)
            ),
            "payment-nonce-gap",
            409,
        ),
        "fee under the minimum": (
            tx_payment(market.pay_tx(PAYER, fee=1)),
            "payment-fee-too-low",
            402,
        ),
    }


BAD_PAYMENT_NAMES = [
    "wrong model version",
    "underpaying",
    "another node",
    "another request",
    "another chain",
    "not a usage fee",
    "signed by someone else",
    "unsigned",
    "not a tx",
    "neither form",
    "bad call args",
    "payer without funds",
    "nonce gap",
    "fee under the minimum",
]


@pytest.mark.parametrize("name", BAD_PAYMENT_NAMES)
def test_bad_payment_tx_is_refused_without_running_or_charging(funded: Market, name: str) -> None:
    market = funded
    payment, code, status = _bad_payments(market)[name]
    run = FakeRun()
    pool_before = len(market.node.chain.mempool)
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(market.call("a", payment), run)
    assert err.value.code == code
    assert err.value.http_status == status
    if status == 402:
        assert err.value.detail["quote"]["price"] == PRICE
    assert run.calls == 0
    assert len(market.node.chain.mempool) == pool_before
    market.mine()
    assert market.usage_events() == []
    assert market.node.chain.balance(PAYER.account) == FUNDS


def test_payment_spent_elsewhere_during_the_run_gives_no_output(funded: Market) -> None:
    market = funded
    tx = market.pay_tx(PAYER, "a")
    # while the model runs, the payer spends the same nonce on a transfer
    rival = make_transfer(
        PAYER,
        chain_id=market.chain_id,
        nonce=tx.nonce,
        fee=tx.fee,
        to=OWNER.account,
        amount=FUNDS - 10 * tx.fee,
    )
    run = FakeRun(during=lambda: market.node.submit_tx(rival))
    with pytest.raises(PaymentError) as err:
        market.payments.infer_paid(market.call("a", tx_payment(tx)), run)
    assert err.value.code == "payment-not-settled"
    assert run.calls == 1
    assert tx.txid not in market.node.chain.mempool
    assert market.payments.receipt_ids(txid=tx.txid) == []


def test_request_id_that_cannot_be_signed_is_refused_before_running(funded: Market) -> None:
    market = funded
    run = FakeRun()
    prepared = market.call("a", tx_payment(market.pay_tx(PAYER, "a")), request_id="x" * 300)
    with pytest.raises(ModelchainError) as err:
        market.payments.infer_paid(prepared, run)
    assert err.value.code == "request-id-invalid"
    assert run.calls == 0


def test_one_payers_pipelined_nonces_are_served_in_turn(funded: Market) -> None:
    market = funded
    first = market.pay_tx(PAYER, "a")
    second = market.pay_tx(PAYER, "b", nonce=first.nonce + 1)
    release = threading.Event()
    started = threading.Event()

    def slow() -> None:
        started.set()
        assert release.wait(10)

    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(
            market.payments.infer_paid(market.call("a", tx_payment(first)), FakeRun(during=slow))
        )
    )
    worker.start()
    assert started.wait(10)
    # the second call waits for the first payer's turn, then sees its tx in the pool
    follower = threading.Thread(
        target=lambda: results.append(
            market.payments.infer_paid(market.call("b", tx_payment(second)), FakeRun())
        )
    )
    follower.start()
    release.set()
    worker.join(10)
    follower.join(10)
    assert len(results) == 2
    market.mine()
    assert sorted(e["request"] for e in market.usage_events()) == sorted(
        [request_hash("a"), request_hash("b")]
    )


def test_32_concurrent_payers_are_each_settled_exactly_once(market: Market) -> None:
    payers = [key_for(f"payer-{i}") for i in range(32)]
    for payer in payers:
        market.submit(market.dev, "coin", "transfer", {"to": payer.account, "amount": FUNDS})
    market.mine()
    accounts = [p.account for p in payers] + [OWNER.account, market.node.account]
    total_before = sum(market.node.chain.balance(a) for a in accounts)
    txs = [market.pay_tx(payer, f"call-{i}") for i, payer in enumerate(payers)]
    barrier = threading.Barrier(len(payers))
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def pay(i: int) -> None:
        barrier.wait(10)
        try:
            answers.append(
                market.payments.infer_paid(market.call(f"call-{i}", tx_payment(txs[i])), FakeRun())
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(len(payers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(answers) == 32
    assert {a["parameters"]["receipt"]["payment"]["txid"] for a in answers} == {
        tx.txid for tx in txs
    }
    market.mine()
    events = market.usage_events()
    assert len(events) == 32
    assert sorted(e["payer"] for e in events) == sorted(p.account for p in payers)
    for payer, tx in zip(payers, txs, strict=True):
        assert market.node.chain.balance(payer.account) == FUNDS - PRICE - tx.fee
    node_share, owner_share = PRICE * 1_000 // 10_000, PRICE - PRICE * 1_000 // 10_000
    assert market.node.chain.balance(OWNER.account) == 32 * owner_share
    assert market.node.chain.balance(market.node.account) == 32 * node_share
    fees = sum(tx.fee for tx in txs)
    # what left the payers reached the owner, the node and (as fees) the miner
    assert sum(market.node.chain.balance(a) for a in accounts) == total_before - fees


def test_receipts_of_paid_calls_survive_a_restart(tmp_path: Path) -> None:
    market = Market(tmp_path / "node")
    market.register_models()
    market.fund(PAYER.account)
    answer = market.payments.infer_paid(
        market.call("a", tx_payment(market.pay_tx(PAYER, "a"))), FakeRun()
    )
    market.close()
    again = Market(tmp_path / "node")
    try:
        stored = again.payments.receipt(answer["parameters"]["receipt_id"])
        assert stored["receipt"] == answer["parameters"]["receipt"]
    finally:
        again.close()


def test_unknown_receipt_is_404(market: Market) -> None:
    with pytest.raises(ModelchainError) as err:
        market.payments.receipt("ab" * 32)
    assert (err.value.code, err.value.http_status) == ("receipt-unknown", 404)


def test_a_payment_tx_the_node_has_not_seen_is_checked_by_the_worker_once(
    funded: Market,
) -> None:
    tx = funded.pay_tx(PAYER, "a")
    run = SealRecordingRun()
    funded.payments.infer_paid(funded.call("a", tx_payment(tx)), run)
    (seal,) = run.seals
    assert seal.check is not None and seal.check[0] == PAYER.account
    assert seal.check[1] == tx.signing_message()
    assert tx.txid in funded.node.chain.mempool  # admitted without a second check
    assert tx.txid in funded.node.chain.verified


def test_a_forged_payment_tx_of_a_payer_others_wait_for_is_refused_before_any_run(
    funded: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = funded.pay_tx(PAYER, "a")
    forged = good.to_json() | {"sig": funded.pay_tx(key_for("stranger"), "a").sig}
    monkeypatch.setattr(funded.payments._senders, "others_waiting", lambda key: True)
    run = SealRecordingRun()
    with pytest.raises(PaymentError) as err:
        funded.payments.infer_paid(funded.call("a", {"tx": forged}), run)
    assert err.value.code == "payment-bad-signature"
    assert run.seals == []  # the node checked it itself: it never waited for a worker
    funded.payments.infer_paid(funded.call("a", tx_payment(good)), run)
    assert run.seals[-1].check is None  # checked here already
