"""ONNX building blocks shared by the model-store and market tests.

One table of the tensor element types ONNX Runtime runs Identity over, and the
value-info helper every small test model is built with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from onnx import TensorProto, helper

ML_DOMAIN = "ai.onnx.ml"

# Every tensor element type ONNX Runtime 1.32 runs Identity over (probed: complex, 4-bit,
# 2-bit and 6-bit types fail to load; float4e2m1 and float8e8m0 have no kernel), by the
# names signatures record, with the code onnx.helper wants.
ELEMENT_TYPES: dict[str, int] = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16,
    "int8": TensorProto.INT8,
    "int16": TensorProto.INT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
    "uint16": TensorProto.UINT16,
    "uint32": TensorProto.UINT32,
    "uint64": TensorProto.UINT64,
    "bool": TensorProto.BOOL,
    "string": TensorProto.STRING,
    "float8e4m3fn": TensorProto.FLOAT8E4M3FN,
    "float8e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ,
    "float8e5m2": TensorProto.FLOAT8E5M2,
    "float8e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ,
}


def tensor_info(name: str, elem_type: int, shape: Sequence[int | str | None] | None) -> Any:
    return helper.make_tensor_value_info(name, elem_type, shape)
