"""Model files kept by the sha256 of their bytes, written atomically and checked when read.

A put streams the bytes into a temp file in the store's folder while hashing them, fsyncs it,
renames it to `<sha256>.onnx` and fsyncs the folder, so a crash leaves the old state or the
whole file; a read hashes the file again, so bytes that changed on disk are reported as
StoreCorruptFile and never served.

Writing is two-phase so a caller can validate before anything is stored:

    with store.staging(upload) as staged:       # streamed, hashed, fsynced temp file
        signature = inspect_model(staged.path, limits)   # raises: the temp file is removed
        stored = staged.commit()                 # renamed to its hash
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelchain.models_store.errors import (
    StoreBadHash,
    StoreCorruptFile,
    StoreHashMismatch,
    StoreModelNotFound,
)
from modelchain.models_store.hashcopy import (
    DEFAULT_CHUNK_BYTES,
    WRITEBACK_EVERY_BYTES,
    copy_and_hash_pipelined,
)
from modelchain.models_store.limits import DEFAULT_MAX_MODEL_BYTES

MODEL_SUFFIX = ".onnx"
PARTIAL_PREFIX = ".partial-"
PARTIAL_SUFFIX = ".tmp"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_STORED_NAME = re.compile(r"([0-9a-f]{64})" + re.escape(MODEL_SUFFIX))


def normalize_sha256(sha256: str) -> str:
    """The lowercase hex form of a sha256; raises StoreBadHash for anything else.

    Only 64 hex digits get near a file name, so no hash can name a path outside the store.
    """
    lowered = sha256.lower() if isinstance(sha256, str) else sha256
    if not isinstance(lowered, str) or not _SHA256_HEX.fullmatch(lowered):
        raise StoreBadHash(f"{sha256!r} is not a sha256: expected 64 hex digits")
    return lowered


def fsync_dir(path: Path) -> None:
    """Makes the entries of a folder (a rename, a new or removed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A model file in the store: its hash, its size in bytes, and where it lies."""

    sha256: str
    size: int
    path: Path


class StagedModel:
    """Streamed, hashed and fsynced bytes in a temp file, waiting to be committed or discarded.

    `path` may be read (to validate it) until commit() or discard(); after either, the temp
    file is gone.
    """

    __slots__ = ("_store", "path", "sha256", "size", "_done")

    def __init__(self, store: ModelStore, path: Path, sha256: str, size: int) -> None:
        self._store = store
        self.path = path
        self.sha256 = sha256
        self.size = size
        self._done = False

    @property
    def is_open(self) -> bool:
        """True until commit() or discard()."""
        return not self._done

    def commit(self) -> StoredModel:
        """Renames the temp file to its hash and fsyncs the folder; returns the stored model.

        Committing bytes the store already holds replaces that file with these (identical)
        bytes, which also repairs a stored copy that was corrupt.
        """
        if self._done:
            raise RuntimeError(f"staged model {self.sha256} was already committed or discarded")
        final = self._store.path_of(self.sha256)
        os.replace(self.path, final)
        self._done = True
        fsync_dir(self._store.root)
        return StoredModel(self.sha256, self.size, final)

    def discard(self) -> None:
        """Removes the temp file; does nothing after commit() or a previous discard()."""
        if not self._done:
            self._done = True
            self.path.unlink(missing_ok=True)


class ModelStore:
    """A folder of model files named by the sha256 of their bytes.

    Safe to share between threads and processes: each put writes its own temp file and the
    rename is atomic, so concurrent puts of the same bytes leave one good file.
    """

    def __init__(
        self,
        root: Path,
        max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes is {max_bytes}, expected a size >= 0")
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes is {chunk_bytes}, expected a size > 0")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    # --- writing -------------------------------------------------------------------------

    def stage(self, stream: BinaryIO, expected_sha256: str | None = None) -> StagedModel:
        """Streams stream into a fsynced temp file in the store's folder and hashes it.

        The caller must commit() or discard() the result; `staging` does the discarding.
        Raises ModelTooLarge as soon as more than max_bytes have been read, and
        StoreHashMismatch if expected_sha256 is given and the bytes hash otherwise; either
        way no temp file is left.
        """
        expected = None if expected_sha256 is None else normalize_sha256(expected_sha256)
        fd, name = tempfile.mkstemp(dir=self.root, prefix=PARTIAL_PREFIX, suffix=PARTIAL_SUFFIX)
        temp = Path(name)
        try:
            try:
                sha256, size = copy_and_hash_pipelined(
                    stream,
                    fd,
                    self.max_bytes,
                    self.chunk_bytes,
                    writeback_every_bytes=WRITEBACK_EVERY_BYTES,
                )
                os.fsync(fd)
            finally:
                os.close(fd)
            if expected is not None and sha256 != expected:
                raise StoreHashMismatch(
                    f"the {size} bytes received hash to {sha256}, expected {expected}"
                )
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return StagedModel(self, temp, sha256, size)

    @contextlib.contextmanager
    def staging(
        self, stream: BinaryIO, expected_sha256: str | None = None
    ) -> Iterator[StagedModel]:
        """`stage` as a context: the temp file is removed on exit unless committed."""
        staged = self.stage(stream, expected_sha256)
        try:
            yield staged
        finally:
            staged.discard()

    def put_stream(self, stream: BinaryIO, expected_sha256: str | None = None) -> StoredModel:
        """Stores the bytes of stream under their sha256 (raw: no ONNX validation)."""
        with self.staging(stream, expected_sha256) as staged:
            return staged.commit()

    def put_bytes(self, data: bytes, expected_sha256: str | None = None) -> StoredModel:
        """Stores data under its sha256 (raw: no ONNX validation)."""
        return self.put_stream(io.BytesIO(data), expected_sha256)

    # --- reading -------------------------------------------------------------------------

    def path_of(self, sha256: str) -> Path:
        """Where the file for sha256 lies (or would lie); its bytes are not checked."""
        return self.root / f"{normalize_sha256(sha256)}{MODEL_SUFFIX}"

    def has(self, sha256: str) -> bool:
        """True if a file for sha256 exists; cheap, so its bytes are not checked."""
        return self.path_of(sha256).is_file()

    def open_verified(self, sha256: str) -> BinaryIO:
        """An open file of the model, positioned at 0, whose bytes were just hashed to sha256.

        The hash is checked through the returned descriptor, so a rename over the path after
        the check cannot swap what the caller reads. Raises StoreModelNotFound or
        StoreCorruptFile.
        """
        path = self.path_of(sha256)
        try:
            file = open(path, "rb")  # returned open: the caller closes it
        except FileNotFoundError:
            raise StoreModelNotFound(f"no model with sha256 {path.stem} in the store") from None
        try:
            actual = hashlib.file_digest(file, "sha256").hexdigest()
            _check_hash(path, actual)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        return file

    def read_verified(self, sha256: str) -> bytes:
        """The bytes of the model, checked against sha256 (StoreCorruptFile otherwise)."""
        path = self.path_of(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreModelNotFound(f"no model with sha256 {path.stem} in the store") from None
        _check_hash(path, hashlib.sha256(data).hexdigest())
        return data

    def path_verified(self, sha256: str) -> Path:
        """The path of the model after checking its bytes hash to sha256.

        Whoever opens the path later reads whatever is there then; prefer read_verified or
        open_verified to read the very bytes that were checked.
        """
        with self.open_verified(sha256):
            pass
        return self.path_of(sha256)

    def list_hashes(self) -> list[str]:
        """The sha256 of every stored file, sorted (temp files are not listed)."""
        found = []
        for entry in os.scandir(self.root):
            match = _STORED_NAME.fullmatch(entry.name)
            if match and entry.is_file():
                found.append(match.group(1))
        return sorted(found)

    def verify_all(self) -> list[str]:
        """The sha256 of every stored file whose bytes no longer match it, sorted."""
        corrupt = []
        for sha256 in self.list_hashes():
            try:
                with self.open_verified(sha256):
                    pass
            except StoreCorruptFile:
                corrupt.append(sha256)
            except StoreModelNotFound:  # deleted while we looked: not corrupt
                pass
        return corrupt

    # --- removing ------------------------------------------------------------------------

    def delete(self, sha256: str) -> bool:
        """Removes the file for sha256; returns False if there was none."""
        path = self.path_of(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(self.root)
        return True

    def remove_stale_partials(self, older_than_seconds: float) -> int:
        """Removes temp files left by crashed puts, older than the age given; returns a count.

        A put in progress keeps writing its temp file, so an age well above the longest
        upload (an hour, say) never removes a live one.
        """
        deadline = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.root):
            is_partial = entry.name.startswith(PARTIAL_PREFIX) and entry.name.endswith(
                PARTIAL_SUFFIX
            )
            if is_partial and entry.stat().st_mtime < deadline:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed


def _check_hash(path: Path, actual: str) -> None:
    expected = path.name.removesuffix(MODEL_SUFFIX)
    if actual != expected:
        raise StoreCorruptFile(
            f"stored model {expected} is corrupt: its bytes now hash to {actual}; "
            "it will not be served"
        )
