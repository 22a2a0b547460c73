"""What the registry records about a model: its inputs and outputs, opsets, producer and size.

A ModelSignature is read from a parsed ONNX ModelProto field by field (no ONNX import needed
here) and turns into plain JSON of ints, strings, lists, dicts and null, never floats, so it
can go on-chain as canonical JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, TypeProto

DEFAULT_DOMAIN = "ai.onnx"  # "" in a proto means the same domain

# ONNX TensorProto.DataType codes and the names we record them under (numpy's where one
# exists). The codes are part of the ONNX format and never change.
ELEMENT_TYPE_NAMES: dict[int, str] = {
    0: "undefined",
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4e2m1",
    24: "float8e8m0",
    25: "uint2",
    26: "int2",
    27: "float6e2m3",
    28: "float6e3m2",
}
ELEMENT_TYPE_CODES: dict[str, int] = {name: code for code, name in ELEMENT_TYPE_NAMES.items()}

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


def element_type_name(code: int) -> str:
    """The recorded name of an ONNX element type code ("elem-type-N" for codes from the future)."""
    return ELEMENT_TYPE_NAMES.get(code, f"elem-type-{code}")


def normalize_domain(domain: str) -> str:
    """The one spelling of an operator domain: "" and "ai.onnx" are the same."""
    return domain or DEFAULT_DOMAIN


@dataclass(frozen=True, slots=True)
class TensorType:
    """A dense tensor. shape is None when even the rank is unknown."""

    elem_type: str
    shape: tuple[Dim, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"tensor": _tensor_json(self.elem_type, self.shape)}


@dataclass(frozen=True, slots=True)
class SparseTensorType:
    """A sparse tensor. shape is None when even the rank is unknown."""

    elem_type: str
    shape: tuple[Dim, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"sparse_tensor": _tensor_json(self.elem_type, self.shape)}


@dataclass(frozen=True, slots=True)
class SequenceType:
    """A sequence whose items all have type elem."""

    elem: ValueType

    def to_json(self) -> dict[str, Any]:
        return {"sequence": self.elem.to_json()}


@dataclass(frozen=True, slots=True)
class MapType:
    """A map from a key element type (an integer type or "string") to values of one type."""

    key: str
    value: ValueType

    def to_json(self) -> dict[str, Any]:
        return {"map": {"key": self.key, "value": self.value.to_json()}}


@dataclass(frozen=True, slots=True)
class OptionalType:
    """A value of type elem, or none."""

    elem: ValueType

    def to_json(self) -> dict[str, Any]:
        return {"optional": self.elem.to_json()}


@dataclass(frozen=True, slots=True)
class OpaqueType:
    """A type known only by domain and name."""

    domain: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"opaque": {"domain": self.domain, "name": self.name}}


@dataclass(frozen=True, slots=True)
class UnknownType:
    """A value whose type the model does not state."""

    def to_json(self) -> dict[str, Any]:
        return {"unknown": {}}


ValueType = (
    TensorType | SparseTensorType | SequenceType | MapType | OptionalType | OpaqueType | UnknownType
)


@dataclass(frozen=True, slots=True)
class ValueInfo:
    """One input or output of a model: its name and type."""

    name: str
    type: ValueType

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.to_json()}


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """What the registry records about one model file.

    inputs: the graph inputs a caller feeds (initializers listed as inputs are left out).
    outputs: the graph outputs, in the model's order.
    opsets: (domain, version) pairs imported by the model, sorted by domain; "" is "ai.onnx".
    ir_version: the ONNX IR version the file declares.
    producer_name, producer_version: the tool that wrote the file, as it says.
    parameter_count: elements in all initializers, of the main graph and of subgraphs
        (a sparse initializer counts its stored values).
    size_bytes: the file's size.
    """

    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    opsets: tuple[tuple[str, int], ...]
    ir_version: int
    producer_name: str
    producer_version: str
    parameter_count: int
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: ints, strings, lists, dicts and null (an unknown dimension or rank)."""
        return {
            "inputs": [value.to_json() for value in self.inputs],
            "outputs": [value.to_json() for value in self.outputs],
            "opsets": dict(self.opsets),
            "ir_version": self.ir_version,
            "producer_name": self.producer_name,
            "producer_version": self.producer_version,
            "parameter_count": self.parameter_count,
            "size_bytes": self.size_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSignature:
        """The inverse of to_json; raises ValueError on JSON of another shape."""
        try:
            return cls(
                inputs=tuple(_value_info_from_json(item) for item in data["inputs"]),
                outputs=tuple(_value_info_from_json(item) for item in data["outputs"]),
                opsets=tuple(sorted((str(d), int(v)) for d, v in data["opsets"].items())),
                ir_version=int(data["ir_version"]),
                producer_name=str(data["producer_name"]),
                producer_version=str(data["producer_version"]),
                parameter_count=int(data["parameter_count"]),
                size_bytes=int(data["size_bytes"]),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not a model signature: {err!r}") from err


def _tensor_json(elem_type: str, shape: tuple[Dim, ...] | None) -> dict[str, Any]:
    return {"elem_type": elem_type, "shape": None if shape is None else list(shape)}


def _value_info_from_json(data: dict[str, Any]) -> ValueInfo:
    return ValueInfo(name=str(data["name"]), type=value_type_from_json(data["type"]))


def _shape_from_json(shape: list[Any] | None) -> tuple[Dim, ...] | None:
    if shape is None:
        return None
    dims: list[Dim] = []
    for dim in shape:
        if dim is not None and not isinstance(dim, int | str):
            raise ValueError(f"dimension {dim!r} is not an int, a name or null")
        dims.append(dim)
    return tuple(dims)


def value_type_from_json(data: dict[str, Any]) -> ValueType:
    """The ValueType a to_json() produced; raises ValueError on anything else."""
    try:
        return _value_type_from_json(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not a value type: {data!r} ({err!r})") from err


def _value_type_from_json(data: dict[str, Any]) -> ValueType:
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"a value type is a one-key object, got {data!r}")
    ((kind, body),) = data.items()
    if kind == "tensor":
        return TensorType(str(body["elem_type"]), _shape_from_json(body["shape"]))
    if kind == "sparse_tensor":
        return SparseTensorType(str(body["elem_type"]), _shape_from_json(body["shape"]))
    if kind == "sequence":
        return SequenceType(value_type_from_json(body))
    if kind == "map":
        return MapType(str(body["key"]), value_type_from_json(body["value"]))
    if kind == "optional":
        return OptionalType(value_type_from_json(body))
    if kind == "opaque":
        return OpaqueType(str(body["domain"]), str(body["name"]))
    if kind == "unknown":
        return UnknownType()
    raise ValueError(f"unknown value type kind {kind!r}")


# --- reading a ModelProto -----------------------------------------------------------------


def _shape_from_proto(type_with_shape: Any) -> tuple[Dim, ...] | None:
    if not type_with_shape.HasField("shape"):
        return None
    dims: list[Dim] = []
    for dim in type_with_shape.shape.dim:
        which = dim.WhichOneof("value")
        if which == "dim_value" and dim.dim_value >= 0:  # exporters write -1 for "unknown"
            dims.append(dim.dim_value)
        elif which == "dim_param" and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def value_type_from_proto(type_proto: TypeProto) -> ValueType:
    """The ValueType of an ONNX TypeProto; never raises on a proto that parsed."""
    which = type_proto.WhichOneof("value")
    if which == "tensor_type":
        tensor = type_proto.tensor_type
        return TensorType(element_type_name(tensor.elem_type), _shape_from_proto(tensor))
    if which == "sparse_tensor_type":
        sparse = type_proto.sparse_tensor_type
        return SparseTensorType(element_type_name(sparse.elem_type), _shape_from_proto(sparse))
    if which == "sequence_type":
        return SequenceType(value_type_from_proto(type_proto.sequence_type.elem_type))
    if which == "map_type":
        map_type = type_proto.map_type
        return MapType(
            element_type_name(map_type.key_type), value_type_from_proto(map_type.value_type)
        )
    if which == "optional_type":
        return OptionalType(value_type_from_proto(type_proto.optional_type.elem_type))
    if which == "opaque_type":
        return OpaqueType(type_proto.opaque_type.domain, type_proto.opaque_type.name)
    return UnknownType()


def iter_graphs(graph: GraphProto) -> Iterator[GraphProto]:
    """graph and every subgraph inside its nodes' attributes (If, Loop, Scan...), depth first."""
    stack = [graph]
    while stack:
        current = stack.pop()
        yield current
        for node in current.node:
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    stack.append(attribute.g)
                stack.extend(attribute.graphs)


_COUNT_CAP = 2**64  # past any real model; keeps a hostile list of huge dims from costing time


def _element_count(dims: Any) -> int:
    count = 1
    for dim in dims:
        count = min(count * dim, _COUNT_CAP)
    return count


def count_parameters(graph: GraphProto) -> int:
    """Elements in every initializer of graph and its subgraphs (sparse: stored values)."""
    total = 0
    for current in iter_graphs(graph):
        total += sum(_element_count(tensor.dims) for tensor in current.initializer)
        total += sum(_element_count(sparse.values.dims) for sparse in current.sparse_initializer)
    return total


def extract_signature(model: ModelProto, size_bytes: int) -> ModelSignature:
    """The signature of a parsed model; reads fields only, so it never raises on a parsed proto.

    Call it on a model the checker accepted, or check the result: nothing here validates.
    """
    graph = model.graph
    initializer_names = {tensor.name for tensor in graph.initializer}
    inputs = tuple(
        ValueInfo(value.name, value_type_from_proto(value.type))
        for value in graph.input
        if value.name not in initializer_names
    )
    outputs = tuple(
        ValueInfo(value.name, value_type_from_proto(value.type)) for value in graph.output
    )
    opsets = {normalize_domain(opset.domain): opset.version for opset in model.opset_import}
    return ModelSignature(
        inputs=inputs,
        outputs=outputs,
        opsets=tuple(sorted(opsets.items())),
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        parameter_count=count_parameters(graph),
        size_bytes=size_bytes,
    )


def iter_json_ints(value: Any, where: str = "signature") -> Iterator[tuple[str, int]]:
    """Every int inside a JSON value with a path naming it, for range checks before chain use."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_json_ints(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_json_ints(item, f"{where}[{index}]")
