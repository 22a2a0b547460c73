"""Ed25519 key pairs and accounts, through PyNaCl.

An account is its public key as 64 lowercase hex characters; signing and
verifying always cover domain-tagged bytes, never a bare message.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from dataclasses import dataclass

import nacl._sodium
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
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


def _sodium_holding_the_gil() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """libsodium's detached Ed25519 verify and sign, from PyNaCl's own module, called
    through ctypes.PyDLL: with the GIL held.

    PyNaCl's cffi calls let go of the GIL around every call. On a node's busy threaded
    server, getting it back afterwards took longer than the ~50 µs the call itself
    does (bench/inference.py: paid calls waited ~1.5 ms longer outside inference),
    so the node's hot paths (vouchers, payment txs, receipts) keep it instead. None,
    and PyNaCl's own calls are used, where the module does not export these symbols.
    The same libsodium functions run either way (tests hold both to the same answers).
    """
    try:
        library = ctypes.PyDLL(nacl._sodium.__file__)
        verify = library.crypto_sign_verify_detached
        sign = library.crypto_sign_detached
    except (OSError, AttributeError):  # pragma: no cover - a PyNaCl built otherwise
        return None
    verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    verify.restype = ctypes.c_int
    sign.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_ulonglong,
        ctypes.c_char_p,
    ]
    sign.restype = ctypes.c_int
    return verify, sign


_SODIUM = _sodium_holding_the_gil()


def verify_signature(account: str, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `account`'s signature of `message`."""
    if _SODIUM is None:
        return _verify_with_pynacl(account, message, signature)
    try:
        public_key = bytes.fromhex(account)
    except (ValueError, TypeError):
        return False
    if (
        len(public_key) != 32
        or type(signature) is not bytes
        or len(signature) != 64
        or type(message) is not bytes
    ):
        return False
    return _SODIUM[0](signature, message, len(message), public_key) == 0


def _verify_with_pynacl(account: str, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(bytes.fromhex(account)).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class ExpandedKey:
    """A key ready to sign many messages (a node's receipts): expanded once."""

    def __init__(self, key: KeyPair) -> None:
        self.account = key.account
        self._secret = crypto_sign_seed_keypair(key.seed)[1]

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of `message`."""
        if _SODIUM is None:
            return crypto_sign(message, self._secret)[:64]
        signature = ctypes.create_string_buffer(64)
        _SODIUM[1](signature, None, message, len(message), self._secret)
        return signature.raw
