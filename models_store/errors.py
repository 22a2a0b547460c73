"""The errors of the models_store layer: one base class, a family per concern.

Every error carries a stable kebab-case `code` for programs and tests and an `http_status`
for the web layer; its message is for people and names the values involved.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


class ModelStoreError(Exception):
    """Base of every error raised by models_store."""

    code = "model-error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- a model file is rejected: nothing is stored or registered -------------------------


class InvalidModel(ModelStoreError):
    """A file was rejected as a model; the subclass names the reason."""

    code = "model-invalid"


class ModelNotOnnx(InvalidModel):
    code = "model-not-onnx"


class ModelCheckerFailed(InvalidModel):
    code = "model-checker-failed"


class ModelExternalData(InvalidModel):
    code = "model-external-data"


class ModelTooLarge(InvalidModel):
    code = "model-too-large"
    http_status = 413


class ModelUnsupportedIrVersion(InvalidModel):
    code = "model-unsupported-ir-version"


class ModelUnsupportedOpset(InvalidModel):
    code = "model-unsupported-opset"


class ModelUnsupportedOp(InvalidModel):
    code = "model-unsupported-op"


class ModelUnsupportedType(InvalidModel):
    code = "model-unsupported-type"


class ModelSessionFailed(InvalidModel):
    code = "model-session-failed"


class ModelBadSignature(InvalidModel):
    code = "model-bad-signature"


class ModelValidationMemory(InvalidModel):
    code = "model-validation-memory"
    http_status = 413


class ModelValidationTimeout(InvalidModel):
    code = "model-validation-timeout"


class ModelValidationCrashed(InvalidModel):
    code = "model-validation-crashed"


# --- the store cannot give or take the bytes asked for ----------------------------------


class StoreError(ModelStoreError):
    """The store cannot serve or accept the bytes asked for."""

    code = "store-error"
    http_status = 500


class StoreBadHash(StoreError):
    code = "store-bad-hash"
    http_status = 400


class StoreModelNotFound(StoreError):
    code = "store-model-not-found"
    http_status = 404


class StoreHashMismatch(StoreError):
    code = "store-hash-mismatch"
    http_status = 400


class StoreCorruptFile(StoreError):
    code = "store-corrupt-file"
    http_status = 500


# --- running a stored model ---------------------------------------------------------------


class InferenceFailed(ModelStoreError):
    """ONNX Runtime could not run a model on the inputs given."""

    code = "model-run-failed"
    http_status = 500


class ModelBadInput(InferenceFailed):
    code = "model-bad-input"
    http_status = 400


def _all_subclasses(cls: type[ModelStoreError]) -> list[type[ModelStoreError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


ERRORS_BY_CODE: dict[str, type[ModelStoreError]] = {
    cls.code: cls for cls in [ModelStoreError, *_all_subclasses(ModelStoreError)]
}


def invalid_model_from_code(code: str, message: str) -> InvalidModel:
    """The InvalidModel for a code reported across a process boundary.

    A code that is not an InvalidModel's (a child speaking a newer protocol, or garbage)
    becomes ModelValidationCrashed, so a parent never raises something it cannot name.
    """
    cls = ERRORS_BY_CODE.get(code)
    if cls is None or not issubclass(cls, InvalidModel):
        return ModelValidationCrashed(f"validation reported an unknown reason {code!r}: {message}")
    return cls(message)


# How running out of memory reads in the messages of Python, protobuf, onnx and ONNX Runtime
# (lowercase): a validation that says one of these hit its memory limit, whatever the model.
OUT_OF_MEMORY_MARKERS = (
    "memoryerror",
    "bad_alloc",
    "arena alloc failed",
    "cannot allocate memory",
    "out of memory",
    "failed to allocate memory",
)


def is_out_of_memory_message(message: str) -> bool:
    """True if message says an allocation failed."""
    lowered = message.lower()
    return any(marker in lowered for marker in OUT_OF_MEMORY_MARKERS)


def describe_bytes(size: int) -> str:
    """A size for people: exact in bytes when small, else in KiB/MiB/GiB (one decimal)."""
    if size < KIB:
        return f"{size} bytes"
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit:
            whole, rest = divmod(size, unit)
            if rest == 0:
                return f"{whole} {name}"
            # rounds down: a size just over a limit never reads as the limit itself
            tenths = (rest * 10) // unit
            return f"{whole}.{tenths} {name} ({size} bytes)"
    raise AssertionError("unreachable")
