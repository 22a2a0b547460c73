"""Copy a binary stream into a file descriptor while computing its sha256, up to a size limit.

`copy_and_hash` is the clear version: read a chunk, hash it, write it. `copy_and_hash_pipelined`
is the fast one the store uses: one thread reads ahead, the caller's hashes, one writes, through
a fixed set of reused buffers, so hashing never waits for I/O and memory does not grow with the
stream; the tests hold it to the same results as the clear one.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import BinaryIO, Protocol

from modelchain.models_store.errors import MIB, ModelTooLarge, describe_bytes

DEFAULT_CHUNK_BYTES = 1 * MIB  # measured: larger chunks hashed no faster, and made more waits
WRITEBACK_EVERY_BYTES = 8 * MIB
PIPELINE_DEPTH = 2  # buffers in flight beyond the one being hashed and the one being read


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_chunk(stream: BinaryIO | _Readable, into: memoryview) -> int:
    """Reads up to len(into) bytes of stream into `into`; 0 means the stream has ended.

    Uses readinto when the stream has it (no copy), read otherwise. A short read is not the
    end: only 0 bytes is.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        count = readinto(into)
        if count is None:
            raise BlockingIOError("the model stream is non-blocking and has no data ready")
        return count
    data = stream.read(len(into))
    into[: len(data)] = data
    return len(data)


def write_all(fd: int, data: memoryview) -> None:
    """Writes every byte of data to fd (os.write may write fewer than asked)."""
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _too_large(max_bytes: int) -> ModelTooLarge:
    return ModelTooLarge(
        f"model file is larger than the {describe_bytes(max_bytes)} limit "
        f"(stopped reading after {max_bytes + 1} bytes)"
    )


def copy_and_hash(
    stream: BinaryIO | _Readable, fd: int, max_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[str, int]:
    """Copies stream into fd and returns (hex sha256, size); the clear reference version.

    Reads at most max_bytes + 1 bytes: one byte past the limit proves the stream too large,
    and ModelTooLarge is raised without reading the rest.
    """
    digest = hashlib.sha256()
    size = 0
    buffer = memoryview(bytearray(chunk_bytes))
    while True:
        want = min(chunk_bytes, max_bytes + 1 - size)
        count = read_chunk(stream, buffer[:want])
        if count == 0:
            return digest.hexdigest(), size
        size += count
        if size > max_bytes:
            raise _too_large(max_bytes)
        digest.update(buffer[:count])
        write_all(fd, buffer[:count])


class _Reader:
    """Reads the stream ahead, on its own thread, into free buffers: at most max_bytes + 1
    bytes, so it stops by itself once the stream is known to be too large."""

    def __init__(
        self,
        stream: BinaryIO | _Readable,
        free: queue.SimpleQueue[bytearray | None],
        max_bytes: int,
    ) -> None:
        self._stream = stream
        self._free = free
        self._max_bytes = max_bytes
        self._stopped = False
        self._filled: queue.SimpleQueue[tuple[bytearray, int] | BaseException | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="model-store-reader", daemon=True)
        self._thread.start()

    def next_chunk(self) -> tuple[bytearray, int] | None:
        """The next (buffer, count) read, None at the end; raises what reading raised."""
        item = self._filled.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        """Asks the thread to stop and waits for it (a stream read in progress finishes)."""
        self._stopped = True
        self._free.put(None)  # wakes it if it waits for a buffer
        self._thread.join()

    def _run(self) -> None:
        size = 0
        try:
            while (buffer := self._free.get()) is not None and not self._stopped:
                want = min(len(buffer), self._max_bytes + 1 - size)
                count = read_chunk(self._stream, memoryview(buffer)[:want])
                if count == 0:
                    self._filled.put(None)
                    return
                size += count
                if size > self._max_bytes:
                    self._filled.put(_too_large(self._max_bytes))
                    return
                self._filled.put((buffer, count))
        except BaseException as err:  # handed to the hashing thread, which raises it
            self._filled.put(err)


class _Writer:
    """Writes hashed buffers to fd, in order, on its own thread, and frees them for reuse."""

    def __init__(
        self,
        fd: int,
        free: queue.SimpleQueue[bytearray | None],
        writeback_every_bytes: int | None,
    ) -> None:
        self._fd = fd
        self._free = free
        self._writeback_every_bytes = writeback_every_bytes
        self._offset = os.lseek(fd, 0, os.SEEK_CUR)
        self._pending_bytes = 0
        self._error: BaseException | None = None
        self._hashed: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="model-store-writer", daemon=True)
        self._thread.start()

    def give(self, buffer: bytearray, count: int) -> None:
        """Queues count bytes of buffer for writing; raises an earlier write's error."""
        self.raise_if_failed()
        self._hashed.put((buffer, count))

    def close(self) -> None:
        """Waits until everything given is written (or dropped after an error)."""
        self._hashed.put(None)
        self._thread.join()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._hashed.get()) is not None:
            buffer, count = item
            if self._error is None:
                try:
                    write_all(self._fd, memoryview(buffer)[:count])
                    self._start_writeback_now_and_then(count)
                except BaseException as err:  # handed to the hashing thread, which raises it
                    self._error = err
            self._free.put(buffer)

    def _start_writeback_now_and_then(self, count: int) -> None:
        # Dirty pages piling up get the writer throttled and leave the caller's final fsync a
        # long wait; asking the kernel to start writing each span back as we go avoids both.
        # POSIX_FADV_DONTNEED starts writeback of dirty pages without waiting for it (and drops
        # none of them), as PostgreSQL's pg_flush_data does where sync_file_range is missing.
        if self._writeback_every_bytes is None or not hasattr(os, "posix_fadvise"):
            return
        self._pending_bytes += count
        if self._pending_bytes >= self._writeback_every_bytes:
            os.posix_fadvise(self._fd, self._offset, self._pending_bytes, os.POSIX_FADV_DONTNEED)
            self._offset += self._pending_bytes
            self._pending_bytes = 0


def copy_and_hash_pipelined(
    stream: BinaryIO | _Readable,
    fd: int,
    max_bytes: int,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    depth: int = PIPELINE_DEPTH,
    writeback_every_bytes: int | None = None,
) -> tuple[str, int]:
    """Same contract as copy_and_hash, as a pipeline of three threads: one reads the stream
    ahead, the caller's hashes, one writes (and, with writeback_every_bytes, asks the kernel
    to start writing each span of that many bytes to disk, so a later fsync waits less).

    Holds depth + 2 buffers of chunk_bytes, whatever the stream's size. The stream is read
    from another thread, and no thread touches it or fd once this returns or raises.
    """
    free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
    for _ in range(depth + 2):
        free.put(bytearray(chunk_bytes))
    digest = hashlib.sha256()
    size = 0
    reader = _Reader(stream, free, max_bytes)
    writer = _Writer(fd, free, writeback_every_bytes)
    try:
        while (chunk := reader.next_chunk()) is not None:
            buffer, count = chunk
            digest.update(memoryview(buffer)[:count])  # hashlib lets go of the GIL here
            writer.give(buffer, count)
            size += count
    except BaseException:
        reader.stop()
        writer.close()  # its own error, if any, yields to the one being raised
        raise
    reader.stop()
    writer.close()
    writer.raise_if_failed()
    return digest.hexdigest(), size
