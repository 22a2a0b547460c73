"""The rules that decide whether bytes are an ONNX model that ONNX Runtime can run.

Each rule is one check raising a typed InvalidModel that names the values. The rules parse
untrusted bytes in the process that calls them, so the store runs them only inside the
validation child (see sandbox.py); call them directly only on trusted bytes, or in tests.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError, Message

from modelchain.models_store.errors import (
    InvalidModel,
    ModelBadSignature,
    ModelCheckerFailed,
    ModelExternalData,
    ModelNotOnnx,
    ModelSessionFailed,
    ModelTooLarge,
    ModelUnsupportedIrVersion,
    ModelUnsupportedOp,
    ModelUnsupportedOpset,
    ModelUnsupportedType,
    ModelValidationMemory,
    describe_bytes,
    is_out_of_memory_message,
)
from modelchain.models_store.runtime import create_session
from modelchain.models_store.signature import (
    ModelSignature,
    extract_signature,
    iter_json_ints,
    normalize_domain,
)

MAX_JSON_SAFE_INT = 2**53 - 1  # the largest integer a browser's Number holds exactly
MAX_MESSAGE_DETAIL_CHARS = 400  # of a checker's or ONNX Runtime's message quoted to people


def validate_model_file(path: Path, max_bytes: int) -> ModelSignature:
    """Reads the model file (at most max_bytes) and applies every rule to its bytes."""
    with open(path, "rb") as file:
        # read(n) allocates n bytes up front: ask for the file's size, not the limit
        size = os.fstat(file.fileno()).st_size
        data = file.read(min(size, max_bytes) + 1)
    if len(data) > max_bytes:
        raise ModelTooLarge(f"model file is over the {describe_bytes(max_bytes)} limit")
    return validate_model_bytes(data)


def validate_model_bytes(data: bytes) -> ModelSignature:
    """The signature of data if it is an ONNX model ONNX Runtime can run; else InvalidModel.

    The cheap rules run on our parsed copy first; the checker and ONNX Runtime parse their
    own copies after ours is freed, which keeps the peak memory near 4x the file's size.
    """
    model = parse_model(data)
    validate_no_external_data(model)
    validate_ir_version(model)
    validate_opsets(model)
    validate_ops(model)
    signature = extract_signature(model, len(data))
    del model
    validate_checker(data)
    validate_session(data)
    validate_signature_fits_json(signature)
    return signature


# --- the rules, in the order they run -----------------------------------------------------


def parse_model(data: bytes) -> onnx.ModelProto:
    """data parsed as an ONNX ModelProto that has a graph and an IR version."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError as err:
        if is_out_of_memory_message(str(err)):
            raise _out_of_memory("parsing the model") from None
        raise ModelNotOnnx(
            f"the file is not an ONNX model: its {len(data)} bytes do not parse as one"
        ) from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelNotOnnx(
            f"the file is not an ONNX model: its {len(data)} bytes hold no graph and IR version"
        )
    return model


def validate_no_external_data(model: onnx.ModelProto) -> None:
    """Every tensor carries its data inside the file: none names an external file.

    Nothing is opened to check this: a model naming "../../etc/passwd" is rejected on its
    word.
    """
    for tensor in iter_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0:
            location = next(
                (entry.value for entry in tensor.external_data if entry.key == "location"), ""
            )
            raise ModelExternalData(
                f"tensor {_quote(tensor.name)} keeps its data in an external file "
                f"{_quote(location)}; a model must carry all its data in its one file"
            )


def validate_ir_version(model: onnx.ModelProto) -> None:
    """The IR version is one the onnx checker reads (ONNX Runtime's own limit is read from
    its message when it loads the model)."""
    if model.ir_version > onnx.IR_VERSION:
        raise ModelUnsupportedIrVersion(
            f"the model's IR version is {model.ir_version}, newer than {onnx.IR_VERSION}, "
            "the newest this node reads"
        )


def validate_opsets(model: onnx.ModelProto) -> None:
    """Each opset imported (by the model or its functions) is one ONNX Runtime implements."""
    newest = runtime_max_opsets()
    for opset in _all_opset_imports(model):
        domain = normalize_domain(opset.domain)
        if domain in newest and opset.version > newest[domain]:
            raise ModelUnsupportedOpset(
                f"the model imports opset {opset.version} of domain {domain}; "
                f"ONNX Runtime {ort.__version__} runs up to opset {newest[domain]}"
            )


