"""Canonical JSON: round trips, and every way bytes or values can fail to be canonical."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelchain.chain.encoding import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    canonical_bytes,
    canonical_bytes_unchecked,
    decode_canonical,
    sha256d,
    tagged_hash,
)
from modelchain.chain.errors import EncodingError, NonCanonicalValue

# Text without lone surrogates (category Cs): anything else is allowed in strings.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
ascii_keys = st.text(st.characters(max_codepoint=0x7F), max_size=8)
safe_ints = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
canonical_values = st.recursive(
    st.none() | st.booleans() | safe_ints | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ascii_keys, children, max_size=4)
    ),
    max_leaves=20,
)


@given(canonical_values)
def test_canonical_bytes_decode_back_to_the_same_value(value: Any) -> None:
    data = canonical_bytes(value)
    assert decode_canonical(data) == value
    assert canonical_bytes(decode_canonical(data)) == data


@given(st.dictionaries(ascii_keys, safe_ints, max_size=8), st.randoms())
def test_key_insertion_order_does_not_change_the_bytes(mapping: dict[str, int], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    assert canonical_bytes(dict(items)) == canonical_bytes(mapping)


@given(canonical_values)
def test_canonical_bytes_are_compact_sorted_utf8_json(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert canonical_bytes(value) == expected.encode("utf-8")
    assert canonical_bytes_unchecked(value) == canonical_bytes(value)


def test_tuples_encode_as_arrays() -> None:
    assert canonical_bytes({"a": (1, 2)}) == b'{"a":[1,2]}'


def test_non_ascii_text_is_written_as_utf8_not_escaped() -> None:
    assert canonical_bytes("é\u2028😀") == '"é\u2028😀"'.encode()


def test_control_characters_use_json_stringify_escapes() -> None:
    expected = b'"\\b\\f\\n\\r\\t\\u0000\\u001f\\"\\\\/\x7f"'
    assert canonical_bytes('\b\f\n\r\t\x00\x1f"\\/\x7f') == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1.5, id="float"),
        pytest.param(1.0, id="integral-float"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinity"),
        pytest.param(MAX_SAFE_INTEGER + 1, id="int-above-2**53-1"),
        pytest.param(-MAX_SAFE_INTEGER - 1, id="int-below-minus-2**53-1"),
        pytest.param(2**64, id="huge-int"),
        pytest.param("\ud800", id="lone-high-surrogate"),
        pytest.param("a\udfff", id="lone-low-surrogate"),
        pytest.param({"é": 1}, id="non-ascii-key"),
        pytest.param({1: "a"}, id="int-key"),
        pytest.param({"a": [{"b": 0.5}]}, id="nested-float"),
        pytest.param(b"bytes", id="bytes"),
        pytest.param({1, 2}, id="set"),
        pytest.param(pytest, id="module"),
    ],
)
def test_values_outside_canonical_json_are_refused(value: Any) -> None:
    with pytest.raises(NonCanonicalValue) as err:
        canonical_bytes(value)
    assert err.value.code == "encoding-non-canonical"
    assert isinstance(err.value, EncodingError)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"1.5", id="float"),
        pytest.param(b"1.0", id="integral-float"),
        pytest.param(b"1e3", id="exponent"),
        pytest.param(b"-0", id="negative-zero"),
        pytest.param(b"01", id="leading-zero"),
        pytest.param(b"9007199254740992", id="int-above-2**53-1"),
        pytest.param(b"-9007199254740992", id="int-below-minus-2**53-1"),
        pytest.param(b"1" * 5000, id="int-with-5000-digits"),
        pytest.param(b"NaN", id="nan"),
        pytest.param(b"-Infinity", id="minus-infinity"),
        pytest.param(b'{"a":1,"a":1}', id="duplicate-key"),
        pytest.param(b'{"a":1,"a":2}', id="duplicate-key-differing"),
        pytest.param(b'{"a": 1}', id="space-after-colon"),
        pytest.param(b'{"a":1, "b":2}', id="space-after-comma"),
        pytest.param(b' {"a":1}', id="leading-space"),
        pytest.param(b'{"a":1}\n', id="trailing-newline"),
        pytest.param(b'{"b":1,"a":2}', id="unsorted-keys"),
        pytest.param(b'{"a":{"d":1,"c":2}}', id="unsorted-nested-keys"),
        pytest.param(b'"\\ud800"', id="escaped-lone-surrogate"),
        pytest.param(b'"\\ud83d\\ude00"', id="escaped-surrogate-pair"),
        pytest.param(b'"\\u00e9"', id="escaped-non-ascii"),
        pytest.param(b'"\\u001F"', id="uppercase-escape"),
        pytest.param(b'"\\u000a"', id="long-form-newline-escape"),
        pytest.param(b'"\\/"', id="escaped-slash"),
        pytest.param(b'"\x01"', id="raw-control-char"),
        pytest.param('{"é":1}'.encode(), id="non-ascii-key"),
        pytest.param(b'"\xff"', id="invalid-utf8"),
        pytest.param(b"\xef\xbb\xbf{}", id="utf8-bom"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{}{}", id="two-values"),
        pytest.param(b"True", id="python-true"),
        pytest.param(b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2), id="too-deep"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="recursion-bomb"),
    ],
)
def test_non_canonical_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(NonCanonicalValue) as err:
        decode_canonical(data)
    assert err.value.code == "encoding-non-canonical"


def test_deepest_allowed_nesting_round_trips() -> None:
    data = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert canonical_bytes(decode_canonical(data)) == data


def test_lenient_decoding_accepts_spacing_and_order_but_not_floats() -> None:
    assert decode_canonical(b'{ "b": 1, "a": 2 }', strict=False) == {"a": 2, "b": 1}
    with pytest.raises(NonCanonicalValue):
        decode_canonical(b'{"a": 1.5}', strict=False)


def test_tagged_hash_is_sha256_of_tag_zero_byte_data() -> None:
    assert tagged_hash("t", b"data") == hashlib.sha256(b"t\x00data").digest()
    assert tagged_hash("a", b"b") != tagged_hash("ab", b"")


def test_sha256d_is_sha256_twice() -> None:
    assert sha256d(b"") == hashlib.sha256(hashlib.sha256(b"").digest()).digest()
