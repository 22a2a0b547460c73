"""Payment-channel vouchers: the bytes a payer signs and how anyone checks them.

A voucher says "channel C on chain X may pay out up to A in total"; the
signed message is a domain tag followed by the canonical JSON of those three
values, so a voucher cannot be replayed on another channel or network, nor
mistaken for a transaction. Used on-chain by `channel.claim`, off-chain by
the serving node per call.
"""

from __future__ import annotations

from modelchain.chain.encoding import canonical_bytes_unchecked
from modelchain.chain.keys import KeyPair, is_account, verify_signature
from modelchain.contracts.errors import VoucherMalformed
from modelchain.contracts.grammar import is_amount, is_hash_hex, is_sig_hex

VOUCHER_TAG = b"modelchain/voucher/v1\x00"
"""Signed message = VOUCHER_TAG || canonical({"amount", "chain_id", "channel"})."""

MAX_CHAIN_ID_CHARS = 64


def compute_voucher_message(chain_id: str, channel: str, amount: int) -> bytes:
    """The exact bytes a voucher signature covers; raises VoucherMalformed."""
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS:
        raise VoucherMalformed(f"chain_id must be 1..{MAX_CHAIN_ID_CHARS} characters")
    if not is_hash_hex(channel):
        raise VoucherMalformed(f"channel {channel!r} is not a channel id (64 lowercase hex)")
    if not is_amount(amount, minimum=1):
        raise VoucherMalformed(f"voucher amount must be a positive integer, got {amount!r}")
    # the checks above leave one canonical rule to the encoder: a chain id's lone
    # surrogate, which UTF-8 cannot encode (this runs once per paid call)
    try:
        body = canonical_bytes_unchecked(
            {"chain_id": chain_id, "channel": channel, "amount": amount}
        )
    except UnicodeEncodeError as exc:
        raise VoucherMalformed(f"voucher is not encodable: {exc.reason}") from exc
    return VOUCHER_TAG + body


def sign_voucher(key: KeyPair, chain_id: str, channel: str, amount: int) -> str:
    """The payer's signature (128 hex) allowing `channel` to pay out `amount` in total."""
    return key.sign(compute_voucher_message(chain_id, channel, amount)).hex()


def verify_voucher(payer: str, chain_id: str, channel: str, amount: int, sig: str) -> bool:
    """True only when `sig` is `payer`'s voucher for exactly these values; never raises."""
    if not is_account(payer) or not is_sig_hex(sig):
        return False
    try:
        message = compute_voucher_message(chain_id, channel, amount)
    except VoucherMalformed:
        return False
    return verify_signature(payer, message, bytes.fromhex(sig))
