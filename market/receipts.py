"""Receipts: what a node signs for every paid call, checkable by anyone offline.

A receipt binds the model file (sha256), the request and the answer (hashes
of their canonical forms), the price, the payment, the serving node and the
chain height. The node signs a domain tag followed by the canonical JSON of
those fields, so a receipt verifies with nothing but the node's account
(docs/payments.md#receipts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from modelchain.chain.encoding import canonical_bytes, canonical_bytes_unchecked
from modelchain.chain.errors import ModelchainError, NonCanonicalValue
from modelchain.chain.keys import ExpandedKey, is_account, verify_signature
from modelchain.contracts.grammar import (
    is_amount,
    is_hash_hex,
    is_model_name,
    is_sig_hex,
    is_version,
)

RECEIPT_VERSION = 1
RECEIPT_TAG = b"modelchain/receipt/v1\x00"
"""Signed message = RECEIPT_TAG || canonical(receipt without "sig")."""
RECEIPT_FIELDS = frozenset(
    {
        "version",
        "node",
        "chain_id",
        "height",
        "model",
        "model_version",
        "model_sha256",
        "input_hash",
        "output_hash",
        "price",
        "payment",
        "request_id",
        "sig",
    }
)
_VERSION_TAIL = b'"version":%d}' % RECEIPT_VERSION
"""How the canonical JSON of a receipt ends: "version" is its last field."""
_OUTPUT_HASH_KEY = b'"output_hash":"'
_GAP = "0" * 64
"""What stands for the output hash while a draft is encoded."""
MAX_REQUEST_ID_CHARS = 256
MAX_CHAIN_ID_CHARS = 64
KIND_TX = "tx"
KIND_CHANNEL = "channel"


class Signer(Protocol):
    """What signs a receipt: a KeyPair, or a ReceiptSigner."""

    @property
    def account(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class ReceiptSigner(ExpandedKey):
    """A node's key ready to sign many receipts: the Ed25519 key is expanded once."""


class ReceiptInvalid(ModelchainError):
    """Fields that do not make a receipt (raised by `sign_receipt`); names the field."""

    code = "receipt-invalid"


def compute_receipt_message(receipt: dict[str, Any]) -> bytes:
    """The bytes the node's signature covers: every field but `sig`."""
    unsigned = {name: value for name, value in receipt.items() if name != "sig"}
    return RECEIPT_TAG + canonical_bytes(unsigned)


def compute_receipt_id(receipt: dict[str, Any]) -> str:
    """sha256 (hex) of the signed receipt's canonical JSON: how the node files it."""
    return hashlib.sha256(canonical_bytes(receipt)).hexdigest()


def sign_receipt(key: Signer, fields: dict[str, Any]) -> dict[str, Any]:
    """The receipt of `fields` signed by `key`; `version` and `node` are filled in.

    Raises ReceiptInvalid when a field is missing, extra or out of its grammar.
    """
    return sign_receipt_encoded(key, fields)[0]


