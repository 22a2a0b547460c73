"""`--receipt-sync-ms` on `modelchain node start` and `modelchain up` reaches the node's
config; a value out of its range is a usage error that starts nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_market_cli_peers import run_with_fake_server

from modelchain.market.marketdb import DEFAULT_SYNC_MS


def test_receipt_sync_defaults_to_the_log_interval_and_takes_zero(tmp_path: Path) -> None:
    code, output, served = run_with_fake_server("node", "start", "--data", str(tmp_path))
    assert code == 0, output
    assert served[0].receipt_sync_ms == DEFAULT_SYNC_MS
    code, output, served = run_with_fake_server(
        "--home", str(tmp_path), "up", "--receipt-sync-ms", "0"
    )
    assert code == 0, output
    assert served[0].receipt_sync_ms == 0


@pytest.mark.parametrize("value", ["-1", "60001", "soon"])
def test_a_receipt_sync_out_of_range_is_a_usage_error(tmp_path: Path, value: str) -> None:
    code, output, served = run_with_fake_server(
        "node", "start", "--data", str(tmp_path), "--receipt-sync-ms", value
    )
    assert code == 2
    assert "--receipt-sync-ms" in output
    assert served == []


@pytest.mark.parametrize("value", ["-1", "65536", "http"])
@pytest.mark.parametrize("command", [["up"], ["node", "start"]])
def test_a_port_out_of_range_is_a_usage_error(
    tmp_path: Path, command: list[str], value: str
) -> None:
    code, output, served = run_with_fake_server(
        "--home", str(tmp_path), *command, "--data", str(tmp_path / "node"), "--port", value
    )
    assert code == 2
    assert "--port" in output
    assert served == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["--bogus", "chain", "info"], "No such option '--bogus'"),
        (["channel", "show", "zz"], "'zz' is not a channel id"),
        (["node", "start", "--data", "d", "--port", "65536"], "--port"),
    ],
)
def test_with_json_bad_usage_is_a_json_error_and_exit_2(
    tmp_path: Path, args: list[str], said: str
) -> None:
    code, output, served = run_with_fake_server("--home", str(tmp_path), "--json", *args)
    assert code == 2
    error = json.loads(output)["error"]
    assert error["code"] == "cli-usage"
    assert said in error["message"]
    assert served == []
