"""The contracts package: what it plugs into the chain, and what it may import."""

from __future__ import annotations

import ast
from pathlib import Path

import modelchain.contracts as package
from modelchain.chain.coin import CoinContract
from modelchain.contracts import default_contracts

PACKAGE_DIR = Path(package.__file__).resolve().parent


def test_default_contracts_hold_coin_and_the_native_contracts_by_name():
    contracts = default_contracts()
    assert sorted(contracts) == ["channel", "coin", "registry", "usage_fee"]
    assert isinstance(contracts["coin"], CoinContract)
    assert all(contract.name == name for name, contract in contracts.items())


def test_contracts_import_only_the_chain_layer_and_the_standard_library():
    allowed_roots = {"__future__", "collections", "copy", "dataclasses", "re", "typing"}
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                ok = name.startswith(("modelchain.chain", "modelchain.contracts"))
                assert ok or name.split(".")[0] in allowed_roots, f"{path.name} imports {name}"
