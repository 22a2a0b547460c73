"""Paid inference: check the payment, run the model, settle, sign a receipt.

Two ways to pay (docs/payments.md): a signed `usage_fee.pay` tx per call,
checked against the pending state and submitted only after the model
answered; or a voucher on an open channel, one signature check per call,
kept in the receipt log (market/marketdb.py) and claimed on-chain later by the
claim loop. A call that fails is not charged, and no output leaves before its
payment is settled: the tx admitted to the mempool, or the voucher kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modelchain.chain.errors import (
    MempoolAlreadyKnown,
    MempoolFeeTooLow,
    ModelchainError,
    TxBadCall,
    TxInsufficientBalance,
    TxMalformed,
    TxNonceTooHigh,
    TxNonceTooLow,
)
from modelchain.chain.keys import verify_signature
from modelchain.chain.node import TipChange
from modelchain.chain.tx import Tx, tx_from_json, tx_signing_parts
from modelchain.contracts.channel import CHANNEL, ChannelInfo, get_channel
from modelchain.contracts.grammar import is_amount, is_hash_hex, is_sig_hex
from modelchain.contracts.usage_fee import USAGE_FEE, UsageFeeContract
from modelchain.contracts.voucher import VOUCHER_TAG, VoucherMalformed, compute_voucher_message
from modelchain.market.channels import (
    ChannelNotFound,
    ClaimLoop,
    ClaimPolicy,
    VoucherBook,
    channel_ids_of_account,
    is_accepting_vouchers,
)
from modelchain.market.inference import Seal, SealRejected
from modelchain.market.marketdb import MarketDB, MarketStoreError, ReceiptRow
from modelchain.market.receipts import (
    KIND_CHANNEL,
    KIND_TX,
    ReceiptDraft,
    ReceiptSigner,
    draft_receipt,
    request_id_problem,
)

if TYPE_CHECKING:
    from modelchain.market.node import MarketNode

log = logging.getLogger(__name__)

MARKET_DB_FILE = "market.sqlite"
MAX_CACHED_CHANNELS = 10_000
"""Channels whose record is kept in memory until the tip moves."""


class PreparedCall(Protocol):
    """What the inference engine hands over: a checked request for one model version."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def price(self) -> int: ...
    @property
    def request_hash(self) -> str: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def parameters(self) -> dict[str, Any] | None: ...


class CallResult(Protocol):
    @property
    def outputs(self) -> Any: ...
    @property
    def output_hash(self) -> str: ...
    @property
    def receipt(self) -> tuple[dict[str, Any], bytes] | None: ...


Runner = Callable[[Any, Seal | None], CallResult]
"""Runs the model for a prepared call, doing what its seal asks (InferenceService.run):
raises SealRejected, with nothing run, when the seal's signature check fails, and a typed
error when the model fails."""


# --- errors ----------------------------------------------------------------------
# 402: no payment, or not enough; 400: a payment that is wrong or malformed;
# 409: a payment already used, or one that clashes with the payer's other txs.


class PaymentError(ModelchainError):
    """A payment that will not do. Nothing is charged; nothing was run, except for
    PaymentNotSettled (run, but not answered)."""

    code = "payment-invalid"


class PaymentRequired(PaymentError):
    code = "payment-required"
    http_status = 402


class PaymentMalformed(PaymentError):
    code = "payment-malformed"


class PaymentWrongChain(PaymentError):
    code = "payment-wrong-chain"


class PaymentWrongContract(PaymentError):
    code = "payment-wrong-contract"


class PaymentWrongModel(PaymentError):
    code = "payment-wrong-model"


class PaymentWrongNode(PaymentError):
    code = "payment-wrong-node"


class PaymentWrongRequest(PaymentError):
    """The tx binds another request hash than the one of this request."""

    code = "payment-wrong-request"


class PaymentWrongAmount(PaymentError):
    code = "payment-wrong-amount"
    http_status = 402


class PaymentBadSignature(PaymentError):
    code = "payment-bad-signature"


class PaymentReplayed(PaymentError):
    """The tx is already in the mempool or a block, or the voucher was already used."""

    code = "payment-replayed"
    http_status = 409


class PaymentNonceUsed(PaymentError):
    """Another tx of the payer holds this nonce (a payment may not replace one)."""

    code = "payment-nonce-used"
    http_status = 409


class PaymentNonceGap(PaymentError):
    code = "payment-nonce-gap"
    http_status = 409


class PaymentInsufficientFunds(PaymentError):
    code = "payment-insufficient-funds"
    http_status = 402


