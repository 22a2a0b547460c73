"""The validation rules, run in-process on bytes: what is accepted, what is rejected and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelchain.models_store.errors import InvalidModel
from modelchain.models_store.signature import ModelSignature
from modelchain.models_store.validate import (
    classify_session_error,
    iter_tensors,
    runtime_max_opsets,
    validate_model_bytes,
)


def rejection_code(data: bytes) -> str:
    with pytest.raises(InvalidModel) as err:
        validate_model_bytes(data)
    assert err.value.http_status in (400, 413)
    assert str(err.value)
    return err.value.code


def floats_in(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for item in value.values() for f in floats_in(item)]
    if isinstance(value, list):
        return [f for item in value for f in floats_in(item)]
    return []


# --- accepted -------------------------------------------------------------------------


def test_identity_over_every_element_type_onnx_runtime_runs_is_accepted(
    models: Any, element_type: tuple[str, int]
) -> None:
    name, code = element_type
    signature = validate_model_bytes(models.identity(code).SerializeToString())
    expected = {"tensor": {"elem_type": name, "shape": ["n", 2]}}
    assert [value.to_json() for value in signature.inputs] == [{"name": "x", "type": expected}]
    assert [value.to_json() for value in signature.outputs] == [{"name": "y", "type": expected}]


def test_a_model_with_many_inputs_and_outputs_keeps_their_names_types_and_order(
    models: Any,
) -> None:
    signature = validate_model_bytes(models.all_dtypes().SerializeToString())
    names = list(models.identity_element_types)
    assert [value.name for value in signature.inputs] == [f"in_{name}" for name in names]
    assert [value.name for value in signature.outputs] == [f"out_{name}" for name in names]
    assert [value.type.elem_type for value in signature.outputs] == names  # type: ignore[union-attr]


def test_a_classifier_with_zipmap_records_a_sequence_of_maps_output(models: Any) -> None:
    signature = validate_model_bytes(models.classifier_zipmap().SerializeToString()).to_json()
    assert signature["outputs"] == [
        {"name": "label", "type": {"tensor": {"elem_type": "int64", "shape": ["N"]}}},
        {
            "name": "probabilities",
            "type": {
                "sequence": {
                    "map": {
                        "key": "int64",
                        "value": {"tensor": {"elem_type": "float32", "shape": []}},
                    }
                }
            },
        },
    ]
    assert signature["opsets"] == {"ai.onnx": 17, "ai.onnx.ml": 3}


def test_a_classifier_with_string_labels_records_string_map_keys(models: Any) -> None:
    signature = validate_model_bytes(
        models.classifier_zipmap(string_labels=True).SerializeToString()
    )
    probabilities = signature.outputs[1].to_json()["type"]
    assert probabilities["sequence"]["map"]["key"] == "string"


def test_a_map_input_and_sequence_and_optional_outputs_are_accepted(models: Any) -> None:
    vectorizer = validate_model_bytes(models.dict_vectorizer().SerializeToString())
    assert vectorizer.inputs[0].to_json()["type"] == {
        "map": {"key": "string", "value": {"tensor": {"elem_type": "float32", "shape": []}}}
    }
    sequences = validate_model_bytes(models.sequence_and_optional().SerializeToString())
    assert [value.to_json()["type"] for value in sequences.outputs] == [
        {"sequence": {"tensor": {"elem_type": "float32", "shape": ["n"]}}},
        {"optional": {"tensor": {"elem_type": "float32", "shape": ["n"]}}},
    ]


def test_symbolic_fixed_unknown_and_negative_dimensions_are_recorded(models: Any) -> None:
    model = models.relu(shape=["batch", None, 3])
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -1  # an exporter's "unknown"
    signature = validate_model_bytes(model.SerializeToString())
    assert signature.inputs[0].to_json()["type"]["tensor"]["shape"] == ["batch", None, 3]
    assert signature.outputs[0].to_json()["type"]["tensor"]["shape"] == ["batch", None, 3]


def test_the_signature_records_opsets_ir_producer_parameters_and_size(models: Any) -> None:
    model = models.weighted(10)
    model.producer_name = "pytorch"
    model.producer_version = "2.5.0"
    data = model.SerializeToString()
    signature = validate_model_bytes(data).to_json()
    assert signature["opsets"] == {"ai.onnx": 21}
    assert signature["ir_version"] == 10
    assert (signature["producer_name"], signature["producer_version"]) == ("pytorch", "2.5.0")
    assert signature["parameter_count"] == 10
    assert signature["size_bytes"] == len(data)


def test_initializers_listed_as_graph_inputs_are_not_inputs_a_caller_feeds(models: Any) -> None:
    model = models.weighted(4)
    model.graph.input.append(models.tensor_info("w", TensorProto.FLOAT, [4]))
    signature = validate_model_bytes(model.SerializeToString())
    assert [value.name for value in signature.inputs] == ["x"]


def test_the_parameter_count_includes_initializers_of_subgraphs(models: Any) -> None:
    def branch(name: str, elements: int) -> onnx.GraphProto:
        weights = numpy_helper.from_array(np.ones(elements, dtype=np.float32), f"{name}_w")
        return helper.make_graph(
            [helper.make_node("Identity", [f"{name}_w"], [f"{name}_out"])],
            name,
            [],
            [models.tensor_info(f"{name}_out", TensorProto.FLOAT, [elements])],
            initializer=[weights],
        )

    model = models.make(
        [
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=branch("then", 5), else_branch=branch("else", 5)
            )
        ],
        [models.tensor_info("cond", TensorProto.BOOL, [])],
        [models.tensor_info("y", TensorProto.FLOAT, [5])],
        initializers=[numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "unused")],
    )
    assert validate_model_bytes(model.SerializeToString()).parameter_count == 6 + 5 + 5


def test_a_model_local_function_is_accepted(models: Any) -> None:
    double = helper.make_function(
        "com.example",
        "Double",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 21)],
    )
    model = models.make(
        [helper.make_node("Double", ["x"], ["y"], domain="com.example")],
        [models.tensor_info("x", TensorProto.FLOAT, [2])],
        [models.tensor_info("y", TensorProto.FLOAT, [2])],
        extra_opsets={"com.example": 1},
        functions=[double],
    )
    assert validate_model_bytes(model.SerializeToString()).opsets == (
        ("ai.onnx", 21),
        ("com.example", 1),
    )


def test_the_signature_json_holds_no_floats_and_survives_a_json_round_trip(models: Any) -> None:
    for model in (models.classifier_zipmap(), models.all_dtypes(), models.weighted(3)):
        signature = validate_model_bytes(model.SerializeToString())
        encoded = signature.to_json()
        assert floats_in(encoded) == []
        decoded = json.loads(json.dumps(encoded, sort_keys=True, separators=(",", ":")))
        assert ModelSignature.from_json(decoded) == signature


# --- rejected ---------------------------------------------------------------------------


def test_each_bad_file_is_rejected_with_its_reason(bad_model: tuple[bytes, str]) -> None:
    data, code = bad_model
    assert rejection_code(data) == code


def test_an_opset_of_the_ml_domain_from_the_future_is_unsupported(models: Any) -> None:
    model = models.classifier_zipmap()
    model.opset_import[1].version = runtime_max_opsets()["ai.onnx.ml"] + 1
    assert rejection_code(model.SerializeToString()) == "model-unsupported-opset"


def test_an_op_used_before_the_opset_that_introduced_it_is_unsupported(models: Any) -> None:
    model = models.make(
        [helper.make_node("Gelu", ["x"], ["y"])],  # Gelu arrived in opset 20
        [models.tensor_info("x", TensorProto.FLOAT, [2])],
        [models.tensor_info("y", TensorProto.FLOAT, [2])],
        opset=17,
    )
    assert rejection_code(model.SerializeToString()) == "model-unsupported-op"


def test_an_op_removed_from_its_domain_is_unsupported(models: Any) -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    model = models.make(
        [helper.make_node("Upsample", ["x", "scales"], ["y"])],  # deprecated in opset 10
        [models.tensor_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [models.tensor_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        initializers=[scales],
        opset=11,
        ir_version=6,
    )
    assert rejection_code(model.SerializeToString()) == "model-unsupported-op"


def test_an_unknown_op_inside_a_subgraph_is_unsupported(models: Any) -> None:
    def branch(name: str, op: str, domain: str = "") -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node(op, ["x"], [f"{name}_out"], domain=domain)],
            name,
            [],
            [models.tensor_info(f"{name}_out", TensorProto.FLOAT, [2])],
        )

    model = models.make(
        [
            helper.make_node(
                "If",
                ["cond"],
                ["y"],
                then_branch=branch("then", "Relu"),
                else_branch=branch("else", "Frobnicate", "com.example"),
            )
        ],
        [
            models.tensor_info("cond", TensorProto.BOOL, []),
            models.tensor_info("x", TensorProto.FLOAT, [2]),
        ],
        [models.tensor_info("y", TensorProto.FLOAT, [2])],
        extra_opsets={"com.example": 1},
    )
    assert rejection_code(model.SerializeToString()) == "model-unsupported-op"


def _external(tensor: onnx.TensorProto, location: str = "weights.bin") -> onnx.TensorProto:
    onnx.external_data_helper.set_external_data(tensor, location=location)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    return tensor


def _constant_node_with_external_value(models: Any) -> onnx.ModelProto:
    value = _external(numpy_helper.from_array(np.ones(2, dtype=np.float32), "c"))
    return models.make(
        [
            helper.make_node("Constant", [], ["c"], value=value),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        [models.tensor_info("x", TensorProto.FLOAT, [2])],
        [models.tensor_info("y", TensorProto.FLOAT, [2])],
    )


def _subgraph_initializer_external(models: Any) -> onnx.ModelProto:
    def branch(name: str) -> onnx.GraphProto:
        weights = numpy_helper.from_array(np.ones(2, dtype=np.float32), f"{name}_w")
        if name == "else":
            _external(weights)
        return helper.make_graph(
            [helper.make_node("Identity", [f"{name}_w"], [f"{name}_out"])],
            name,
            [],
            [models.tensor_info(f"{name}_out", TensorProto.FLOAT, [2])],
            initializer=[weights],
        )

    return models.make(
        [
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=branch("then"), else_branch=branch("else")
            )
        ],
        [models.tensor_info("cond", TensorProto.BOOL, [])],
        [models.tensor_info("y", TensorProto.FLOAT, [2])],
    )


def _function_constant_external(models: Any) -> onnx.ModelProto:
    value = _external(numpy_helper.from_array(np.ones(2, dtype=np.float32), "k"))
    function = helper.make_function(
        "com.example",
        "AddK",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["k"], value=value),
            helper.make_node("Add", ["a", "k"], ["b"]),
        ],
        [helper.make_opsetid("", 21)],
    )
    return models.make(
        [helper.make_node("AddK", ["x"], ["y"], domain="com.example")],
        [models.tensor_info("x", TensorProto.FLOAT, [2])],
        [models.tensor_info("y", TensorProto.FLOAT, [2])],
        extra_opsets={"com.example": 1},
        functions=[function],
    )


def _sparse_initializer_external(models: Any) -> onnx.ModelProto:
    values = _external(numpy_helper.from_array(np.ones(1, dtype=np.float32), "s"))
    indices = numpy_helper.from_array(np.array([0], dtype=np.int64), "s_indices")
    model = models.relu()
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    return model


def _location_flag_without_entries(models: Any) -> onnx.ModelProto:
    model = models.weighted(4)
    model.graph.initializer[0].data_location = TensorProto.EXTERNAL
    return model


@pytest.mark.parametrize(
    "build",
    [
        _constant_node_with_external_value,
        _subgraph_initializer_external,
        _function_constant_external,
        _sparse_initializer_external,
        _location_flag_without_entries,
    ],
    ids=lambda build: build.__name__.strip("_"),
)
def test_external_data_anywhere_in_the_model_is_rejected(models: Any, build: Any) -> None:
    assert rejection_code(build(models).SerializeToString()) == "model-external-data"


def test_iter_tensors_visits_initializers_attributes_subgraphs_and_functions(models: Any) -> None:
    names = {tensor.name for tensor in iter_tensors(_function_constant_external(models))}
    assert names == {"k"}
    names = {tensor.name for tensor in iter_tensors(_subgraph_initializer_external(models))}
    assert names == {"then_w", "else_w"}


@pytest.mark.parametrize("style", ["absolute", "traversal"])
def test_model_naming_a_file_as_external_data_is_rejected_without_opening_it(
    models: Any,
    sentinel: tuple[Path, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    style: str,
) -> None:
    path, watch = sentinel
    workdir = tmp_path / "a" / "b"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)  # where a relative location would be looked up
    location = str(path) if style == "absolute" else "../../secret"
    assert rejection_code(models.external_data(location).SerializeToString()) == (
        "model-external-data"
    )
    assert watch.events() == []
    path.read_bytes()
    assert watch.events(), "the watch itself must see an open"


def test_model_naming_etc_passwd_as_external_data_is_rejected(models: Any) -> None:
    data = models.external_data("../../etc/passwd").SerializeToString()
    assert rejection_code(data) == "model-external-data"


# --- how ONNX Runtime's messages are read -------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
            "Identity(21) node with name ''",
            "model-unsupported-op",
        ),
        (
            "[ONNXRuntimeError] : 1 : FAIL : Fatal error: com.x:Foo(-1) is not a registered "
            "function/op",
            "model-unsupported-op",
        ),
        (
            "[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/graph/model.cc:256 "
            "onnxruntime::Model::Model(onnx::ModelProto&&) Unsupported model IR version: 15, max "
            "supported IR version: 14",
            "model-unsupported-ir-version",
        ),
        (
            "Opset 29 is under development and support for this is limited. Current official "
            "support for domain ai.onnx is till opset 28.",
            "model-unsupported-opset",
        ),
        (
            "[ONNXRuntimeError] : 1 : FAIL : Exception during loading: MLDataType for: "
            "tensor(complex64) is not currently registered or supported",
            "model-unsupported-type",
        ),
        (
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Exception during initialization: "
            "std::bad_alloc",
            "model-validation-memory",
        ),
        ("something nobody expected", "model-session-failed"),
    ],
)
def test_onnx_runtime_session_errors_map_to_reason_codes(message: str, code: str) -> None:
    assert classify_session_error(message).code == code


def test_onnx_runtime_messages_lose_their_cpp_source_locations() -> None:
    error = classify_session_error(
        "[ONNXRuntimeError] : 1 : FAIL : Exception during initialization: "
        "/onnxruntime_src/onnxruntime/core/providers/cpu/tensor/padbase.h:236 "
        "onnxruntime::PadBase::PadBase(const KernelInfoType&) [with KernelInfoType = "
        "onnxruntime::OpKernelInfo] Invalid 'mode' attribute value"
    )
    assert error.message.endswith(
        "cannot create a session for the model: Exception during initialization: "
        "Invalid 'mode' attribute value"
    )


def test_a_dimension_the_registry_cannot_record_exactly_is_rejected(models: Any) -> None:
    model = models.relu(shape=["batch", 2**60])  # the checker and ONNX Runtime accept it
    assert rejection_code(model.SerializeToString()) == "model-bad-signature"
