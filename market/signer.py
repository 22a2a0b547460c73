"""The node's receipt key inside an inference worker, in guarded memory.

A paid call's receipt is signed in the worker that ran its model, off the node's busy
web process (docs/payments.md). That worker runs models from anyone: a runtime bug that
read past a buffer could copy worker memory into a model's outputs. So the key never
sits in ordinary memory there:

- the node hands the worker the 32-byte seed over a socket of its own, read straight
  into memory from libsodium's `sodium_malloc` (guard pages around it, a canary before
  it), never into a Python object;
- the expanded signing key is derived there, and the seed wiped;
- the pages are `PROT_NONE` except while a receipt is signed, so a stray read faults
  instead of leaking the key.

(A worker that runs code of an attacker's could still use the key; it could as well
lie to the node through its replies, so that is not what this defends against.)
"""

from __future__ import annotations

import ctypes
import os
import socket

import nacl._sodium

SEED_BYTES = 32
SECRET_BYTES = 64
PUBLIC_BYTES = 32


class GuardedKeyUnavailable(RuntimeError):
    """libsodium's guarded memory cannot be had here: the node signs receipts itself."""


def _sodium() -> ctypes.PyDLL:
    try:
        library = ctypes.PyDLL(nacl._sodium.__file__)
        for name, restype in (
            ("sodium_malloc", ctypes.c_void_p),
            ("sodium_free", None),
            ("sodium_mprotect_noaccess", ctypes.c_int),
            ("sodium_mprotect_readonly", ctypes.c_int),
            ("sodium_mprotect_readwrite", ctypes.c_int),
            ("sodium_memzero", None),
            ("crypto_sign_seed_keypair", ctypes.c_int),
            ("crypto_sign_detached", ctypes.c_int),
        ):
            getattr(library, name).restype = restype
    except (OSError, AttributeError) as exc:  # pragma: no cover - a PyNaCl built otherwise
        raise GuardedKeyUnavailable(f"libsodium's guarded memory is not exported: {exc}") from exc
    if library.sodium_init() < 0:  # pragma: no cover - sets up sodium_malloc's page size
        raise GuardedKeyUnavailable("libsodium could not be initialised")
    library.sodium_malloc.argtypes = [ctypes.c_size_t]
    for name in ("sodium_free", "sodium_mprotect_noaccess", "sodium_mprotect_readonly"):
        getattr(library, name).argtypes = [ctypes.c_void_p]
    library.sodium_mprotect_readwrite.argtypes = [ctypes.c_void_p]
    library.sodium_memzero.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    library.crypto_sign_seed_keypair.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
    library.crypto_sign_detached.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_ulonglong,
        ctypes.c_void_p,
    ]
    return library


def send_key(sock: socket.socket, seed: bytes) -> None:
    """The node's side: hand `seed` to a worker over `sock` (then the caller closes it)."""
    sock.sendall(seed)


class GuardedKey:
    """An Ed25519 signing key in guarded, normally inaccessible memory (see the module)."""

    def __init__(self, fd: int) -> None:
        """Read the seed from `fd` (closed afterwards) and derive the key from it."""
        self._lib = lib = _sodium()
        self._seed = lib.sodium_malloc(SEED_BYTES)
        self._secret = lib.sodium_malloc(SECRET_BYTES)
        if not self._seed or not self._secret:
            raise GuardedKeyUnavailable("sodium_malloc failed")
        try:
            got = 0
            view = (ctypes.c_char * SEED_BYTES).from_address(self._seed)
            while got < SEED_BYTES:  # straight from the socket into guarded memory
                read = os.readv(fd, [memoryview(view).cast("B")[got:]])
                if read == 0:
                    raise GuardedKeyUnavailable("the node closed the key socket early")
                got += read
        finally:
            os.close(fd)
        public = ctypes.create_string_buffer(PUBLIC_BYTES)
        lib.crypto_sign_seed_keypair(public, self._secret, self._seed)
        lib.sodium_memzero(self._seed, SEED_BYTES)
        lib.sodium_mprotect_noaccess(self._seed)
        lib.sodium_mprotect_noaccess(self._secret)
        self.account = public.raw.hex()

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of `message`; the key is readable only meanwhile."""
        lib = self._lib
        signature = ctypes.create_string_buffer(64)
        lib.sodium_mprotect_readonly(self._secret)
        try:
            lib.crypto_sign_detached(signature, None, message, len(message), self._secret)
        finally:
            lib.sodium_mprotect_noaccess(self._secret)
        return signature.raw
