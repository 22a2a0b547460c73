"""libc calls made with the GIL held (ctypes.PyDLL), for the node's hot paths.

os.write, socket.send, os.read and their kin let the GIL go around every call. On a busy
threaded node, the thread then waits for the GIL to come back far longer than the call took:
bench/inference.py showed an inference worker held about 1.4 ms per call while it worked
about 0.08 ms of it, the rest spent by its caller getting the GIL back after each of the
call's system calls. So calls that cannot block are made here with the GIL held: an append
to a regular file (the receipt log), and send/recv with MSG_DONTWAIT (a worker's socket).
Where libc cannot be loaded so, the os module's calls are used instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket

_WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)


def _libc() -> ctypes.PyDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - no libc to load
        return None
    try:
        library = ctypes.PyDLL(name, use_errno=True)
        write, send, recv = library.write, library.send, library.recv
    except (OSError, AttributeError):  # pragma: no cover
        return None
    write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for function in (write, send, recv):
        function.restype = ctypes.c_ssize_t
    return library


_LIBC = _libc()
_NOWAIT = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)


def _raise_errno() -> None:
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code))


def write(fd: int, data: bytes) -> int:
    """write(2) of `data` to `fd`: the bytes written; raises OSError."""
    if _LIBC is None:  # pragma: no cover
        return os.write(fd, data)
    written: int = _LIBC.write(fd, data, len(data))
    if written < 0:
        _raise_errno()
    return written


def send_nowait(fd: int, data: bytes) -> int:
    """Send what of `data` the socket `fd` takes at once: the bytes sent, 0 when it takes
    none now. Raises OSError (EPIPE when the peer is gone)."""
    if _LIBC is None or not _NOWAIT:  # pragma: no cover
        return 0
    sent: int = _LIBC.send(fd, data, len(data), _NOWAIT)
    if sent < 0:
        if ctypes.get_errno() in _WOULD_BLOCK:
            return 0
        _raise_errno()
    return sent


def recv_nowait(fd: int, size: int) -> bytes | None:
    """Up to `size` bytes the socket `fd` holds now; b"" at end of file, None when it holds
    none yet. Raises OSError."""
    if _LIBC is None or not _NOWAIT:  # pragma: no cover
        return None
    buffer = ctypes.create_string_buffer(size)
    got: int = _LIBC.recv(fd, buffer, size, _NOWAIT)
    if got < 0:
        if ctypes.get_errno() in _WOULD_BLOCK:
            return None
        _raise_errno()
    return ctypes.string_at(buffer, got)  # the bytes read, copied once
