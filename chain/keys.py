"""Ed25519 key pairs and accounts, through PyNaCl.

An account is its public key as 64 lowercase hex characters; signing and
verifying always cover domain-tagged bytes, never a bare message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from modelchain.chain.errors import BadKey

ACCOUNT_RE = re.compile(r"^[0-9a-f]{64}$")
SIGNATURE_RE = re.compile(r"^[0-9a-f]{128}$")


def is_account(value: object) -> bool:
    """True for a well-formed account id (64 lowercase hex characters)."""
    # fullmatch: `$` alone would also accept a trailing newline
    return isinstance(value, str) and ACCOUNT_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 key pair; `account` is the public key in hex."""

    seed: bytes
    account: str

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_seed(bytes(SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != 32:
            raise BadKey(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        signing = SigningKey(seed)
        return cls(seed=bytes(seed), account=bytes(signing.verify_key).hex())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of `message`."""
        return SigningKey(self.seed).sign(message).signature

    def __repr__(self) -> str:  # never print the seed
        return f"KeyPair(account={self.account!r})"


def verify_signature(account: str, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `account`'s signature of `message`."""
    try:
        VerifyKey(bytes.fromhex(account)).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
