# ruff: noqa: F811 - the fixtures imported below are test parameters here
"""`modelchain infer`, `channel ...` and `receipt verify` against a real node process: what
the CLI refuses before it signs (so no fee is spent on a tx the chain would fail), and
how a wait on a tx that failed on-chain ends.

The node process and the CLI runner are test_market_cli_models.py's (one regtest node
for the module, mining; each test its own CLI home, using the funded dev wallet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from node_process import NodeProcess
from test_market_cli_models import model_file, node_process, output_json, run  # noqa: F401

from modelchain.contracts.channel import CHANNEL
from modelchain.market.cli import cli
from modelchain.market.client import NodeClient, NodeError
from modelchain.market.config import dev_wallet

DEV = dev_wallet()
REQUEST = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}]}
PRICE = 40


def upload(run: Callable[..., Result], tmp_path: Path, name: str, price: int) -> None:
    path = model_file(tmp_path, seed=len(name) * 10 + price)
    args = ["model", "upload", str(path), "--name", name, "--version", "1"]
    output_json(run("--json", *args, "--price", str(price), "--wait", "1"))


@pytest.fixture(scope="module")
def models(node_process: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`pay-priced@1` at PRICE and `pay-free@1` at 0, registered once for the module."""
    work = tmp_path_factory.mktemp("pay-models")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        base = ["--node", node_process.url, "--home", str(work / "home")]
        return runner.invoke(cli, [*base, *args], catch_exceptions=False)

    upload(invoke, work, "pay-priced", PRICE)
    upload(invoke, work, "pay-free", 0)


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    return path


@pytest.fixture
def unsigned(run: Callable[..., Result], node_process: NodeProcess) -> Callable[..., Result]:
    """Runs the CLI and checks it signed and sent nothing: the dev wallet's next nonce
    is unchanged."""
    client = NodeClient(node_process.url)

    def invoke(*args: str) -> Result:
        before = client.account(DEV.account)["pending_nonce"]
        result = run(*args)
        assert client.account(DEV.account)["pending_nonce"] == before, result.output
        return result

    return invoke


def open_channel(run: Callable[..., Result], blocks: int = 50) -> str:
    args = ["channel", "open", "pay-priced@1", "--deposit", str(10 * PRICE)]
    opened: dict[str, Any] = output_json(
        run("--json", *args, "--blocks", str(blocks), "--wait", "1")
    )
    return opened["channel"]


# --- refused before anything is signed ----------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("pay-priced@9", "catalog-unknown-version"),
        ("pay-nobody@1", "catalog-unknown-model"),
        ("pay-free@1", "channel-free-version"),
    ],
)
def test_a_channel_the_contract_would_refuse_is_refused_before_signing(
    unsigned: Callable[..., Result], models: None, ref: str, code: str
) -> None:
    result = unsigned("channel", "open", ref, "--deposit", "1000", "--blocks", "50")
    assert result.exit_code == 1
    assert f"Error [{code}]" in result.stderr


def test_a_channel_too_short_for_the_nodes_margin_is_a_usage_error(
    unsigned: Callable[..., Result], models: None, node_process: NodeProcess
) -> None:
    margin = NodeClient(node_process.url).chain_info()["channel_margin_blocks"]
    too_short = str(margin + 1)
    result = unsigned("channel", "open", "pay-priced@1", "--deposit", "9", "--blocks", too_short)
    assert result.exit_code == 2
    assert "--blocks" in result.output and f"at least {margin + 2}" in result.output


@pytest.mark.parametrize("ref", ["pay-priced@", "@1", ""])
def test_an_empty_name_or_version_is_a_usage_error_and_pays_nothing(
    unsigned: Callable[..., Result], models: None, request_file: Path, ref: str
) -> None:
    result = unsigned("infer", ref, "--input", str(request_file))
    assert result.exit_code == 2
    assert "NAME or NAME@VERSION" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["infer", "pay-priced@1", "--channel", "CHANNEL_ID"],
        ["channel", "show", "CHANNEL_ID"],
        [
            "channel",
            "open",
            "pay-priced@1",
            "--deposit",
            "9",
            "--blocks",
            "50",
            "--node-account",
            "xyz",
        ],
        ["receipt", "verify", "{file}", "--node-account", "xyz"],
    ],
    ids=["infer-channel", "channel-show", "open-node-account", "verify-node-account"],
)
def test_a_malformed_channel_id_or_account_is_a_usage_error(
    unsigned: Callable[..., Result], request_file: Path, args: list[str]
) -> None:
    args = [str(request_file) if arg == "{file}" else arg for arg in args]
    if args[0] == "infer":
        args += ["--input", str(request_file)]
    result = unsigned(*args)
    assert result.exit_code == 2
    assert "not a channel id" in result.output or "not an account" in result.output


# --- channels opened here -------------------------------------------------------------------


def test_a_channel_opened_here_pays_from_zero_and_its_refund_waits_for_expiry(
    run: Callable[..., Result],
    unsigned: Callable[..., Result],
    models: None,
    request_file: Path,
) -> None:
    channel = open_channel(run)
    paid = run("infer", "pay-priced@1", "--input", str(request_file), "--channel", channel)
    assert paid.exit_code == 0, paid.output
    assert "no record of channel" not in paid.stderr  # this CLI opened it: nothing signed yet
    assert f"paid {PRICE} by channel {channel} (cumulative {PRICE})" in paid.stdout
    for field in ("model sha256", "input hash", "output hash", "sig"):
        assert field in paid.stdout  # the receipt, not only its id

    early = unsigned("channel", "refund", channel)
    assert early.exit_code == 1
    assert "Error [channel-not-expired]" in early.stderr


def test_waiting_on_a_tx_that_failed_on_chain_names_its_failure(
    run: Callable[..., Result],
    models: None,
    node_process: NodeProcess,
) -> None:
    channel = open_channel(run)
    client = NodeClient(node_process.url)
    tx = client.call(DEV, CHANNEL, "refund", {"channel": channel})  # the CLI would not send it
    with pytest.raises(NodeError) as err:
        client.wait_for_confirmations(tx.txid, 1, timeout=60)
    assert err.value.code == "tx-failed"
    assert err.value.detail["tx_code"] == "channel-not-expired"
    assert err.value.detail["fee"] == tx.fee
    assert f"its fee {tx.fee} was taken" in err.value.message


# --- printing a request ---------------------------------------------------------------------


def test_print_request_for_a_free_model_prints_the_request_not_an_answer(
    run: Callable[..., Result],
    models: None,
    request_file: Path,
) -> None:
    result = run("infer", "pay-free@1", "--input", str(request_file), "--print-request")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == REQUEST | {"parameters": {}}
    assert "is free: the request needs no payment" in result.stderr


def test_print_request_without_a_version_pays_the_version_the_node_would_run(
    run: Callable[..., Result],
    models: None,
    request_file: Path,
) -> None:
    result = run("infer", "pay-priced", "--input", str(request_file), "--print-request")
    assert result.exit_code == 0, result.output
    tx = json.loads(result.stdout)["parameters"]["payment"]["tx"]
    assert (tx["method"], tx["args"]["version"], tx["args"]["amount"]) == ("pay", "1", PRICE)
