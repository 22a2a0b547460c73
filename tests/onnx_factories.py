"""ONNX building blocks shared by the model-store and market tests.

One table of the tensor element types ONNX Runtime runs Identity over, the value-info
helper every small test model is built with, and the small models both folders build
(identity over every dtype, ZipMap, DictVectorizer, sequence and optional outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx
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


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    *,
    initializers: Sequence[onnx.TensorProto] = (),
    opset: int = 21,
    extra_opsets: dict[str, int] | None = None,
    ir_version: int = 10,
    functions: Sequence[onnx.FunctionProto] = (),
    doc: str = "",
) -> onnx.ModelProto:
    """A model of one graph; defaults to ai.onnx opset 21 and IR 10, which ORT 1.32 runs."""
    graph = helper.make_graph(
        list(nodes), "test-graph", list(inputs), list(outputs), initializer=list(initializers)
    )
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()]
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=ir_version, functions=list(functions)
    )
    model.doc_string = doc  # distinct docs give distinct bytes, so distinct sha256s
    return model


def identity_model(elem_type: int, shape: Sequence[int | str | None] = ("n", 2)) -> onnx.ModelProto:
    return make_model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [tensor_info("x", elem_type, shape)],
        [tensor_info("y", elem_type, shape)],
    )


def all_dtypes_model(names: Sequence[str] = tuple(ELEMENT_TYPES)) -> onnx.ModelProto:
    """One Identity per element type: inputs in_<type>, outputs out_<type>, shape [batch, 2]."""
    nodes, inputs, outputs = [], [], []
    for name in names:
        elem = ELEMENT_TYPES[name]
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
        inputs.append(tensor_info(f"in_{name}", elem, ["batch", 2]))
        outputs.append(tensor_info(f"out_{name}", elem, ["batch", 2]))
    return make_model(nodes, inputs, outputs)


def zipmap_classifier_model(string_labels: bool = False) -> onnx.ModelProto:
    """A LinearClassifier over 3 features with ZipMap probabilities (ai.onnx.ml), as
    scikit-learn exports classifiers: outputs label [N] and probabilities, a sequence of
    maps class -> probability."""
    key_type = TensorProto.STRING if string_labels else TensorProto.INT64
    labels: dict[str, Any] = (
        {"classlabels_strings": ["cat", "dog"]} if string_labels else {"classlabels_ints": [0, 1]}
    )
    zip_labels: dict[str, Any] = (
        {"classlabels_strings": ["cat", "dog"]} if string_labels else {"classlabels_int64s": [0, 1]}
    )
    probabilities = helper.make_value_info(
        "probabilities",
        helper.make_sequence_type_proto(
            helper.make_map_type_proto(
                key_type, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
            )
        ),
    )
    return make_model(
        [
            helper.make_node(
                "LinearClassifier",
                ["features"],
                ["label", "scores"],
                domain=ML_DOMAIN,
                coefficients=[0.5, -0.25, 1.0, -0.5, 0.25, -1.0],
                intercepts=[0.0, 0.125],
                post_transform="SOFTMAX",
                **labels,
            ),
            helper.make_node(
                "ZipMap", ["scores"], ["probabilities"], domain=ML_DOMAIN, **zip_labels
            ),
        ],
        [tensor_info("features", TensorProto.FLOAT, ["N", 3])],
        [tensor_info("label", key_type, ["N"]), probabilities],
        opset=17,
        ir_version=8,
        extra_opsets={ML_DOMAIN: 3},
    )


def sequence_model() -> onnx.ModelProto:
    """a [n] (FP32) -> pair, a sequence of two tensors (a, a), and maybe, an optional of a."""
    return make_model(
        [
            helper.make_node("SequenceConstruct", ["a", "a"], ["pair"]),
            helper.make_node("Optional", ["a"], ["maybe"]),
        ],
        [tensor_info("a", TensorProto.FLOAT, ["n"])],
        [
            helper.make_tensor_sequence_value_info("pair", TensorProto.FLOAT, ["n"]),
            helper.make_value_info(
                "maybe",
                helper.make_optional_type_proto(
                    helper.make_tensor_type_proto(TensorProto.FLOAT, ["n"])
                ),
            ),
        ],
        opset=18,
        ir_version=8,
    )


def dict_vectorizer_model() -> onnx.ModelProto:
    """features, a map(string -> float), as a [1, 3] vector over the vocabulary a, b, c."""
    features = helper.make_value_info(
        "features",
        helper.make_map_type_proto(
            TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
        ),
    )
    node = helper.make_node(
        "DictVectorizer",
        ["features"],
        ["vector"],
        domain=ML_DOMAIN,
        string_vocabulary=["a", "b", "c"],
    )
    return make_model(
        [node],
        [features],
        [tensor_info("vector", TensorProto.FLOAT, [1, 3])],
        opset=17,
        ir_version=8,
        extra_opsets={ML_DOMAIN: 3},
    )
