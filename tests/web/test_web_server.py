"""The node's server as `serve` builds it (web/server.py)."""

from __future__ import annotations

import gc
import http.client
import json
import socket
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories_market import regtest_config

from modelchain.market.cli import CliContext, cli
from modelchain.market.node import MarketNode
from modelchain.web.server import NodeCannotListen, build_server, serve


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


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_serve_on_a_port_in_use_says_so_before_touching_the_data_directory(
    tmp_path: Path, taken_port: int
) -> None:
    data = tmp_path / "node"
    with pytest.raises(NodeCannotListen, match=f"127.0.0.1:{taken_port}: .*in use") as err:
        serve(regtest_config(data, port=taken_port))
    assert err.value.code == "node-cannot-listen"
    assert not data.exists()


def test_serve_on_a_host_not_of_this_machine_says_so(tmp_path: Path) -> None:
    with pytest.raises(NodeCannotListen, match="cannot listen on 192.0.2.1:0"):
        serve(regtest_config(tmp_path / "node", host="192.0.2.1", port=0))  # TEST-NET-1
    assert not (tmp_path / "node").exists()


@pytest.mark.parametrize("command", [["up"], ["node", "start"]])
def test_the_cli_names_a_port_in_use_with_its_code_and_exit_1(
    tmp_path: Path, taken_port: int, command: list[str]
) -> None:
    data = tmp_path / "node"
    args = ["--home", str(tmp_path / "home"), *command, "--data", str(data)]
    result = CliRunner().invoke(
        cli, [*args, "--port", str(taken_port)], obj=CliContext(serve=serve)
    )  # as the console script (modelchain.entry) wires it
    assert result.exit_code == 1, result.output
    assert f"Error [node-cannot-listen]: cannot listen on 127.0.0.1:{taken_port}" in result.output
    assert "Traceback" not in result.output
    assert not data.exists()
