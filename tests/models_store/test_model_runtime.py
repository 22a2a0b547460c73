"""Running validated models with ONNX Runtime: every element type in and out, non-tensor
outputs as plain Python, bad inputs named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto

from modelchain.models_store.errors import InferenceFailed, ModelBadInput
from modelchain.models_store.runtime import (
    NUMPY_DTYPES,
    create_session,
    numpy_dtype,
    run,
    tensor_elem_type,
    to_jsonable,
)
from modelchain.models_store.signature import ELEMENT_TYPE_CODES


def session_for(model: onnx.ModelProto) -> Any:
    return create_session(model.SerializeToString())


def sample(elem_type: str) -> np.ndarray:
    """A 3x2 array of the element type with distinct, exactly representable values."""
    if elem_type == "string":
        return np.array([["a", "b"], ["c", "d"], ["e", "ƒ"]], dtype=object)
    if elem_type == "bool":
        return np.array([[True, False], [False, True], [True, True]])
    return np.array([[0, 1], [2, 3], [4, 5]]).astype(numpy_dtype(elem_type))


def test_identity_returns_the_input_for_every_element_type(
    models: Any, element_type: tuple[str, int]
) -> None:
    name, code = element_type
    session = session_for(models.identity(code))
    given = sample(name)
    (output,) = run(session, {"x": given}).values()
    assert output.dtype == numpy_dtype(name)
    assert output.shape == given.shape
    assert output.tolist() == given.tolist()


def test_a_model_with_every_numeric_element_type_runs_in_one_call(models: Any) -> None:
    names = [name for name in models.identity_element_types if name != "string"]
    session = session_for(models.all_dtypes(names))
    feeds = {f"in_{name}": sample(name) for name in names}
    outputs = run(session, feeds)
    assert list(outputs) == [f"out_{name}" for name in names]
    for name in names:
        assert outputs[f"out_{name}"].dtype == numpy_dtype(name)
        assert outputs[f"out_{name}"].tolist() == feeds[f"in_{name}"].tolist()


def test_string_inputs_with_bfloat16_outputs_are_a_known_limit_of_the_python_binding(
    models: Any,
) -> None:
    session = session_for(models.all_dtypes(["string", "bfloat16"]))
    with pytest.raises(InferenceFailed) as err:
        run(session, {"in_string": sample("string"), "in_bfloat16": sample("bfloat16")})
    assert "Python binding" in str(err.value)


def test_sequence_outputs_next_to_bfloat16_outputs_are_returned_too(models: Any) -> None:
    model = models.sequence_and_optional()
    model.graph.node.append(onnx.helper.make_node("Cast", ["a"], ["half"], to=TensorProto.BFLOAT16))
    model.graph.output.append(models.tensor_info("half", TensorProto.BFLOAT16, ["n"]))
    outputs = run(session_for(model), {"a": np.array([1.5, -2], dtype=np.float32)})
    assert outputs["pair"] == [[1.5, -2.0], [1.5, -2.0]]
    assert outputs["half"].dtype == numpy_dtype("bfloat16")
    assert outputs["half"].tolist() == [1.5, -2.0]


def test_zipmap_outputs_become_a_list_of_dicts_with_int_keys(models: Any) -> None:
    session = session_for(models.classifier_zipmap())
    outputs = run(session, {"features": np.array([[1, 2, 3], [0, 0, 0]], dtype=np.float32)})
    assert isinstance(outputs["label"], np.ndarray)
    probabilities = outputs["probabilities"]
    assert [sorted(row) for row in probabilities] == [[0, 1], [0, 1]]
    assert all(type(key) is int for row in probabilities for key in row)
    assert all(abs(sum(row.values()) - 1) < 1e-6 for row in probabilities)
    json.dumps(probabilities)


def test_zipmap_outputs_with_string_labels_have_string_keys(models: Any) -> None:
    session = session_for(models.classifier_zipmap(string_labels=True))
    outputs = run(session, {"features": np.ones((1, 3), dtype=np.float32)})
    assert sorted(outputs["probabilities"][0]) == ["cat", "dog"]
    assert outputs["label"].tolist()[0] in ("cat", "dog")


def test_a_map_input_is_fed_as_a_dict(models: Any) -> None:
    session = session_for(models.dict_vectorizer())
    outputs = run(session, {"features": {"a": 1.0, "c": 2.5}})
    assert outputs["vector"].tolist() == [[1.0, 0.0, 2.5]]


def test_sequence_and_optional_outputs_become_lists(models: Any) -> None:
    session = session_for(models.sequence_and_optional())
    outputs = run(session, {"a": np.array([1.5, -2], dtype=np.float32)})
    assert outputs["pair"] == [[1.5, -2.0], [1.5, -2.0]]
    assert outputs["maybe"].tolist() == [1.5, -2.0]
    json.dumps(outputs["pair"])


def test_a_session_can_be_created_from_a_path(tmp_path: Path, models: Any) -> None:
    path = tmp_path / "relu.onnx"
    path.write_bytes(models.relu().SerializeToString())
    outputs = run(create_session(path), {"x": np.array([[-1, 0, 2]], dtype=np.float32)})
    assert outputs["y"].tolist() == [[0, 0, 2]]


@pytest.mark.parametrize(
    "feeds",
    [
        {},
        {"x": np.zeros((1, 3), dtype=np.float32), "extra": np.zeros(1)},
        {"x": np.zeros((1, 3), dtype=np.int32)},
        {"x": np.zeros((1, 4), dtype=np.float32)},
        {"x": "not a tensor"},
    ],
    ids=["missing", "unknown", "wrong-dtype", "wrong-shape", "not-an-array"],
)
def test_inputs_the_model_does_not_take_are_refused_with_a_reason(
    models: Any, feeds: dict[str, Any]
) -> None:
    with pytest.raises(ModelBadInput) as err:
        run(session_for(models.relu(shape=["batch", 3])), feeds)
    assert err.value.code == "model-bad-input"
    assert err.value.http_status == 400


def test_numpy_dtypes_agree_with_onnx_for_every_element_type() -> None:
    for name, dtype in NUMPY_DTYPES.items():
        onnx_dtype = onnx.helper.tensor_dtype_to_np_dtype(ELEMENT_TYPE_CODES[name])
        if name == "string":
            assert dtype == np.dtype(object)
        else:
            assert dtype == onnx_dtype, name


def test_runtime_type_strings_name_element_types_as_signatures_do() -> None:
    assert tensor_elem_type("tensor(float)") == "float32"
    assert tensor_elem_type("tensor(double)") == "float64"
    assert tensor_elem_type("tensor(bfloat16)") == "bfloat16"
    assert tensor_elem_type("seq(tensor(float))") is None


def test_to_jsonable_turns_numpy_values_into_plain_python() -> None:
    value = {
        np.int64(3): [np.float32(0.5), np.array([[1, 2]], dtype=np.uint8)],
        "b": np.array([1.5], dtype=ml_dtypes.bfloat16),
        "s": (np.bool_(True), b"bytes"),
    }
    assert to_jsonable(value) == {3: [0.5, [[1, 2]]], "b": [1.5], "s": [True, "bytes"]}
    json.dumps(to_jsonable(value))


def test_unknown_element_types_have_no_numpy_dtype() -> None:
    with pytest.raises(ValueError):
        numpy_dtype("elem-type-99")
    assert TensorProto.BFLOAT16 == ELEMENT_TYPE_CODES["bfloat16"]