def sign_receipt_encoded(key: Signer, fields: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """`sign_receipt`, and the signed receipt's canonical JSON (what its id hashes)."""
    rest = {name: value for name, value in fields.items() if name != "output_hash"}
    return draft_receipt(key.account, rest).sign(key, fields.get("output_hash"))


@dataclass(frozen=True, slots=True)
class ReceiptDraft:
    """A receipt but for its output hash and signature: its fields checked and encoded
    around the gap the output hash fills, so that whoever holds the outputs signs it with a
    splice, no JSON (an inference worker does, market/inference.py). Made by `draft_receipt`.
    """

    receipt: dict[str, Any]
    """Every field but "output_hash" and "sig" ("version" and "node" included)."""
    head: bytes
    """RECEIPT_TAG and the canonical JSON up to the output hash's first digit."""
    tail: bytes
    """The canonical JSON after the output hash's last digit."""

    def message(self, output_hash: str) -> bytes:
        """The bytes the node signs once the outputs hash to `output_hash` (64 hex)."""
        return self.head + output_hash.encode("ascii") + self.tail

    def signed(self, output_hash: str, sig: bytes) -> tuple[dict[str, Any], bytes]:
        """The receipt with `sig` (the node's signature of `message(output_hash)`) and its
        canonical JSON."""
        sig_hex = sig.hex()
        receipt = {**self.receipt, "output_hash": output_hash, "sig": sig_hex}
        # "sig" sorts last but for "version": the signed encoding is the unsigned one with
        # "sig" put in before "version" (no second encoding on a paid call)
        body = b"".join(
            (
                self.head[len(RECEIPT_TAG) :],
                output_hash.encode("ascii"),
                self.tail[: -len(_VERSION_TAIL)],
                b'"sig":"',
                sig_hex.encode("ascii"),
                b'",',
                _VERSION_TAIL,
            )
        )
        return receipt, body

    def sign(self, key: Signer, output_hash: Any) -> tuple[dict[str, Any], bytes]:
        """The receipt for outputs hashing to `output_hash`, signed by `key` (the draft's
        node), with its canonical JSON; raises ReceiptInvalid for a malformed hash."""
        if key.account != self.receipt["node"]:
            raise ReceiptInvalid("node must be the signing key's account")
        if not is_hash_hex(output_hash):
            raise ReceiptInvalid("output_hash must be a sha256 (64 lowercase hex)")
        return self.signed(output_hash, key.sign(self.message(output_hash)))


def draft_receipt(node: str, fields: dict[str, Any]) -> ReceiptDraft:
    """The draft of the receipt `node` signs for `fields` (all but "output_hash"; "version"
    and "node" are filled in).

    Raises ReceiptInvalid when a field is missing, extra or out of its grammar. The shape
    check proves every field canonical but a string's encodability (its grammar bounds
    ints, keys and nesting), so the encoding is done once, unchecked.
    """
    if fields.get("node", node) != node:
        raise ReceiptInvalid("node must be the signing key's account")
    receipt = {"version": RECEIPT_VERSION, **fields, "node": node}
    problem = receipt_shape_problem({**receipt, "output_hash": _GAP, "sig": "0" * 128})
    if problem is not None:
        raise ReceiptInvalid(problem)
    try:
        unsigned = canonical_bytes_unchecked({**receipt, "output_hash": _GAP})
    except UnicodeEncodeError as exc:  # a lone surrogate in chain_id
        raise ReceiptInvalid(f"receipt is not canonical JSON: {exc.reason}") from exc
    # the first '"output_hash":"' is the key: in a string value every '"' is escaped
    start = unsigned.index(_OUTPUT_HASH_KEY) + len(_OUTPUT_HASH_KEY)
    return ReceiptDraft(receipt, RECEIPT_TAG + unsigned[:start], unsigned[start + len(_GAP) :])


def verify_receipt(receipt: Any, node_account: str | None = None) -> bool:
    """True when `receipt` is well formed and signed by its node (by `node_account`, if given).

    Pure and offline; never raises.
    """
    return receipt_problem(receipt, node_account) is None


def receipt_problem(receipt: Any, node_account: str | None = None) -> str | None:
    """Why `receipt` does not verify, or None when it does; never raises."""
    problem = receipt_shape_problem(receipt)
    if problem is not None:
        return problem
    if node_account is not None and receipt["node"] != node_account:
        return f"signed by node {receipt['node'][:16]}, not {str(node_account)[:16]}"
    try:
        message = compute_receipt_message(receipt)
    except NonCanonicalValue as exc:
        return f"not canonical JSON: {exc.message}"
    if not verify_signature(receipt["node"], message, bytes.fromhex(receipt["sig"])):
        return "the signature does not verify for the node's account"
    return None


def receipt_shape_problem(receipt: Any) -> str | None:
    """Why `receipt` is not shaped like a receipt (fields and grammar), or None."""
    if not isinstance(receipt, dict):
        return "a receipt is a JSON object"
    if set(receipt) != RECEIPT_FIELDS:
        missing = sorted(RECEIPT_FIELDS - set(receipt))
        extra = sorted(set(receipt) - RECEIPT_FIELDS)
        return f"fields wrong: missing {missing}, unexpected {extra}"
    if receipt["version"] != RECEIPT_VERSION or type(receipt["version"]) is not int:
        return f"version must be {RECEIPT_VERSION}"
    if not is_account(receipt["node"]):
        return "node must be an account (64 lowercase hex)"
    chain_id = receipt["chain_id"]
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS:
        return f"chain_id must be a string of 1..{MAX_CHAIN_ID_CHARS} characters"
    if not is_amount(receipt["height"]):
        return "height must be a block height"
    if not is_model_name(receipt["model"]):
        return "model must be a model name"
    if not is_version(receipt["model_version"]):
        return "model_version must be a version"
    for name in ("model_sha256", "input_hash", "output_hash"):
        if not is_hash_hex(receipt[name]):
            return f"{name} must be a sha256 (64 lowercase hex)"
    if not is_amount(receipt["price"]):
        return "price must be an amount"
    problem = payment_shape_problem(receipt["payment"])
    if problem is not None:
        return problem
    problem = request_id_problem(receipt["request_id"])
    if problem is not None:
        return problem
    if not is_sig_hex(receipt["sig"]):
        return "sig must be 128 lowercase hex characters"
    return None


def request_id_problem(request_id: Any) -> str | None:
    """Why `request_id` (the OIP request's `id`) cannot go in a receipt, or None."""
    if request_id is None:
        return None
    if not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID_CHARS:
        return f"request_id must be null or a string of at most {MAX_REQUEST_ID_CHARS} characters"
    if not request_id.isprintable():
        return "request_id must be printable text"
    return None


def payment_shape_problem(payment: Any) -> str | None:
    """Why a receipt's `payment` is malformed, or None."""
    if not isinstance(payment, dict):
        return "payment must be an object"
    kind = payment.get("kind")
    if kind == KIND_TX:
        if set(payment) != {"kind", "txid"} or not is_hash_hex(payment["txid"]):
            return 'a tx payment is {"kind": "tx", "txid": <64 hex>}'
        return None
    if kind == KIND_CHANNEL:
        if (
            set(payment) != {"kind", "channel", "amount"}
            or not is_hash_hex(payment["channel"])
            or not is_amount(payment["amount"], minimum=1)
        ):
            return 'a channel payment is {"kind": "channel", "channel": <64 hex>, "amount": n}'
        return None
    return f"payment kind must be {KIND_TX!r} or {KIND_CHANNEL!r}"
