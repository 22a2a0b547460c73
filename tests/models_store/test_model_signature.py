"""Model signatures: plain JSON without floats, and back again unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelchain.models_store.signature import (
    ELEMENT_TYPE_NAMES,
    MapType,
    ModelSignature,
    OpaqueType,
    OptionalType,
    SequenceType,
    SparseTensorType,
    TensorType,
    UnknownType,
    ValueInfo,
    element_type_name,
    value_type_from_json,
)

names = st.text(min_size=1, max_size=12)
elem_types = st.sampled_from(sorted(ELEMENT_TYPE_NAMES.values()))
dims = st.one_of(st.integers(min_value=0, max_value=2**53 - 1), names, st.none())
shapes = st.one_of(st.none(), st.lists(dims, max_size=4).map(tuple))
leaf_types = st.one_of(
    st.builds(TensorType, elem_types, shapes),
    st.builds(SparseTensorType, elem_types, shapes),
    st.builds(OpaqueType, names, names),
    st.just(UnknownType()),
)
value_types = st.recursive(
    leaf_types,
    lambda inner: st.one_of(
        st.builds(SequenceType, inner),
        st.builds(OptionalType, inner),
        st.builds(MapType, st.sampled_from(["int64", "string", "int32"]), inner),
    ),
    max_leaves=6,
)
versions = st.integers(min_value=0, max_value=2**53 - 1)
signatures = st.builds(
    ModelSignature,
    inputs=st.lists(st.builds(ValueInfo, names, value_types), max_size=4).map(tuple),
    outputs=st.lists(st.builds(ValueInfo, names, value_types), max_size=4).map(tuple),
    opsets=st.dictionaries(names, versions, max_size=3).map(lambda d: tuple(sorted(d.items()))),
    ir_version=versions,
    producer_name=st.text(max_size=20),
    producer_version=st.text(max_size=20),
    parameter_count=versions,
    size_bytes=versions,
)


def kinds_of(value: Any) -> set[type]:
    if isinstance(value, dict):
        return {dict} | {kind for item in value.values() for kind in kinds_of(item)}
    if isinstance(value, list):
        return {list} | {kind for item in value for kind in kinds_of(item)}
    return {type(value)}


@given(signatures)
def test_a_signature_survives_canonical_json_unchanged(signature: ModelSignature) -> None:
    encoded = json.dumps(signature.to_json(), sort_keys=True, separators=(",", ":"))
    assert ModelSignature.from_json(json.loads(encoded)) == signature


@given(signatures)
def test_signature_json_holds_only_ints_strings_lists_dicts_and_null(
    signature: ModelSignature,
) -> None:
    assert kinds_of(signature.to_json()) <= {dict, list, int, str, type(None)}


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tensor": {"elem_type": "float32"}},
        {"tensor": {"elem_type": "float32", "shape": [1.5]}},
        {"matrix": {}},
        {"tensor": {}, "sequence": {}},
    ],
)
def test_json_of_another_shape_is_not_a_value_type(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        value_type_from_json(data)


def test_json_missing_a_field_is_not_a_signature() -> None:
    with pytest.raises(ValueError):
        ModelSignature.from_json({"inputs": [], "outputs": []})


def test_element_types_from_the_future_get_a_name_that_says_so() -> None:
    assert element_type_name(1) == "float32"
    assert element_type_name(99) == "elem-type-99"
