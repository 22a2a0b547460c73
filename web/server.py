"""Run the node: its services, its Flask app, and a production WSGI server.

The WSGI server is waitress (threads; mining and inference work run in
processes of their own, so no request waits on them). Port 0 asks the OS for
a free port; the bound URL is reported to the caller and written to
`<data>/node.json` so scripts and tests can find the node.

Before it serves, the process's startup heap (modules, the app, the node's
services: some 70 000 objects) is frozen out of the garbage collector's
view. It lives as long as the process, yet every full collection scanned it
again, holding the GIL 40-60 ms each time on these machines, a stall for
every request in flight (bench/inference.py saw one every few thousand paid
calls); frozen, a full collection scans only what came after, 2-15 ms.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

from modelchain.chain.errors import ModelchainError
from modelchain.market.config import NodeConfig
from modelchain.market.node import MarketNode
from modelchain.web import create_app

log = logging.getLogger(__name__)


class _Stop(Exception):
    pass


def serve(config: NodeConfig, ready: Callable[[MarketNode, str], None] | None = None) -> None:
    """Start everything and serve until SIGTERM or SIGINT; then stop cleanly.

    Raises NodeCannotListen, before the data directory is touched, when the address
    cannot be listened on (a port another process holds, a host not of this machine).
    """
    check_can_listen(config.host, config.port)
    node = MarketNode(config)
    try:
        node.start()
        try:
            server = build_server(node)
        except OSError as exc:  # taken since the check
            raise _cannot_listen(config.host, config.port, exc) from None
        port = server.effective_port  # type: ignore[union-attr]
        url = f"http://{config.host}:{port}"
        info = {"url": url, "pid": os.getpid(), "port": port, "account": node.account}
        (config.data_dir / "node.json").write_text(json.dumps(info))
        if ready is not None:
            ready(node, url)

        def stop(signum: int, frame: FrameType | None) -> None:
            raise _Stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            server.run()
        except _Stop:
            log.info("stopping")
        finally:
            server.close()
    finally:
        node.close()


class NodeCannotListen(ModelchainError):
    code = "node-cannot-listen"


def check_can_listen(host: str, port: int) -> None:
    """Raise NodeCannotListen unless a socket can be bound to host:port now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
            probe.bind(address)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> NodeCannotListen:
    hint = " (another node? stop it or pass --port)" if exc.errno == errno.EADDRINUSE else ""
    return NodeCannotListen(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}", host=host, port=port
    )


def build_server(node: MarketNode) -> BaseWSGIServer | MultiSocketServer:
    """The node's Flask app on waitress, bound to the config's host and port, with the
    startup heap frozen (see the module): what `serve` runs, and bench/inference.py."""
    config = node.config
    server = waitress.create_server(
        create_app(node=node),
        host=config.host,
        port=config.port,
        threads=config.threads,
        max_request_body_size=config.max_upload_bytes + 1024 * 1024,
        clear_untrusted_proxy_headers=True,
        ident="modelchain",
    )
    freeze_startup_heap()
    return server


def freeze_startup_heap() -> None:
    """Collect what startup left behind, then move every object the process holds now to
    the collector's permanent generation: later collections never scan them again."""
    gc.collect()
    gc.freeze()
