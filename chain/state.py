"""Chain state (balances, nonces, contract storage) and layered views of it.

A `StateOverlay` records changes over a base reader without touching it, so
a tx, a contract call or a whole block can be applied, then kept (merged
down) or dropped; nothing half-applies. `MemoryState` is the plain base.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

ACCOUNT_ZERO = (0, 0)


class StateReader(Protocol):
    """Read access to a state: what overlays sit on."""

    def read_account(self, account: str) -> tuple[int, int]:
        """(balance, nonce) of `account`; (0, 0) if it never appeared."""

    def read_storage(self, contract: str, key: str) -> Any:
        """A contract's value at `key`, or None."""


class MemoryState:
    """A whole state in dicts (genesis building, tests, replays)."""

    def __init__(self) -> None:
        self.accounts: dict[str, tuple[int, int]] = {}
        self.storage: dict[tuple[str, str], Any] = {}

    def read_account(self, account: str) -> tuple[int, int]:
        return self.accounts.get(account, ACCOUNT_ZERO)

    def read_storage(self, contract: str, key: str) -> Any:
        return self.storage.get((contract, key))

    def apply_changes(self, changes: StateChanges) -> None:
        for account, value in changes.accounts.items():
            if value == ACCOUNT_ZERO:
                self.accounts.pop(account, None)
            else:
                self.accounts[account] = value
        for skey, svalue in changes.storage.items():
            if svalue is None:
                self.storage.pop(skey, None)
            else:
                self.storage[skey] = svalue

    def snapshot(self) -> dict[str, Any]:
        """A comparable copy: equal snapshots mean equal states."""
        return {
            "accounts": dict(sorted(self.accounts.items())),
            "storage": dict(sorted(self.storage.items())),
        }


class StateChanges:
    """New values by key: accounts -> (balance, nonce), (contract, key) -> value|None."""

    __slots__ = ("accounts", "storage")

    def __init__(self) -> None:
        self.accounts: dict[str, tuple[int, int]] = {}
        self.storage: dict[tuple[str, str], Any] = {}


class StateOverlay:
    """Changes over a base reader; `commit` merges them into the parent overlay."""

    __slots__ = ("base", "parent", "changes", "_base_accounts")

    def __init__(self, base: StateReader, parent: StateOverlay | None = None) -> None:
        self.base = base
        self.parent = parent
        self.changes = StateChanges()
        # a root overlay remembers what it read from its base (which must not change
        # under it), so a block touching an account many times reads it once
        self._base_accounts: dict[str, tuple[int, int]] = {}

    # --- reading ---------------------------------------------------------

    def read_account(self, account: str) -> tuple[int, int]:
        value = self.changes.accounts.get(account)
        if value is not None:
            return value
        if self.parent is not None:
            return self.parent.read_account(account)
        value = self._base_accounts.get(account)
        if value is None:
            value = self._base_accounts[account] = self.base.read_account(account)
        return value

    def read_storage(self, contract: str, key: str) -> Any:
        skey = (contract, key)
        if skey in self.changes.storage:
            return self.changes.storage[skey]
        if self.parent is not None:
            return self.parent.read_storage(contract, key)
        return self.base.read_storage(contract, key)

    def preload_accounts(self, values: dict[str, tuple[int, int]]) -> None:
        """Seed a root overlay's read cache with accounts read from its base in bulk."""
        if self.parent is not None:
            raise RuntimeError("only a root overlay reads its base")
        for account, value in values.items():
            self._base_accounts.setdefault(account, value)

    def balance(self, account: str) -> int:
        return self.read_account(account)[0]

    def nonce(self, account: str) -> int:
        return self.read_account(account)[1]

    # --- writing ---------------------------------------------------------

    def set_balance(self, account: str, balance: int) -> None:
        if balance < 0:
            raise ValueError(f"balance of {account} would be {balance}")
        self.changes.accounts[account] = (balance, self.read_account(account)[1])

    def set_nonce(self, account: str, nonce: int) -> None:
        self.changes.accounts[account] = (self.read_account(account)[0], nonce)

    def set_account(self, account: str, balance: int, nonce: int) -> None:
        self.changes.accounts[account] = (balance, nonce)

    def credit(self, account: str, amount: int) -> None:
        balance, nonce = self.read_account(account)
        self.changes.accounts[account] = (balance + amount, nonce)

    def set_storage(self, contract: str, key: str, value: Any) -> None:
        self.changes.storage[(contract, key)] = value

    # --- layering --------------------------------------------------------

    def child(self) -> StateOverlay:
        return StateOverlay(self.base, parent=self)

    def commit(self) -> None:
        """Merge these changes into the parent overlay (then forget them)."""
        if self.parent is None:
            raise RuntimeError("a root overlay is written by its store, not committed")
        self.parent.changes.accounts.update(self.changes.accounts)
        self.parent.changes.storage.update(self.changes.storage)
        self.changes = StateChanges()

    def iter_changed_accounts(self) -> Iterator[str]:
        return iter(self.changes.accounts)
