"""`modelchain model ...` and `modelchain audit ...` against a real node process, and the demo
model of `modelchain up`.

A regtest node runs as its own process (`python -m modelchain.entry node start --port 0
--mine`) on 127.0.0.1 for the module; each test drives the CLI through click's CliRunner with
its own CLI home and its own model files. Processes (tests/node_process.py) are found by
their node.json, waited for by polling and stopped by pid; their stderr is printed when a
test fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from factories import key_for, wait_until
from node_process import START_SECONDS, NodeProcess

from modelchain.market.cli import cli
from modelchain.market.cli_models import describe_event
from modelchain.market.config import dev_wallet
from modelchain.market.demo import build_affine_model, load_demo_spec

DEV = dev_wallet()


@pytest.fixture(scope="module")
def node_process(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[NodeProcess]:
    """One regtest node for the module; its stderr is printed if any test failed."""
    failed_before = request.session.testsfailed
    node = NodeProcess.start(tmp_path_factory.mktemp("cli-node") / "data")
    yield node
    node.stop()
    if request.session.testsfailed > failed_before:
        print(node.stderr())


@pytest.fixture
def run(node_process: NodeProcess, tmp_path: Path) -> Callable[..., Result]:
    """Runs `modelchain --node URL --home HOME ARGS...` in this process."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        base = ["--node", node_process.url, "--home", str(tmp_path / "home")]
        return runner.invoke(cli, [*base, *args], catch_exceptions=False)

    return invoke


def model_file(tmp_path: Path, seed: int) -> Path:
    path = tmp_path / f"model-{seed}.onnx"
    path.write_bytes(build_affine_model(float(seed), 0.5, input_name="x", output_name="y"))
    return path


def output_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- help ----------------------------------------------------------------------------------


def _commands(group: click.Group) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield name, command
        if isinstance(command, click.Group):
            for sub, inner in _commands(command):
                yield f"{name} {sub}", inner


@pytest.mark.parametrize("group", ["model", "audit"])
def test_every_model_and_audit_command_has_help_ending_with_an_example(group: str) -> None:
    top = cli.commands[group]
    assert isinstance(top, click.Group)
    runner = CliRunner()
    for name, command in [(group, top), *((f"{group} {n}", c) for n, c in _commands(top))]:
        doc = (command.help or "").strip()
        assert doc, f"`modelchain {name}` has no help"
        example = doc.split("\n\n")[-1].strip()
        assert example.startswith(f"Example: modelchain {group}"), f"{name}: {example!r}"
        result = runner.invoke(cli, [*name.split(), "--help"])
        assert result.exit_code == 0 and "Example:" in result.output


# --- model ---------------------------------------------------------------------------------


