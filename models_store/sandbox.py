"""Untrusted model files are validated in a child process, never in the process that asks.

inspect_model runs `python -m modelchain.models_store.validate_child` under the memory and time
limits of a ValidationLimits and turns how the child ended (a result, a deadline, a signal, an
error on stderr) into a ModelSignature or a typed InvalidModel, so a hostile file that eats
memory or time, or crashes ONNX Runtime, is rejected while the caller lives on.
"""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelchain.models_store.errors import (
    ModelNotOnnx,
    ModelTooLarge,
    ModelValidationCrashed,
    ModelValidationMemory,
    ModelValidationTimeout,
    describe_bytes,
    invalid_model_from_code,
    is_out_of_memory_message,
)
from modelchain.models_store.limits import ValidationLimits
from modelchain.models_store.signature import ModelSignature

CHILD_MODULE = "modelchain.models_store.validate_child"
# One thread everywhere: a thread's stack and malloc arena count against RLIMIT_AS, and the
# child has one model to look at.
CHILD_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "PYTHONDONTWRITEBYTECODE": "1",
}
STDERR_TAIL_BYTES = 4000  # of the child's stderr, read to explain how it ended
# Beyond the messages of OUT_OF_MEMORY_MARKERS, a child that cannot map a shared library or
# its unwinder under RLIMIT_AS dies with one of these.
_CHILD_OUT_OF_MEMORY_MARKERS = ("failed to map segment", "libgcc_s.so.1 must be installed")

DEFAULT_LIMITS = ValidationLimits()


def child_command() -> list[str]:
    """The command line of the validation child (-P: nothing from the working folder)."""
    return [sys.executable, "-P", "-X", "faulthandler", "-m", CHILD_MODULE]


def inspect_model(path: Path, limits: ValidationLimits = DEFAULT_LIMITS) -> ModelSignature:
    """The signature of the model file at path, validated in a child process; stores nothing.

    Raises ModelTooLarge (without starting a child) when the file is over limits.max_bytes,
    and otherwise the InvalidModel the child reports or its end implies:
    ModelValidationTimeout past limits.seconds, ModelValidationMemory past
    limits.memory_bytes, ModelValidationCrashed when it dies another way.
    """
    path = Path(path).resolve()
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        raise ModelNotOnnx(f"{path.name} is not a regular file, so not a model file")
    size = status.st_size
    if size > limits.max_bytes:
        raise ModelTooLarge(
            f"model file is {describe_bytes(size)}, over the {describe_bytes(limits.max_bytes)} "
            "limit"
        )
    request = {
        "path": str(path),
        "max_bytes": limits.max_bytes,
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": math.ceil(limits.seconds) + 1,
    }
    result = run_validation_child(request, limits.seconds)
    try:
        return ModelSignature.from_json(result)
    except ValueError as err:
        raise ModelValidationCrashed(f"validation returned a malformed signature: {err}") from None


def run_validation_child(
    request: dict[str, Any], seconds: float, command: Sequence[str] | None = None
) -> dict[str, Any]:
    """Runs one validation child on request, killing it after seconds; returns the signature
    JSON it reports, or raises the InvalidModel its end implies (see interpret_child_exit).

    The child starts in an empty temporary folder and its own session, so it finds nothing
    beside it and a signal to the caller's process group does not reach it.
    """
    argv = list(command) if command is not None else child_command()
    with tempfile.TemporaryDirectory(prefix="modelchain-validate-") as workdir:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={**os.environ, **CHILD_ENVIRONMENT},
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(json.dumps(request).encode(), timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise ModelValidationTimeout(
                f"validation took longer than the {seconds:g} s limit"
            ) from None
        except BaseException:
            process.kill()
            process.communicate()
            raise
    return interpret_child_exit(process.returncode, stdout, stderr)


def interpret_child_exit(returncode: int, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    """The signature JSON a validation child reported, or the InvalidModel its end implies.

    A result line wins; without one, stderr that shows an allocation failing means
    ModelValidationMemory, SIGXCPU (its CPU limit) means ModelValidationTimeout, and any
    other end is ModelValidationCrashed naming the signal or exit status.
    """
    result = _parse_result(stdout)
    if returncode == 0 and result is not None:
        if result.get("ok") is True and isinstance(result.get("signature"), dict):
            return result["signature"]
        raise invalid_model_from_code(str(result.get("code")), str(result.get("message")))
    tail = stderr[-STDERR_TAIL_BYTES:].decode("utf-8", errors="replace")
    if is_out_of_memory_message(tail) or any(m in tail for m in _CHILD_OUT_OF_MEMORY_MARKERS):
        raise ModelValidationMemory(
            f"validation ran out of its memory limit ({_describe_end(returncode)})"
        )
    if returncode == -signal.SIGXCPU:
        raise ModelValidationTimeout("validation used up its CPU time limit")
    last_line = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    detail = f": {last_line.strip()[:300]}" if last_line and returncode > 0 else ""
    raise ModelValidationCrashed(f"validation crashed ({_describe_end(returncode)}){detail}")


def _parse_result(stdout: bytes) -> dict[str, Any] | None:
    lines = stdout.decode("utf-8", errors="replace").strip().splitlines()
    if not lines:
        return None
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


def _describe_end(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGKILL":
            return "the child was killed by SIGKILL, as the system does when it runs out of memory"
        return f"the child was killed by {name}"
    return f"the child exited with status {returncode}"
