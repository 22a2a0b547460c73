"""Canonical JSON: the one byte encoding that Python and the browser agree on.

Objects with sorted ASCII keys, no spaces, UTF-8, and only strings, integers
within JavaScript's exact range, booleans, null, lists and objects; the
rules and test vectors are in docs/encoding.md. Hashes are domain-separated.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelchain.chain.errors import NonCanonicalValue

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a browser Number holds exactly; every int must fit."""

MAX_DEPTH = 32
"""Nesting deeper than this is refused (a decode bomb guard)."""

_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)


def check_canonical_value(value: Any, depth: int = 0) -> None:
    """Raise NonCanonicalValue unless `value` is encodable canonically."""
    if depth > MAX_DEPTH:
        raise NonCanonicalValue(f"value nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False:
        return
    kind = type(value)
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NonCanonicalValue(f"integer {value} is outside +-(2**53-1)")
        return
    if kind is str:
        _check_string(value)
        return
    if kind is list or kind is tuple:
        for item in value:
            check_canonical_value(item, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise NonCanonicalValue(f"object key {key!r} is not a string")
            if not key.isascii():
                raise NonCanonicalValue(f"object key {key!r} is not ASCII")
            check_canonical_value(item, depth + 1)
        return
    if kind is float:
        raise NonCanonicalValue(f"float {value!r} is not allowed: amounts are integers")
    raise NonCanonicalValue(f"type {kind.__name__} cannot be encoded")


def _check_string(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NonCanonicalValue("string holds a lone surrogate") from exc


def canonical_bytes(value: Any) -> bytes:
    """The canonical encoding of `value`; raises NonCanonicalValue."""
    check_canonical_value(value)
    return _encoder.encode(value).encode("utf-8")


def canonical_bytes_unchecked(value: Any) -> bytes:
    """Canonical encoding of a value already known to be canonical (hot paths)."""
    return _encoder.encode(value).encode("utf-8")


def _reject_float(text: str) -> Any:
    raise NonCanonicalValue(f"number {text} is not an integer")


def _reject_constant(text: str) -> Any:
    raise NonCanonicalValue(f"{text} is not allowed")


def _parse_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise NonCanonicalValue(f"integer {text} is outside +-(2**53-1)")
    return value


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise NonCanonicalValue("object has a duplicate key")
    for key in result:
        if not key.isascii():
            raise NonCanonicalValue(f"object key {key!r} is not ASCII")
    return result


# The hooks enforce, while parsing, every rule that re-encoding cannot see
# (integers only and in range, ASCII keys, no duplicate keys).
_decoder = json.JSONDecoder(
    parse_float=_reject_float,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
    object_pairs_hook=_pairs_no_duplicates,
)


def decode_canonical(data: bytes, *, strict: bool = True) -> Any:
    """Parse canonical JSON bytes; with `strict`, the bytes must re-encode identically."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NonCanonicalValue("bytes are not UTF-8") from exc
    try:
        value = _decoder.decode(text)
    except NonCanonicalValue:
        raise
    except (ValueError, RecursionError) as exc:
        raise NonCanonicalValue(f"not JSON: {exc}") from exc
    if not strict:
        check_canonical_value(value)
        return value
    # nesting can only pass MAX_DEPTH with more brackets than that: check only then
    if text.count("[") + text.count("{") > MAX_DEPTH:
        check_canonical_value(value)
    try:
        again = _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NonCanonicalValue("string holds a lone surrogate") from exc
    if again != data:
        raise NonCanonicalValue("JSON is not in canonical form")
    return value


def tagged_hash(tag: str, data: bytes) -> bytes:
    """sha256 over a domain tag and the data: sha256(tag || 0x00 || data)."""
    return hashlib.sha256(tag.encode("ascii") + b"\x00" + data).digest()


def sha256d(data: bytes) -> bytes:
    """Double sha256, as Bitcoin hashes block headers."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()
