"""A stand-in peer for network tests: a small HTTP server on 127.0.0.1 that answers
each path as the test says, so a node's links can be shown what a broken or hostile
peer sends (answers that never end, drip, repeat, lie) without a real node.

A route is a JSON value (answered 200), a `(status, JSON value)` pair, or a function
that writes the whole answer itself through the request handler. Every request's
path is counted in `requests`; `close()` releases handlers that wait and stops the
server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Any
"""A JSON value, a (status, JSON value) pair, or a Callable[[BaseHTTPRequestHandler], None]."""


def answer_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class StandInPeer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        self.released = threading.Event()
        """Set by close(): handlers that wait (a silent peer) return."""
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                path = self.path.split("?")[0]
                peer.requests.append(path)
                route = peer.routes.get(path)
                try:
                    if callable(route):
                        route(self)
                    elif route is None:
                        answer_json(self, 404, {"error": {"code": "not-found", "message": path}})
                    elif isinstance(route, tuple):
                        answer_json(self, *route)
                    else:
                        answer_json(self, 200, route)
                except OSError:
                    pass  # the node hung up on an answer it did not want: as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path: str) -> int:
        return self.requests.count(path)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def raw(
    body: bytes, content_type: str = "application/json", length: int | None = None
) -> Callable[[BaseHTTPRequestHandler], None]:
    """A route that answers 200 with `body` as it is; a `length` above the body's says
    more bytes are coming than are sent, and the connection then closes (cut off)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        handler.wfile.write(body)
        handler.close_connection = True

    return route


def endless(chunk: bytes = b"[" * 65536) -> Callable[[BaseHTTPRequestHandler], None]:
    """A route that answers 200 and sends `chunk` until the node hangs up."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        while True:
            handler.wfile.write(chunk)

    return route


def dripping(peer: StandInPeer, every_seconds: float = 0.02) -> Callable[..., None]:
    """A route that answers 200 and then sends one byte now and then, never finishing
    (until the stand-in is closed)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(10**9))
        handler.end_headers()
        while not peer.released.wait(every_seconds):
            handler.wfile.write(b" ")
            handler.wfile.flush()

    return route


def silent(peer: StandInPeer) -> Callable[..., None]:
    """A route that reads the request and never answers (until the stand-in is closed)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        peer.released.wait()

    return route
