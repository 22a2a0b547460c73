"""The limits a model file must fit: its size, and the memory and time its validation may use.

They live in one frozen ValidationLimits so the store, the validation child and the tests
agree on them; tests that break a limit pass their own low values instead of patching.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelchain.models_store.errors import GIB, MIB

DEFAULT_MAX_MODEL_BYTES = 512 * MIB
DEFAULT_VALIDATION_MEMORY_BYTES = 4 * GIB
DEFAULT_VALIDATION_SECONDS = 120.0

# Protobuf cannot parse a message of 2 GiB or more, so no limit may allow one.
MAX_PROTOBUF_BYTES = 2 * GIB - 1

# Address space (RLIMIT_AS) the validation child needs before it reads any model: Python,
# numpy, onnx and onnxruntime 1.32 imported, their operator tables listed and a one-thread
# session made for a tiny model. Measured on x86_64 with CPython 3.11: VmPeak 185 MiB, and the
# child fails below 190 MiB (ImportError or MemoryError). A full default session (a thread per
# core, each with its own malloc arena) needs more, hence the child's one-thread environment.
# Validating a file needs about 4x its size on top (our bytes, the checker's copies, ONNX
# Runtime's copy), so the default 4 GiB fits the default 512 MiB file with room to spare.
ORT_ADDRESS_SPACE_FLOOR_BYTES = 192 * MIB


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """What one model validation may cost.

    max_bytes: largest model file accepted, in bytes (checked while streaming and again
        before validation).
    memory_bytes: address-space limit (RLIMIT_AS) of the validation child, in bytes.
    seconds: wall-clock time the validation child may take before it is killed, starting
        the child included (about half a second to load onnx and ONNX Runtime).
    """

    max_bytes: int = DEFAULT_MAX_MODEL_BYTES
    memory_bytes: int = DEFAULT_VALIDATION_MEMORY_BYTES
    seconds: float = DEFAULT_VALIDATION_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.max_bytes <= MAX_PROTOBUF_BYTES:
            raise ValueError(
                f"max_bytes is {self.max_bytes}, expected 1 to {MAX_PROTOBUF_BYTES} "
                "(protobuf cannot parse 2 GiB)"
            )
        if self.memory_bytes <= 0:
            raise ValueError(f"memory_bytes is {self.memory_bytes}, expected a positive size")
        if not self.seconds > 0:
            raise ValueError(f"seconds is {self.seconds}, expected a positive duration")
