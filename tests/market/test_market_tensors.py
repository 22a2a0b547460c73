"""The wire format of inference: datatypes, input decoding rules, output encoding, and the
request and output hashes, checked against an independent reading of docs/inference.md and,
where node is installed, against plain JavaScript computing them as a browser would."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.market import tensors
from modelchain.market.tensors import (
    DATATYPES,
    InferenceError,
    InferUnsupportedType,
    array_output_hash,
    compute_output_hash,
    compute_request_hash,
    decode_input,
    decode_json_input,
    encode_output,
    js_number_string,
    output_record,
    output_record_of_value,
)
from modelchain.models_store.signature import MapType, SequenceType, TensorType

MAX = 1000
SHA = "ab" * 32
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

# Values every datatype holds exactly, so JSON -> array -> JSON gives them back.
EXACT_VALUES: dict[str, list[Any]] = {
    "BOOL": [True, False, False, True],
    "UINT8": [0, 1, 200, 255],
    "UINT16": [0, 1, 60000, 65535],
    "UINT32": [0, 1, 4_000_000_000, 7],
    "UINT64": [0, 1, 2**64 - 1, 2**53 + 1],
    "INT8": [-128, -1, 0, 127],
    "INT16": [-32768, -1, 0, 32767],
    "INT32": [-(2**31), -1, 0, 2**31 - 1],
    "INT64": [-(2**63), -1, 2**53 + 1, 2**63 - 1],
    "FP16": [0.5, -2.0, 65504.0, 0.0009765625],
    "FP32": [0.5, -2.0, 3.4028234663852886e38, 0.10000000149011612],
    "FP64": [0.1, -2.5, 1e300, 5e-324],
    "BF16": [0.5, -2.0, 1.0078125, 3.0],
    "BYTES": ["", "cat", "café ☕", "a\u0000b"],
    "FP8E4M3FN": [0.5, -2.0, 448.0, 0.015625],
    "FP8E4M3FNUZ": [0.5, -2.0, 240.0, 0.015625],
    "FP8E5M2": [0.5, -2.0, 57344.0, 0.0009765625],
    "FP8E5M2FNUZ": [0.5, -2.0, 57344.0, 0.0009765625],
}


def tensor(elem_type: str, shape: tuple[Any, ...] | None = ("n", 2)) -> TensorType:
    return TensorType(elem_type, shape)


def decode(body: dict[str, Any], registered: TensorType, max_elements: int = MAX) -> np.ndarray:
    return decode_input({"name": "x", **body}, registered, max_elements)


def code_of(body: dict[str, Any], registered: TensorType, max_elements: int = MAX) -> str:
    with pytest.raises(InferenceError) as err:
        decode(body, registered, max_elements)
    assert 400 <= err.value.http_status < 500
    return err.value.code


# --- datatypes ---------------------------------------------------------------------------


def test_every_served_element_type_has_one_datatype_and_back() -> None:
    assert len({d.name for d in DATATYPES}) == len({d.elem_type for d in DATATYPES})
    assert set(EXACT_VALUES) == {d.name for d in DATATYPES}
    for datatype in DATATYPES:
        assert tensors.datatype_for_elem_type(datatype.elem_type) is datatype


def test_types_onnx_runtime_cannot_feed_from_python_have_no_datatype() -> None:
    for elem_type in ("int4", "uint4", "complex64", "float4e2m1"):
        assert tensors.datatype_for_elem_type(elem_type) is None
    assert code_of({"datatype": "INT4", "shape": [2], "data": [1, 2]}, tensor("int4", [2])) == (
        "infer-unsupported-type"
    )


@pytest.mark.parametrize("datatype", [d.name for d in DATATYPES])
def test_json_data_of_every_datatype_decodes_and_encodes_back_unchanged(datatype: str) -> None:
    spec = tensors.BY_NAME[datatype]
    values = EXACT_VALUES[datatype]
    array = decode({"datatype": datatype, "shape": [2, 2], "data": values}, tensor(spec.elem_type))
    assert array.dtype == spec.dtype and array.shape == (2, 2)
    encoded = encode_output("y", array)
    assert encoded == {"name": "y", "datatype": datatype, "shape": [2, 2], "data": values}


@pytest.mark.parametrize("datatype", [d.name for d in DATATYPES])
def test_binary_data_of_every_datatype_decodes_like_its_json(datatype: str) -> None:
    spec = tensors.BY_NAME[datatype]
    from_json = decode(
        {"datatype": datatype, "shape": [4], "data": EXACT_VALUES[datatype]},
        tensor(spec.elem_type, ["n"]),
    )
    raw = tensors.tensor_bytes(from_json)
    from_raw = decode_input(
        {"name": "x", "datatype": datatype, "shape": [4]}, tensor(spec.elem_type, ["n"]), MAX, raw
    )
    assert from_raw.dtype == from_json.dtype
    assert from_raw.tolist() == from_json.tolist() or datatype.startswith(("BF", "FP8"))
    assert tensors.tensor_bytes(from_raw) == raw


def test_nested_and_flat_data_give_the_same_array() -> None:
    flat = decode({"datatype": "INT32", "shape": [2, 2], "data": [1, 2, 3, 4]}, tensor("int32"))
    nested = decode(
        {"datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}, tensor("int32")
    )
    assert flat.tolist() == nested.tolist() == [[1, 2], [3, 4]]
    strings = decode(
        {"datatype": "BYTES", "shape": [2, 1], "data": [["a"], ["b"]]}, tensor("string", ["n", 1])
    )
    assert strings.tolist() == [["a"], ["b"]]


def test_symbolic_and_unknown_dims_match_any_size_and_unknown_rank_any_shape() -> None:
    assert decode(
        {"datatype": "FP32", "shape": [5, 2], "data": [0] * 10}, tensor("float32", ["n", None])
    ).shape == (5, 2)
    assert (
        decode({"datatype": "FP32", "shape": [], "data": [1.5]}, tensor("float32", None)).shape
        == ()
    )
    assert decode({"datatype": "FP32", "shape": [0, 2], "data": []}, tensor("float32")).shape == (
        0,
        2,
    )


def test_float_inputs_round_to_nearest_even_through_binary64() -> None:
    fp16 = decode({"datatype": "FP16", "shape": [1, 2], "data": [1 / 3, 70000]}, tensor("float16"))
    assert fp16.tolist() == [[np.float16(1 / 3), np.inf]]
    # BF16 and the FP8s go through FP32 first, as a browser's Math.fround would
    bf16 = decode(
        {"datatype": "BF16", "shape": [1, 2], "data": [1.00390625, 3]}, tensor("bfloat16")
    )
    assert bf16.view(np.uint16).tolist() == [[0x3F80, 0x4040]]  # tie to even: 1.0, then 3.0


# --- input rules: each broken alone ----------------------------------------------------------

GOOD = {"datatype": "INT64", "shape": [1, 2], "data": [1, 2]}
BROKEN_INPUTS: dict[str, tuple[dict[str, Any], str]] = {
    "datatype-missing": ({**GOOD, "datatype": None}, "infer-bad-input"),
    "datatype-wrong": ({**GOOD, "datatype": "INT32"}, "infer-bad-datatype"),
    "datatype-unknown": ({**GOOD, "datatype": "FLOAT"}, "infer-bad-datatype"),
    "shape-missing": ({**GOOD, "shape": None}, "infer-bad-input"),
    "shape-negative": ({**GOOD, "shape": [1, -2]}, "infer-bad-shape"),
    "shape-not-int": ({**GOOD, "shape": [1, 2.0]}, "infer-bad-shape"),
    "shape-bool": ({**GOOD, "shape": [True, 2]}, "infer-bad-shape"),
    "rank-wrong": ({**GOOD, "shape": [2], "data": [1, 2]}, "infer-bad-shape"),
    "fixed-dim-wrong": ({**GOOD, "shape": [1, 3], "data": [1, 2, 3]}, "infer-bad-shape"),
    "data-missing": ({"datatype": "INT64", "shape": [1, 2]}, "infer-bad-input"),
    "data-not-list": ({**GOOD, "data": 5}, "infer-bad-input"),
    "data-shorter-than-shape": ({**GOOD, "data": [1]}, "infer-bad-shape"),
    "data-nested-other-shape": ({**GOOD, "data": [[1], [2]]}, "infer-bad-shape"),
    "data-ragged": ({**GOOD, "data": [[1, 2], [3]]}, "infer-bad-shape"),
    "data-float-in-int": ({**GOOD, "data": [1, 2.5]}, "infer-bad-data"),
    "data-string-in-int": ({**GOOD, "data": [1, "2"]}, "infer-bad-data"),
    "data-bool-in-int": ({**GOOD, "data": [True, False]}, "infer-bad-data"),
    "data-null": ({**GOOD, "data": [1, None]}, "infer-bad-data"),
    "data-out-of-range": ({**GOOD, "data": [1, 2**63]}, "infer-bad-data"),
    "too-many-elements": (
        {**GOOD, "shape": [1, 2000], "data": [0] * 2000},
        "infer-too-many-elements",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_INPUTS))
def test_an_input_breaking_one_rule_is_refused_with_its_code(case: str) -> None:
    body, code = BROKEN_INPUTS[case]
    assert code_of(body, tensor("int64", ["n", 2])) == code


@pytest.mark.parametrize(
    ("elem_type", "datatype", "data", "code"),
    [
        ("uint8", "UINT8", [300, 1], "infer-bad-data"),
        ("int8", "INT8", [-129, 1], "infer-bad-data"),
        ("bool", "BOOL", [1, 0], "infer-bad-data"),
        ("float32", "FP32", [1, "x"], "infer-bad-data"),
        ("float32", "FP32", [True, 1.0], "infer-bad-data"),
        ("string", "BYTES", ["a", 1], "infer-bad-data"),
        ("string", "BYTES", ["a"], "infer-bad-shape"),
    ],
)
def test_values_that_do_not_fit_the_datatype_are_refused(
    elem_type: str, datatype: str, data: list[Any], code: str
) -> None:
    body = {"datatype": datatype, "shape": [2], "data": data}
    assert code_of(body, tensor(elem_type, ["n"])) == code


def test_binary_data_of_the_wrong_length_or_bool_value_is_refused() -> None:
    registered = tensor("int32", ["n"])
    with pytest.raises(InferenceError) as err:
        decode_input({"name": "x", "datatype": "INT32", "shape": [2]}, registered, MAX, b"\x00" * 7)
    assert err.value.code == "infer-bad-data"
    with pytest.raises(InferenceError) as err:
        decode_input(
            {"name": "x", "datatype": "BOOL", "shape": [1]}, tensor("bool", ["n"]), MAX, b"\x02"
        )
    assert err.value.code == "infer-bad-data"
    with pytest.raises(InferenceError) as err:  # a length prefix running past the data
        decode_input(
            {"name": "x", "datatype": "BYTES", "shape": [1]},
            tensor("string", ["n"]),
            MAX,
            b"\x09\x00\x00\x00ab",
        )
    assert err.value.code == "infer-bad-data"


def test_symbolic_dims_named_alike_must_agree_across_inputs() -> None:
    bound: dict[str, tuple[str, int]] = {}
    tensors.bind_symbolic_dims(bound, "a", (2, 3), ("batch", 3))
    with pytest.raises(InferenceError) as err:
        tensors.bind_symbolic_dims(bound, "b", (4,), ("batch",))
    assert err.value.code == "infer-bad-shape"


# --- outputs -----------------------------------------------------------------------------------


def test_non_tensor_outputs_are_json_values_with_string_keys() -> None:
    value = [{0: np.float32(0.25), 1: 0.75}, {0: 1.0, 1: 0.0}]
    encoded = encode_output("probabilities", value)
    assert encoded == {
        "name": "probabilities",
        "datatype": "JSON",
        "shape": [],
        "data": [{"0": 0.25, "1": 0.75}, {"0": 1.0, "1": 0.0}],
    }
    assert json.loads(json.dumps(encoded)) == encoded


def test_output_element_count_counts_json_values_too() -> None:
    assert tensors.output_element_count(np.zeros((3, 4))) == 12
    assert tensors.output_element_count([{"a": 1.0, "b": 2.0}, {"a": 3.0}]) == 6


# --- hashes ------------------------------------------------------------------------------------


def spec_record(name: str, datatype: str, shape: list[int], data: bytes) -> bytes:
    """docs/inference.md, read independently of the code under test."""
    header = json.dumps(
        {"datatype": datatype, "name": name, "shape": shape},
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    ).encode()
    return header + b"\x00" + struct.pack(">Q", len(data)) + data


def test_request_hash_follows_the_documented_byte_layout() -> None:
    inputs = {
        "b": np.array([[1.5, -2.0]], dtype=np.float32),
        "a": np.array(["hi", "é"], dtype=object),
        "c": np.array([True, False]),
    }
    expected = hashlib.sha256(
        b"modelchain/request/v1\x00"
        + bytes.fromhex(SHA)
        + spec_record("a", "BYTES", [2], b"\x02\x00\x00\x00hi\x02\x00\x00\x00\xc3\xa9")
        + spec_record("b", "FP32", [1, 2], struct.pack("<2f", 1.5, -2.0))
        + spec_record("c", "BOOL", [2], b"\x01\x00")
    ).hexdigest()
    assert compute_request_hash(SHA, inputs) == expected


def test_request_hash_changes_with_any_value_shape_dtype_or_model() -> None:
    base = {"x": np.array([1, 2], dtype=np.int64)}
    reference = compute_request_hash(SHA, base)
    variants = [
        compute_request_hash(SHA, {"x": np.array([1, 3], dtype=np.int64)}),
        compute_request_hash(SHA, {"x": np.array([[1, 2]], dtype=np.int64)}),
        compute_request_hash(SHA, {"x": np.array([1, 2], dtype=np.int32)}),
        compute_request_hash("cd" * 32, base),
        compute_request_hash(SHA, {"y": np.array([1, 2], dtype=np.int64)}),
    ]
    assert reference not in variants and len(set(variants)) == len(variants)


def test_output_hash_follows_the_documented_byte_layout() -> None:
    outputs = [
        {"name": "z", "datatype": "INT64", "shape": [2], "data": [1, -1]},
        {"name": "probs", "datatype": "JSON", "shape": [], "data": [{"1": 0.25, "0": 1e-7}]},
    ]
    json_form = b'[{"0":"1e-7","1":"0.25"}]'
    expected = hashlib.sha256(
        b"modelchain/outputs/v1\x00"
        + spec_record("probs", "JSON", [], json_form)
        + spec_record("z", "INT64", [2], struct.pack("<2q", 1, -1))
    ).hexdigest()
    assert compute_output_hash(outputs) == expected


@pytest.mark.parametrize("datatype", [d.name for d in DATATYPES])
def test_fast_output_records_equal_the_records_read_from_the_response(datatype: str) -> None:
    spec = tensors.BY_NAME[datatype]
    array = decode(
        {"datatype": datatype, "shape": [4], "data": EXACT_VALUES[datatype]},
        tensor(spec.elem_type, ["n"]),
    )
    encoded = json.loads(json.dumps(encode_output("y", array)))
    assert output_record_of_value("y", array, encoded) == output_record(encoded)


@pytest.mark.parametrize("datatype", sorted(EXACT_VALUES))
def test_a_worker_hashes_tensor_outputs_from_their_arrays_as_the_response_hashes(
    datatype: str,
) -> None:
    spec = tensors.BY_NAME[datatype]
    array = decode(
        {"datatype": datatype, "shape": [2, 2], "data": EXACT_VALUES[datatype]},
        tensor(spec.elem_type, ["n", "m"]),
    )
    other = np.arange(3, dtype=np.int64)
    outputs = [encode_output("y", array), encode_output("a", other)]
    assert array_output_hash({"y": array, "a": other}) == compute_output_hash(
        json.loads(json.dumps(outputs))
    )


def test_outputs_a_worker_cannot_hash_from_arrays_alone_give_none() -> None:
    assert array_output_hash({"y": np.array([1.0, float("nan")], dtype=np.float32)}) is None
    assert array_output_hash({"y": np.array([float("nan")], dtype=ml_dtypes.bfloat16)}) is None
    assert array_output_hash({"y": np.ones(2), "m": [{"a": 1.0}]}) is None
    with pytest.raises(InferUnsupportedType):  # the worker leaves such a receipt to the node
        array_output_hash({"y": np.zeros(2, dtype=np.complex64)})


def test_a_nan_output_hashes_as_the_response_reads_it_whatever_its_bits() -> None:
    negative_nan = np.array([0xFFC00001], dtype=np.uint32).view(np.float32)
    encoded = json.loads(json.dumps(encode_output("y", negative_nan)))
    assert output_record_of_value("y", negative_nan, encoded) == output_record(encoded)
    value = [{"a": float("nan")}]
    encoded = encode_output("m", value)
    assert output_record_of_value("m", value, encoded) == output_record(encoded)


@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=0, max_size=12),
    st.sampled_from(["INT64", "FP32", "FP64"]),
)
@settings(max_examples=60, deadline=None)
def test_any_tensor_survives_json_and_hashes_the_same_on_both_sides(
    values: list[int], datatype: str
) -> None:
    spec = tensors.BY_NAME[datatype]
    array = decode(
        {"datatype": datatype, "shape": [len(values)], "data": values},
        tensor(spec.elem_type, ["n"]),
        100,
    )
    encoded = json.loads(json.dumps(encode_output("y", array)))
    again = decode({**encoded, "name": "x"}, tensor(spec.elem_type, ["n"]), 100)
    assert tensors.tensor_bytes(again) == tensors.tensor_bytes(array)
    assert output_record_of_value("y", array, encoded) == output_record(encoded)


def test_js_number_strings_follow_ecmascript_layout() -> None:
    cases = {
        1.0: "1", 0.1: "0.1", 1e-7: "1e-7", 1e-6: "0.000001", 1e21: "1e+21",
        1e20: "100000000000000000000", -2.5: "-2.5", 5e-324: "5e-324", 1.5e300: "1.5e+300",
        -0.0: "0", 123.456: "123.456",
        float("nan"): "NaN", float("inf"): "Infinity", float("-inf"): "-Infinity",
    }  # fmt: skip
    for number, text in cases.items():
        assert js_number_string(number) == text


@needs_node
def test_js_number_strings_equal_node_for_random_doubles() -> None:
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**63, size=400, dtype=np.uint64) | (
        rng.integers(0, 2, 400, dtype=np.uint64) << np.uint64(63)
    )
    doubles = [d for d in bits.view(np.float64).tolist() if math.isfinite(d)]
    doubles += [float(x) for x in rng.standard_normal(200)] + [
        float(x) for x in rng.integers(-(10**9), 10**9, 50)
    ]
    script = (
        "const xs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(xs.map(String)));"
    )
    node_strings = run_node(script, json.dumps(doubles))
    assert node_strings == [js_number_string(d) for d in doubles]


# --- the browser's side, played by node -------------------------------------------------------

JS_HASHES = r"""
const crypto = require('crypto');
const {sha, request, response} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
function canonical(v) {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (v !== null && typeof v === 'object')
    return '{' + Object.keys(v).sort()
      .map(k => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
  return JSON.stringify(v);
}
function numbersAsStrings(v) {
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(numbersAsStrings);
  if (v !== null && typeof v === 'object') {
    const out = {}; for (const k of Object.keys(v)) out[k] = numbersAsStrings(v[k]); return out;
  }
  return v;
}
function tensorBytes(datatype, data) {
  const typed = {FP32: Float32Array, FP64: Float64Array, INT8: Int8Array, INT16: Int16Array,
    INT32: Int32Array, UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array};
  if (datatype === 'BOOL') return Buffer.from(data.map(b => b ? 1 : 0));
  if (datatype === 'INT64') return Buffer.from(new BigInt64Array(data.map(BigInt)).buffer);
  if (datatype === 'UINT64') return Buffer.from(new BigUint64Array(data.map(BigInt)).buffer);
  if (datatype === 'BYTES') return Buffer.concat(data.flatMap(s => {
    const u = Buffer.from(s, 'utf8'); const n = Buffer.alloc(4);
    n.writeUInt32LE(u.length); return [n, u];
  }));
  return Buffer.from(new typed[datatype](data).buffer);  // little-endian, as browsers are
}
function record(name, datatype, shape, bytes) {
  const n = Buffer.alloc(8); n.writeBigUInt64BE(BigInt(bytes.length));
  const header = Buffer.from(canonical({datatype, name, shape}), 'utf8');
  return Buffer.concat([header, Buffer.from([0]), n, bytes]);
}
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const req = crypto.createHash('sha256');
req.update(Buffer.from('modelchain/request/v1\0', 'ascii')); req.update(Buffer.from(sha, 'hex'));
for (const i of [...request.inputs].sort(byName)) {
  const bytes = i.datatype === 'JSON'
    ? Buffer.from(canonical(numbersAsStrings(i.data)), 'utf8')
    : tensorBytes(i.datatype, i.data.flat(Infinity));
  req.update(record(i.name, i.datatype, i.shape, bytes));
}
const out = crypto.createHash('sha256');
out.update(Buffer.from('modelchain/outputs/v1\0', 'ascii'));
for (const o of [...response.outputs].sort(byName)) {
  const bytes = o.datatype === 'JSON'
    ? Buffer.from(canonical(numbersAsStrings(o.data)), 'utf8')
    : tensorBytes(o.datatype, o.data);
  out.update(record(o.name, o.datatype, o.shape, bytes));
}
console.log(JSON.stringify([req.digest('hex'), out.digest('hex')]));
"""


def run_node(script: str, stdin: str) -> Any:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", script], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_node
def test_a_browser_computes_both_hashes_from_the_json_request_and_response() -> None:
    """JavaScript reads the JSON request and response (typed arrays, BigInt64Array, String of
    numbers) and gets the hashes the node computed from its arrays."""
    request = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[0.1, -2], [1e-7, 3.5]]},
            {"name": "ids", "datatype": "INT64", "shape": [2], "data": [-(2**62), 7]},
            {"name": "flags", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            {"name": "words", "datatype": "BYTES", "shape": [2], "data": ["zebra", "café ☕"]},
            {"name": "d", "datatype": "FP64", "shape": [1], "data": [0.1]},
            {"name": "m", "datatype": "JSON", "shape": [], "data": {"b": 1e-7, "a": 1.5, "é": 2}},
        ]
    }
    registered = {
        "x": tensor("float32", [2, 2]),
        "ids": tensor("int64", ["n"]),
        "flags": tensor("bool", ["n"]),
        "words": tensor("string", ["n"]),
        "d": tensor("float64", [1]),
    }
    arrays: dict[str, Any] = {
        item["name"]: decode_input(item, registered[item["name"]], MAX)
        for item in request["inputs"]
        if item["name"] in registered
    }
    arrays["m"] = decode_json_input(request["inputs"][-1], STRING_TO_FLOAT, MAX)
    values: dict[str, Any] = {
        "y": np.array([[0.1, 1 / 3]], dtype=np.float32),
        "label": np.array([-(2**60), 3], dtype=np.int64),
        "u": np.array([7, 250], dtype=np.uint8),
        "probabilities": [{0: 0.2999999523162842, 1: 0.7000000476837158}, {0: 1e-7, 1: 1.0}],
        "pair": [[1.0, 2.5], [3.0]],
    }
    outputs = [encode_output(name, value) for name, value in values.items()]
    response = json.loads(json.dumps({"outputs": outputs}))
    request_hash = compute_request_hash(SHA, arrays)
    output_hash = tensors.hash_output_records(
        (o["name"], output_record_of_value(o["name"], values[o["name"]], o)) for o in outputs
    )
    assert output_hash == compute_output_hash(response["outputs"])
    browser = run_node(
        JS_HASHES, json.dumps({"sha": SHA, "request": request, "response": response})
    )
    assert browser == [request_hash, output_hash]


def test_ml_dtypes_floats_come_out_as_their_exact_values() -> None:
    array = np.array([1.0078125, -3.0], dtype=ml_dtypes.bfloat16)
    assert encode_output("y", array)["data"] == [1.0078125, -3.0]


# --- non-tensor inputs ---------------------------------------------------------------------------

STRING_TO_FLOAT = MapType("string", TensorType("float32", ()))
INT_TO_FLOAT = MapType("int64", TensorType("float32", ()))
SEQUENCE_OF_VECTORS = SequenceType(TensorType("float32", ("n",)))


def json_input(data: Any, **fields: Any) -> dict[str, Any]:
    return {"name": "m", "datatype": "JSON", "shape": [], "data": data, **fields}


def test_maps_and_sequences_come_as_json_values() -> None:
    decoded = decode_json_input(json_input({"a": 1, "b": 2.5}), STRING_TO_FLOAT, MAX)
    assert decoded.value == {"a": 1.0, "b": 2.5} and decoded.data == {"a": 1, "b": 2.5}
    assert decode_json_input(json_input({"7": 0.5}), INT_TO_FLOAT, MAX).value == {7: 0.5}
    items = decode_json_input(json_input([[1, 2], [3]]), SEQUENCE_OF_VECTORS, MAX).value
    assert [item.tolist() for item in items] == [[1.0, 2.0], [3.0]]
    assert all(item.dtype == np.float32 for item in items)


@pytest.mark.parametrize(
    ("body", "registered", "code"),
    [
        (json_input({"a": 1}, datatype="FP32"), STRING_TO_FLOAT, "infer-bad-datatype"),
        (json_input({"a": 1}, shape=[1]), STRING_TO_FLOAT, "infer-bad-shape"),
        ({"name": "m", "datatype": "JSON", "shape": []}, STRING_TO_FLOAT, "infer-bad-input"),
        (json_input([1, 2]), STRING_TO_FLOAT, "infer-bad-data"),
        (json_input({"a": "x"}), STRING_TO_FLOAT, "infer-bad-data"),
        (json_input({"a": True}), STRING_TO_FLOAT, "infer-bad-data"),
        (json_input({"x": 1.0}), INT_TO_FLOAT, "infer-bad-data"),
        (json_input({"a": 1}), SEQUENCE_OF_VECTORS, "infer-bad-data"),
        (json_input([[[1]]]), SEQUENCE_OF_VECTORS, "infer-bad-shape"),
        (json_input([[1, "x"]]), SEQUENCE_OF_VECTORS, "infer-bad-data"),
        (json_input({str(i): 1.0 for i in range(600)}), STRING_TO_FLOAT, "infer-too-many-elements"),
    ],
)
def test_a_json_input_breaking_one_rule_is_refused(body: Any, registered: Any, code: str) -> None:
    with pytest.raises(InferenceError) as err:
        decode_json_input(body, registered, MAX)
    assert err.value.code == code


def test_a_json_input_hashes_as_its_data_in_json_hash_form() -> None:
    data = {"b": 0.1, "a": 2}
    inputs = {"m": decode_json_input(json_input(data), STRING_TO_FLOAT, MAX)}
    expected = hashlib.sha256(
        b"modelchain/request/v1\x00"
        + bytes.fromhex(SHA)
        + spec_record("m", "JSON", [], b'{"a":"2","b":"0.1"}')
    ).hexdigest()
    assert compute_request_hash(SHA, inputs) == expected
