"""A node process for the crash test: import a planned set of blocks, then mine.

Run as `python crash_node.py DATA_DIR PLAN_JSON`. It is idempotent: started
again after a SIGKILL it recovers from its data directory and carries on.
Mining is deterministic (the template's time is its parent's plus 10 s and
nonces are tried from 0 upwards), so every run that finishes reaches the
same chain. It prints one progress line per step, flushed, for the test to
time its kills by.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from modelchain.chain.block import Block, decode_block
from modelchain.chain.errors import ModelchainError
from modelchain.chain.miner import mine_header
from modelchain.chain.node import ChainNode
from modelchain.chain.params import regtest_params
from modelchain.chain.store import ChainStore
from modelchain.chain.tx import decode_tx


def main(data_dir: str, plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    allocations = tuple((account, amount) for account, amount in plan["allocations"])
    params = regtest_params(allocations=allocations)
    node = ChainNode(ChainStore(Path(data_dir) / "chain.sqlite"), params, verify_threads=1)
    print(f"started at height {node.height}", flush=True)
    for raw in plan["blocks"]:
        block = decode_block(bytes.fromhex(raw))
        if block.hash in node.index:
            continue
        result = node.submit_block(block)
        print(f"imported {block.hash[:12]} {result.status} tip={node.height}", flush=True)
    for raw in plan["txs"]:
        tx = decode_tx(bytes.fromhex(raw))
        try:
            node.submit_tx(tx)
            print(f"tx {tx.txid[:12]} pooled", flush=True)
        except ModelchainError:
            continue  # already pooled or already mined before the crash
    while node.height < plan["target_height"]:
        template = node.block_template(plan["miner"], now=node.tip.header.timestamp + 10)
        block = Block(mine_header(template.header), template.txs)
        node.submit_block(block)
        print(f"mined {block.hash[:12]} height={node.height} txs={len(block.txs)}", flush=True)
    print(f"DONE {node.tip.hash}", flush=True)
    node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
