"""A hypothesis state machine over random sequences of calls to every native contract.

It drives a ledger with registrations, price changes, deprecations, transfers,
payments, channel opens, top-ups, claims (with valid, stale, oversized and
forged vouchers), refunds and height advances. A plain-Python model predicts
each call's outcome code and each balance change; invariants check that money
is conserved, that escrows hold exactly what open channels owe, that a node
never gets more from a channel than the payer's highest voucher, and that a
payer always recovers the unclaimed rest after expiry.

The machine touches the ledger only through `call`, `advance`, `height`,
`balance`, `read_storage`, `total_balance`, `supply`, `snapshot` and
`expect_fee_only`; subclass it and override `make_ledger` to run the same
sequences against a node that mines each call into a block (and reorgs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts_harness import MINER, Ledger, digest, key_for
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from modelchain.chain.contract import escrow_account_of
from modelchain.chain.errors import InvalidTransaction
from modelchain.chain.execute import STATUS_FAILED, STATUS_OK, Receipt
from modelchain.chain.keys import KeyPair
from modelchain.contracts.channel import get_channel
from modelchain.contracts.registry import REGISTRATION_FEE, get_model, get_version
from modelchain.contracts.split import RevenueSplit, compute_shares
from modelchain.contracts.voucher import sign_voucher

ACTORS = tuple(key_for(f"actor-{i}") for i in range(4))
RICH = 10**10
POOR = REGISTRATION_FEE + 5_000
"""The last actor can afford one registration at most: balance checks get exercised."""
NAMES = ("alpha", "beta")
VERSIONS = ("1", "2", "3")
FILES = tuple(digest(f"file-{i}") for i in range(5))
PRICES = (0, 1, 7, 1000, 1001)
FEES = (0, 1, 10)
SPLITS = (
    ((0, 10_000),),
    ((0, 7000), (1, 2000)),
    ((1, 3333), (2, 3333), (3, 3333)),
    ((2, 1),),
)
"""(actor index, bps) owners; the node gets the rest of 10000."""

OK = ""
REGISTRY_ESCROW = escrow_account_of("registry")
CHANNEL_ESCROW = escrow_account_of("channel")


@dataclass
class VersionModel:
    sha256: str
    price: int
    split: RevenueSplit
    deprecated: bool = False


@dataclass
class ChannelModel:
    payer: KeyPair
    node: KeyPair
    ref: tuple[str, str]
    deposit: int
    expiry: int
    claimed: int = 0
    closed: bool = False
    highest_signed: int = 0
    """The highest voucher the payer signed for this channel on this chain."""
    paid_out: int = 0
    """Sum of `paid` over the successful claims."""


class ContractsMachine(RuleBasedStateMachine):
    """Random contract calls checked against a model (see the module docstring)."""

    def make_ledger(self, balances: dict[str, int]) -> Ledger:
        return Ledger(balances)

    def __init__(self) -> None:
        super().__init__()
        balances = {key.account: RICH for key in ACTORS[:-1]}
        balances[ACTORS[-1].account] = POOR
        self.ledger = self.make_ledger(balances)
        self.owners: dict[str, str] = {}
        self.versions: dict[tuple[str, str], VersionModel] = {}
        self.files: set[str] = set()
        self.registrations = 0
        self.channels: dict[str, ChannelModel] = {}

    # --- submitting --------------------------------------------------------------

    def submit(
        self,
        key: KeyPair,
        contract: str,
        method: str,
        args: dict[str, Any],
        *,
        fee: int,
        expect: str,
        spend: int = 0,
        gains: dict[str, int] | None = None,
        refused: bool = False,
    ) -> Receipt | None:
        """Send a call and check it ends as `expect` predicts ("" = ok, else a code).

        With `refused`, `expect` is the code of a shape error the tx is refused with.
        A failed or refused call changes nothing but (if included) the fee and nonce;
        a successful one changes balances by exactly `-fee - spend` for the sender,
        `+fee` for the miner and `gains` for the others.
        """
        # the call's shape is checked before the balance (chain/execute.py)
        if not refused and self.ledger.balance(key.account) < fee + spend:
            expect = "tx-insufficient-balance"
        event(f"{contract}.{method}: {expect or 'ok'}")
        before = self.ledger.snapshot()
        try:
            receipt = self.ledger.call(key, contract, method, args, fee=fee)
        except InvalidTransaction as exc:
            assert exc.code == expect, (exc.code, expect)
            assert self.ledger.snapshot() == before
            return None
        assert not refused, f"{contract}.{method} {args} was not refused with {expect}"
        if expect != OK:
            assert (receipt.status, receipt.code) == (STATUS_FAILED, expect), receipt
            assert self.ledger.snapshot() == self.ledger.expect_fee_only(before, key.account, fee)
            return None
        assert receipt.status == STATUS_OK, receipt
        after = self.ledger.snapshot()
        deltas: dict[str, int] = {}
        for account in set(before["accounts"]) | set(after["accounts"]):
            delta = after["accounts"].get(account, (0, 0))[0]
            delta -= before["accounts"].get(account, (0, 0))[0]
            if delta:
                deltas[account] = delta
        expected: dict[str, int] = {}
        for account, amount in [
            (key.account, -fee - spend),
            (MINER.account, fee),
            *(gains or {}).items(),
        ]:
            expected[account] = expected.get(account, 0) + amount
        assert deltas == {a: d for a, d in expected.items() if d}, (deltas, expected)
        return receipt

    @initialize()
    def a_priced_model_with_an_open_channel(self):
        """Start from a paid version and a channel on it, so most sequences reach claims."""
        self.register(ACTORS[0], "alpha", "1", FILES[0], 1000, SPLITS[1], True, 1)
        self.open(ACTORS[1], ACTORS[2], "alpha", "1", 5000, 8, 1)

    # --- registry ----------------------------------------------------------------

    @rule(
        who=st.sampled_from(ACTORS),
        name=st.sampled_from(NAMES),
        version=st.sampled_from(VERSIONS),
        sha256=st.sampled_from(FILES),
        price=st.sampled_from(PRICES),
        split=st.sampled_from(SPLITS),
        node_share=st.booleans(),
        fee=st.sampled_from(FEES),
    )
    def register(self, who, name, version, sha256, price, split, node_share, fee):
        owners = [[ACTORS[i].account, bps] for i, bps in split]
        rest = 10_000 - sum(bps for _, bps in split)
        if not node_share:  # give the node's part to the first owner
            owners[0][1] += rest
            rest = 0
        args = {
            "name": name,
            "version": version,
            "sha256": sha256,
            "price": price,
            "split": {"owners": owners, "node": rest},
        }
        owner = self.owners.get(name)
        if owner is not None and owner != who.account:
            expect = "registry-not-owner"
        elif (name, version) in self.versions:
            expect = "registry-version-exists"
        elif sha256 in self.files:
            expect = "registry-sha256-exists"
        else:
            expect = OK
        gains = {REGISTRY_ESCROW: REGISTRATION_FEE}
        receipt = self.submit(
            who,
            "registry",
            "register",
            args,
            fee=fee,
            expect=expect,
            spend=REGISTRATION_FEE,
            gains=gains,
        )
        if receipt is not None:
            self.owners.setdefault(name, who.account)
            self.versions[(name, version)] = VersionModel(
                sha256, price, RevenueSplit.from_json(args["split"])
            )
            self.files.add(sha256)
            self.registrations += 1

    def _owned_live(self, who: KeyPair, name: str, version: str) -> str:
        """The expected code of an owner-only call on a live version."""
        if name not in self.owners:
            return "registry-unknown-model"
        if self.owners[name] != who.account:
            return "registry-not-owner"
        if (name, version) not in self.versions:
            return "registry-unknown-version"
        if self.versions[(name, version)].deprecated:
            return "registry-deprecated"
        return OK

    @rule(
        who=st.sampled_from(ACTORS),
        name=st.sampled_from(NAMES),
        version=st.sampled_from(VERSIONS),
        price=st.sampled_from(PRICES),
        fee=st.sampled_from(FEES),
    )
    def set_price(self, who, name, version, price, fee):
        args = {"name": name, "version": version, "price": price}
        expect = self._owned_live(who, name, version)
        if self.submit(who, "registry", "set_price", args, fee=fee, expect=expect):
            self.versions[(name, version)].price = price

    @rule(
        who=st.sampled_from(ACTORS),
        name=st.sampled_from(NAMES),
        version=st.sampled_from(VERSIONS),
        successor=st.none() | st.sampled_from(VERSIONS),
        fee=st.sampled_from(FEES),
    )
    def deprecate(self, who, name, version, successor, fee):
        args = {"name": name, "version": version, "successor": successor}
        expect = self._owned_live(who, name, version)
        if successor == version:
            self.submit(
                who,
                "registry",
                "deprecate",
                args,
                fee=fee,
                expect="registry-bad-successor",
                refused=True,
            )
            return
        if expect == OK and successor is not None:
            target = self.versions.get((name, successor))
            if target is None:
                expect = "registry-unknown-successor"
            elif target.deprecated:
                expect = "registry-successor-deprecated"
        if self.submit(who, "registry", "deprecate", args, fee=fee, expect=expect):
            self.versions[(name, version)].deprecated = True

    @rule(
        who=st.sampled_from(ACTORS),
        name=st.sampled_from(NAMES),
        to=st.sampled_from(ACTORS),
        fee=st.sampled_from(FEES),
    )
    def transfer(self, who, name, to, fee):
        if name not in self.owners:
            expect = "registry-unknown-model"
        elif self.owners[name] != who.account:
            expect = "registry-not-owner"
        else:
            expect = OK
        args = {"name": name, "to": to.account}
        if self.submit(who, "registry", "transfer", args, fee=fee, expect=expect):
            self.owners[name] = to.account

    # --- usage_fee ---------------------------------------------------------------

    @rule(
        who=st.sampled_from(ACTORS),
        node=st.sampled_from(ACTORS),
        name=st.sampled_from(NAMES),
        version=st.sampled_from(VERSIONS),
        offset=st.sampled_from((0, 0, 0, 1, -1)),
        fee=st.sampled_from(FEES),
    )
    def pay(self, who, node, name, version, offset, fee):
        terms = self.versions.get((name, version))
        price = terms.price if terms else 1000
        amount = max(1, price + offset)
        if terms is None:
            expect = "usage-unknown-version"
        elif terms.deprecated:
            expect = "usage-deprecated-version"
        elif terms.price == 0:
            expect = "usage-free-version"
        elif amount != terms.price:
            expect = "usage-wrong-price"
        else:
            expect = OK
        gains: dict[str, int] = {}
        if expect == OK:
            for share in compute_shares(amount, terms.split, node.account):
                gains[share.account] = gains.get(share.account, 0) + share.amount
        args = {
            "model": name,
            "version": version,
            "amount": amount,
            "node": node.account,
            "request": digest(f"request-{amount}"),
        }
        self.submit(
            who, "usage_fee", "pay", args, fee=fee, expect=expect, spend=amount, gains=gains
        )

    # --- channel -----------------------------------------------------------------

    @rule(
        who=st.sampled_from(ACTORS),
        node=st.sampled_from(ACTORS),
        name=st.sampled_from(NAMES),
        version=st.sampled_from(VERSIONS),
        deposit=st.integers(1, 5000),
        lifetime=st.integers(-2, 12),
        fee=st.sampled_from(FEES),
    )
    def open(self, who, node, name, version, deposit, lifetime, fee):
        terms = self.versions.get((name, version))
        expiry = max(0, self.ledger.height + lifetime)
        if terms is None:
            expect = "channel-unknown-version"
        elif terms.deprecated:
            expect = "channel-deprecated-version"
        elif terms.price == 0:
            expect = "channel-free-version"
        elif expiry <= self.ledger.height:
            expect = "channel-expiry-passed"
        else:
            expect = OK
        args = {
            "model": name,
            "version": version,
            "node": node.account,
            "deposit": deposit,
            "expiry": expiry,
        }
        gains = {CHANNEL_ESCROW: deposit}
        receipt = self.submit(
            who, "channel", "open", args, fee=fee, expect=expect, spend=deposit, gains=gains
        )
        if receipt is not None:
            channel_id = receipt.txid
            self.channels[channel_id] = ChannelModel(who, node, (name, version), deposit, expiry)

    def _pick_channel(self, data: st.DataObject) -> str:
        known = sorted(self.channels)
        if not known or data.draw(st.integers(0, 9)) == 0:
            return digest(f"unknown-channel-{data.draw(st.integers(0, 3))}")
        return data.draw(st.sampled_from(known))

    @rule(
        data=st.data(),
        by_payer=st.booleans(),
        added=st.integers(0, 3000),
        extend=st.integers(-2, 8),
        fee=st.sampled_from(FEES),
    )
    def topup(self, data, by_payer, added, extend, fee):
        channel_id = self._pick_channel(data)
        ch = self.channels.get(channel_id)
        who = ch.payer if ch and by_payer else data.draw(st.sampled_from(ACTORS))
        expiry = max(0, (ch.expiry if ch else self.ledger.height) + extend)
        if ch is None:
            expect = "channel-unknown"
        elif ch.closed:
            expect = "channel-closed"
        elif who.account != ch.payer.account:
            expect = "channel-not-payer"
        elif expiry < ch.expiry:
            expect = "channel-expiry-earlier"
        elif expiry <= self.ledger.height:
            expect = "channel-expiry-passed"
        elif added == 0 and expiry == ch.expiry:
            expect = "channel-topup-noop"
        elif self.versions[ch.ref].deprecated:
            expect = "channel-deprecated-version"
        else:
            expect = OK
        args = {"channel": channel_id, "deposit": added, "expiry": expiry}
        gains = {CHANNEL_ESCROW: added}
        receipt = self.submit(
            who, "channel", "topup", args, fee=fee, expect=expect, spend=added, gains=gains
        )
        if receipt is not None:
            ch.deposit += added
            ch.expiry = expiry

    @rule(
        data=st.data(),
        by_node=st.sampled_from((True, True, True, False)),
        kind=st.sampled_from(("valid", "valid", "valid", "other-signer", "other-chain", "other")),
        step=st.integers(-50, 3000),
        fee=st.sampled_from(FEES),
    )
    def claim(self, data, by_node, kind, step, fee):
        channel_id = self._pick_channel(data)
        ch = self.channels.get(channel_id)
        who = ch.node if ch and by_node else data.draw(st.sampled_from(ACTORS))
        amount = max(1, (ch.claimed if ch else 0) + step)
        payer = ch.payer if ch else ACTORS[0]
        signer = payer
        chain_id = self.ledger.chain_id
        voucher_channel = channel_id
        if kind == "other-signer":
            signer = data.draw(st.sampled_from([k for k in ACTORS if k != payer]))
        elif kind == "other-chain":
            chain_id = "modelchain-elsewhere"
        elif kind == "other":
            voucher_channel = digest(f"voucher-for-{channel_id}")
        sig = sign_voucher(signer, chain_id, voucher_channel, amount)
        valid = kind == "valid"
        if ch is not None and valid:
            # the payer signed it, whether or not the claim goes through
            ch.highest_signed = max(ch.highest_signed, amount)
        if ch is None:
            expect = "channel-unknown"
        elif ch.closed:
            expect = "channel-closed"
        elif who.account != ch.node.account:
            expect = "channel-not-node"
        elif self.ledger.height > ch.expiry:
            expect = "channel-expired"
        elif amount > ch.deposit:
            expect = "channel-voucher-over-deposit"
        elif amount <= ch.claimed:
            expect = "channel-voucher-stale"
        elif not valid:
            expect = "channel-voucher-invalid"
        else:
            expect = OK
        gains: dict[str, int] = {}
        if expect == OK:
            gains[CHANNEL_ESCROW] = -(amount - ch.claimed)
            split = self.versions[ch.ref].split
            for share in compute_shares(amount - ch.claimed, split, ch.node.account):
                gains[share.account] = gains.get(share.account, 0) + share.amount
        args = {"channel": channel_id, "amount": amount, "sig": sig}
        receipt = self.submit(who, "channel", "claim", args, fee=fee, expect=expect, gains=gains)
        if receipt is not None:
            paid = receipt.events[0].data["paid"]
            assert paid == amount - ch.claimed
            ch.paid_out += paid
            ch.claimed = amount

    @rule(data=st.data(), by_payer=st.booleans(), fee=st.sampled_from(FEES))
    def refund(self, data, by_payer, fee):
        channel_id = self._pick_channel(data)
        ch = self.channels.get(channel_id)
        who = ch.payer if ch and by_payer else data.draw(st.sampled_from(ACTORS))
        if ch is None:
            expect = "channel-unknown"
        elif ch.closed:
            expect = "channel-closed"
        elif who.account != ch.payer.account:
            expect = "channel-not-payer"
        elif self.ledger.height <= ch.expiry:
            expect = "channel-not-expired"
        else:
            expect = OK
        gains: dict[str, int] = {}
        if expect == OK:
            rest = ch.deposit - ch.claimed
            gains = {CHANNEL_ESCROW: -rest, ch.payer.account: rest}
        args = {"channel": channel_id}
        if self.submit(who, "channel", "refund", args, fee=fee, expect=expect, gains=gains):
            ch.closed = True

    @precondition(lambda self: any(not ch.closed for ch in self.channels.values()))
    @rule(data=st.data())
    def payer_recovers_the_rest_after_expiry(self, data):
        """Whatever happened before, once past expiry the payer's refund goes through."""
        open_ids = sorted(cid for cid, ch in self.channels.items() if not ch.closed)
        channel_id = data.draw(st.sampled_from(open_ids))
        ch = self.channels[channel_id]
        if self.ledger.height <= ch.expiry:
            self.ledger.advance(ch.expiry + 1 - self.ledger.height)
        rest = ch.deposit - ch.claimed
        before = self.ledger.balance(ch.payer.account)
        receipt = self.ledger.call(ch.payer, "channel", "refund", {"channel": channel_id}, fee=0)
        assert receipt.status == STATUS_OK, receipt
        assert self.ledger.balance(ch.payer.account) == before + rest
        ch.closed = True

    @rule(blocks=st.integers(1, 6))
    def advance(self, blocks):
        self.ledger.advance(blocks)

    # --- invariants --------------------------------------------------------------

    @invariant()
    def money_is_conserved(self):
        assert self.ledger.total_balance() == self.ledger.supply

    @invariant()
    def escrows_hold_exactly_what_is_owed(self):
        owed = sum(ch.deposit - ch.claimed for ch in self.channels.values() if not ch.closed)
        assert self.ledger.balance(CHANNEL_ESCROW) == owed
        assert self.ledger.balance(REGISTRY_ESCROW) == REGISTRATION_FEE * self.registrations

    @invariant()
    def no_channel_pays_more_than_the_highest_voucher(self):
        for channel_id, ch in self.channels.items():
            stored = get_channel(self.ledger, channel_id)
            assert stored is not None
            assert (stored.deposit, stored.claimed, stored.expiry, stored.closed) == (
                ch.deposit,
                ch.claimed,
                ch.expiry,
                ch.closed,
            )
            assert ch.paid_out == stored.claimed <= ch.highest_signed
            assert stored.claimed <= stored.deposit

    @invariant()
    def registry_matches_the_model(self):
        for name, owner in self.owners.items():
            assert get_model(self.ledger, name).owner == owner
        for (name, version), terms in self.versions.items():
            info = get_version(self.ledger, name, version)
            assert (info.sha256, info.price, info.split, info.deprecated) == (
                terms.sha256,
                terms.price,
                terms.split,
                terms.deprecated,
            )
