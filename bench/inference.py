"""How fast is paid inference, against the same model served free in the same run?

One node (its Flask app on waitress, its inference workers) serves the same
small MLP twice: priced and free. 16 keep-alive clients in another process
send pre-built requests: free, paid per call (each request carries a fresh
signed usage_fee.pay tx) and paid by channel (each carries a voucher raised by
the price). Reported: requests/s of each and p99 latency, and the paid rates
as ratios of the free one (`per_call_vs_free`, want >= 0.6; `channel_vs_free`,
want >= 0.8). A fourth mode, `channel_fsync`, sends the same channel calls
to the node switched to `--receipt-sync-ms 0` (an fsync before every paid
answer, group-committed; `channel_fsync_vs_free`): what the stricter
durability costs. Each round runs the modes back to back, in an order that
rotates from round to round, and gives each paid mode's ratio to that round's
free run; the median round's ratio counts. Rounds are short (about a second a
mode) and many: a 2-core VM shared with other work changes speed by 20% and
more from one few-second spell to the next, so a ratio of two runs holds up only
when both ran in the same spell. One client process serves the whole run (its
connections stay open from round to round), so a round costs no process start.
Also reported: CPU microseconds per request of the server process, the
inference workers and the client process, and where the worker calls' time went
(waiting for a worker, holding one, the worker working: InferenceService.stats),
medians over rounds.

Run `python bench/inference.py [--calls N] [--rounds R]`: progress to stderr,
the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procstat import process_cpu_seconds  # bench/procstat.py

if TYPE_CHECKING:
    from modelchain.market.inference import InferenceStats

# the model and registration helpers the tests use: one small MLP, registered on regtest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

CLIENTS = 16
PRICE = 1_000
PAYERS_PER_CLIENT = 8
"""Per-call payers per client: a payer's calls are serial (nonces), so spread them."""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the client process ---------------------------------------------------------------


def client_main(port: int) -> None:
    """Keep CLIENTS keep-alive connections; for each stdin line (a path and a bodies file),
    send each client's bodies on its own connection, then print one JSON line: rps, p99."""
    connections = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(CLIENTS)]
    for line in sys.stdin:
        path, bodies_file = json.loads(line)
        print(json.dumps(_segment(connections, path, bodies_file)), flush=True)


def _segment(
    connections: list[http.client.HTTPConnection], path: str, bodies_file: str
) -> dict[str, Any]:
    prepared = [[b.encode() for b in bs] for bs in json.loads(Path(bodies_file).read_text())]
    latencies: list[float] = []
    errors: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(prepared) + 1)

    def client(conn: http.client.HTTPConnection, bodies: list[bytes]) -> None:
        mine: list[float] = []
        barrier.wait()
        for body in bodies:
            start = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                with lock:
                    errors.append(data[:300])
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=client, args=(conn, bodies))
        for conn, bodies in zip(connections, prepared, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "errors": len(errors),
        "first_error": errors[0].decode(errors="replace") if errors else None,
    }


# --- the server side --------------------------------------------------------------------


