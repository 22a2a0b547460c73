"""Block headers and blocks: fields, fixed-width header bytes, body bytes.

The header is 156 bytes with the nonce last, so a miner hashes the fixed
prefix once; the block hash is sha256d(header). A body is the txs' canonical
bytes, each after a 4-byte big-endian length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

from modelchain.chain.encoding import canonical_bytes, sha256d, tagged_hash
from modelchain.chain.errors import BlockMalformed, InvalidTransaction
from modelchain.chain.merkle import compute_merkle_root
from modelchain.chain.params import ChainParams
from modelchain.chain.tx import Tx, decode_tx

BLOCK_VERSION = 1
HEADER_BYTES = 156
NONCE_OFFSET = HEADER_BYTES - 8
_HEADER = struct.Struct(">IQ32s32sQ32s32sQ")
assert _HEADER.size == HEADER_BYTES
MAX_NONCE = 2**64 - 1
NO_MINER = "00" * 32


@dataclass(frozen=True, slots=True)
class Header:
    """What proof of work commits to."""

    version: int
    """Rules version of this block (1)."""
    height: int
    """Blocks before this one on its chain (genesis is 0)."""
    prev_hash: str
    """Hash of the parent block, hex; zeros for genesis."""
    merkle_root: str
    """Merkle root of the txids (chain/merkle.py), hex."""
    timestamp: int
    """Unix seconds, as claimed by the miner within the time rules."""
    target: int
    """The hash must be at most this (set by retargeting)."""
    miner: str
    """Account the reward is paid to, hex."""
    nonce: int
    """Searched by the miner, 0..2**64-1."""

    def to_bytes(self) -> bytes:
        return _HEADER.pack(
            self.version,
            self.height,
            bytes.fromhex(self.prev_hash),
            bytes.fromhex(self.merkle_root),
            self.timestamp,
            self.target.to_bytes(32, "big"),
            bytes.fromhex(self.miner),
            self.nonce,
        )

    @property
    def hash(self) -> str:
        return compute_header_hash(self.to_bytes()).hex()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "height": self.height,
            "prev_hash": self.prev_hash,
            "merkle_root": self.merkle_root,
            "timestamp": self.timestamp,
            "target": f"{self.target:064x}",
            "miner": self.miner,
            "nonce": str(self.nonce),
        }


def compute_header_hash(header_bytes: bytes) -> bytes:
    return sha256d(header_bytes)


def decode_header(data: bytes) -> Header:
    """A Header from its 156 bytes; raises BlockMalformed."""
    if len(data) != HEADER_BYTES:
        raise BlockMalformed(f"a header is {HEADER_BYTES} bytes, got {len(data)}")
    version, height, prev, root, timestamp, target, miner, nonce = _HEADER.unpack(data)
    return Header(
        version=version,
        height=height,
        prev_hash=prev.hex(),
        merkle_root=root.hex(),
        timestamp=timestamp,
        target=int.from_bytes(target, "big"),
        miner=miner.hex(),
        nonce=nonce,
    )


@dataclass(frozen=True, slots=True)
class Block:
    """A header and the txs it commits to; txs[0] is the reward."""

    header: Header
    txs: tuple[Tx, ...]

    @property
    def hash(self) -> str:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def body_bytes(self) -> bytes:
        return b"".join(len(tx.raw).to_bytes(4, "big") + tx.raw for tx in self.txs)

    def to_bytes(self) -> bytes:
        return self.header.to_bytes() + self.body_bytes()

    @property
    def size(self) -> int:
        return HEADER_BYTES + sum(4 + len(tx.raw) for tx in self.txs)

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "header": self.header.to_json(),
            "txs": [tx.to_json() | {"txid": tx.txid} for tx in self.txs],
            "size": self.size,
        }


def decode_body(data: bytes, max_bytes: int) -> tuple[Tx, ...]:
    """Txs from body bytes; raises BlockMalformed (a bad tx inside names its code)."""
    txs: list[Tx] = []
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise BlockMalformed("body ends inside a length prefix")
        length = int.from_bytes(view[offset : offset + 4], "big")
        offset += 4
        if length > max_bytes or offset + length > len(data):
            raise BlockMalformed(f"tx length {length} runs past the body")
        try:
            txs.append(decode_tx(bytes(view[offset : offset + length])))
        except InvalidTransaction as exc:
            raise BlockMalformed(f"tx {len(txs)} in body: {exc.message}", tx_code=exc.code) from exc
        offset += length
    return tuple(txs)


def decode_block(data: bytes, max_bytes: int = 64_000_000) -> Block:
    """A Block from header bytes + body bytes; raises BlockMalformed."""
    if len(data) < HEADER_BYTES:
        raise BlockMalformed(f"block is {len(data)} bytes, shorter than a header")
    if len(data) > max_bytes:
        raise BlockMalformed(f"block is {len(data)} bytes, over {max_bytes}")
    header = decode_header(data[:HEADER_BYTES])
    return Block(header=header, txs=decode_body(data[HEADER_BYTES:], max_bytes))


def compute_block_merkle_root(txs: tuple[Tx, ...] | list[Tx]) -> str:
    return compute_merkle_root([bytes.fromhex(tx.txid) for tx in txs]).hex()


def compute_genesis_commitment(params: ChainParams) -> str:
    """What the genesis header commits to in place of a merkle root: the network itself."""
    committed = {
        "chain_id": params.chain_id,
        "allocations": [[account, amount] for account, amount in params.genesis_allocations],
        "extra": dict(params.genesis_extra),
    }
    return tagged_hash("modelchain/genesis", canonical_bytes(committed)).hex()


def make_genesis(params: ChainParams) -> Block:
    """The genesis block of a network: no txs; its allocations are applied as state."""
    header = Header(
        version=BLOCK_VERSION,
        height=0,
        prev_hash="00" * 32,
        merkle_root=compute_genesis_commitment(params),
        timestamp=params.genesis_time,
        target=params.initial_target,
        miner=NO_MINER,
        nonce=0,
    )
    return Block(header=header, txs=())


def with_nonce(block: Block, nonce: int) -> Block:
    return replace(block, header=replace(block.header, nonce=nonce))
