"""The validation child, run as `python -m modelchain.models_store.validate_child`, one model a run.

It reads one JSON request on stdin, limits its own address space, CPU time, core dumps and file
writes before it imports onnx or ONNX Runtime, applies the rules of validate.py to the file named,
and writes one JSON result on its stdout; anything else it or ONNX Runtime prints goes to stderr.

Request: {"path": str, "max_bytes": int, "memory_bytes": int, "cpu_seconds": int}
Result:  {"ok": true, "signature": {...}} or {"ok": false, "code": str, "message": str}
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from modelchain.models_store.errors import (
    InvalidModel,
    ModelValidationMemory,
    is_out_of_memory_message,
)


def lower_limit(kind: int, value: int) -> None:
    """Sets both soft and hard limits of kind to value, or keeps a lower hard limit."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def apply_limits(memory_bytes: int, cpu_seconds: int) -> None:
    """Caps what this process may take: once set, neither it nor a model can raise them."""
    lower_limit(resource.RLIMIT_AS, memory_bytes)
    lower_limit(resource.RLIMIT_CPU, cpu_seconds)  # the parent's wall clock is the real limit
    lower_limit(resource.RLIMIT_CORE, 0)  # a crash leaves no core file behind
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write to a file fails rather than kills
    lower_limit(resource.RLIMIT_FSIZE, 0)  # validation writes no file


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """The result for one request; errors other than a rejection or lack of memory propagate
    (the parent reports them as a crash)."""
    try:
        from modelchain.models_store.validate import validate_model_file  # heavy: under limits

        signature = validate_model_file(Path(request["path"]), int(request["max_bytes"]))
    except InvalidModel as err:
        return {"ok": False, "code": err.code, "message": err.message}
    except MemoryError:
        return _memory_result("validating the model")
    except ImportError as err:  # shared libraries do not map under a limit this low
        if "failed to map segment" in str(err) or is_out_of_memory_message(str(err)):
            return _memory_result("loading onnx and ONNX Runtime")
        raise
    return {"ok": True, "signature": signature.to_json()}


def _memory_result(doing: str) -> dict[str, Any]:
    error = ModelValidationMemory(f"validation ran out of its memory limit while {doing}")
    return {"ok": False, "code": error.code, "message": error.message}


def main() -> int:
    result_fd = os.dup(1)
    os.dup2(2, 1)  # from here on, stray prints (ours or a library's) land on stderr
    sys.dont_write_bytecode = True
    request = json.loads(sys.stdin.buffer.read())
    apply_limits(int(request["memory_bytes"]), int(request["cpu_seconds"]))
    result = run_request(request)
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
