"""The node's server as `serve` builds it (web/server.py)."""

from __future__ import annotations

import gc
import http.client
import json
import threading
import weakref
from pathlib import Path

from factories_market import regtest_config

from modelchain.market.node import MarketNode
from modelchain.web.server import build_server


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_built_server_serves_with_the_startup_heap_frozen_and_later_cycles_collected(
    tmp_path: Path,
) -> None:
    node = MarketNode(regtest_config(tmp_path / "node", port=0))
    gc.unfreeze()  # this test's own baseline, whatever ran before it
    try:
        server = build_server(node)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            assert gc.get_freeze_count() > 10_000  # modules, the app, the node's services

            # what the node makes while serving is still collected
            later = _Cyclic()
            ref = weakref.ref(later)
            del later
            gc.collect()
            assert ref() is None

            conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=10)
            conn.request("GET", "/v2/health/live")
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"live": True})
            assert response.getheader("Server") == "modelchain"
            conn.close()
        finally:
            server.close()
            thread.join(10)
        assert not thread.is_alive()
    finally:
        gc.unfreeze()
        node.close()
