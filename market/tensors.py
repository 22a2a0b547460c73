"""Tensors on the wire of the Open Inference Protocol: datatypes, decoding, encoding, hashes.

Every ONNX tensor element type the node serves has one v2 datatype name and one numpy dtype;
JSON (and binary) inputs become numpy arrays checked against the registered signature, outputs
become OIP output objects, and the request and output hashes bind both byte-exactly (the
layout is specified in docs/inference.md so a browser computes the same hashes).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ml_dtypes
import numpy as np

from modelchain.chain.encoding import MAX_SAFE_INTEGER, canonical_bytes_unchecked
from modelchain.chain.errors import ModelchainError
from modelchain.models_store.signature import (
    MapType,
    OptionalType,
    SequenceType,
    TensorType,
    ValueType,
)

REQUEST_HASH_TAG = b"modelchain/request/v1\x00"
OUTPUT_HASH_TAG = b"modelchain/outputs/v1\x00"
JSON_DATATYPE = "JSON"
"""The datatype of non-tensor outputs (sequences, maps, optionals): their data is a JSON value."""
MAX_RANK = 32
"""The most dimensions an input may declare."""


# --- errors ------------------------------------------------------------------------------


class InferenceError(ModelchainError):
    """Base of the errors of inference: a request, a model or a run that cannot be served."""

    code = "infer-error"


class InferBadRequest(InferenceError):
    """The body is not an OIP inference request (not an object, inputs not a list...)."""

    code = "infer-bad-request"


class InferBadInput(InferenceError):
    """An input object lacks a field or has one of the wrong JSON type."""

    code = "infer-bad-input"


class InferUnknownInput(InferenceError):
    code = "infer-unknown-input"


class InferMissingInput(InferenceError):
    code = "infer-missing-input"


class InferDuplicateInput(InferenceError):
    code = "infer-duplicate-input"


class InferBadDatatype(InferenceError):
    code = "infer-bad-datatype"


class InferBadShape(InferenceError):
    code = "infer-bad-shape"


class InferBadData(InferenceError):
    """The data does not hold values of the declared datatype (a string in FP32, 1.5 in INT8,
    300 in UINT8, a BOOL that is not true or false)."""

    code = "infer-bad-data"


class InferTooManyElements(InferenceError):
    code = "infer-too-many-elements"
    http_status = 413


class InferUnknownOutput(InferenceError):
    code = "infer-unknown-output"


class InferUnsupportedParameter(InferenceError):
    """A protocol extension the node does not speak (shared memory, classification...)."""

    code = "infer-unsupported-parameter"


class InferUnsupportedType(InferenceError):
    """The registered input has a type the node cannot feed to ONNX Runtime."""

    code = "infer-unsupported-type"
    http_status = 422


# --- datatypes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Datatype:
    """One v2 datatype and the ONNX element type and numpy dtype it stands for."""

    name: str
    """The v2 name: "FP32", "BYTES", ..."""
    elem_type: str
    """The ONNX element type as signatures record it: "float32", "string", ..."""
    dtype: np.dtype[Any]
    """The numpy dtype of decoded arrays (object arrays of str for BYTES)."""
    kind: str
    """How JSON data reads: "bool", "int", "float" or "bytes"."""

    @property
    def itemsize(self) -> int:
        """Bytes per element in the binary layout; 0 for BYTES (length-prefixed)."""
        return 0 if self.kind == "bytes" else self.dtype.itemsize


def _datatype(name: str, elem_type: str, dtype: Any, kind: str) -> Datatype:
    return Datatype(name, elem_type, np.dtype(dtype), kind)


DATATYPES: tuple[Datatype, ...] = (
    _datatype("BOOL", "bool", np.bool_, "bool"),
    _datatype("UINT8", "uint8", np.uint8, "int"),
    _datatype("UINT16", "uint16", np.uint16, "int"),
    _datatype("UINT32", "uint32", np.uint32, "int"),
    _datatype("UINT64", "uint64", np.uint64, "int"),
    _datatype("INT8", "int8", np.int8, "int"),
    _datatype("INT16", "int16", np.int16, "int"),
    _datatype("INT32", "int32", np.int32, "int"),
    _datatype("INT64", "int64", np.int64, "int"),
    _datatype("FP16", "float16", np.float16, "float"),
    _datatype("FP32", "float32", np.float32, "float"),
    _datatype("FP64", "float64", np.float64, "float"),
    _datatype("BF16", "bfloat16", ml_dtypes.bfloat16, "float"),
    _datatype("BYTES", "string", object, "bytes"),
    # Not in the v2 protocol's list: modelchain names ONNX's 8-bit floats after their type.
    _datatype("FP8E4M3FN", "float8e4m3fn", ml_dtypes.float8_e4m3fn, "float"),
    _datatype("FP8E4M3FNUZ", "float8e4m3fnuz", ml_dtypes.float8_e4m3fnuz, "float"),
    _datatype("FP8E5M2", "float8e5m2", ml_dtypes.float8_e5m2, "float"),
    _datatype("FP8E5M2FNUZ", "float8e5m2fnuz", ml_dtypes.float8_e5m2fnuz, "float"),
)
BY_NAME: dict[str, Datatype] = {datatype.name: datatype for datatype in DATATYPES}
BY_ELEM_TYPE: dict[str, Datatype] = {datatype.elem_type: datatype for datatype in DATATYPES}
_BY_DTYPE: dict[np.dtype[Any], Datatype] = {
    datatype.dtype: datatype for datatype in DATATYPES if datatype.kind != "bytes"
}
_LITTLE_ENDIAN_DTYPES = {datatype.dtype: datatype.dtype.newbyteorder("<") for datatype in DATATYPES}


def _c_array(values: Any, dtype: Any = None) -> np.ndarray:
    """values as a C-ordered array (np.ascontiguousarray would turn a 0-d array into 1-d)."""
    return np.asarray(values, dtype=dtype, order="C")


def datatype_for_elem_type(elem_type: str) -> Datatype | None:
    """The v2 datatype of an ONNX element type name, or None for one the node cannot serve
    (complex, 4-bit and smaller types: ONNX Runtime's Python binding cannot feed them)."""
    return BY_ELEM_TYPE.get(elem_type)


def datatype_of(array: np.ndarray) -> Datatype:
    """The v2 datatype of a decoded or output array; object and str arrays are BYTES."""
    if array.dtype.kind in "OUS":
        return BY_NAME["BYTES"]
    found = _BY_DTYPE.get(array.dtype.newbyteorder("=")) or _BY_DTYPE.get(array.dtype)
    if found is None:
        raise InferUnsupportedType(f"arrays of dtype {array.dtype} have no v2 datatype")
    return found


def v2_shape(shape: Sequence[int | str | None] | None) -> list[int]:
    """A registered shape as model metadata shows it: symbolic and unknown dims are -1;
    an unknown rank is [-1]."""
    if shape is None:
        return [-1]
    return [dim if isinstance(dim, int) else -1 for dim in shape]


# --- decoding inputs ---------------------------------------------------------------------


def decode_input(
    input_json: Mapping[str, Any],
    registered: TensorType,
    max_elements: int,
    raw: bytes | None = None,
) -> np.ndarray:
    """The array an OIP input object holds, checked against the registered tensor type.

    `raw` is the input's bytes from the binary tensor extension, if it came that way (then
    input_json has no "data"). Guarantees: the array has the registered dtype, a shape whose
    rank and fixed dims match the registration, at most max_elements elements, and the
    C-contiguous layout. Raises InferBadInput (fields missing or of the wrong JSON type),
    InferBadDatatype, InferBadShape, InferTooManyElements, InferBadData, InferUnsupportedType.
    """
    name = input_json.get("name")
    datatype = registered_datatype(str(name), registered)
    declared = input_json.get("datatype")
    if not isinstance(declared, str):
        raise InferBadInput(f"input {name!r}: datatype must be a string like {datatype.name!r}")
    if declared != datatype.name:
        raise InferBadDatatype(
            f"input {name!r} is {datatype.name} (ONNX {registered.elem_type}), "
            f"the request says {declared}",
            expected=datatype.name,
        )
    shape = _decode_shape(name, input_json.get("shape"))
    count = math.prod(shape)
    if count > max_elements:
        raise InferTooManyElements(
            f"input {name!r} has {count} elements, over the node's limit of {max_elements}",
            limit=max_elements,
        )
    validate_shape(str(name), shape, registered.shape)
    if raw is not None:
        return _array_from_raw(str(name), datatype, shape, raw)
    if "data" not in input_json:
        raise InferBadInput(f"input {name!r} has no data")
    return _array_from_json(str(name), datatype, shape, input_json["data"])


def registered_datatype(name: str, registered: TensorType) -> Datatype:
    """The datatype of a registered tensor input; InferUnsupportedType if there is none."""
    datatype = datatype_for_elem_type(registered.elem_type)
    if datatype is None:
        raise InferUnsupportedType(
            f"input {name!r} is a tensor of {registered.elem_type}, which this node cannot feed "
            "to ONNX Runtime"
        )
    return datatype


def _decode_shape(name: Any, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list):
        raise InferBadInput(f"input {name!r}: shape must be a list of sizes")
    if len(shape) > MAX_RANK:
        raise InferBadShape(f"input {name!r} has {len(shape)} dimensions, over {MAX_RANK}")
    for dim in shape:
        if type(dim) is not int or not 0 <= dim <= MAX_SAFE_INTEGER:
            raise InferBadShape(f"input {name!r}: shape {shape} holds {dim!r}, not a size >= 0")
    return tuple(shape)


def validate_shape(
    name: str, shape: tuple[int, ...], registered: Sequence[int | str | None] | None
) -> None:
    """Raises InferBadShape unless shape has the registered rank and every fixed dim matches
    (a symbolic or unknown dim matches any size; an unknown rank matches any shape)."""
    if registered is None:
        return
    if len(shape) != len(registered):
        raise InferBadShape(
            f"input {name!r} has shape {list(shape)}, the model takes rank {len(registered)} "
            f"{v2_shape(registered)}",
            expected=v2_shape(registered),
        )
    for axis, (size, want) in enumerate(zip(shape, registered, strict=True)):
        if isinstance(want, int) and size != want:
            raise InferBadShape(
                f"input {name!r} has size {size} on axis {axis}, the model takes {want} "
                f"(shape {v2_shape(registered)})",
                expected=v2_shape(registered),
            )


def bind_symbolic_dims(
    bound: dict[str, tuple[str, int]],
    name: str,
    shape: Sequence[int],
    registered: Sequence[int | str | None] | None,
) -> None:
    """Records the sizes of the symbolic dims of one input in `bound` (dim name -> (input,
    size)); raises InferBadShape when a name already bound by another input has another size,
    as ONNX Runtime would refuse it."""
    if registered is None:
        return
    for size, dim in zip(shape, registered, strict=True):
        if not isinstance(dim, str):
            continue
        if dim in bound and bound[dim][1] != size:
            other, other_size = bound[dim]
            raise InferBadShape(
                f"dimension {dim!r} is {other_size} in input {other!r} but {size} in {name!r}"
            )
        bound.setdefault(dim, (name, size))


def _array_from_json(
    name: str, datatype: Datatype, shape: tuple[int, ...], data: Any
) -> np.ndarray:
    if not isinstance(data, list):
        raise InferBadInput(f"input {name!r}: data must be a list (flat or nested)")
    if datatype.kind == "bytes":
        values = _flatten_strings(name, data, shape)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    kinds = _value_types(data)
    if bool in kinds and datatype.kind != "bool":
        raise InferBadData(f"input {name!r} is {datatype.name}: true and false are not numbers")
    try:
        parsed = np.array(data)
    except (ValueError, TypeError, OverflowError):
        raise InferBadShape(
            f"input {name!r}: data is a ragged nested list, not a tensor of shape {list(shape)}"
        ) from None
    parsed = _reshape(name, parsed, shape)
    if parsed.size == 0:
        return np.zeros(shape, dtype=datatype.dtype)
    if datatype.kind == "int" and parsed.dtype.kind in "fO" and kinds == {int}:
        # numpy reads ints that fit no one integer dtype ([-1, 2**64 - 1]) as floats or objects
        try:
            return _c_array(np.array(data, dtype=datatype.dtype).reshape(shape))
        except OverflowError:
            raise InferBadData(
                f"input {name!r} is {datatype.name}: a value is outside its range"
            ) from None
    return _convert(name, datatype, parsed)


def _value_types(data: list[Any]) -> set[type]:
    """The types of the leaves of a nested list (C-speed for flat lists)."""
    kinds = set(map(type, data))
    if list in kinds:
        kinds.discard(list)
        for item in data:
            if type(item) is list:
                kinds |= _value_types(item)
    return kinds


def _reshape(name: str, parsed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The parsed data in `shape`: a flat list of the right length, or a nested list of
    exactly that shape."""
    if parsed.ndim == 1 and parsed.shape[0] == math.prod(shape):
        return parsed.reshape(shape)
    if parsed.shape == shape:
        return parsed
    raise InferBadShape(
        f"input {name!r}: shape {list(shape)} needs {math.prod(shape)} values, flat or "
        f"nested to that shape; data has {parsed.size} nested as {list(parsed.shape)}"
    )


def _convert(name: str, datatype: Datatype, parsed: np.ndarray) -> np.ndarray:
    kind = parsed.dtype.kind
    if datatype.kind == "bool":
        if kind != "b":
            raise InferBadData(f"input {name!r} is BOOL: its data must be true or false values")
        return _c_array(parsed, dtype=np.bool_)
    if kind not in "iuf":
        raise InferBadData(
            f"input {name!r} is {datatype.name}: its data must be numbers "
            f"(found {_describe_kind(kind)})"
        )
    if datatype.kind == "int":
        if kind == "f":
            raise InferBadData(
                f"input {name!r} is {datatype.name}: its data must be integers in range"
            )
        info = np.iinfo(datatype.dtype)
        low, high = int(parsed.min()), int(parsed.max())
        if low < info.min or high > info.max:
            raise InferBadData(
                f"input {name!r} is {datatype.name}: {low if low < info.min else high} is "
                f"outside {info.min}..{info.max}"
            )
        return _c_array(parsed.astype(datatype.dtype))
    return float_array(parsed, datatype)


def float_array(values: np.ndarray, datatype: Datatype) -> np.ndarray:
    """Numbers converted to a float datatype as docs/inference.md says a client does it:
    each value is first the nearest binary64 (a JSON number as JavaScript reads it), then
    rounded to nearest-even FP64/FP32/FP16 directly, or through FP32 for BF16 and the FP8s."""
    doubles = values.astype(np.float64)
    with np.errstate(over="ignore"):  # out of range rounds to infinity, as IEEE 754 says
        if datatype.name in ("FP64", "FP32", "FP16"):
            return _c_array(doubles.astype(datatype.dtype))
        return _c_array(doubles.astype(np.float32).astype(datatype.dtype))


def _describe_kind(kind: str) -> str:
    return {"b": "booleans", "U": "strings", "O": "mixed or out-of-range values"}.get(
        kind, f"values of numpy kind {kind!r}"
    )


def _flatten_strings(name: str, data: list[Any], shape: tuple[int, ...]) -> list[str]:
    """The strings of a flat or nested list, checked against shape; InferBadData for a value
    that is not a string, InferBadShape for a list of another shape."""
    if all(isinstance(item, str) for item in data):
        if len(data) != math.prod(shape):
            raise InferBadShape(
                f"input {name!r}: data holds {len(data)} strings, the shape {list(shape)} says "
                f"{math.prod(shape)}"
            )
        return data
    values: list[str] = []

    def walk(items: Any, axis: int) -> None:
        if axis == len(shape):
            if not isinstance(items, str):
                raise InferBadData(f"input {name!r} is BYTES: its data must be strings")
            values.append(items)
            return
        if not isinstance(items, list) or len(items) != shape[axis]:
            raise InferBadShape(
                f"input {name!r}: nested data does not have the shape {list(shape)}"
            )
        for item in items:
            walk(item, axis + 1)

    if any(isinstance(item, list) for item in data):
        walk(data, 0)
        return values
    raise InferBadData(f"input {name!r} is BYTES: its data must be strings")


def _array_from_raw(
    name: str, datatype: Datatype, shape: tuple[int, ...], raw: bytes
) -> np.ndarray:
    count = math.prod(shape)
    if datatype.kind == "bytes":
        values = decode_bytes_elements(name, raw, count)
        array = np.empty(count, dtype=object)
        array[:] = values
        return array.reshape(shape)
    if len(raw) != count * datatype.itemsize:
        raise InferBadData(
            f"input {name!r}: {len(raw)} binary bytes, {datatype.name} {list(shape)} needs "
            f"{count * datatype.itemsize}"
        )
    array = np.frombuffer(raw, dtype=_LITTLE_ENDIAN_DTYPES[datatype.dtype]).reshape(shape)
    if datatype.kind == "bool":
        as_bytes = np.frombuffer(raw, dtype=np.uint8)
        if as_bytes.size and int(as_bytes.max()) > 1:
            raise InferBadData(f"input {name!r} is BOOL: each binary byte must be 0 or 1")
    return _c_array(array.astype(datatype.dtype))


def decode_bytes_elements(name: str, raw: bytes, count: int) -> list[str]:
    """The strings of the binary BYTES layout (4-byte little-endian length, then UTF-8)."""
    values: list[str] = []
    offset = 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InferBadData(f"input {name!r}: binary BYTES data ends inside a length prefix")
        length = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4
        if offset + length > len(raw):
            raise InferBadData(f"input {name!r}: binary BYTES element runs past the data")
        try:
            values.append(str(view[offset : offset + length], "utf-8"))
        except UnicodeDecodeError:
            raise InferBadData(f"input {name!r}: a BYTES element is not UTF-8 text") from None
        offset += length
    if len(values) != count:
        raise InferBadData(f"input {name!r}: binary data holds {len(values)} strings, not {count}")
    return values


# --- decoding non-tensor inputs -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonInput:
    """A non-tensor input (a map or a sequence): the JSON the client sent, and the Python
    value ONNX Runtime is fed (dicts, lists of arrays)."""

    data: Any
    value: Any


def decode_json_input(
    input_json: Mapping[str, Any], registered: ValueType, max_elements: int
) -> JsonInput:
    """A map or sequence input sent as {"datatype": "JSON", "shape": [], "data": value}.

    Maps are JSON objects (integer keys written as decimal strings), sequences are lists
    whose tensors are nested lists. Raises InferBadDatatype, InferBadShape, InferBadInput,
    InferBadData, InferTooManyElements, InferUnsupportedType like decode_input.
    """
    name = str(input_json.get("name"))
    if input_json.get("datatype") != JSON_DATATYPE:
        raise InferBadDatatype(
            f"input {name!r} is not a tensor: send it as datatype JSON", expected=JSON_DATATYPE
        )
    if input_json.get("shape") != []:
        raise InferBadShape(f"input {name!r} is a JSON value: its shape is []", expected=[])
    if "data" not in input_json:
        raise InferBadInput(f"input {name!r} has no data")
    data = input_json["data"]
    count = output_element_count(data)
    if count > max_elements:
        raise InferTooManyElements(
            f"input {name!r} holds {count} values, over the node's limit of {max_elements}",
            limit=max_elements,
        )
    return JsonInput(data, _runtime_value(name, data, registered))


def _runtime_value(name: str, data: Any, registered: ValueType) -> Any:
    if isinstance(registered, OptionalType):
        return None if data is None else _runtime_value(name, data, registered.elem)
    if isinstance(registered, SequenceType):
        if not isinstance(data, list):
            raise InferBadData(f"input {name!r} is a sequence: send a list")
        return [_runtime_value(name, item, registered.elem) for item in data]
    if isinstance(registered, MapType):
        return _map_value(name, data, registered)
    if isinstance(registered, TensorType):
        datatype = registered_datatype(name, registered)
        shape = _nested_shape(data)
        validate_shape(name, shape, registered.shape)
        return _array_from_json(name, datatype, shape, data if isinstance(data, list) else [data])
    raise InferUnsupportedType(f"input {name!r} has a type this node cannot feed")


def _nested_shape(data: Any) -> tuple[int, ...]:
    shape = []
    while isinstance(data, list):
        shape.append(len(data))
        if not data:
            break
        data = data[0]
    return tuple(shape)


def _map_value(name: str, data: Any, registered: MapType) -> dict[Any, Any]:
    if not isinstance(data, dict):
        raise InferBadData(f"input {name!r} is a map: send an object")
    value_type = registered.value
    if not isinstance(value_type, TensorType) or value_type.shape not in ((), None):
        raise InferUnsupportedType(f"input {name!r} maps to values this node cannot feed")
    convert = _SCALAR_CONVERTERS.get(value_type.elem_type)
    if convert is None:
        raise InferUnsupportedType(
            f"input {name!r} maps to {value_type.elem_type}, which this node cannot feed"
        )
    keys_are_ints = registered.key != "string"
    result: dict[Any, Any] = {}
    for key, item in data.items():
        if keys_are_ints:
            try:
                key = int(key)
            except ValueError:
                raise InferBadData(f"input {name!r}: map key {key!r} is not an integer") from None
        try:
            result[key] = convert(item)
        except (TypeError, ValueError):
            raise InferBadData(
                f"input {name!r}: {item!r} is not a {value_type.elem_type} value"
            ) from None
    return result


def _json_float(item: Any) -> float:
    if type(item) not in (int, float):
        raise TypeError(item)
    return float(item)


def _json_int(item: Any) -> int:
    if type(item) is not int:
        raise TypeError(item)
    return item


def _json_str(item: Any) -> str:
    if type(item) is not str:
        raise TypeError(item)
    return item


_SCALAR_CONVERTERS = {
    "float32": _json_float,
    "float64": _json_float,
    "int64": _json_int,
    "string": _json_str,
}


# --- encoding outputs --------------------------------------------------------------------


def encode_output(name: str, value: Any) -> dict[str, Any]:
    """The OIP output object of one model output.

    A tensor (numpy array) is {name, datatype, shape, data} with data flat, row-major:
    numbers (FP16, BF16 and FP8 as the exact binary64 of their value), booleans or strings.
    Anything else (a sequence, a map, an optional) is {name, datatype: "JSON", shape: [],
    data} with data the JSON value: map keys become strings, tensors inside become nested
    lists.
    """
    if isinstance(value, np.ndarray):
        datatype = datatype_of(value)
        return {
            "name": name,
            "datatype": datatype.name,
            "shape": list(value.shape),
            "data": tensor_json_data(value, datatype),
        }
    return {"name": name, "datatype": JSON_DATATYPE, "shape": [], "data": json_value(value)}


def tensor_json_data(array: np.ndarray, datatype: Datatype) -> list[Any]:
    """The flat JSON data of a tensor: Python ints, floats, bools or strings."""
    flat = array.reshape(-1)
    if datatype.kind == "bytes":
        return [_text(item) for item in flat.tolist()]
    if array.dtype in _ML_FLOATS:  # bfloat16 and the FP8s: tolist() cannot give floats
        return flat.astype(np.float32).tolist()
    return flat.tolist()


def _text(item: Any) -> str:
    return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)


def json_value(value: Any) -> Any:
    """value as the JSON it goes out as: numpy values to Python, tuples to lists, arrays to
    nested lists, map keys to strings."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "V" or value.dtype in _ML_FLOATS:
            value = value.astype(np.float32)
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {_key(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


_ML_FLOATS = frozenset(
    datatype.dtype for datatype in DATATYPES if datatype.name == "BF16" or "FP8" in datatype.name
)


def _key(key: Any) -> str:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def output_element_count(value: Any) -> int:
    """Elements in an output: a tensor's size, or the numbers and strings inside a JSON value."""
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, dict):
        return sum(1 + output_element_count(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(output_element_count(item) for item in value)
    return 1


# --- hashes ------------------------------------------------------------------------------


def tensor_bytes(array: np.ndarray) -> bytes:
    """A tensor's bytes in the hash layout: little-endian, C order; BYTES as a 4-byte
    little-endian length and the UTF-8 of each string."""
    datatype = datatype_of(array)
    if datatype.kind == "bytes":
        return encode_bytes_elements(array.reshape(-1).tolist())
    little = _LITTLE_ENDIAN_DTYPES[datatype.dtype]
    return _c_array(array, dtype=little).tobytes()


def encode_bytes_elements(items: Iterable[Any]) -> bytes:
    """The binary BYTES layout of strings: each as a u32le length and its UTF-8."""
    parts = []
    for item in items:
        data = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(len(data).to_bytes(4, "little"))
        parts.append(data)
    return b"".join(parts)


def tensor_record(name: str, datatype: str, shape: Sequence[int], data: bytes) -> bytes:
    """One hashed record: canonical JSON {"datatype","name","shape"}, 0x00, the 8-byte
    big-endian length of data, then data."""
    header = canonical_bytes_unchecked({"datatype": datatype, "name": name, "shape": list(shape)})
    return header + b"\x00" + len(data).to_bytes(8, "big") + data


def compute_request_hash(model_sha256: str, inputs: Mapping[str, np.ndarray | JsonInput]) -> str:
    """sha256 (hex) of the request tag, the model's 32 sha256 bytes and one record per input,
    sorted by name; a paying client computes it from its own JSON request (docs/inference.md).
    A JSON input's record holds its data in the hash form of JSON outputs (json_hash_bytes).
    """
    digest = hashlib.sha256(REQUEST_HASH_TAG)
    digest.update(bytes.fromhex(model_sha256))
    for name in sorted(inputs):
        value = inputs[name]
        if isinstance(value, JsonInput):
            record = tensor_record(name, JSON_DATATYPE, [], json_hash_bytes(value.data))
        else:
            record = tensor_record(name, datatype_of(value).name, value.shape, tensor_bytes(value))
        digest.update(record)
    return digest.hexdigest()


def compute_output_hash(outputs: Sequence[Mapping[str, Any]]) -> str:
    """sha256 (hex) of the output tag and one record per OIP output object, sorted by name:
    a tensor's bytes as in the request hash, a JSON output's canonical hash form
    (json_hash_bytes). Computed from the response alone, as a client would."""
    return hash_output_records((output["name"], output_record(output)) for output in outputs)


def hash_output_records(records: Iterable[tuple[str, bytes]]) -> str:
    """sha256 (hex) of the output tag and the (name, record) pairs sorted by name."""
    digest = hashlib.sha256(OUTPUT_HASH_TAG)
    for _, record in sorted(records, key=lambda pair: pair[0]):
        digest.update(record)
    return digest.hexdigest()


def output_record(output: Mapping[str, Any]) -> bytes:
    """The hashed record of one OIP output object (tensor or JSON)."""
    name, datatype = output["name"], output["datatype"]
    if datatype == JSON_DATATYPE:
        return tensor_record(name, JSON_DATATYPE, [], json_hash_bytes(output["data"]))
    return tensor_record(name, datatype, list(output["shape"]), output_tensor_bytes(output))


def output_tensor_bytes(output: Mapping[str, Any]) -> bytes:
    """The bytes of a tensor output object's JSON data, in the hash (and binary) layout."""
    spec = BY_NAME[output["datatype"]]
    if spec.kind == "bytes":
        return encode_bytes_elements(output["data"])
    if spec.kind == "float":
        return tensor_bytes(float_array(_c_array(output["data"], dtype=np.float64), spec))
    return tensor_bytes(_c_array(output["data"], dtype=spec.dtype))


def output_record_of_value(name: str, value: Any, encoded: Mapping[str, Any]) -> bytes:
    """output_record(encoded) computed from the model's own value (fast: no JSON round trip);
    the tests check both give the same bytes."""
    if not isinstance(value, np.ndarray):
        return tensor_record(name, JSON_DATATYPE, [], json_hash_bytes(encoded["data"]))
    if (value.dtype.kind == "f" or value.dtype in _ML_FLOATS) and np.isnan(value).any():
        return output_record(encoded)  # a NaN hashes as JSON's NaN reads back, not as its bits
    return tensor_record(name, encoded["datatype"], value.shape, tensor_bytes(value))


def array_output_hash(results: Mapping[str, Any]) -> str | None:
    """compute_output_hash of outputs that are all tensors free of NaN, from the arrays
    alone (as an inference worker holds them, unencoded); None for any other outputs.
    Raises InferUnsupportedType for an array with no v2 datatype."""
    records = []
    for name, value in results.items():
        if not isinstance(value, np.ndarray):
            return None
        if (value.dtype.kind == "f" or value.dtype in _ML_FLOATS) and np.isnan(value).any():
            return None
        datatype = datatype_of(value).name
        records.append((name, tensor_record(name, datatype, value.shape, tensor_bytes(value))))
    return hash_output_records(records)


def json_hash_bytes(value: Any) -> bytes:
    """The hash form of a JSON output's data: canonical JSON (sorted keys, no spaces, UTF-8)
    of the value with every number replaced by the string JavaScript's String(number) gives."""
    return canonical_bytes_unchecked(_numbers_as_strings(value))


def _numbers_as_strings(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return js_number_string(float(value)) if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return js_number_string(value)
    if isinstance(value, dict):
        return {str(key): _numbers_as_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers_as_strings(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def js_number_string(number: float) -> str:
    """What JavaScript's Number.prototype.toString() gives for a binary64 (ECMAScript
    Number::toString): the shortest round-trip digits, in plain or exponent form."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    # repr is the shortest decimal that rounds back (as ECMAScript asks); only its layout differs
    exact = Decimal(repr(abs(number))).normalize()
    _, digit_tuple, exponent = exact.as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exponent)  # the value is 0.digits x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text
