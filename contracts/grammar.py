"""The grammar of the values contract calls carry: names, versions, hashes, amounts.

Every contract checks its arguments with these predicates, so a name valid
for the registry is valid for payments and channels, and the storage keys
built from them (`version/{name}@{version}`) can never be ambiguous.
"""

from __future__ import annotations

import re
from typing import Any

from modelchain.chain.errors import TxBadCall
from modelchain.chain.params import MAX_AMOUNT

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
"""A model name: 1..64 of a-z 0-9 '-', not starting or ending with '-' (a DNS label)."""

VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
"""A version: 1..32 of A-Z a-z 0-9 '.' '_' '-', starting with a letter or digit."""

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
"""A sha256 (or a txid) as 64 lowercase hex characters."""

SIG_RE = re.compile(r"^[0-9a-f]{128}$")
"""An Ed25519 signature as 128 lowercase hex characters."""


# fullmatch throughout: `$` alone would also accept a trailing newline


def is_model_name(value: object) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def is_version(value: object) -> bool:
    return isinstance(value, str) and VERSION_RE.fullmatch(value) is not None


def is_hash_hex(value: object) -> bool:
    return isinstance(value, str) and HASH_RE.fullmatch(value) is not None


def is_sig_hex(value: object) -> bool:
    return isinstance(value, str) and SIG_RE.fullmatch(value) is not None


def is_amount(value: object, *, minimum: int = 0) -> bool:
    """An int (not a bool) in minimum..MAX_AMOUNT."""
    return type(value) is int and minimum <= value <= MAX_AMOUNT


def validate_arg_names(
    where: str,
    args: Any,
    required: frozenset[str],
    error: type[TxBadCall],
    optional: frozenset[str] = frozenset(),
) -> None:
    """`args` is an object holding every required name and no unknown one; raises `error`."""
    if not isinstance(args, dict):
        raise error(f"{where}: args must be an object, got {type(args).__name__}")
    missing = sorted(required - set(args))
    extra = sorted(set(args) - required - optional)
    if missing or extra:
        raise error(f"{where}: missing args {missing}, unexpected args {extra}")
