"""models_store layer of modelchain: content-addressed ONNX files, validated before they are kept.

Bytes in, sha256 out: this layer knows nothing of the chain. The names below import no onnx or
ONNX Runtime; `runtime` (sessions, run) and `validate` (the rules, run in the validation
child) do, so import them where they are needed.
"""

from modelchain.models_store.errors import (
    InferenceFailed,
    InvalidModel,
    ModelBadInput,
    ModelStoreError,
    StoreError,
)
from modelchain.models_store.limits import ValidationLimits
from modelchain.models_store.sandbox import inspect_model
from modelchain.models_store.signature import ModelSignature
from modelchain.models_store.store import ModelStore, StagedModel, StoredModel

__all__ = [
    "InferenceFailed",
    "InvalidModel",
    "ModelBadInput",
    "ModelSignature",
    "ModelStore",
    "ModelStoreError",
    "StagedModel",
    "StoreError",
    "StoredModel",
    "ValidationLimits",
    "inspect_model",
]
