"""Factories for the models_store tests: small ONNX models built with onnx.helper, a store
per test, and the corpus of bad files; nothing is downloaded."""

from __future__ import annotations

import ctypes
import io
import os
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_factories import (
    ELEMENT_TYPES,
    all_dtypes_model,
    dict_vectorizer_model,
    identity_model,
    make_model,
    sequence_model,
    tensor_info,
    zipmap_classifier_model,
)

from modelchain.models_store import ModelStore, ValidationLimits
from modelchain.models_store.errors import MIB
from modelchain.models_store.sandbox import inspect_model
from modelchain.models_store.signature import ModelSignature

IDENTITY_ELEMENT_TYPES = ELEMENT_TYPES


def relu_model(shape: Sequence[int | str | None] = ("batch", 3)) -> onnx.ModelProto:
    return make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [tensor_info("x", TensorProto.FLOAT, shape)],
        [tensor_info("y", TensorProto.FLOAT, shape)],
    )


def weighted_model(elements: int) -> onnx.ModelProto:
    """y = x + w with w a float32 initializer of `elements` zeros (4 bytes each)."""
    weights = numpy_helper.from_array(np.zeros(elements, dtype=np.float32), "w")
    return make_model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [tensor_info("x", TensorProto.FLOAT, [elements])],
        [tensor_info("y", TensorProto.FLOAT, [elements])],
        initializers=[weights],
    )


def external_data_model(location: str) -> onnx.ModelProto:
    """A model whose initializer says its data lies in the file `location`."""
    weights = numpy_helper.from_array(np.ones(4, dtype=np.float32), "w")
    onnx.external_data_helper.set_external_data(weights, location=location)
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    return make_model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [tensor_info("x", TensorProto.FLOAT, [4])],
        [tensor_info("y", TensorProto.FLOAT, [4])],
        initializers=[weights],
    )


def matmul_bomb_model(size: int) -> onnx.ModelProto:
    """A 300-byte file whose session creation folds a size x size MatMul of constants: with
    size 8000, a trillion multiply-adds before the session exists."""
    shape = numpy_helper.from_array(np.array([size, size], dtype=np.int64), "shape")
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32))
    return make_model(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["a"], value=one),
            helper.make_node("MatMul", ["a", "a"], ["b"]),
            helper.make_node("ReduceSum", ["b"], ["s"], keepdims=0),
            helper.make_node("Add", ["x", "s"], ["y"]),
        ],
        [tensor_info("x", TensorProto.FLOAT, [1])],
        [tensor_info("y", TensorProto.FLOAT, [1])],
        initializers=[shape],
    )


def _truncated() -> bytes:
    data = weighted_model(64).SerializeToString()
    return data[: len(data) // 2]


def _random_bytes() -> bytes:
    return np.random.default_rng(20240501).bytes(4096)


def _checker_failure() -> bytes:  # Relu takes one input, this node gives it two
    model = make_model(
        [helper.make_node("Relu", ["x", "x"], ["y"])],
        [tensor_info("x", TensorProto.FLOAT, [2])],
        [tensor_info("y", TensorProto.FLOAT, [2])],
    )
    return model.SerializeToString()


def _unknown_op(domain: str) -> bytes:
    model = make_model(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain=domain)],
        [tensor_info("x", TensorProto.FLOAT, [2])],
        [tensor_info("y", TensorProto.FLOAT, [2])],
        extra_opsets={domain: 1} if domain else None,
    )
    return model.SerializeToString()


def _future_opset() -> bytes:
    model = relu_model()
    model.opset_import[0].version = 99
    return model.SerializeToString()


def _future_ir_version() -> bytes:
    model = relu_model()
    model.ir_version = onnx.IR_VERSION + 1
    return model.SerializeToString()


def _session_failure() -> bytes:  # checker-valid, but ORT's Pad kernel refuses the mode
    pads = numpy_helper.from_array(np.array([0, 1, 0, 1], dtype=np.int64), "pads")
    model = make_model(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="bogus")],
        [tensor_info("x", TensorProto.FLOAT, ["n", 2])],
        [tensor_info("y", TensorProto.FLOAT, ["n", 4])],
        initializers=[pads],
    )
    return model.SerializeToString()


