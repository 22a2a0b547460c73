"""The test vectors of docs/vectors/tx_vectors.json, checked against the code and node.

Normally the tests LOAD the vectors and check that the code reproduces every
field, so a change that alters any byte fails. `MODELCHAIN_REGEN_VECTORS=1
pytest tests/chain/test_vectors.py` rewrites the file from the code instead
(only when a format change is intended; say so in docs/encoding.md). A node
script recomputes every vector the way a browser would.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelchain.chain.block import (
    BLOCK_VERSION,
    Header,
    compute_block_merkle_root,
    compute_genesis_commitment,
    decode_header,
    make_genesis,
)
from modelchain.chain.encoding import (
    MAX_SAFE_INTEGER,
    canonical_bytes,
    decode_canonical,
)
from modelchain.chain.errors import NonCanonicalValue
from modelchain.chain.keys import KeyPair
from modelchain.chain.merkle import compute_merkle_root
from modelchain.chain.params import regtest_params
from modelchain.chain.pow import hash_meets_target
from modelchain.chain.tx import (
    Tx,
    compute_signing_message,
    decode_tx,
    make_reward,
    make_transfer,
    make_tx,
    validate_tx_stateless,
    verify_tx_signature,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "docs" / "vectors" / "tx_vectors.json"
NODE_SCRIPT = Path(__file__).with_name("vectors_check.mjs")
REGENERATE = os.environ.get("MODELCHAIN_REGEN_VECTORS") == "1"

SEED_A = bytes(range(32))
SEED_B = hashlib.sha256(b"modelchain/vectors/bob").digest()


# --- the generator (used only with MODELCHAIN_REGEN_VECTORS=1) -------------


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


CANONICAL_VALUES: list[tuple[str, Any]] = [
    ("empty-object", {}),
    ("empty-array", []),
    ("scalars", [None, True, False, 0, 1, -1, 42]),
    ("safe-integer-bounds", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
    (
        "keys-sorted-by-code-point",
        {"b": 1, "a": 2, "B": 3, "_": 4, "a_b": 5, "a-b": 6, "aa": 7, "0": 8, "10": 9, "9": 10},
    ),
    ("keys-needing-escapes", {"\\": 3, '"': 2, "\t": 1, "": 0}),
    (
        "json-stringify-escapes",
        "".join(chr(c) for c in range(0x20)) + ' "\\/ \x7f',
    ),
    (
        "non-ascii-unescaped",
        "é Ж 日本語 😀 \u2028 \u2029 \ufeff \u00a0 \u200b \U0010ffff",
    ),
    ("nested", {"a": [{"b": [[], {}], "c": None}], "d": {"e": {"f": "g"}}}),
    ("deepest-allowed-33-arrays", _nested(33)),
]

NON_CANONICAL: list[tuple[str, bytes]] = [
    ("space-after-colon", b'{"a": 1}'),
    ("leading-space", b' {"a":1}'),
    ("trailing-newline", b'{"a":1}\n'),
    ("unsorted-keys", b'{"b":1,"a":2}'),
    ("duplicate-key", b'{"a":1,"a":1}'),
    ("float", b"1.5"),
    ("float-with-integral-value", b"1.0"),
    ("exponent", b"1e3"),
    ("negative-zero", b"-0"),
    ("leading-zero", b"01"),
    ("integer-above-max-safe", b"9007199254740992"),
    ("integer-below-min-safe", b"-9007199254740992"),
    ("nan", b"NaN"),
    ("infinity", b"Infinity"),
    ("python-true", b"True"),
    ("single-quotes", b"{'a':1}"),
    ("escaped-non-ascii", b'"\\u00e9"'),
    ("escaped-surrogate-pair", b'"\\ud83d\\ude00"'),
    ("escaped-slash", b'"\\/"'),
    ("escaped-ascii-letter", b'"\\u0041"'),
    ("uppercase-hex-escape", b'"\\u001F"'),
    ("escaped-control-char-with-short-form", b'"\\u000a"'),
    ("raw-control-char", b'"\x01"'),
    ("lone-high-surrogate", b'"\\ud800"'),
    ("lone-low-surrogate", b'"\\udc00"'),
    ("non-ascii-key", '{"é":1}'.encode()),
    ("invalid-utf8", b'"\xff"'),
    ("overlong-utf8", b'"\xc0\xaf"'),
    ("utf8-bom", b"\xef\xbb\xbf{}"),
    ("empty", b""),
    ("two-values", b"{}{}"),
    ("too-deep-34-arrays", b"[" * 34 + b"]" * 34),
]


def _tx_vector(name: str, about: str, tx: Tx, seed: bytes | None) -> dict[str, Any]:
    body = tx.body()
    body_bytes = canonical_bytes(body)
    vector: dict[str, Any] = {
        "name": name,
        "about": about,
        "seed": seed.hex() if seed is not None else None,
        "account": tx.sender,
        "body": body,
        "canonical_body": body_bytes.decode("utf-8"),
        "canonical_body_hex": body_bytes.hex(),
    }
    if seed is not None:
        vector["signing_message_hex"] = compute_signing_message(body).hex()
    vector |= {
        "sig": tx.sig,
        "signed": tx.to_json(),
        "canonical_signed": tx.raw.decode("utf-8"),
        "canonical_signed_hex": tx.raw.hex(),
        "txid": tx.txid,
    }
    return vector


def _vector_txs() -> list[tuple[str, str, Tx, bytes | None]]:
    a, b = KeyPair.from_seed(SEED_A), KeyPair.from_seed(SEED_B)
    transfer = make_transfer(
        a, chain_id="modelchain-regtest", nonce=0, fee=1, to=b.account, amount=1000
    )
    call = make_tx(
        b,
        chain_id="modelchain-dev",
        nonce=7,
        fee=250,
        contract="registry",
        method="register",
        args={
            "name": "résumé-classifier",
            "version": "1.0.0",
            "sha256": "ab" * 32,
            "metadata": {
                "description": "Классификатор 文本 😀",
                "tags": ["naïve", "日本語", ""],
                "inputs": [{"name": "x", "shape": [1, 3, 224, 224], "dtype": "float32"}],
                "public": True,
                "beta": False,
                "note": None,
            },
            "split": [[a.account, 7000], [b.account, 3000]],
            "Zeta": 0,
            "_x": -5,
            "a_b": 1,
            "a-b": 2,
        },
    )
    escapes = make_tx(
        a,
        chain_id="modelchain-regtest",
        nonce=1,
        fee=0,
        contract="coin",
        method="memo",
        args={
            "text": 'quote" backslash\\ slash/ \b\f\n\r\t \x00\x01\x1f \x7f \u2028\u2029 é 😀',
            'key"with\\escapes\t': "\x0b\x1b",
        },
    )
    biggest = make_transfer(
        b,
        chain_id="modelchain-regtest",
        nonce=MAX_SAFE_INTEGER,
        fee=MAX_SAFE_INTEGER,
        to=a.account,
        amount=MAX_SAFE_INTEGER,
    )
    reward = make_reward("modelchain-regtest", 1, a.account, 50_000_001)
    return [
        ("coin-transfer", "a plain coin transfer", transfer, SEED_A),
        ("call-nested-non-ascii", "a contract call: nested args, non-ASCII text", call, SEED_B),
        ("string-escapes", "strings and a key needing JSON escapes", escapes, SEED_A),
        ("max-safe-integers", "nonce, fee and amount at 2**53-1", biggest, SEED_B),
        ("block-reward", "a block reward: no sender, no signature", reward, None),
    ]


def _header_vector(name: str, about: str, header: Header) -> dict[str, Any]:
    data = header.to_bytes()
    return {
        "name": name,
        "about": about,
        "fields": header.to_json(),
        "bytes_hex": data.hex(),
        "hash": header.hash,
        "meets_target": hash_meets_target(bytes.fromhex(header.hash), header.target),
    }


def _header_vectors(txs: list[Tx]) -> list[dict[str, Any]]:
    a = KeyPair.from_seed(SEED_A)
    params = regtest_params(allocations=((a.account, 10**9),), chain_id="modelchain-regtest")
    genesis = make_genesis(params).header
    merkle_root = compute_block_merkle_root(txs)
    nonce = 0
    while True:  # target 2**255: about one try in two succeeds
        mined = Header(
            version=BLOCK_VERSION,
            height=1,
            prev_hash=genesis.hash,
            merkle_root=merkle_root,
            timestamp=genesis.timestamp + 10,
            target=params.initial_target,
            miner=a.account,
            nonce=nonce,
        )
        if hash_meets_target(bytes.fromhex(mined.hash), mined.target):
            break
        nonce += 1
    wide = Header(
        version=2**32 - 1,
        height=MAX_SAFE_INTEGER,
        prev_hash="ff" * 32,
        merkle_root="01" * 32,
        timestamp=2**40 + 3,
        target=2**256 - 1,
        miner=KeyPair.from_seed(SEED_B).account,
        nonce=2**64 - 1,
    )
    genesis_vector = _header_vector(
        "genesis", "regtest genesis: merkle_root is the genesis commitment", genesis
    )
    genesis_vector["genesis_commitment"] = {
        "committed": {
            "chain_id": params.chain_id,
            "allocations": [[acct, amount] for acct, amount in params.genesis_allocations],
            "extra": dict(params.genesis_extra),
        },
        "tag": "modelchain/genesis",
        "commitment": compute_genesis_commitment(params),
    }
    block_vector = _header_vector(
        "block-1", "height 1 over the reward and coin-transfer vectors, mined", mined
    )
    block_vector["txids"] = [tx.txid for tx in txs]
    return [
        genesis_vector,
        block_vector,
        _header_vector("wide-fields", "every field near its maximum (nonce > 2**53)", wide),
    ]


def _merkle_vectors(block_txids: list[str]) -> list[dict[str, Any]]:
    vectors = []
    for count in (0, 1, 2, 3, 5):
        txids = [hashlib.sha256(f"txid {i}".encode()).hexdigest() for i in range(count)]
        vectors.append({"txids": txids, "root": _root(txids)})
    vectors.append({"txids": block_txids, "root": _root(block_txids)})
    return vectors


def _root(txids: list[str]) -> str:
    return compute_merkle_root([bytes.fromhex(txid) for txid in txids]).hex()


def generate_vectors() -> dict[str, Any]:
    """Every vector, computed by the code as it is now."""
    keys = [
        {"label": "bytes(range(32))", "seed": SEED_A.hex()},
        {"label": "sha256('modelchain/vectors/bob')", "seed": SEED_B.hex()},
    ]
    for key in keys:
        key["account"] = KeyPair.from_seed(bytes.fromhex(key["seed"])).account
    txs = _vector_txs()
    by_name = {name: tx for name, _, tx, _ in txs}
    block_txs = [by_name["block-reward"], by_name["coin-transfer"]]
    return {
        "about": (
            "Test vectors of docs/encoding.md. Regenerate only on purpose: "
            "MODELCHAIN_REGEN_VECTORS=1 pytest tests/chain/test_vectors.py"
        ),
        "encoding": {
            "canonical": [
                {
                    "name": name,
                    "value": value,
                    "canonical": canonical_bytes(value).decode("utf-8"),
                    "canonical_hex": canonical_bytes(value).hex(),
                }
                for name, value in CANONICAL_VALUES
            ],
            "non_canonical": [{"name": name, "hex": data.hex()} for name, data in NON_CANONICAL],
        },
        "keys": keys,
        "sign_tag": "modelchain/tx/v1\u0000",
        "txid_tag": "modelchain/txid",
        "txs": [_tx_vector(name, about, tx, seed) for name, about, tx, seed in txs],
        "headers": _header_vectors(block_txs),
        "merkle": _merkle_vectors([tx.txid for tx in block_txs]),
    }


def write_vectors(path: Path = VECTORS_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(generate_vectors(), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


# --- the checks ------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    if REGENERATE:
        write_vectors()
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


SECTIONS = ["about", "encoding", "keys", "sign_tag", "txid_tag", "txs", "headers", "merkle"]


@pytest.mark.parametrize("section", SECTIONS)
def test_code_reproduces_every_vector_field(vectors: dict[str, Any], section: str) -> None:
    assert generate_vectors()[section] == vectors[section]


def test_vector_file_has_no_section_the_code_does_not_produce(vectors: dict[str, Any]) -> None:
    assert set(vectors) == set(generate_vectors()) == set(SECTIONS)


def test_canonical_vectors_encode_and_decode(vectors: dict[str, Any]) -> None:
    for case in vectors["encoding"]["canonical"]:
        data = bytes.fromhex(case["canonical_hex"])
        assert canonical_bytes(case["value"]) == data, case["name"]
        assert data.decode("utf-8") == case["canonical"], case["name"]
        assert decode_canonical(data) == case["value"], case["name"]


def test_non_canonical_vectors_are_refused(vectors: dict[str, Any]) -> None:
    for case in vectors["encoding"]["non_canonical"]:
        with pytest.raises(NonCanonicalValue) as err:
            decode_canonical(bytes.fromhex(case["hex"]))
        assert err.value.code == "encoding-non-canonical", case["name"]


def test_vector_keys_derive_their_accounts(vectors: dict[str, Any]) -> None:
    for key in vectors["keys"]:
        assert KeyPair.from_seed(bytes.fromhex(key["seed"])).account == key["account"]


def test_tx_vectors_decode_sign_and_hash_to_their_fields(vectors: dict[str, Any]) -> None:
    for case in vectors["txs"]:
        body = case["body"]
        assert canonical_bytes(body).hex() == case["canonical_body_hex"], case["name"]
        tx = decode_tx(bytes.fromhex(case["canonical_signed_hex"]))
        assert tx.to_json() == case["signed"], case["name"]
        assert tx.raw.decode("utf-8") == case["canonical_signed"], case["name"]
        assert tx.txid == case["txid"], case["name"]
        assert tx.body() == body, case["name"]
        if case["seed"] is None:
            assert tx.is_reward and tx.sig == "" and tx.sender == ""
            continue
        key = KeyPair.from_seed(bytes.fromhex(case["seed"]))
        assert key.account == case["account"] == tx.sender, case["name"]
        message = compute_signing_message(body)
        assert message.hex() == case["signing_message_hex"], case["name"]
        assert key.sign(message).hex() == case["sig"], case["name"]  # Ed25519 is deterministic
        assert verify_tx_signature(tx), case["name"]
        validate_tx_stateless(tx, regtest_params(chain_id=tx.chain_id))


def test_header_vectors_decode_and_hash_to_their_fields(vectors: dict[str, Any]) -> None:
    for case in vectors["headers"]:
        header = decode_header(bytes.fromhex(case["bytes_hex"]))
        assert header.to_json() == case["fields"], case["name"]
        assert header.hash == case["hash"], case["name"]
    genesis = vectors["headers"][0]["genesis_commitment"]
    assert vectors["headers"][0]["fields"]["merkle_root"] == genesis["commitment"]


def test_merkle_vectors_give_their_roots(vectors: dict[str, Any]) -> None:
    for case in vectors["merkle"]:
        assert _root(case["txids"]) == case["root"]


# --- the browser side, played by node --------------------------------------

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@needs_node
def test_node_recomputes_every_vector_as_a_browser_would() -> None:
    """vectors_check.mjs rebuilds bytes, signatures, ids and hashes with node's own crypto."""
    result = subprocess.run(
        [NODE, str(NODE_SCRIPT), str(VECTORS_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all vectors ok" in result.stdout


# Characters where JSON encoders are known to disagree, plus ordinary ones.
_EDGE_CHARS = (
    [chr(c) for c in range(0x20)]
    + list('"\\/ azAZ09\x7f\x80\x9f\xa0\xad\u2028\u2029\ufeff\ufffd\uffff')
    + ["é", "Ж", "日", "😀", "\U0010ffff"]
)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, rng.randint(-9999, 9999)])
    if kind in (2, 3, 4):
        return "".join(rng.choice(_EDGE_CHARS) for _ in range(rng.randrange(6)))
    if kind in (5, 6):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["".join(rng.choice(_EDGE_CHARS[:0x20] + list('ab_-Z09"\\')) for _ in range(2))]
    keys += [rng.choice(["a", "b", "B", "_", "0", "10", "9", "aa", "__proto__"])]
    return {key: _random_value(rng, depth + 1) for key in keys}


@needs_node
def test_python_and_node_canonicalize_random_values_identically() -> None:
    """Hundreds of values rich in escapes and odd keys: node's bytes equal Python's."""
    rng = random.Random(20240601)
    values = [_random_value(rng) for _ in range(500)]
    result = subprocess.run(
        [NODE, str(NODE_SCRIPT), "--canonicalize"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    from_node = json.loads(result.stdout)
    assert len(from_node) == len(values)
    for value, text in zip(values, from_node, strict=True):
        assert text.encode("utf-8") == canonical_bytes(value), value