def test_model_inspect_prints_the_signature_and_stores_nothing(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    path = model_file(tmp_path, 101)
    human = run("model", "inspect", str(path))
    assert human.exit_code == 0, human.output
    assert "x  float32[n]" in human.stdout
    assert "y  float32[n]" in human.stdout
    found = output_json(run("--json", "model", "inspect", str(path)))
    assert found["size"] == path.stat().st_size
    assert found["registered_as"] is None
    missing = run("--json", "audit", "events", "--type", "model-registered", "--limit", "100")
    assert found["sha256"] not in missing.stdout


def test_model_upload_shows_progress_and_waits_for_confirmations(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    path = model_file(tmp_path, 102)
    args = ["model", "upload", str(path), "--name", "cli-scaler", "--version", "1.0.0"]
    args += ["--price", "25", "--tag", "demo", "--description", "scales by 102", "--wait", "1"]
    result = run("--json", *args)
    uploaded = output_json(result)
    assert "uploading model-102.onnx" in result.stderr
    assert "1/1 confirmations" in result.stderr
    assert uploaded["confirmations"] >= 1
    assert (uploaded["name"], uploaded["version"]) == ("cli-scaler", "1.0.0")

    listed = output_json(run("--json", "model", "list", "--q", "scales by 102"))
    assert [v["ref"] for v in listed["versions"]] == ["cli-scaler@1.0.0"]
    assert listed["versions"][0]["split"] == {"owners": [[DEV.account, 9000]], "node": 1000}
    shown = run("model", "show", "cli-scaler@1.0.0")
    assert uploaded["sha256"] in shown.stdout and "price     25 per call" in shown.stdout
    assert "1.0.0" in run("model", "show", "cli-scaler").stdout
    history = output_json(run("--json", "audit", "model", "cli-scaler"))
    assert [e["type"] for e in history["registry_events"]] == ["model-registered"]
    tx = output_json(run("--json", "audit", "tx", uploaded["txid"]))
    assert tx["status"] == "confirmed" and tx["events"][0]["data"]["name"] == "cli-scaler"
    assert "registry.model-registered" in run("audit", "tx", uploaded["txid"]).stdout
    mine = output_json(run("--json", "audit", "account", "dev"))
    assert "cli-scaler" in mine["models_owned"]
    events = run("audit", "events", "--model", "cli-scaler")
    assert "cli-scaler@1.0.0 by" in events.stdout


def test_model_upload_splits_revenue_as_asked(run: Callable[..., Result], tmp_path: Path) -> None:
    carol = key_for("carol").account
    path = model_file(tmp_path, 103)
    args = ["model", "upload", str(path), "--name", "cli-split", "--version", "1"]
    args += ["--price", "10", "--split", f"dev=6000,{carol}=3000,node=1000", "--wait", "1"]
    output_json(run("--json", *args))
    shown = output_json(run("--json", "model", "show", "cli-split@1"))
    assert shown["split"] == {"owners": [[DEV.account, 6000], [carol, 3000]], "node": 1000}


@pytest.mark.parametrize(
    "split", ["dev=9000", "dev=9000,node=2000", "dev=abc,node=1000", "nobody-knows"]
)
def test_model_upload_with_a_bad_split_is_a_usage_error(
    run: Callable[..., Result], tmp_path: Path, split: str
) -> None:
    path = model_file(tmp_path, 104)
    args = ["model", "upload", str(path), "--name", "cli-bad", "--version", "1", "--price", "1"]
    result = run(*args, "--split", split)
    assert result.exit_code == 2, result.output
    assert "--split" in result.output


def test_model_upload_of_a_file_that_is_not_a_model_fails_with_its_code(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"definitely not onnx")
    args = ["model", "upload", str(path), "--name", "cli-junk", "--version", "1", "--price", "1"]
    human = run(*args)
    assert human.exit_code == 1
    assert "Error [model-not-onnx]" in human.stderr
    as_json = run("--json", *args)
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "model-not-onnx"


def test_model_upload_of_a_registered_file_is_refused_before_signing(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    path = model_file(tmp_path, 105)
    first = ["model", "upload", str(path), "--name", "cli-once", "--version", "1"]
    output_json(run("--json", *first, "--price", "1", "--wait", "1"))
    again = run(
        "model", "upload", str(path), "--name", "cli-twice", "--version", "1", "--price", "1"
    )
    assert again.exit_code == 1
    assert "Error [registry-sha256-exists]" in again.stderr
    assert "uploading" not in again.stderr


def test_model_show_of_an_unknown_model_fails_with_its_code(run: Callable[..., Result]) -> None:
    result = run("model", "show", "no-such-model")
    assert result.exit_code == 1
    assert "catalog-unknown-model" in result.stderr
    stale = run("audit", "events", "--cursor", f"999999.7.{'0' * 16}")
    assert stale.exit_code == 1 and "audit-cursor-stale" in stale.stderr


# --- modelchain up -------------------------------------------------------------------------


def test_up_registers_the_demo_model_once_across_restarts(tmp_path: Path) -> None:
    """`modelchain up` on a fresh data directory registers and mines the demo model; a second
    start finds it registered and sends no tx."""
    spec = load_demo_spec()
    data = tmp_path / "node"
    node = NodeProcess.up(data, tmp_path / "home")
    try:
        assert "registration submitted" in node.stderr()
        client = node.client
        path = f"/api/v1/models/{spec.name}/versions/{spec.version}"

        def confirmed() -> dict[str, Any] | None:
            try:
                entry = client.get(path)
            except Exception:  # noqa: BLE001 - not registered yet
                return None
            return entry if entry["confirmations"] >= 1 else None

        entry = wait_until(confirmed, START_SECONDS, "the demo model to be mined")
        assert entry["registrant"] == DEV.account
        assert entry["price"] == spec.price
        assert entry["file_available"] is True
    except BaseException:
        print(node.stderr())
        raise
    finally:
        node.stop()
    again = NodeProcess.up(data, tmp_path / "home")
    try:
        assert f"demo model {spec.ref}: registered" in again.stderr()
        assert again.client.get("/api/v1/mempool")["size"] == 0
    except BaseException:
        print(again.stderr())
        raise
    finally:
        again.stop()


A, B, C = "a" * 64, "b" * 64, "c" * 64


@pytest.mark.parametrize(
    ("kind", "data", "said"),
    [
        ("channel-opened", {"channel": C, "payer": A, "node": B, "model": "m", "version": "1",
                            "sha256": "0" * 64, "deposit": 500, "expiry": 90},
         "aaaaaaaaaaaa opened cccccccccccc for m@1, deposit 500 until 90"),
        ("channel-topped-up", {"channel": C, "payer": A, "added": 7, "deposit": 507,
                               "old_expiry": 90, "expiry": 120},
         "aaaaaaaaaaaa added 7 to cccccccccccc, deposit 507 until 120"),
        ("channel-refunded", {"channel": C, "payer": A, "node": B, "refunded": 300,
                              "claimed": 200, "deposit": 500},
         "aaaaaaaaaaaa took back 300 from cccccccccccc"),
    ],
)  # fmt: skip
def test_channel_events_read_as_sentences_not_raw_json(
    kind: str, data: dict[str, Any], said: str
) -> None:
    event = {"id": 3, "height": 12, "confirmations": 2, "contract": "channel", "type": kind,
             "data": data, "txid": "d" * 64}  # fmt: skip
    line = describe_event(event)
    assert said in line
    assert "{" not in line


@pytest.mark.parametrize(
    "args",
    [
        ["model", "show", "demo?x@1.0.0"],
        ["model", "show", "demo@1.0.0?x"],
        ["model", "show", "Demo"],
        ["audit", "model", "demo?x"],
        ["audit", "model", "demo@1.0.0"],
    ],
)
def test_a_name_the_registry_cannot_hold_is_a_usage_error_before_any_request(
    args: list[str],
) -> None:
    result = CliRunner().invoke(cli, ["--node", "http://127.0.0.1:1", *args])  # nothing there
    assert result.exit_code == 2, result.output
    assert "NAME" in result.output
    assert "Traceback" not in result.output
