"""Validation in a child process: uploads streamed to the store, validated under memory and
time limits, committed or discarded; a model that breaks the limits or the child is rejected
and the caller lives on. Each test here starts at least one child (about half a second)."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelchain.models_store import ModelStore, ValidationLimits
from modelchain.models_store.errors import MIB, InvalidModel, ModelTooLarge
from modelchain.models_store.limits import ORT_ADDRESS_SPACE_FLOOR_BYTES
from modelchain.models_store.sandbox import (
    inspect_model,
    interpret_child_exit,
    run_validation_child,
)
from modelchain.models_store.validate import validate_model_bytes

Entries = Callable[[ModelStore], list[str]]
Put = Callable[..., tuple[Any, str]]

# Enough for the child to load ONNX Runtime and validate a tiny model, far from enough to
# validate a 96 MB one (its bytes, our parse and the checker's copies).
LOW_MEMORY_BYTES = ORT_ADDRESS_SPACE_FLOOR_BYTES + 96 * MIB
BIG_MODEL_ELEMENTS = 24 * 1024 * 1024  # float32: a 96 MiB initializer


def test_each_bad_file_is_rejected_with_its_reason_and_nothing_is_left_in_the_store(
    bad_model: tuple[bytes, str], put_model: Put, store: ModelStore, store_entries: Entries
) -> None:
    data, code = bad_model
    with pytest.raises(InvalidModel) as err:
        put_model(data)
    assert err.value.code == code
    assert store_entries(store) == []


def test_models_of_every_kind_onnx_runtime_runs_are_accepted_and_stored(
    models: Any, put_model: Put, store: ModelStore
) -> None:
    accepted = {
        "all-dtypes": models.all_dtypes(),
        "zipmap": models.classifier_zipmap(),
        "map-input": models.dict_vectorizer(),
        "sequence-optional": models.sequence_and_optional(),
    }
    stored = []
    for model in accepted.values():
        data = model.SerializeToString()
        signature, sha256 = put_model(data)
        assert signature == validate_model_bytes(data)  # the child reports what the rules say
        stored.append(sha256)
    assert store.list_hashes() == sorted(stored)


def test_a_stream_over_the_size_limit_is_rejected_while_streaming(
    tmp_path: Path, models: Any, store_entries: Entries
) -> None:
    store = ModelStore(tmp_path / "small", max_bytes=1000)
    with (
        pytest.raises(ModelTooLarge) as err,
        store.staging(io.BytesIO(models.weighted(1000).SerializeToString())),
    ):
        pass
    assert err.value.http_status == 413
    assert store_entries(store) == []


def test_a_file_over_the_size_limit_is_rejected_before_any_child_starts(
    tmp_path: Path, models: Any
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(models.weighted(1000).SerializeToString())
    with pytest.raises(ModelTooLarge) as err:
        inspect_model(path, ValidationLimits(max_bytes=1000, seconds=0.001))
    assert "over the 1000 bytes limit" in str(err.value)


def test_a_model_needing_more_memory_than_the_limit_is_rejected_and_a_small_one_is_not(
    tmp_path: Path, models: Any, put_model: Put, store: ModelStore, store_entries: Entries
) -> None:
    limits = ValidationLimits(max_bytes=128 * MIB, memory_bytes=LOW_MEMORY_BYTES)
    put_model(models.relu().SerializeToString(), limits)  # the limit lets ONNX Runtime start
    big = ModelStore(store.root, max_bytes=128 * MIB)
    with (
        pytest.raises(InvalidModel) as err,
        big.staging(io.BytesIO(models.weighted(BIG_MODEL_ELEMENTS).SerializeToString())) as staged,
    ):
        inspect_model(staged.path, limits)
    assert err.value.code == "model-validation-memory"
    assert err.value.http_status == 413
    assert len(store_entries(store)) == 1  # the small model only


def test_a_memory_limit_too_low_to_load_onnx_runtime_is_reported_as_memory(
    tmp_path: Path, models: Any
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(models.relu().SerializeToString())
    with pytest.raises(InvalidModel) as err:
        inspect_model(path, ValidationLimits(memory_bytes=64 * MIB))
    assert err.value.code == "model-validation-memory"


def test_a_model_whose_validation_outlasts_the_time_limit_is_rejected(
    models: Any, put_model: Put, store: ModelStore, store_entries: Entries
) -> None:
    bomb = models.matmul_bomb(8000).SerializeToString()  # ~300 bytes, minutes to load
    with pytest.raises(InvalidModel) as err:
        put_model(bomb, ValidationLimits(seconds=2.0))
    assert err.value.code == "model-validation-timeout"
    assert "2 s" in str(err.value)
    assert store_entries(store) == []


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    ("program", "named"),
    [
        ("import os; os.abort()", "SIGABRT"),
        ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
        ("raise SystemExit('the child fell over')", "status 1): the child fell over"),
    ],
    ids=["abort", "segfault", "killed", "exit-1"],
)
def test_a_child_that_dies_is_reported_as_crashed_and_the_caller_lives_on(
    program: str, named: str
) -> None:
    with pytest.raises(InvalidModel) as err:
        run_validation_child({"path": "unused"}, seconds=30, command=_child(program))
    assert err.value.code == "model-validation-crashed"
    assert named in str(err.value)


def test_the_child_hears_the_request_on_stdin_and_answers_on_stdout() -> None:
    echo = "import json, sys; print(json.dumps({'ok': True, 'signature': json.load(sys.stdin)}))"
    assert run_validation_child({"path": "x"}, seconds=30, command=_child(echo)) == {"path": "x"}


SIGNATURE = {"inputs": [], "outputs": []}


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "code"),
    [
        (
            0,
            {"ok": False, "code": "model-checker-failed", "message": "m"},
            "",
            "model-checker-failed",
        ),
        (
            0,
            {"ok": False, "code": "tx-nonce-too-low", "message": "m"},
            "",
            "model-validation-crashed",
        ),
        (0, "not json", "", "model-validation-crashed"),
        (1, None, "Traceback...\nMemoryError", "model-validation-memory"),
        (
            -signal.SIGABRT,
            None,
            "terminate called after throwing std::bad_alloc",
            "model-validation-memory",
        ),
        (
            1,
            None,
            "ImportError: libx.so: failed to map segment from shared object",
            "model-validation-memory",
        ),
        (-signal.SIGXCPU, None, "", "model-validation-timeout"),
        (
            -signal.SIGSEGV,
            None,
            "Fatal Python error: Segmentation fault",
            "model-validation-crashed",
        ),
        (-signal.SIGKILL, None, "", "model-validation-crashed"),
    ],
)
def test_how_a_child_ended_maps_to_a_reason_code(
    returncode: int, stdout: Any, stderr: str, code: str
) -> None:
    out = (
        b""
        if stdout is None
        else (json.dumps(stdout) if isinstance(stdout, dict) else stdout).encode()
    )
    with pytest.raises(InvalidModel) as err:
        interpret_child_exit(returncode, out, stderr.encode())
    assert err.value.code == code


def test_a_child_result_line_gives_the_signature() -> None:
    out = json.dumps({"ok": True, "signature": SIGNATURE}).encode()
    assert interpret_child_exit(0, b"noise\n" + out, b"") == SIGNATURE


@pytest.mark.parametrize(
    "limits",
    [
        {"max_bytes": 0},
        {"max_bytes": 2 * 1024 * MIB},
        {"memory_bytes": 0},
        {"seconds": 0},
    ],
)
def test_validation_limits_refuse_values_that_cannot_work(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ValidationLimits(**limits)


def test_a_path_that_is_not_a_regular_file_is_rejected_before_any_child_starts(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)  # a child opening it would wait forever for a writer
    with pytest.raises(InvalidModel) as err:
        inspect_model(fifo, ValidationLimits(seconds=0.001))
    assert err.value.code == "model-not-onnx"


def test_an_upload_naming_a_file_beside_the_store_as_external_data_never_opens_it(
    models: Any,
    put_model: Put,
    store: ModelStore,
    store_entries: Entries,
    sentinel: tuple[Path, Any],
) -> None:
    path, watch = sentinel  # tmp_path/secret: the store's folder is tmp_path/store
    for location in (str(path), "../secret"):
        with pytest.raises(InvalidModel) as err:
            put_model(models.external_data(location).SerializeToString())
        assert err.value.code == "model-external-data"
    assert watch.events() == []
    assert store_entries(store) == []
