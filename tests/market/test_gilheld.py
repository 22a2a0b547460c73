"""libc calls made with the GIL held: they never block, and they fail as the os module's do."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelchain.market import gilheld


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    with left, right:
        yield left, right


def test_send_nowait_sends_what_the_socket_takes_and_zero_once_it_is_full(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    chunk = b"x" * 65536
    sent = [gilheld.send_nowait(left.fileno(), chunk) for _ in range(64)]
    assert sent[0] > 0 and sent[-1] == 0  # the buffer filled up and it did not wait
    right.setblocking(False)
    received = b""
    while True:
        try:
            received += right.recv(1 << 20)
        except BlockingIOError:
            break
    assert received == b"x" * sum(sent)


def test_send_nowait_to_a_closed_peer_raises_broken_pipe(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    right.close()
    with pytest.raises(OSError) as error:
        gilheld.send_nowait(left.fileno(), b"call")
    assert error.value.errno == errno.EPIPE


@given(st.binary(min_size=1, max_size=4096), st.integers(1, 4096))
def test_recv_nowait_takes_at_most_size_bytes_of_what_was_sent(data: bytes, size: int) -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(data)
        got = gilheld.recv_nowait(right.fileno(), size)
        assert got == data[:size]


def test_recv_nowait_is_none_while_nothing_came_and_empty_at_end_of_file(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    assert gilheld.recv_nowait(right.fileno(), 4) is None
    left.close()
    assert gilheld.recv_nowait(right.fileno(), 4) == b""


def test_write_appends_and_a_bad_descriptor_raises_as_os_write_does(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        assert gilheld.write(fd, b"one") == 3
        assert gilheld.write(fd, b"two") == 3
    finally:
        os.close(fd)
    with open(path, "rb") as log:
        assert log.read() == b"onetwo"
    with pytest.raises(OSError) as error:
        gilheld.write(fd, b"closed")
    assert error.value.errno == errno.EBADF