# name -> (bytes factory, reason code): every bad file the store must reject.
BAD_MODELS: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "model-not-onnx"),
    "random-bytes": (_random_bytes, "model-not-onnx"),
    "truncated": (_truncated, "model-not-onnx"),
    "tensor-proto": (
        lambda: numpy_helper.from_array(np.arange(16, dtype=np.float32), "t").SerializeToString(),
        "model-not-onnx",
    ),
    "graph-proto": (lambda: relu_model().graph.SerializeToString(), "model-not-onnx"),
    "checker-failure": (_checker_failure, "model-checker-failed"),
    "external-data-traversal": (
        lambda: external_data_model("../../etc/passwd").SerializeToString(),
        "model-external-data",
    ),
    "unknown-op": (lambda: _unknown_op(""), "model-unsupported-op"),
    "unknown-custom-domain-op": (lambda: _unknown_op("com.example"), "model-unsupported-op"),
    "no-kernel-for-type": (
        lambda: identity_model(TensorProto.UINT4).SerializeToString(),
        "model-unsupported-op",
    ),
    "future-opset": (_future_opset, "model-unsupported-opset"),
    "future-ir-version": (_future_ir_version, "model-unsupported-ir-version"),
    "unsupported-type": (
        lambda: identity_model(TensorProto.COMPLEX64).SerializeToString(),
        "model-unsupported-type",
    ),
    "session-failure": (_session_failure, "model-session-failed"),
}


class Models:
    """The model builders above and in onnx_factories, handed to tests by the `models` fixture."""

    make = staticmethod(make_model)
    tensor_info = staticmethod(tensor_info)
    relu = staticmethod(relu_model)
    identity = staticmethod(identity_model)
    all_dtypes = staticmethod(all_dtypes_model)
    classifier_zipmap = staticmethod(zipmap_classifier_model)
    dict_vectorizer = staticmethod(dict_vectorizer_model)
    sequence_and_optional = staticmethod(sequence_model)
    weighted = staticmethod(weighted_model)
    external_data = staticmethod(external_data_model)
    matmul_bomb = staticmethod(matmul_bomb_model)
    identity_element_types = IDENTITY_ELEMENT_TYPES


@pytest.fixture
def models() -> type[Models]:
    return Models


@pytest.fixture(params=sorted(BAD_MODELS))
def bad_model(request: pytest.FixtureRequest) -> tuple[bytes, str]:
    """(bytes, expected reason code) for each file of the bad corpus."""
    factory, code = BAD_MODELS[request.param]
    return factory(), code


@pytest.fixture(params=sorted(IDENTITY_ELEMENT_TYPES))
def element_type(request: pytest.FixtureRequest) -> tuple[str, int]:
    """(recorded name, ONNX code) of each element type ONNX Runtime runs Identity over."""
    return request.param, IDENTITY_ELEMENT_TYPES[request.param]


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store", max_bytes=16 * MIB)


@pytest.fixture
def limits() -> ValidationLimits:
    """The default limits, but a file limit matching the store fixture's."""
    return ValidationLimits(max_bytes=16 * MIB)


@pytest.fixture
def put_model(
    store: ModelStore, limits: ValidationLimits
) -> Callable[[bytes], tuple[ModelSignature, str]]:
    """Streams bytes into the store, validates them in the child, commits: as the market will."""

    def put(data: bytes, limits: ValidationLimits = limits) -> tuple[ModelSignature, str]:
        with store.staging(io.BytesIO(data)) as staged:
            signature = inspect_model(staged.path, limits)
            stored = staged.commit()
        return signature, stored.sha256

    return put


@pytest.fixture
def store_entries() -> Callable[[ModelStore], list[str]]:
    """Every name in a store's folder, temp files included."""

    def entries(store: ModelStore) -> list[str]:
        return sorted(entry.name for entry in store.root.iterdir())

    return entries


class OpenWatch:
    """Records every open of one file by any process, with Linux inotify (IN_OPEN)."""

    IN_OPEN = 0x20
    IN_ACCESS = 0x01

    def __init__(self, path: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            pytest.skip("inotify is not available")
        mask = self.IN_OPEN | self.IN_ACCESS
        if self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask) < 0:
            pytest.skip("cannot watch the sentinel file")

    def events(self) -> list[int]:
        masks = []
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return masks
        offset = 0
        while offset < len(data):  # struct inotify_event: int wd; u32 mask, cookie, len; name
            _, mask, _, length = struct.unpack_from("iIII", data, offset)
            masks.append(mask)
            offset += 16 + length
        return masks

    def close(self) -> None:
        os.close(self._fd)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[Path, OpenWatch]]:
    """A file a hostile model points at, and a watch that sees if anything opens it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux only")
    path = tmp_path / "secret"
    path.write_bytes(b"\x00" * 16)
    watch = OpenWatch(path)
    yield path, watch
    watch.close()
