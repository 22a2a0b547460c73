"""A real `modelchain` node process for the tests: start it, find it, mine on it, stop it.

The node runs on 127.0.0.1 with port 0 (`node start`, or `up` for a dev node); the test finds
its URL in <data>/node.json (written once it is bound, with its pid), polls
/v2/health/ready, and stops it by pid (terminate, wait, kill). Its stderr goes to
<data>.stderr (a restart on the same data dir appends to it); `stderr()` is this process's
part, for the test to print on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from factories import wait_until

from modelchain.market.cli import cli
from modelchain.market.client import NodeClient

START_SECONDS = 60.0
MINE_SECONDS = 60.0
STOP_SECONDS = 30.0
STDERR_CHARS = 5000
"""How much of a node's stderr `stderr()` gives: its last characters."""


@dataclass
class NodeProcess:
    data: Path
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_offset: int = 0
    """Where this process's stderr starts in `stderr_path`."""
    url: str = ""
    account: str = ""
    """The node's own account (it signs receipts and gets the node share)."""

    @classmethod
    def start(
        cls,
        data: Path,
        *,
        mine: bool = True,
        peers: Sequence[str] = (),
        network: str = "regtest",
        workers: int = 1,
    ) -> NodeProcess:
        """`modelchain node start` on `data`, serving once this returns; peers are other
        nodes' URLs."""
        args = ["node", "start", "--data", str(data), "--network", network]
        args += ["--workers", str(workers), "--mine" if mine else "--no-mine"]
        for url in peers:
            args += ["--peer", url]
        return cls._launch(data, args)

    @classmethod
    def up(cls, data: Path, home: Path, *, workers: int = 1) -> NodeProcess:
        """`modelchain --home HOME up` on `data`: a mining dev node that has registered the
        demo model (or found it registered) once this returns."""
        args = ["--home", str(home), "up", "--data", str(data), "--workers", str(workers)]
        return cls._launch(data, args)

    @classmethod
    def _launch(cls, data: Path, args: list[str]) -> NodeProcess:
        data.mkdir(parents=True, exist_ok=True)
        (data / "node.json").unlink(missing_ok=True)
        stderr_path = data.with_name(data.name + ".stderr")
        command = [sys.executable, "-m", "modelchain.entry", *args, "--port", "0"]
        with stderr_path.open("ab") as stderr:
            offset = stderr.tell()
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        node = cls(data, proc, stderr_path, offset)
        try:
            wait_until(node._has_reported, START_SECONDS, "the node to report its URL")
            # the URL is reported once bound; the node answers once it serves (`up` first
            # registers its demo model)
            wait_until(node._is_ready, START_SECONDS, "the node to be ready")
        except BaseException:
            node.stop()
            raise
        return node

    def _has_reported(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the node exited {self.proc.returncode}:\n{self.stderr()}")
        try:
            info = json.loads((self.data / "node.json").read_text())
        except (OSError, ValueError):
            return False
        if info.get("pid") != self.proc.pid:
            return False
        self.url = info["url"]
        self.account = info["account"]
        return True

    def _is_ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the node exited {self.proc.returncode}:\n{self.stderr()}")
        try:
            with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    @property
    def client(self) -> NodeClient:
        return NodeClient(self.url)

    @cached_property
    def chain_id(self) -> str:
        return self.client.chain_info()["chain_id"]

    def mine(self, blocks: int = 1) -> int:
        """Ask the node's miner for `blocks` blocks and wait until the tip has grown by that
        many; returns the height."""
        start = self.client.chain_info()["height"]
        self.client.post("/api/v1/mine", {"blocks": blocks})
        return wait_until(
            lambda: (h := self.client.chain_info()["height"]) >= start + blocks and h,
            MINE_SECONDS,
            f"{blocks} block(s) mined above height {start}",
        )

    def stderr(self) -> str:
        """The last STDERR_CHARS characters this process wrote to stderr."""
        with self.stderr_path.open("rb") as file:
            file.seek(self.stderr_offset)
            return file.read().decode(errors="replace")[-STDERR_CHARS:]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cli:
    """`modelchain --node URL --home HOME --json ...` in-process; returns the JSON output."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.url = ""
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Any:
        result = self.runner.invoke(
            cli, ["--node", self.url, "--home", str(self.home), "--json", *args]
        )
        assert result.exit_code == 0, f"modelchain {' '.join(args)}: {result.output}"
        return json.loads(result.stdout)
