"""`--peer` on `modelchain node start` and `modelchain up` reaches the node's config,
a malformed peer URL is a usage error, and `modelchain peers` has help with an example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelchain.chain.peers import MAX_PEERS
from modelchain.market.cli import CliContext, cli
from modelchain.market.config import NodeConfig


def run_with_fake_server(*args: str) -> tuple[int, str, list[NodeConfig]]:
    served: list[NodeConfig] = []

    def serve(config: NodeConfig, ready: Any = None) -> None:
        served.append(config)

    result = CliRunner().invoke(cli, list(args), obj=CliContext(serve=serve))
    return result.exit_code, result.output, served


def test_node_start_passes_every_peer_to_the_node(tmp_path: Path) -> None:
    code, output, served = run_with_fake_server(
        "node", "start", "--data", str(tmp_path), "--peer", "http://127.0.0.1:1",
        "--peer", "http://127.0.0.1:2",
    )  # fmt: skip
    assert code == 0, output
    assert served[0].peers == ("http://127.0.0.1:1", "http://127.0.0.1:2")


def test_up_passes_its_peer_to_the_dev_node(tmp_path: Path) -> None:
    code, output, served = run_with_fake_server(
        "--home", str(tmp_path), "up", "--peer", "http://127.0.0.1:8080"
    )
    assert code == 0, output
    assert (served[0].network, served[0].peers) == ("dev", ("http://127.0.0.1:8080",))


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://node.example", "http://"])
def test_a_malformed_peer_url_is_a_usage_error_and_starts_nothing(tmp_path: Path, url: str) -> None:
    code, output, served = run_with_fake_server(
        "node", "start", "--data", str(tmp_path), "--peer", url
    )
    assert code == 2
    assert "--peer" in output
    assert served == []


def test_more_peers_than_a_node_keeps_is_a_usage_error(tmp_path: Path) -> None:
    flags = [arg for i in range(MAX_PEERS + 1) for arg in ("--peer", f"http://127.0.0.1:{i + 1}")]
    code, output, served = run_with_fake_server("node", "start", "--data", str(tmp_path), *flags)
    assert code == 2
    assert "--peer" in output
    assert served == []


def test_peers_has_help_ending_with_an_example() -> None:
    command = cli.commands["peers"]
    example = (command.help or "").strip().split("\n\n")[-1].strip()
    assert example.startswith("Example: modelchain peers")
    result = CliRunner().invoke(cli, ["peers", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