def validate_ops(model: onnx.ModelProto) -> None:
    """Each node's op is a model-local function or an operator ONNX Runtime has at the
    imported opset (not yet introduced, or removed, is unsupported too)."""
    if not runtime_operator_versions():
        return
    local = {(normalize_domain(func.domain), func.name) for func in model.functions}
    imports = _imports_by_domain(model.opset_import)
    for node in _iter_nodes(model.graph.node):
        _validate_op(node, imports, local)
    for func in model.functions:
        func_imports = _imports_by_domain(func.opset_import)
        for node in _iter_nodes(func.node):
            _validate_op(node, func_imports, local)


def validate_checker(data: bytes) -> None:
    """onnx.checker.check_model(full_check=True) accepts the model."""
    try:
        onnx.checker.check_model(data, full_check=True)
    except MemoryError:
        raise _out_of_memory("checking the model") from None
    except Exception as err:  # ValidationError, InferenceError, ...: all say "not valid"
        if is_out_of_memory_message(str(err)):
            raise _out_of_memory("checking the model") from None
        raise ModelCheckerFailed(
            f"the ONNX checker rejects the model: {_detail(str(err))}"
        ) from None


def validate_session(data: bytes) -> None:
    """ONNX Runtime creates a session for the model, with the options serving uses."""
    try:
        session = create_session(data)
    except MemoryError:
        raise _out_of_memory("creating an ONNX Runtime session") from None
    except Exception as err:  # ORT's exceptions share no base below Exception
        raise classify_session_error(str(err)) from None
    del session


def validate_signature_fits_json(signature: ModelSignature) -> None:
    """Every number the registry would record is an integer from 0 to 2**53 - 1."""
    for where, value in iter_json_ints(signature.to_json()):
        if not 0 <= value <= MAX_JSON_SAFE_INT:
            raise ModelBadSignature(
                f"{where} is {value}; the registry records integers from 0 to 2**53 - 1"
            )


# --- what ONNX Runtime implements ------------------------------------------------------------


@functools.cache
def runtime_operator_versions() -> dict[tuple[str, str], tuple[tuple[int, bool], ...]]:
    """(domain, op) -> the (since_version, deprecated) of each schema ONNX Runtime registers,
    oldest first; empty if this ONNX Runtime does not list them."""
    try:  # the one place ORT lists its operators; private, so it may go away one day
        from onnxruntime.capi._pybind_state import get_all_operator_schema
    except ImportError:
        return {}  # then ORT's own messages at session creation name what it cannot run
    table: dict[tuple[str, str], list[tuple[int, bool]]] = {}
    for schema in get_all_operator_schema():
        key = (normalize_domain(schema.domain), schema.name)
        table.setdefault(key, []).append((schema.since_version, bool(schema.deprecated)))
    return {key: tuple(sorted(versions)) for key, versions in table.items()}


@functools.cache
def runtime_max_opsets() -> dict[str, int]:
    """domain -> the newest opset ONNX Runtime implements (its own load check agrees)."""
    newest: dict[str, int] = {}
    for (domain, _), versions in runtime_operator_versions().items():
        newest[domain] = max(newest.get(domain, 0), versions[-1][0])
    return newest


def classify_session_error(message: str) -> InvalidModel:
    """The InvalidModel for ONNX Runtime's message on failing to create a session."""
    lowered = message.lower()
    detail = _detail(_runtime_detail(message))
    runtime = f"ONNX Runtime {ort.__version__}"
    if is_out_of_memory_message(lowered):
        return _out_of_memory("creating an ONNX Runtime session")
    if any(
        marker in lowered
        for marker in (
            "could not find an implementation",
            "is not a registered function/op",
            "no op registered",
        )
    ):
        return ModelUnsupportedOp(f"{runtime} cannot run an op of the model: {detail}")
    if "unsupported model ir version" in lowered:
        return ModelUnsupportedIrVersion(f"{runtime} cannot load the model: {detail}")
    if "official support for domain" in lowered or "is under development" in lowered:
        return ModelUnsupportedOpset(f"{runtime} does not implement an opset: {detail}")
    if "mldatatype for" in lowered or "is not currently registered or supported" in lowered:
        return ModelUnsupportedType(f"{runtime} does not support a type the model uses: {detail}")
    return ModelSessionFailed(f"{runtime} cannot create a session for the model: {detail}")


# --- helpers ---------------------------------------------------------------------------------


