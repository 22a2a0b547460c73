"""ONNX Runtime sessions for verified model bytes, and one call that runs them.

Validation and serving create sessions with the same options, so a model that validated loads
the same way when it serves; `run` feeds numpy arrays (bfloat16 and float8 ones too, as
ml_dtypes arrays) and turns non-tensor outputs (sequences, maps, optionals) into plain Python.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from modelchain.models_store.errors import InferenceFailed, ModelBadInput, ModelStoreError
from modelchain.models_store.signature import ELEMENT_TYPE_CODES

DEFAULT_INTRA_OP_THREADS = 1
LOG_SEVERITY_ERROR = 3  # ONNX Runtime's levels: 0 verbose ... 3 error, 4 fatal
CPU_PROVIDERS = ("CPUExecutionProvider",)

# numpy dtypes of the ONNX element types, by the names signatures record. Types numpy lacks
# come from ml_dtypes (a dependency of onnx); "string" tensors are numpy object arrays of str.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "float16": np.dtype(np.float16),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(object),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float8e8m0": np.dtype(ml_dtypes.float8_e8m0fnu),
    "float4e2m1": np.dtype(ml_dtypes.float4_e2m1fn),
    "int4": np.dtype(ml_dtypes.int4),
    "uint4": np.dtype(ml_dtypes.uint4),
    "int2": np.dtype(ml_dtypes.int2),
    "uint2": np.dtype(ml_dtypes.uint2),
    "float6e2m3": np.dtype(ml_dtypes.float6_e2m3fn),
    "float6e3m2": np.dtype(ml_dtypes.float6_e3m2fn),
}

# Element types ONNX Runtime runs but its Python binding cannot turn into or out of numpy:
# they cross as raw bits in an OrtValue of the declared ONNX type.
RAW_BITS_DTYPES: dict[str, np.dtype[Any]] = {
    "bfloat16": np.dtype(np.uint16),
    "float8e4m3fn": np.dtype(np.uint8),
    "float8e4m3fnuz": np.dtype(np.uint8),
    "float8e5m2": np.dtype(np.uint8),
    "float8e5m2fnuz": np.dtype(np.uint8),
}

_ML_INTEGER_DTYPES = frozenset(NUMPY_DTYPES[name] for name in ("int4", "uint4", "int2", "uint2"))

# ONNX Runtime spells two element types its own way in type strings such as "tensor(float)".
_RUNTIME_TYPE_NAMES = {"float": "float32", "double": "float64"}


def numpy_dtype(elem_type: str) -> np.dtype[Any]:
    """The numpy dtype for an element type name as signatures record it ("float32", ...)."""
    try:
        return NUMPY_DTYPES[elem_type]
    except KeyError:
        raise ValueError(f"no numpy dtype for ONNX element type {elem_type!r}") from None


def tensor_elem_type(runtime_type: str) -> str | None:
    """The element type name of an ONNX Runtime type string like "tensor(float)", else None."""
    if runtime_type.startswith("tensor(") and runtime_type.endswith(")"):
        name = runtime_type[len("tensor(") : -1]
        return _RUNTIME_TYPE_NAMES.get(name, name)
    return None


def make_session_options(
    intra_op_num_threads: int = DEFAULT_INTRA_OP_THREADS,
) -> ort.SessionOptions:
    """The options every session gets: sequential, all graph optimizations, errors-only logs,
    no spinning threads.

    The format is pinned to ONNX so bytes that look like an ORT-format model are never
    parsed as one (validation only vouches for ONNX protobuf).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = LOG_SEVERITY_ERROR
    options.add_session_config_entry("session.load_model_format", "ONNX")
    # Worker threads sleep between runs instead of spinning: an idle node burns no CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(
    model: bytes | Path, *, intra_op_num_threads: int = DEFAULT_INTRA_OP_THREADS
) -> ort.InferenceSession:
    """A CPU session for a model; pass bytes from ModelStore.read_verified to run exactly
    the bytes whose hash was checked (a path is read again by ONNX Runtime).

    Raises ONNX Runtime's own exceptions: a validated model is expected to load.
    """
    source = bytes(model) if isinstance(model, bytes | bytearray) else str(model)
    return ort.InferenceSession(
        source,
        make_session_options(intra_op_num_threads),
        providers=list(CPU_PROVIDERS),
        read_config_from_model=0,  # a model's metadata never sets session options
    )


