"""The raw store: bytes in, sha256 out, written atomically, checked when read."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.models_store import ModelStore
from modelchain.models_store import hashcopy as hashcopy_module
from modelchain.models_store.errors import (
    ModelTooLarge,
    StoreBadHash,
    StoreCorruptFile,
    StoreHashMismatch,
    StoreModelNotFound,
)
from modelchain.models_store.hashcopy import copy_and_hash, copy_and_hash_pipelined
from modelchain.models_store.store import PARTIAL_PREFIX

Entries = Callable[[ModelStore], list[str]]


class CountingStream(io.RawIOBase):
    """An endless stream of one byte value that counts how much was read from it."""

    def __init__(self) -> None:
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = len(buffer)
        buffer[:size] = b"\x07" * size
        self.bytes_read += size
        return size


class FailingStream(io.RawIOBase):
    """Gives `good` bytes, then fails as a dropped upload would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left == 0:
            raise ConnectionResetError("upload dropped")
        size = min(len(buffer), self.left)
        buffer[:size] = b"\x01" * size
        self.left -= size
        return size


class ReadOnlyStream:
    """A stream with read() but no readinto(), in short reads of at most 3 bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        size = min(size, 3)
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def test_put_stores_the_bytes_under_their_sha256(store: ModelStore) -> None:
    data = b"model bytes"
    stored = store.put_stream(io.BytesIO(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.path == store.root / f"{stored.sha256}.onnx"
    assert stored.path.read_bytes() == data
    assert store.has(stored.sha256)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=3000), chunk_bytes=st.integers(min_value=1, max_value=700))
def test_put_then_read_verified_round_trips_any_bytes(
    tmp_path: Path, data: bytes, chunk_bytes: int
) -> None:
    store = ModelStore(tmp_path / "roundtrip", max_bytes=4096, chunk_bytes=chunk_bytes)
    stored = store.put_stream(io.BytesIO(data))
    assert store.read_verified(stored.sha256) == data
    with store.open_verified(stored.sha256) as file:
        assert file.read() == data
    assert not [name for name in os.listdir(store.root) if name.startswith(PARTIAL_PREFIX)]


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=2000),
    chunk_bytes=st.integers(min_value=1, max_value=512),
    max_bytes=st.integers(min_value=0, max_value=2500),
    depth=st.integers(min_value=0, max_value=3),
)
def test_pipelined_copy_gives_the_same_result_as_the_clear_one(
    data: bytes, chunk_bytes: int, max_bytes: int, depth: int
) -> None:
    def run(copy: Callable[..., tuple[str, int]], **extra: int) -> tuple[object, bytes]:
        fd, name = tempfile.mkstemp(prefix="hashcopy-test-")
        try:
            result: object = copy(io.BytesIO(data), fd, max_bytes, chunk_bytes, **extra)
        except ModelTooLarge as err:
            result = err.code
        finally:
            os.close(fd)
        written = Path(name).read_bytes()
        os.unlink(name)
        return result, written

    clear = run(copy_and_hash)
    fast = run(copy_and_hash_pipelined, depth=depth)
    assert fast == clear
    if len(data) <= max_bytes:
        assert clear == ((hashlib.sha256(data).hexdigest(), len(data)), data)


def test_reads_work_from_streams_without_readinto_and_with_short_reads(
    store: ModelStore,
) -> None:
    data = bytes(range(256)) * 5
    stored = store.put_stream(ReadOnlyStream(data))  # type: ignore[arg-type]
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_the_same_bytes_put_twice_are_stored_once(
    store: ModelStore, store_entries: Entries
) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    assert first == second
    assert store_entries(store) == [f"{first.sha256}.onnx"]
    assert store.list_hashes() == [first.sha256]


def test_a_stream_over_the_limit_is_rejected_without_reading_it_all(
    tmp_path: Path, store_entries: Entries
) -> None:
    store = ModelStore(tmp_path / "small", max_bytes=10_000, chunk_bytes=4096)
    endless = CountingStream()
    with pytest.raises(ModelTooLarge) as err:
        store.put_stream(endless)  # type: ignore[arg-type]
    assert err.value.code == "model-too-large"
    assert err.value.http_status == 413
    assert endless.bytes_read == 10_001  # one byte past the limit proves it, no more is read
    assert store_entries(store) == []


def test_a_stream_exactly_at_the_limit_is_accepted(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "exact", max_bytes=100, chunk_bytes=7)
    assert store.put_bytes(b"x" * 100).size == 100


def test_bytes_not_matching_the_expected_sha256_are_rejected_and_not_kept(
    store: ModelStore, store_entries: Entries
) -> None:
    with pytest.raises(StoreHashMismatch) as err:
        store.put_bytes(
            b"what arrived", expected_sha256=hashlib.sha256(b"what was asked").hexdigest()
        )
    assert err.value.code == "store-hash-mismatch"
    assert store_entries(store) == []


def test_bytes_matching_the_expected_sha256_in_uppercase_are_stored(store: ModelStore) -> None:
    data = b"replicated"
    digest = hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data, expected_sha256=digest.upper()).sha256 == digest


def test_a_stream_failing_halfway_leaves_nothing_behind(
    tmp_path: Path, store_entries: Entries
) -> None:
    store = ModelStore(tmp_path / "dropped", chunk_bytes=1000)
    with pytest.raises(ConnectionResetError):
        store.put_stream(FailingStream(good=5500))  # type: ignore[arg-type]
    assert store_entries(store) == []


def test_a_write_failing_halfway_leaves_nothing_behind(
    store: ModelStore, store_entries: Entries, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_write_all = hashcopy_module.write_all

    def write_all_then_fail(fd: int, data: memoryview) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(hashcopy_module, "write_all", write_all_then_fail)
    small_chunks = ModelStore(store.root, chunk_bytes=1024)
    with pytest.raises(OSError, match="No space left"):
        small_chunks.put_bytes(os.urandom(10_000))
    assert store_entries(store) == []


def test_a_staged_model_is_discarded_when_validation_raises(
    store: ModelStore, store_entries: Entries
) -> None:
    with pytest.raises(ValueError), store.staging(io.BytesIO(b"candidate")) as staged:
        assert staged.path.read_bytes() == b"candidate"
        raise ValueError("validation said no")
    assert not staged.is_open
    assert store_entries(store) == []


def test_a_staged_model_not_committed_is_discarded_on_exit(
    store: ModelStore, store_entries: Entries
) -> None:
    with store.staging(io.BytesIO(b"candidate")) as staged:
        assert store_entries(store) == [staged.path.name]
    assert store_entries(store) == []


def test_a_committed_staged_model_is_stored_under_its_hash(
    store: ModelStore, store_entries: Entries
) -> None:
    with store.staging(io.BytesIO(b"candidate")) as staged:
        stored = staged.commit()
    assert store_entries(store) == [f"{stored.sha256}.onnx"]
    with pytest.raises(RuntimeError):
        staged.commit()


def test_a_flipped_byte_on_disk_is_detected_on_read(store: ModelStore) -> None:
    stored = store.put_bytes(b"the original model bytes")
    with open(stored.path, "r+b") as file:
        file.seek(4)
        original = file.read(1)
        file.seek(4)
        file.write(bytes([original[0] ^ 0x01]))
    for read in (store.read_verified, store.path_verified, store.open_verified):
        with pytest.raises(StoreCorruptFile) as err:
            read(stored.sha256)
        assert err.value.code == "store-corrupt-file"
    assert store.verify_all() == [stored.sha256]


def test_putting_the_same_bytes_again_repairs_a_corrupt_file(store: ModelStore) -> None:
    data = b"bytes worth keeping"
    stored = store.put_bytes(data)
    stored.path.write_bytes(b"rotten")
    store.put_bytes(data)
    assert store.read_verified(stored.sha256) == data
    assert store.verify_all() == []


def test_reading_a_model_not_in_the_store_is_not_found(store: ModelStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not store.has(missing)
    with pytest.raises(StoreModelNotFound) as err:
        store.read_verified(missing)
    assert err.value.http_status == 404


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "", "abc", "g" * 64, "0" * 63, "0" * 65, "0" * 64 + "\n"]
)
def test_a_name_that_is_not_a_sha256_never_reaches_the_file_system(
    store: ModelStore, name: str
) -> None:
    with pytest.raises(StoreBadHash) as err:
        store.read_verified(name)
    assert err.value.code == "store-bad-hash"


def test_delete_removes_the_file_and_reports_whether_there_was_one(store: ModelStore) -> None:
    stored = store.put_bytes(b"short-lived")
    assert store.delete(stored.sha256)
    assert not store.has(stored.sha256)
    assert not store.delete(stored.sha256)


def test_list_hashes_names_stored_models_only(store: ModelStore) -> None:
    hashes = sorted(store.put_bytes(bytes([i])).sha256 for i in range(3))
    (store.root / f"{PARTIAL_PREFIX}leftover.tmp").write_bytes(b"partial")
    (store.root / "notes.txt").write_text("not a model")
    assert store.list_hashes() == hashes


def test_stale_partials_are_removed_and_fresh_ones_kept(store: ModelStore) -> None:
    stale = store.root / f"{PARTIAL_PREFIX}crashed.tmp"
    stale.write_bytes(b"old")
    os.utime(stale, (1_000_000, 1_000_000))
    fresh = store.root / f"{PARTIAL_PREFIX}uploading.tmp"
    fresh.write_bytes(b"new")
    assert store.remove_stale_partials(older_than_seconds=3600) == 1
    assert not stale.exists()
    assert fresh.exists()


def test_concurrent_puts_of_the_same_bytes_from_threads_leave_one_good_file(
    tmp_path: Path, store_entries: Entries
) -> None:
    store = ModelStore(tmp_path / "threads", chunk_bytes=64 * 1024)
    data = os.urandom(1_000_000)
    start = threading.Barrier(8)
    results: list[str] = []

    def put() -> None:
        start.wait()
        results.append(store.put_stream(io.BytesIO(data)).sha256)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    digest = hashlib.sha256(data).hexdigest()
    assert results == [digest] * 8
    assert store_entries(store) == [f"{digest}.onnx"]
    assert store.read_verified(digest) == data


PUT_FROM_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from modelchain.models_store.store import ModelStore
store = ModelStore(Path(sys.argv[1]), chunk_bytes=64 * 1024)
sys.stdin.buffer.read(1)  # wait for the go signal so the puts overlap
with open(sys.argv[2], "rb") as stream:
    print(store.put_stream(stream).sha256)
"""


def test_concurrent_puts_of_the_same_bytes_from_processes_leave_one_good_file(
    tmp_path: Path, store_entries: Entries
) -> None:
    store = ModelStore(tmp_path / "processes")
    source = tmp_path / "model.bin"
    data = os.urandom(8_000_000)
    source.write_bytes(data)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PUT_FROM_ANOTHER_PROCESS, str(store.root), str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for process in processes:  # every child is ready and waiting: let them all go at once
        assert process.stdin is not None
        process.stdin.write(b"g")
        process.stdin.close()
    outputs = []
    for process in processes:
        assert process.stdout is not None
        outputs.append(process.stdout.read())
        process.wait(timeout=60)
    digest = hashlib.sha256(data).hexdigest()
    assert [process.returncode for process in processes] == [0] * 4
    assert [output.decode().strip() for output in outputs] == [digest] * 4
    assert store_entries(store) == [f"{digest}.onnx"]
    assert store.read_verified(digest) == data