def cpu_seconds(node: Any, client_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of this process (the server), of the node's
    inference workers and of the client process."""
    workers = process_cpu_seconds(tuple(worker.pid for worker in node.inference._workers))
    own = resource.getrusage(resource.RUSAGE_SELF)
    threads: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
        except OSError:  # ended meanwhile
            continue
        group = thread.name.split("-")[0] if thread.name.startswith("waitress") else thread.name
        threads[f"server:{group}"] = threads.get(f"server:{group}", 0.0) + seconds
    return threads | {
        "server": own.ru_utime + own.ru_stime,
        "server_sys": own.ru_stime,
        "server_ctx_switches": (own.ru_nvcsw + own.ru_nivcsw) / 1e6,
        "workers": workers,
        "clients": process_cpu_seconds((client_pid,)),
    }


def inference_figures(
    before: InferenceStats, after: InferenceStats, seconds: float, workers: int
) -> dict[str, float]:
    """Where a run's worker calls spent their time (InferenceService.stats): per call, the
    wait for a slot and a place on a worker (`queue_us`), the place held (`checkout_us`: the
    wait behind the call before it on that worker included) and, of that, the worker working
    on it (`worker_us`); `workers_held` is the places held per worker over the run's time
    (above 1 when calls queue on the workers), `workers_working` the share of the run's
    time the workers worked."""
    calls = max(1, after.worker_calls - before.worker_calls)
    queue = after.queue_seconds - before.queue_seconds
    checkout = after.checkout_seconds - before.checkout_seconds
    worker = after.worker_seconds - before.worker_seconds
    return {
        "queue_us": round(queue / calls * 1e6),
        "checkout_us": round(checkout / calls * 1e6),
        "worker_us": round(worker / calls * 1e6),
        "workers_held": round(checkout / (seconds * workers), 2),
        "workers_working": round(worker / (seconds * workers), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=17)
    parser.add_argument(
        "--modes",
        default="free,per_call,channel,channel_fsync",
        help="comma-separated modes to run (the ratios need free and the paid ones)",
    )
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client_main(args.client)
        return

    from factories import key_for, mine_tip
    from factories_market import ModelSpec, mlp_model, register_models, regtest_config

    from modelchain.contracts.voucher import sign_voucher
    from modelchain.market.cli_pay import compute_local_request_hash
    from modelchain.market.client import sign_call
    from modelchain.market.config import dev_wallet
    from modelchain.market.node import MarketNode
    from modelchain.web.server import build_server

    logging.getLogger("waitress").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    config = regtest_config(
        work / "node",
        inference_workers=2,
        threads=CLIENTS,
        max_concurrent_inferences=CLIENTS,
        port=0,
    )
    node = MarketNode(config)
    progress("registering the MLP priced and free, funding payers, opening channels")
    # the same MLP twice; the free copy differs only in its doc string (a file's
    # sha256 registers once)
    free_copy = mlp_model(seed=7)
    free_copy.doc_string = "the same MLP, served free"
    register_models(
        node,
        [
            ModelSpec("mlp", mlp_model(seed=7), price=PRICE),
            ModelSpec("mlp-free", free_copy, price=0),
        ],
    )
    dev = dev_wallet()
    chain_id = node.params.chain_id
    payers = [key_for(f"bench-payer-{i}") for i in range(CLIENTS * PAYERS_PER_CLIENT)]
    for payer in payers:
        nonce = node.chain.pending_nonce(dev.account)
        transfer = {"to": payer.account, "amount": 10**9}
        node.submit_tx(sign_call(dev, chain_id, nonce, "coin", "transfer", transfer))
    mine_tip(node.chain)
    channels = []
    for payer in payers[:CLIENTS]:
        opening = {
            "model": "mlp",
            "version": "1",
            "node": node.account,
            "deposit": 10**8,
            "expiry": 10**6,
        }
        nonce = node.chain.pending_nonce(payer.account)
        tx = sign_call(payer, chain_id, nonce, "channel", "open", opening)
        node.submit_tx(tx)
        channels.append(tx.txid)
    mine_tip(node.chain)

    server = build_server(node)  # the node's own server, as `modelchain node start` runs it
    port = server.effective_port  # type: ignore[union-attr]
    threading.Thread(target=server.run, daemon=True).start()

    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16], "data": [0.25] * 16}]}
    version = node.inference.resolve(node.store, "mlp", "1")
    request_hash = compute_local_request_hash(body, version.sha256)

    def bodies(kind: str, client: int, calls: int) -> list[str]:
        if kind == "free":
            return [json.dumps(body)] * calls
        out = []
        if kind == "per_call":
            mine = payers[client * PAYERS_PER_CLIENT : (client + 1) * PAYERS_PER_CLIENT]
            bases = [node.chain.pending_nonce(p.account) for p in mine]
            for n in range(calls):
                payer = mine[n % PAYERS_PER_CLIENT]
                pay = {
                    "model": "mlp",
                    "version": "1",
                    "amount": PRICE,
                    "node": node.account,
                    "request": request_hash,
                }
                nonce = bases[n % PAYERS_PER_CLIENT] + n // PAYERS_PER_CLIENT
                tx = sign_call(payer, chain_id, nonce, "usage_fee", "pay", pay)
                payment = {"tx": tx.to_json()}
                out.append(json.dumps(body | {"parameters": {"payment": payment}}))
            return out
        channel = channels[client]
        start = node.payments.book.amount(channel)
        for n in range(calls):
            amount = start + (n + 1) * PRICE
            sig = sign_voucher(payers[client], chain_id, channel, amount)
            payment = {"channel": channel, "amount": amount, "sig": sig}
            out.append(json.dumps(body | {"parameters": {"payment": payment}}))
        return out

    client = subprocess.Popen(
        [sys.executable, __file__, "--client", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def run(kind: str, calls: int) -> dict[str, Any]:
        model = "mlp-free" if kind == "free" else "mlp"
        path = f"/v2/models/{model}/versions/1/infer"
        bodies_file = work / "bodies.json"
        # channel_fsync: the same channel calls on a node run with --receipt-sync-ms 0
        voucher_kind = "channel" if kind == "channel_fsync" else kind
        bodies_file.write_text(json.dumps([bodies(voucher_kind, c, calls) for c in range(CLIENTS)]))
        node.payments.db.sync_ms = 0 if kind == "channel_fsync" else config.receipt_sync_ms
        before = cpu_seconds(node, client.pid)
        stats_before = node.inference.stats()
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(json.dumps([path, str(bodies_file)]) + "\n")
        client.stdin.flush()
        line = client.stdout.readline()
        if not line:
            raise SystemExit(f"{kind}: the client process ended (exit {client.wait()})")
        after = cpu_seconds(node, client.pid)
        stats_after = node.inference.stats()
        result = json.loads(line)
        requests = CLIENTS * calls
        result["inference"] = inference_figures(
            stats_before, stats_after, requests / result["rps"], config.inference_workers
        )
        result["cpu_us_per_request"] = {
            part: round((after[part] - before.get(part, 0.0)) / requests * 1e6)
            for part in after
            if after[part] - before.get(part, 0.0) > 0.01
        }
        if result["errors"]:
            raise SystemExit(f"{kind}: {result['errors']} errors, first: {result['first_error']}")
        return result

    try:
        run("free", 20)  # warm the workers and sessions
        known = ("free", "per_call", "channel", "channel_fsync")
        modes = [mode for mode in known if mode in args.modes.split(",")]
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        ratios: dict[str, list[float]] = {mode: [] for mode in modes if mode != "free"}
        for round_ in range(args.rounds):
            shift = round_ % len(modes)
            this_round = {}
            for kind in modes[shift:] + modes[:shift]:
                result = run(kind, args.calls)
                results[kind].append(result)
                this_round[kind] = result["rps"]
                progress(
                    f"round {round_ + 1}/{args.rounds} {kind:8s} {result['rps']:7.0f} req/s  "
                    f"p99 {result['p99_ms']:.1f} ms  CPU us/request "
                    f"{result['cpu_us_per_request']}; inference {result['inference']}"
                )
            if "free" in this_round:
                for kind in ratios:
                    ratios[kind].append(this_round[kind] / this_round["free"])
            progress(
                f"round {round_ + 1}/{args.rounds} ratios to free: "
                + ", ".join(f"{kind} {values[-1]:.3f}" for kind, values in ratios.items() if values)
            )
        rps = {k: statistics.median(r["rps"] for r in v) for k, v in results.items()}
        p99 = {k: statistics.median(r["p99_ms"] for r in v) for k, v in results.items()}
        cpu = {
            kind: {
                part: round(statistics.median(r["cpu_us_per_request"].get(part, 0) for r in runs))
                for part in ("server", "server_sys", "workers", "clients")
            }
            for kind, runs in results.items()
        }
        inference = {
            kind: {
                part: round(statistics.median(r["inference"][part] for r in runs), 2)
                for part in runs[0]["inference"]
            }
            for kind, runs in results.items()
        }
        if not {"free", "per_call", "channel"} <= set(modes):  # a partial run: no ratios
            print(json.dumps({"rps": rps, "p99_ms": p99, "inference": inference}, sort_keys=True))
            return
        figures = {
            "channel_vs_free": round(statistics.median(ratios["channel"]), 3),
            "per_call_vs_free": round(statistics.median(ratios["per_call"]), 3),
            "channel_vs_free_rounds": [round(r, 3) for r in ratios["channel"]],
            "per_call_vs_free_rounds": [round(r, 3) for r in ratios["per_call"]],
            **(
                {
                    "channel_fsync_vs_free": round(statistics.median(ratios["channel_fsync"]), 3),
                    "channel_fsync_rps": round(rps["channel_fsync"], 1),
                    "channel_fsync_p99_ms": round(p99["channel_fsync"], 2),
                }
                if "channel_fsync" in ratios
                else {}
            ),
            "free_rps": round(rps["free"], 1),
            "per_call_rps": round(rps["per_call"], 1),
            "channel_rps": round(rps["channel"], 1),
            "free_p99_ms": round(p99["free"], 2),
            "per_call_p99_ms": round(p99["per_call"], 2),
            "channel_p99_ms": round(p99["channel"], 2),
            "cpu_us_per_request": cpu,
            "inference": inference,
            "clients": CLIENTS,
            "calls_per_client": args.calls,
            "rounds": args.rounds,
            "cpu_count": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        print(
            f"free {rps['free']:.0f} req/s; per call {rps['per_call']:.0f} "
            f"({figures['per_call_vs_free']:.2f} of free); channel {rps['channel']:.0f} "
            f"({figures['channel_vs_free']:.2f} of free)"
        )
        print(json.dumps(figures, sort_keys=True))
    finally:
        if client.stdin is not None:
            client.stdin.close()  # the client ends at the end of its input
        try:
            client.wait(10)
        except subprocess.TimeoutExpired:
            client.kill()
        server.close()
        node.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
