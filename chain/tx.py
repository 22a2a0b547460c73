"""Transactions: fields, canonical bytes, signing, ids and stateless checks.

A tx is canonical JSON (docs/encoding.md); the signature covers a tag, the
chain id and the canonical bytes of the unsigned body; the id is a tagged
sha256 of the signed form. The block reward is a tx of its own kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelchain.chain.encoding import (
    canonical_bytes,
    canonical_bytes_unchecked,
    decode_canonical,
    tagged_hash,
)
from modelchain.chain.errors import (
    NonCanonicalValue,
    TxBadSignature,
    TxMalformed,
    TxTooLarge,
    TxWrongChain,
)
from modelchain.chain.keys import SIGNATURE_RE, KeyPair, is_account, verify_signature
from modelchain.chain.params import MAX_AMOUNT, ChainParams

SIGN_TAG = b"modelchain/tx/v1\x00"
"""Signed message = SIGN_TAG || chain_id (UTF-8) || 0x00 || canonical(body)."""
TXID_TAG = "modelchain/txid"
REWARD_CONTRACT = "reward"
REWARD_METHOD = "coinbase"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TX_FIELDS = frozenset({"chain_id", "sender", "nonce", "fee", "contract", "method", "args", "sig"})


@dataclass(frozen=True, slots=True)
class Tx:
    """A signed call of a contract method, or a block's reward."""

    chain_id: str
    """The network this tx is for; another chain refuses it."""
    sender: str
    """Account (hex public key) that signs, pays the fee and owns the nonce; "" for a reward."""
    nonce: int
    """The sender's count of earlier txs: strictly sequential from 0. A reward's is its height."""
    fee: int
    """Base units paid to the block's miner, whatever the call's outcome."""
    contract: str
    """Name of the contract called (`coin`, `registry`, ...)."""
    method: str
    """Method of that contract."""
    args: dict[str, Any]
    """The call's arguments: canonical JSON values only. Treat as read-only."""
    sig: str
    """Ed25519 signature, 128 hex characters; "" for a reward."""
    raw: bytes
    """The canonical bytes of the signed form (what blocks carry and ids hash)."""
    txid: str
    """Tagged sha256 of `raw`, hex."""

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_reward(self) -> bool:
        return self.contract == REWARD_CONTRACT

    def body(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "sender": self.sender,
            "nonce": self.nonce,
            "fee": self.fee,
            "contract": self.contract,
            "method": self.method,
            "args": self.args,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.sig}

    def signing_message(self) -> bytes:
        return compute_signing_message(self.body())


def compute_signing_message(body: dict[str, Any]) -> bytes:
    """The bytes an Ed25519 signature of this tx body covers; raises NonCanonicalValue."""
    encoded = canonical_bytes(body)  # first: it refuses a chain_id that is not UTF-8 text
    return SIGN_TAG + body["chain_id"].encode("utf-8") + b"\x00" + encoded


def compute_txid(raw: bytes) -> str:
    return tagged_hash(TXID_TAG, raw).hex()


def _build(fields: dict[str, Any], raw: bytes) -> Tx:
    return Tx(
        chain_id=fields["chain_id"],
        sender=fields["sender"],
        nonce=fields["nonce"],
        fee=fields["fee"],
        contract=fields["contract"],
        method=fields["method"],
        args=fields["args"],
        sig=fields["sig"],
        raw=raw,
        txid=compute_txid(raw),
    )


def make_tx(
    key: KeyPair,
    *,
    chain_id: str,
    nonce: int,
    fee: int,
    contract: str,
    method: str,
    args: dict[str, Any],
) -> Tx:
    """Build and sign a tx with `key`; raises TxMalformed for bad fields."""
    body = {
        "chain_id": chain_id,
        "sender": key.account,
        "nonce": nonce,
        "fee": fee,
        "contract": contract,
        "method": method,
        "args": args,
    }
    _check_fields({**body, "sig": "0" * 128})
    try:
        message = compute_signing_message(body)
    except NonCanonicalValue as exc:
        raise TxMalformed(f"tx is not canonical JSON: {exc.message}") from exc
    sig = key.sign(message).hex()
    fields = {**body, "sig": sig}
    return _build(fields, canonical_bytes(fields))


def make_transfer(key: KeyPair, *, chain_id: str, nonce: int, fee: int, to: str, amount: int) -> Tx:
    return make_tx(
        key,
        chain_id=chain_id,
        nonce=nonce,
        fee=fee,
        contract="coin",
        method="transfer",
        args={"to": to, "amount": amount},
    )