class PaymentFeeTooLow(PaymentError):
    code = "payment-fee-too-low"
    http_status = 402


class PaymentRefused(PaymentError):
    """The mempool refused the tx for another reason; `tx_code` names it."""

    code = "payment-refused"
    http_status = 409


class PaymentNotSettled(PaymentError):
    """The model ran but the tx could no longer be admitted: no output, nothing charged."""

    code = "payment-not-settled"
    http_status = 409


class ChannelUnknownForPayment(PaymentError):
    code = "channel-unknown"
    http_status = 402


class ChannelClosedForPayment(PaymentError):
    code = "channel-closed"
    http_status = 402


class ChannelWrongNode(PaymentError):
    code = "channel-wrong-node"


class ChannelWrongModel(PaymentError):
    code = "channel-wrong-model"


class ChannelExpiring(PaymentError):
    """Too close to the expiry: a voucher now might not be claimable in time."""

    code = "channel-expiring"
    http_status = 402


class VoucherTooLow(PaymentError):
    """Not raised by at least the price over the highest voucher accepted."""

    code = "voucher-too-low"
    http_status = 402


class VoucherOverDeposit(PaymentError):
    code = "voucher-over-deposit"
    http_status = 402


class VoucherBadSignature(PaymentError):
    code = "voucher-bad-signature"


class RequestIdInvalid(ModelchainError):
    code = "request-id-invalid"


class ReceiptNotFound(ModelchainError):
    code = "receipt-unknown"
    http_status = 404


# --- payments as they arrive ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoucherPayment:
    """`parameters.payment` of a call paid by channel."""

    channel: str
    amount: int
    """Cumulative: everything the channel may pay this node so far, this call included."""
    sig: str


def parse_payment(parameters: Any) -> Tx | VoucherPayment | None:
    """The payment in an OIP request's `parameters`, or None; raises PaymentMalformed."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise PaymentMalformed("parameters must be an object")
    payment = parameters.get("payment")
    if payment is None:
        return None
    if isinstance(payment, dict) and set(payment) == {"tx"}:
        try:
            return tx_from_json(payment["tx"])
        except TxMalformed as exc:
            raise PaymentMalformed(f"payment tx: {exc.message}") from exc
    if isinstance(payment, dict) and set(payment) == {"channel", "amount", "sig"}:
        if not is_hash_hex(payment["channel"]):
            raise PaymentMalformed("payment channel must be a channel id (64 lowercase hex)")
        if not is_amount(payment["amount"], minimum=1):
            raise PaymentMalformed("payment amount must be a positive integer")
        if not is_sig_hex(payment["sig"]):
            raise PaymentMalformed("payment sig must be 128 lowercase hex characters")
        return VoucherPayment(payment["channel"], payment["amount"], payment["sig"])
    raise PaymentMalformed(
        'payment must be {"tx": <signed tx>} or {"channel": id, "amount": n, "sig": hex}'
    )


def validate_payment_tx(
    tx: Tx, prepared: PreparedCall, node_account: str, chain_id: str, max_tx_bytes: int
) -> None:
    """Raise unless `tx` pays exactly this call to this node (signature not checked)."""
    if tx.chain_id != chain_id:
        raise PaymentWrongChain(f"the tx is for chain {tx.chain_id!r}, this is {chain_id!r}")
    if (tx.contract, tx.method) != (USAGE_FEE, "pay"):
        raise PaymentWrongContract(f"the tx calls {tx.contract}.{tx.method}, not usage_fee.pay")
    if tx.size > max_tx_bytes:
        raise PaymentMalformed(f"the tx is {tx.size} bytes, over {max_tx_bytes}")
    try:
        UsageFeeContract().check_call("pay", tx.args)
    except TxBadCall as exc:
        raise PaymentMalformed(exc.message, tx_code=exc.code) from exc
    args = tx.args
    if (args["model"], args["version"]) != (prepared.model, prepared.version):
        raise PaymentWrongModel(
            f"the tx pays {args['model']}@{args['version']}, "
            f"this call is {prepared.model}@{prepared.version}"
        )
    if args["node"] != node_account:
        raise PaymentWrongNode(f"the tx pays node {args['node'][:16]}, this is {node_account[:16]}")
    if args["request"] != prepared.request_hash:
        raise PaymentWrongRequest(
            f"the tx binds request {args['request'][:16]}, this request hashes to "
            f"{prepared.request_hash[:16]}",
            request=prepared.request_hash,
        )
    if args["amount"] != prepared.price:
        raise PaymentWrongAmount(f"the tx pays {args['amount']}, the price is {prepared.price}")


def validate_voucher_payment(
    voucher: VoucherPayment,
    info: ChannelInfo | None,
    prepared: PreparedCall,
    node_account: str,
    height: int,
    accepted: int,
    policy: ClaimPolicy,
) -> None:
    """Raise unless `voucher` may pay this call (signature not checked).

    `accepted` is the highest cumulative amount the node took on this channel.
    """
    if info is None:
        raise ChannelUnknownForPayment(f"no channel {voucher.channel[:16]} on the node's chain")
    if info.closed:
        raise ChannelClosedForPayment(f"channel {voucher.channel[:16]} is closed")
    if info.node != node_account:
        raise ChannelWrongNode(f"channel {info.id[:16]} pays node {info.node[:16]}, not this one")
    if (info.model, info.version, info.sha256) != (
        prepared.model,
        prepared.version,
        prepared.sha256,
    ):
        raise ChannelWrongModel(
            f"channel {info.id[:16]} is for {info.model}@{info.version}, "
            f"this call is {prepared.model}@{prepared.version}"
        )
    if not is_accepting_vouchers(height, info.expiry, policy):
        raise ChannelExpiring(
            f"channel {info.id[:16]} expires at {info.expiry}; vouchers are taken while "
            f"height + {policy.margin_blocks} < expiry (height {height})",
            expiry=info.expiry,
        )
    last = max(accepted, info.claimed)
    if voucher.amount == last:
        raise PaymentReplayed(f"voucher {voucher.amount} was already used", accepted=last)
    minimum = last + prepared.price
    if voucher.amount < minimum:
        raise VoucherTooLow(
            f"voucher {voucher.amount}: the last accepted is {last}, the price {prepared.price}, "
            f"so at least {minimum}",
            accepted=last,
            minimum=minimum,
        )
    if voucher.amount > info.deposit:
        raise VoucherOverDeposit(
            f"voucher {voucher.amount} exceeds the deposit {info.deposit}", deposit=info.deposit
        )


class KeyedLocks:
    """One lock per key, made on first use and dropped once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def others_waiting(self, key: str) -> bool:
        """True when a caller holding `key`'s lock has others waiting behind it."""
        with self._guard:
            entry = self._locks.get(key)
            return entry is not None and entry[1] > 1


