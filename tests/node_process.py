"""A real `modelchain node start` process for the multi-node tests: start, find, stop.

The node runs on 127.0.0.1 with port 0; the test finds its URL in <data>/node.json
(written once it is bound, with its pid), polls /v2/health/ready, and stops it by
pid (terminate, wait, kill). Its stderr goes to <data>.stderr, shown on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from modelchain.market.cli import cli

START_SECONDS = 60.0


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class NodeProcess:
    data: Path
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    url: str = ""

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
        """Start a node on `data` and wait until it serves; peers are other nodes' URLs."""
        data.mkdir(parents=True, exist_ok=True)
        (data / "node.json").unlink(missing_ok=True)
        stderr_path = data.with_name(data.name + ".stderr")
        command = [sys.executable, "-m", "modelchain.entry", "node", "start", "--data", str(data)]
        command += ["--network", network, "--port", "0", "--workers", str(workers)]
        command += ["--mine" if mine else "--no-mine"]
        for url in peers:
            command += ["--peer", url]
        with stderr_path.open("ab") as stderr:
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        node = cls(data, proc, stderr_path)
        try:
            wait_until(node._has_reported, START_SECONDS, "the node to report its URL")
            wait_until(node._is_ready, START_SECONDS, "the node to be ready")
        except AssertionError:
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
        return True

    def _is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
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