@functools.cache
def _tensor_fields() -> dict[str, tuple[Any, ...]]:
    """For each message type reachable from ModelProto, its fields that can lead to a tensor.

    Walking only these visits every TensorProto (initializers, Constant values, sparse
    tensors, subgraphs, functions, training info) without touching raw data or types.
    """
    tensor = onnx.TensorProto.DESCRIPTOR.full_name
    descriptors: dict[str, Any] = {}
    pending = [onnx.ModelProto.DESCRIPTOR]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in descriptors:
            continue
        descriptors[descriptor.full_name] = descriptor
        pending.extend(f.message_type for f in descriptor.fields if f.message_type is not None)
    reaches = {tensor}
    changed = True
    while changed:  # grow to a fixed point: graphs hold nodes hold attributes hold graphs
        changed = False
        for name, descriptor in descriptors.items():
            if name not in reaches and any(
                f.message_type is not None and f.message_type.full_name in reaches
                for f in descriptor.fields
            ):
                reaches.add(name)
                changed = True
    return {
        name: tuple(
            f
            for f in descriptor.fields
            if f.message_type is not None and f.message_type.full_name in reaches
        )
        for name, descriptor in descriptors.items()
    }


def iter_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto anywhere inside model."""
    fields = _tensor_fields()
    tensor = onnx.TensorProto.DESCRIPTOR.full_name
    pending: list[Message] = [model]
    while pending:
        message = pending.pop()
        name = message.DESCRIPTOR.full_name
        if name == tensor:
            yield message  # type: ignore[misc]
            continue
        for field in fields[name]:
            if field.is_repeated:
                pending.extend(getattr(message, field.name))
            elif message.HasField(field.name):
                pending.append(getattr(message, field.name))


def _iter_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    pending = list(nodes)
    while pending:
        node = pending.pop()
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                pending.extend(attribute.g.node)
            for graph in attribute.graphs:
                pending.extend(graph.node)


def _all_opset_imports(model: onnx.ModelProto) -> Iterator[onnx.OperatorSetIdProto]:
    yield from model.opset_import
    for func in model.functions:
        yield from func.opset_import


def _imports_by_domain(opsets: Iterable[onnx.OperatorSetIdProto]) -> dict[str, int]:
    return {normalize_domain(opset.domain): opset.version for opset in opsets}


def _validate_op(
    node: onnx.NodeProto, imports: dict[str, int], local: set[tuple[str, str]]
) -> None:
    domain = normalize_domain(node.domain)
    key = (domain, node.op_type)
    version = imports.get(domain)
    if key in local or version is None:  # the checker reports a domain that is not imported
        return
    op = _quote(node.op_type)
    runtime = f"ONNX Runtime {ort.__version__}"
    schemas = runtime_operator_versions().get(key)
    if schemas is None:
        if domain not in runtime_max_opsets():
            raise ModelUnsupportedOp(
                f"op {op} is in domain {_quote(domain)}, where {runtime} has no operators"
            )
        raise ModelUnsupportedOp(f"op {op} is not an operator of domain {domain} in {runtime}")
    usable = [(since, deprecated) for since, deprecated in schemas if since <= version]
    if not usable:
        raise ModelUnsupportedOp(
            f"op {op} of domain {domain} first appears in opset {schemas[0][0]}; "
            f"the model imports opset {version}"
        )
    since, deprecated = usable[-1]
    if deprecated:
        raise ModelUnsupportedOp(
            f"op {op} was removed from domain {domain} in opset {since}; "
            f"the model imports opset {version}"
        )


def _out_of_memory(doing: str) -> ModelValidationMemory:
    return ModelValidationMemory(f"validation ran out of its memory limit while {doing}")


_RUNTIME_PREFIX = re.compile(r"^\s*\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_SOURCE_LOCATION = re.compile(r"/onnxruntime_src/\S+:\d+\s+")


def _runtime_detail(message: str) -> str:
    """ONNX Runtime's message without its status prefix and C++ source location."""
    text = _RUNTIME_PREFIX.sub("", message)
    match = _SOURCE_LOCATION.search(text)
    if match is None:
        return text
    rest = text[match.end() :]
    opening = rest.find("(")
    if opening < 0:
        return text[: match.start()] + rest
    end = _matching_close(rest, opening, "(", ")")  # skip the C++ signature that follows
    if end < 0:
        return text
    rest = rest[end + 1 :].lstrip()
    if rest.startswith("[with"):  # and the template arguments after it
        end = _matching_close(rest, 0, "[", "]")
        rest = rest[end + 1 :] if end >= 0 else rest
    return (text[: match.start()] + rest).strip()


def _matching_close(text: str, start: int, opening: str, closing: str) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _detail(message: str) -> str:
    text = " ".join(message.split())
    if len(text) > MAX_MESSAGE_DETAIL_CHARS:
        text = text[: MAX_MESSAGE_DETAIL_CHARS - 3] + "..."
    return text


def _quote(name: str, limit: int = 80) -> str:
    return repr(name if len(name) <= limit else name[: limit - 3] + "...")