# --- the service -------------------------------------------------------------------


class Payments:
    """Paid calls, receipts and channels of one MarketNode."""

    def __init__(self, node: MarketNode, policy: ClaimPolicy | None = None) -> None:
        self.node = node
        self.policy = policy or ClaimPolicy()
        self.db = MarketDB(
            node.config.data_dir / MARKET_DB_FILE, sync_ms=node.config.receipt_sync_ms
        )
        self.book = VoucherBook(self.db)
        self.claims = ClaimLoop(node, self.book, self.policy)
        self._senders = KeyedLocks()
        """A payer's calls paid per call run one at a time: each sees the last one's tx."""
        self._channels = KeyedLocks()
        """A channel's calls run one at a time: each sees the last one's voucher."""
        self._signer = ReceiptSigner(node.key)
        self._channel_records: dict[str, tuple[ChannelInfo, int]] = {}
        """Channel records read at the current tip, with its height; emptied when it moves."""
        node.chain.listeners.append(self._on_tip_change)

    def start(self) -> None:
        self.claims.start()

    def close(self) -> None:
        self.claims.stop()
        if self._on_tip_change in self.node.chain.listeners:
            self.node.chain.listeners.remove(self._on_tip_change)
        self.db.close()

    def _on_tip_change(self, change: TipChange) -> None:
        self._channel_records.clear()  # runs under the chain's lock, as reads below do

    def _channel_at_tip(self, channel_id: str) -> tuple[ChannelInfo | None, int]:
        """The channel's record at the tip and the tip's height, without the chain's lock
        when this tip already answered: channel calls do not queue behind block writes."""
        cached = self._channel_records.get(channel_id)
        if cached is not None:
            return cached
        chain = self.node.chain
        with chain.lock:
            info = get_channel(chain.store, channel_id)
            height = chain.height
            if info is not None:
                if len(self._channel_records) >= MAX_CACHED_CHANNELS:
                    self._channel_records.clear()
                self._channel_records[channel_id] = (info, height)
        return info, height

    # --- quotes ----------------------------------------------------------------------

    def quote(self, prepared: PreparedCall) -> dict[str, Any]:
        """What this call costs here and how to pay for it (the body of a 402)."""
        node = self.node
        account = node.account
        chain_id = node.params.chain_id
        pay_args = {
            "model": prepared.model,
            "version": prepared.version,
            "amount": prepared.price,
            "node": account,
            "request": prepared.request_hash,
        }
        return {
            "price": prepared.price,
            "node": account,
            "model": prepared.model,
            "version": prepared.version,
            "sha256": prepared.sha256,
            "chain_id": chain_id,
            "request": prepared.request_hash,
            "height": node.chain.height,
            "how": {
                "text": (
                    f"{prepared.model}@{prepared.version} costs {prepared.price} per call. "
                    "Send the request again with parameters.payment. Per call: sign the "
                    "usage_fee.pay call below (amount = price, request = this request's hash) "
                    'as a tx and send {"tx": <signed tx>}. By channel: open a channel for this '
                    "version with this node, then send "
                    '{"channel": <id>, "amount": <cumulative>, "sig": <voucher signature>}, '
                    "raising the amount by at least the price on every call. "
                    "See docs/payments.md."
                ),
                "per_call": {
                    "call": {"contract": USAGE_FEE, "method": "pay", "args": pay_args},
                    "payment": {"tx": "<the call above as a signed tx (JSON)>"},
                },
                "channel": {
                    "open": {
                        "contract": CHANNEL,
                        "method": "open",
                        "args": {
                            "model": prepared.model,
                            "version": prepared.version,
                            "node": account,
                            "deposit": "<amount>",
                            "expiry": "<block height>",
                        },
                    },
                    "payment": {
                        "channel": "<channel id: the open tx's txid>",
                        "amount": "<cumulative amount: last accepted + at least the price>",
                        "sig": "<payer's Ed25519 signature of the voucher message, hex>",
                    },
                    "voucher_message": (
                        VOUCHER_TAG.decode("ascii").replace("\x00", "\\x00")
                        + f'{{"amount":<amount>,"chain_id":"{chain_id}","channel":"<id>"}}'
                    ),
                    "margin_blocks": self.policy.margin_blocks,
                },
            },
        }

    # --- paid calls ----------------------------------------------------------------

    def infer_paid(self, prepared: PreparedCall, run: Runner) -> dict[str, Any]:
        """Take the call's payment, run it, settle, and answer with outputs and a receipt.

        Raises PaymentRequired (402 with the quote) without a payment, another
        PaymentError when the payment will not do (nothing run, nothing
        charged), the runner's own error when the model fails (nothing
        charged), or PaymentNotSettled when the payment could not be settled
        after the run (no output, nothing charged).
        """
        problem = request_id_problem(prepared.request_id)
        if problem is not None:
            raise RequestIdInvalid(problem)
        if prepared.price == 0:  # free: a payment is ignored, never taken
            return _answer(prepared, run(prepared, None), None, None)
        self.db.check_writable()  # a receipt that cannot be kept: nothing is run
        try:
            payment = parse_payment(prepared.parameters)
            if payment is None:
                raise PaymentRequired(
                    f"{prepared.model}@{prepared.version} costs {prepared.price} per call: "
                    "send parameters.payment (see quote)"
                )
            if isinstance(payment, Tx):
                return self._pay_by_tx(prepared, payment, run)
            return self._pay_by_channel(prepared, payment, run)
        except PaymentError as exc:
            if exc.http_status == 402:
                exc.detail.setdefault("quote", self.quote(prepared))
            raise

    def _pay_by_tx(self, prepared: PreparedCall, tx: Tx, run: Runner) -> dict[str, Any]:
        node = self.node
        validate_payment_tx(
            tx, prepared, node.account, node.params.chain_id, node.params.max_tx_bytes
        )
        bad_signature = f"the tx's signature does not verify for {tx.sender[:16]}"
        # The call's one signature check: as for vouchers, the worker makes it before the
        # run, unless the node knows the tx already or others wait for this payer.
        check = None
        if tx.txid not in node.chain.verified:
            _, message, signature = tx_signing_parts(tx)
            check = (tx.sender, message, signature)
        with self._senders.hold(tx.sender):
            if check is not None and self._senders.others_waiting(tx.sender):
                if not verify_signature(*check):
                    raise PaymentBadSignature(bad_signature)
                check = None
            with node.chain.lock:
                self._check_admissible(tx)
                height = node.chain.height
            draft = self._receipt_draft(prepared, {"kind": KIND_TX, "txid": tx.txid}, height)
            try:
                result = run(prepared, Seal(check=check, receipt=draft))
            except SealRejected:
                raise PaymentBadSignature(bad_signature) from None
            try:
                node.submit_tx(tx, signature_checked=True)
            except ModelchainError as exc:
                raise PaymentNotSettled(
                    f"the payment was valid before the run but not after ({exc.message}); "
                    "nothing was charged and no output is given",
                    tx_code=exc.code,
                ) from exc
        receipt, row = self._receipt(result, draft, tx.sender)
        try:
            self.db.write([row])
        except MarketStoreError:  # the payment is settled: answer; only the filing failed
            log.exception("receipt %s of tx %s was not filed", row.id, tx.txid)
        return _answer(prepared, result, receipt, row.id)

    def _check_admissible(self, tx: Tx) -> None:
        """Raise unless `tx` would enter the mempool now as ready, replacing nothing.

        The caller holds the chain's lock.
        """
        chain = self.node.chain
        if tx.txid in chain.mempool:
            raise PaymentReplayed(f"tx {tx.txid[:16]} was already used")
        expected = chain.mempool.pending_nonce(tx.sender, chain.store)
        if tx.nonce < expected:
            # a tx in a block has a nonce below its sender's: only then is it looked up
            if chain.store.tx_location(tx.txid) is not None:
                raise PaymentReplayed(f"tx {tx.txid[:16]} was already used")
            raise PaymentNonceUsed(
                f"nonce {tx.nonce} is taken by an earlier tx; the next is {expected}",
                expected=expected,
            )
        try:
            chain.mempool.check_ready(tx, chain.store, chain.now())
        except (MempoolAlreadyKnown, TxNonceTooLow) as exc:
            raise PaymentReplayed(exc.message) from exc
        except TxNonceTooHigh as exc:
            raise PaymentNonceGap(exc.message, expected=expected) from exc
        except TxInsufficientBalance as exc:
            raise PaymentInsufficientFunds(exc.message, **exc.detail) from exc
        except MempoolFeeTooLow as exc:
            raise PaymentFeeTooLow(exc.message, **exc.detail) from exc
        except TxBadCall as exc:
            raise PaymentMalformed(exc.message, tx_code=exc.code) from exc
        except ModelchainError as exc:
            raise PaymentRefused(exc.message, tx_code=exc.code) from exc

    def _pay_by_channel(
        self, prepared: PreparedCall, voucher: VoucherPayment, run: Runner
    ) -> dict[str, Any]:
        node = self.node
        chain_id = node.params.chain_id
        with self._channels.hold(voucher.channel):
            info, height = self._channel_at_tip(voucher.channel)
            validate_voucher_payment(
                voucher,
                info,
                prepared,
                node.account,
                height,
                self.book.amount(voucher.channel),
                self.policy,
            )
            assert info is not None
            payment = {"kind": KIND_CHANNEL, "channel": info.id, "amount": voucher.amount}
            draft = self._receipt_draft(prepared, payment, height)

            def bad_signature() -> VoucherBadSignature:
                return VoucherBadSignature(
                    f"sig is not the payer's voucher for {voucher.amount} on channel {info.id[:16]}"
                )

            try:
                message = compute_voucher_message(chain_id, info.id, voucher.amount)
            except VoucherMalformed:
                raise bad_signature() from None
            # The call's one signature check. The worker makes it before the run, off this
            # busy process, unless others wait for this channel: then it is made here, so
            # that forged vouchers sent to someone's channel never hold it through a wait
            # for a worker.
            check = (info.payer, message, bytes.fromhex(voucher.sig))
            if self._channels.others_waiting(info.id):
                if not verify_signature(*check):
                    raise bad_signature()
                check = None
            try:
                result = run(prepared, Seal(check=check, receipt=draft))
            except SealRejected:
                raise bad_signature() from None
            receipt, row = self._receipt(result, draft, info.payer, voucher.sig)
            # the voucher counts only from here: a failed run above leaves no trace
            self.book.record(row)
        return _answer(prepared, result, receipt, row.id)

    def _receipt_draft(
        self, prepared: PreparedCall, payment: dict[str, Any], height: int
    ) -> ReceiptDraft:
        """The call's receipt but its output hash: what the run's seal carries (checked
        before the run: a receipt that cannot be made leaves the call unrun)."""
        return draft_receipt(
            self.node.account,
            {
                "chain_id": self.node.params.chain_id,
                "height": height,
                "model": prepared.model,
                "model_version": prepared.version,
                "model_sha256": prepared.sha256,
                "input_hash": prepared.request_hash,
                "price": prepared.price,
                "payment": payment,
                "request_id": prepared.request_id,
            },
        )

    def _receipt(
        self,
        result: CallResult,
        draft: ReceiptDraft,
        payer: str,
        voucher_sig: str | None = None,
    ) -> tuple[dict[str, Any], ReceiptRow]:
        """The signed receipt (as the worker sealed it, or signed here) and its row."""
        if result.receipt is not None:
            receipt, body = result.receipt
        else:
            receipt, body = draft.sign(self._signer, result.output_hash)
        fields = draft.receipt
        payment = fields["payment"]
        row = ReceiptRow(
            id=hashlib.sha256(body).hexdigest(),  # = compute_receipt_id(receipt)
            created=int(time.time()),
            kind=payment["kind"],
            txid=payment.get("txid"),
            channel=payment.get("channel"),
            amount=payment.get("amount"),
            sig=voucher_sig,
            payer=payer,
            model=fields["model"],
            version=fields["model_version"],
            height=fields["height"],
            body=body.decode("utf-8"),
        )
        return receipt, row

    # --- receipts and channels for the API ---------------------------------------------

    def receipt(self, receipt_id: str) -> dict[str, Any]:
        """A receipt this node handed out; raises ReceiptNotFound."""
        body = self.db.receipt_body(receipt_id) if is_hash_hex(receipt_id) else None
        if body is None:
            raise ReceiptNotFound(f"no receipt {receipt_id[:16]} on this node")
        return {"id": receipt_id, "receipt": json.loads(body)}

    def receipt_ids(self, *, txid: str | None = None, channel: str | None = None) -> list[str]:
        """Ids of the receipts for one payment tx, or for one channel."""
        return self.db.receipt_ids(txid=txid, channel=channel)

    def channel_status(self, channel_id: str) -> dict[str, Any]:
        """The channel on-chain with what this node accepted, claimed and has pending."""
        node = self.node
        with node.chain.lock:
            info = get_channel(node.store, channel_id)
            height = node.chain.height
        accepted = self.book.amount(channel_id)
        if info is None and accepted == 0:
            raise ChannelNotFound(f"no channel {channel_id[:16]} on the node's chain")
        pending = self.claims.pending_claims().get(channel_id)
        claimed = info.claimed if info is not None else 0
        return {
            "channel": channel_id,
            "onchain": info.to_json() if info is not None else None,
            "node": node.account,
            "served_here": info is not None and info.node == node.account,
            "accepted": accepted,
            "claimed": claimed,
            "unclaimed": max(0, accepted - claimed),
            "claim_pending": (
                {"txid": pending.txid, "amount": pending.amount} if pending is not None else None
            ),
            "accepting": info is not None
            and not info.closed
            and info.node == node.account
            and is_accepting_vouchers(height, info.expiry, self.policy),
            "height": height,
            "margin_blocks": self.policy.margin_blocks,
        }

    def list_channels(self, account: str | None, limit: int) -> list[dict[str, Any]]:
        """Channels `account` pays or serves (newest first), or else those with vouchers here."""
        if account is None:
            ids = [row.channel for row in self.book.all()][:limit]
        else:
            with self.node.chain.lock:
                ids = channel_ids_of_account(self.node.store, account, limit)
        return [self.channel_status(channel_id) for channel_id in ids]

    def claim_now(self, channel_id: str) -> dict[str, Any]:
        """Claim the channel's highest accepted voucher now (normally the loop does it)."""
        tx = self.claims.claim_now(channel_id)
        return {"channel": channel_id, "txid": tx.txid, "amount": tx.args["amount"]}


def _answer(
    prepared: PreparedCall,
    result: CallResult,
    receipt: dict[str, Any] | None,
    receipt_id: str | None,
) -> dict[str, Any]:
    """The OIP response body: the hashes a free call answers with, plus the receipt."""
    body: dict[str, Any] = {"model_name": prepared.model, "model_version": prepared.version}
    if prepared.request_id is not None:
        body["id"] = prepared.request_id
    body["outputs"] = result.outputs
    parameters = {
        "model_sha256": prepared.sha256,
        "request_hash": prepared.request_hash,
        "output_hash": result.output_hash,
    }
    if receipt is not None:
        parameters |= {"receipt": receipt, "receipt_id": receipt_id}
    body["parameters"] = parameters
    return body