def run(session: ort.InferenceSession, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """Runs the model once; returns every output by name, in the model's order.

    Tensor outputs are numpy arrays (bfloat16/float8 ones as ml_dtypes arrays); sequences,
    maps and optionals become plain Python (lists, dicts with int or str keys, None), with
    any tensors inside them as nested lists. Raises ModelBadInput for missing or unknown
    input names and for inputs ONNX Runtime refuses, InferenceFailed for other failures.
    """
    declared = {arg.name: arg.type for arg in session.get_inputs()}
    missing = sorted(set(declared) - set(feeds))
    unknown = sorted(set(feeds) - set(declared))
    if missing or unknown:
        raise ModelBadInput(
            f"inputs do not match the model: missing {missing}, unknown {unknown}; "
            f"the model takes {sorted(declared)}"
        )
    outputs = [(arg.name, tensor_elem_type(arg.type)) for arg in session.get_outputs()]
    try:
        ort_feeds = {
            name: _to_runtime_input(value, declared[name]) for name, value in feeds.items()
        }
        if any(elem in RAW_BITS_DTYPES for _, elem in outputs):
            results = _run_with_raw_bits_outputs(session, outputs, ort_feeds)
        else:
            names = [name for name, _ in outputs]
            values = session.run(names, ort_feeds)
            results = dict(zip(names, map(_from_runtime_output, values), strict=True))
    except ModelStoreError:
        raise
    except (InvalidArgument, RuntimeError, TypeError, ValueError) as err:
        # InvalidArgument: wrong dtype, rank or size; the others: Python values the binding
        # cannot convert.
        raise ModelBadInput(f"ONNX Runtime refused the inputs: {err}") from None
    except Exception as err:  # ORT's other errors (Fail, RuntimeException, ...) share no base
        raise InferenceFailed(f"ONNX Runtime failed to run the model: {err}") from None
    return {name: results[name] for name, _ in outputs}


def _run_with_raw_bits_outputs(
    session: ort.InferenceSession, outputs: list[tuple[str, str | None]], feeds: dict[str, Any]
) -> dict[str, Any]:
    """Tensor outputs come back as OrtValues (bfloat16 and float8 ones copied out as bits);
    non-tensor outputs cannot leave ORT's Python binding as OrtValues, so they take a
    second run."""
    tensors = [(name, elem) for name, elem in outputs if elem is not None]
    others = [name for name, elem in outputs if elem is None]
    values = session.run_with_ort_values([name for name, _ in tensors], _all_ort_values(feeds))
    results: dict[str, Any] = {}
    for (name, elem), value in zip(tensors, values, strict=True):
        results[name] = _from_raw_bits(value, elem) if elem in RAW_BITS_DTYPES else value.numpy()
    if others:
        results.update(zip(others, map(to_jsonable, session.run(others, feeds)), strict=True))
    return results


def _to_runtime_input(value: Any, runtime_type: str) -> Any:
    elem = tensor_elem_type(runtime_type)
    if elem not in RAW_BITS_DTYPES:
        return value
    array = np.ascontiguousarray(np.asarray(value, dtype=NUMPY_DTYPES[elem]))
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
        array.view(RAW_BITS_DTYPES[elem]), ELEMENT_TYPE_CODES[elem]
    )


def _all_ort_values(feeds: Mapping[str, Any]) -> dict[str, ort.OrtValue]:
    converted = {}
    for name, value in feeds.items():
        if isinstance(value, ort.OrtValue):
            converted[name] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind not in "OSU":  # not strings
            converted[name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
        else:
            raise InferenceFailed(
                f"input {name!r} is not a numeric numpy array: ONNX Runtime's Python binding "
                "cannot feed it to a model with bfloat16 or float8 outputs"
            )
    return converted


def _from_raw_bits(value: ort.OrtValue, elem: str) -> np.ndarray:
    shape = tuple(value.shape())
    size = value.tensor_size_in_bytes()
    bits = RAW_BITS_DTYPES[elem]
    if size == 0:
        return np.zeros(shape, dtype=NUMPY_DTYPES[elem])
    buffer = (ctypes.c_char * size).from_address(value.data_ptr())
    copied = np.frombuffer(buffer, dtype=bits).copy()  # copy before the OrtValue goes away
    return copied.reshape(shape).view(NUMPY_DTYPES[elem])


def _from_runtime_output(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value
    return to_jsonable(value)


def to_jsonable(value: Any) -> Any:
    """value as plain Python: arrays to nested lists, numpy scalars to int/float/bool/str,
    map keys to int or str. Floats stay floats (NaN and infinities too): outputs are not money.
    """
    if isinstance(value, np.ndarray):
        if value.dtype in _ML_INTEGER_DTYPES:
            value = value.astype(np.int64)
        elif value.dtype.kind == "V":  # ml_dtypes floats (bfloat16, float8...): tolist fails
            value = value.astype(np.float32)
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {to_jsonable(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
