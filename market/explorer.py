"""Chain queries for the explorer and the API: chain info, blocks, txs, accounts.

Answers come from the node's own chain state and are plain JSON values;
a tx or block that is not (or no longer) on the main chain says so.
"""

from __future__ import annotations

from typing import Any

from modelchain.chain.block import Block
from modelchain.chain.errors import BlockUnknown, ModelchainError, TxUnknown
from modelchain.chain.keys import is_account
from modelchain.chain.node import ChainNode
from modelchain.chain.pow import compute_work

MAX_PAGE = 100


class BadQuery(ModelchainError):
    code = "query-invalid"


def chain_info(chain: ChainNode) -> dict[str, Any]:
    tip = chain.tip
    return {
        "chain_id": chain.params.chain_id,
        "height": tip.height,
        "tip": tip.hash,
        "tip_time": tip.header.timestamp,
        "target": f"{tip.header.target:064x}",
        "difficulty": str(compute_work(tip.header.target)),
        "cumulative_work": str(tip.work),
        "genesis": chain.store.get_meta("genesis"),
        "mempool_size": len(chain.mempool),
        "target_block_seconds": chain.params.target_block_seconds,
    }


def block_summary(chain: ChainNode, block: Block) -> dict[str, Any]:
    header = block.header
    return {
        "hash": block.hash,
        "height": header.height,
        "prev_hash": header.prev_hash,
        "timestamp": header.timestamp,
        "miner": header.miner,
        "target": f"{header.target:064x}",
        "difficulty": str(compute_work(header.target)),
        "tx_count": len(block.txs),
        "size": block.size,
        "reward": block.txs[0].args["amount"] if block.txs else 0,
        "confirmations": chain.confirmations(block.hash),
    }


def latest_blocks(chain: ChainNode, limit: int = 20, before: int | None = None) -> list[dict]:
    """Main-chain blocks, newest first, starting below height `before`."""
    limit = check_limit(limit)
    top = chain.height if before is None else min(before - 1, chain.height)
    result = []
    for height in range(top, max(-1, top - limit), -1):
        block = chain.block_at(height)
        if block is not None:
            result.append(block_summary(chain, block))
    return result


def find_block(chain: ChainNode, ref: str) -> Block:
    """A block by hash (any branch) or by main-chain height; raises BlockUnknown."""
    block: Block | None = None
    if ref.isdigit() and len(ref) < 20:
        block = chain.block_at(int(ref))
    elif len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
        block = chain.get_block(ref)
    if block is None:
        raise BlockUnknown(f"no block {ref!r} (give a main-chain height or a block hash)")
    return block


def block_detail(chain: ChainNode, ref: str) -> dict[str, Any]:
    block = find_block(chain, ref)
    detail = block_summary(chain, block)
    detail["header"] = block.header.to_json()
    detail["on_main_chain"] = chain.is_on_main_chain(block.hash)
    detail["txs"] = [
        tx.to_json() | {"txid": tx.txid, "receipt": _receipt(chain, tx.txid)} for tx in block.txs
    ]
    return detail


def _receipt(chain: ChainNode, txid: str) -> dict[str, Any] | None:
    row = chain.store.receipt_row(txid)
    if row is None:
        return None
    row["events"] = chain.store.events_for_tx(txid)
    return row


def tx_detail(chain: ChainNode, txid: str) -> dict[str, Any]:
    """A tx with its block, confirmations, receipt and events, or its mempool status."""
    if len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid):
        raise BadQuery(f"{txid!r} is not a txid (64 lowercase hex)")
    location = chain.store.tx_location(txid)
    if location is not None:
        block_hash, height, index = location
        block = chain.get_block(block_hash)
        assert block is not None
        tx = block.txs[index]
        return {
            "txid": txid,
            "status": "confirmed",
            "tx": tx.to_json(),
            "block_hash": block_hash,
            "height": height,
            "index": index,
            "confirmations": chain.confirmations(block_hash),
            "receipt": _receipt(chain, txid),
        }
    pooled = chain.mempool.get(txid)
    if pooled is not None:
        return {
            "txid": txid,
            "status": "pending",
            "pool": chain.mempool.status_of(txid),
            "tx": pooled.to_json(),
            "confirmations": 0,
        }
    raise TxUnknown(f"no tx {txid[:16]}… in the chain or the mempool")


def account_info(chain: ChainNode, account: str) -> dict[str, Any]:
    if not is_account(account):
        raise BadQuery(f"{account!r} is not an account (64 lowercase hex)")
    balance, nonce = chain.store.read_account(account)
    return {
        "account": account,
        "balance": balance,
        "nonce": nonce,
        "pending_nonce": chain.pending_nonce(account),
        "pending_balance": chain.pending_balance(account),
        "height": chain.height,
    }


def mempool_list(chain: ChainNode, limit: int = 100) -> dict[str, Any]:
    limit = check_limit(limit)
    entries = sorted(chain.mempool.entries(), key=lambda e: -e.tx.fee * 10**6 // e.tx.size)
    return {
        "size": len(chain.mempool),
        "bytes": chain.mempool.total_bytes,
        "txs": [
            {
                "txid": e.tx.txid,
                "sender": e.tx.sender,
                "nonce": e.tx.nonce,
                "fee": e.tx.fee,
                "size": e.tx.size,
                "contract": e.tx.contract,
                "method": e.tx.method,
                "status": chain.mempool.status_of(e.tx.txid),
                "added": e.added,
            }
            for e in entries[:limit]
        ],
    }


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise BadQuery(f"limit {limit} is outside 1..{MAX_PAGE}")
    return limit
