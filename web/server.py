"""Run the node: its services, its Flask app, and a production WSGI server.

The WSGI server is waitress (threads; mining and inference work run in
processes of their own, so no request waits on them). Port 0 asks the OS for
a free port; the bound URL is reported to the caller and written to
`<data>/node.json` so scripts and tests can find the node.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

import waitress

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
        app = create_app(node=node)
        server = waitress.create_server(
            app,
            host=config.host,
            port=config.port,
            threads=config.threads,
            max_request_body_size=config.max_upload_bytes + 1024 * 1024,
            clear_untrusted_proxy_headers=True,
            ident="modelchain",
        )
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