def make_reward(chain_id: str, height: int, to: str, amount: int) -> Tx:
    """The block reward tx: unsigned, first in its block, nonce = height."""
    fields = {
        "chain_id": chain_id,
        "sender": "",
        "nonce": height,
        "fee": 0,
        "contract": REWARD_CONTRACT,
        "method": REWARD_METHOD,
        "args": {"to": to, "amount": amount},
        "sig": "",
    }
    return _build(fields, canonical_bytes(fields))


def tx_from_json(fields: Any) -> Tx:
    """A Tx from its JSON object (as the API receives it); raises TxMalformed."""
    try:
        raw = canonical_bytes(fields)
    except NonCanonicalValue as exc:
        raise TxMalformed(f"tx is not canonical JSON: {exc.message}") from exc
    _check_fields(fields)
    return _build(fields, raw)


def decode_tx(raw: bytes) -> Tx:
    """A Tx from its canonical signed bytes; raises TxMalformed for anything else."""
    try:
        fields = decode_canonical(raw)
    except NonCanonicalValue as exc:
        raise TxMalformed(f"tx bytes are not canonical JSON: {exc.message}") from exc
    _check_fields(fields)
    return _build(fields, raw)


def _check_fields(fields: Any) -> None:
    if not isinstance(fields, dict):
        raise TxMalformed("a tx is a JSON object")
    if set(fields) != TX_FIELDS:
        missing = sorted(TX_FIELDS - set(fields))
        extra = sorted(set(fields) - TX_FIELDS)
        raise TxMalformed(f"tx fields wrong: missing {missing}, unexpected {extra}")
    if not isinstance(fields["chain_id"], str) or not 0 < len(fields["chain_id"]) <= 64:
        raise TxMalformed("chain_id must be a string of 1..64 characters")
    for name in ("nonce", "fee"):
        value = fields[name]
        if type(value) is not int or not 0 <= value <= MAX_AMOUNT:
            raise TxMalformed(f"{name} must be an integer in 0..{MAX_AMOUNT}, got {value!r}")
    for name in ("contract", "method"):
        if not isinstance(fields[name], str) or not NAME_RE.fullmatch(fields[name]):
            raise TxMalformed(f"{name} {fields[name]!r} is not a valid name ([a-z][a-z0-9_]*)")
    if not isinstance(fields["args"], dict):
        raise TxMalformed("args must be a JSON object")
    if fields["contract"] == REWARD_CONTRACT:
        if fields["sender"] != "" or fields["sig"] != "":
            raise TxMalformed("a reward tx has no sender and no signature")
        return
    if not is_account(fields["sender"]):
        raise TxMalformed("sender must be an account: 64 lowercase hex characters")
    sig = fields["sig"]
    if not isinstance(sig, str) or SIGNATURE_RE.fullmatch(sig) is None:
        raise TxMalformed("sig must be 128 lowercase hex characters")


def validate_tx_stateless(tx: Tx, params: ChainParams, *, check_signature: bool = True) -> None:
    """Checks that need no state: chain id, size, signature. Raises InvalidTransaction."""
    if tx.chain_id != params.chain_id:
        raise TxWrongChain(f"tx is for chain {tx.chain_id!r}, this is {params.chain_id!r}")
    if tx.size > params.max_tx_bytes:
        raise TxTooLarge(f"tx is {tx.size} bytes, over the {params.max_tx_bytes} limit")
    if tx.is_reward:
        raise TxMalformed("a reward tx only stands first in a block")
    if check_signature and not verify_tx_signature(tx):
        raise TxBadSignature(f"signature of tx {tx.txid[:16]} does not verify for its sender")


def verify_tx_signature(tx: Tx) -> bool:
    _, message, signature = tx_signing_parts(tx)
    return verify_signature(tx.sender, message, signature)


def tx_signing_parts(tx: Tx) -> tuple[bytes, bytes, bytes]:
    """(public key, message, signature) for batch verification.

    Fast path of `compute_signing_message`: in canonical JSON `sig` is the last
    key, so the body's bytes are the signed bytes with `,"sig":"…"` cut off,
    with no second encoding (tests check both give the same message).
    """
    suffix = b',"sig":"' + tx.sig.encode("ascii") + b'"}'
    if tx.raw.endswith(suffix):
        body = tx.raw[: -len(suffix)] + b"}"
    else:  # pragma: no cover - every canonical signed tx ends so
        body = canonical_bytes_unchecked(tx.body())
    message = SIGN_TAG + tx.chain_id.encode("utf-8") + b"\x00" + body
    return bytes.fromhex(tx.sender), message, bytes.fromhex(tx.sig)
