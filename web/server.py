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

import gc
import json
import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

from modelchain.market.config import NodeConfig
from modelchain.market.node import MarketNode
from modelchain.web import create_app

log = logging.getLogger(__name__)


class _Stop(Exception):
    pass


def serve(config: NodeConfig, ready: Callable[[MarketNode, str], None] | None = None) -> None:
    """Start everything and serve until SIGTERM or SIGINT; then stop cleanly."""
    node = MarketNode(config)
    try:
        node.start()
        server = build_server(node)
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
