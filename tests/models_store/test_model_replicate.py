"""Replicating a model file from other sources: only bytes that hash right are kept."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from modelchain.models_store import ModelStore
from modelchain.models_store.errors import ModelNotOnnx, StoreBadHash
from modelchain.models_store.replicate import replicate

DATA = b"model bytes " * 1000
SHA256 = hashlib.sha256(DATA).hexdigest()


def serving(data: bytes) -> tuple[list[int], Callable[[], BinaryIO]]:
    opened: list[int] = []

    def open_stream() -> BinaryIO:
        opened.append(1)
        return io.BytesIO(data)

    return opened, open_stream


def unreachable() -> BinaryIO:
    raise ConnectionRefusedError("connection refused")


def test_the_first_source_with_the_right_bytes_fills_the_store(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    result = replicate(store, SHA256, [("down", unreachable), ("good", serving(DATA)[1])])
    assert result.stored is not None and result.source == "good"
    assert store.read_verified(SHA256) == DATA
    assert [(f.source, f.code) for f in result.failures] == [("down", "source-unavailable")]


def test_a_source_with_other_bytes_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    result = replicate(store, SHA256, [("liar", serving(b"other bytes")[1])])
    assert result.stored is None
    assert [(f.source, f.code) for f in result.failures] == [("liar", "store-hash-mismatch")]
    assert list(tmp_path.iterdir()) == []


def test_a_liar_does_not_stop_the_next_source(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    sources = [("liar", serving(DATA[:-1])[1]), ("good", serving(DATA)[1])]
    result = replicate(store, SHA256, sources)
    assert result.source == "good"
    assert store.has(SHA256)


def test_a_file_the_store_holds_is_not_fetched(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.put_bytes(DATA)
    opened, source = serving(DATA)
    result = replicate(store, SHA256, [("good", source)])
    assert (result.stored, result.source, opened) == (None, None, [])


def test_a_file_over_the_store_limit_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, max_bytes=100)
    result = replicate(store, SHA256, [("big", serving(DATA)[1])])
    assert result.stored is None
    assert [f.code for f in result.failures] == ["model-too-large"]
    assert result.rejected is None  # a source that sends too much is not the file's fault
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_hash_is_refused_before_any_source_is_opened(tmp_path: Path) -> None:
    opened, source = serving(DATA)
    with pytest.raises(StoreBadHash):
        replicate(ModelStore(tmp_path), "xyz", [("good", source)])
    assert opened == []


def test_a_file_that_fails_the_check_is_not_kept_nor_asked_of_other_sources(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path)
    opened, second = serving(DATA)

    def reject(path: Path) -> None:
        assert path.read_bytes() == DATA  # the check sees the staged bytes
        raise ModelNotOnnx("not an ONNX model")

    result = replicate(store, SHA256, [("first", serving(DATA)[1]), ("second", second)], reject)
    assert result.stored is None
    assert [(f.source, f.code) for f in result.failures] == [("first", "model-not-onnx")]
    assert result.rejected is not None and result.rejected.code == "model-not-onnx"
    assert opened == []
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_passes_the_check_is_kept(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    checked: list[Path] = []
    result = replicate(store, SHA256, [("good", serving(DATA)[1])], checked.append)
    assert result.source == "good" and len(checked) == 1
    assert store.read_verified(SHA256) == DATA
