"""The registry contract: registration, pricing, deprecation, transfer, read helpers."""

from __future__ import annotations

import pytest
from contracts_harness import DEFAULT_FEE, digest

from modelchain.chain.contract import escrow_account_of
from modelchain.chain.errors import TxBadCall, TxInsufficientBalance
from modelchain.chain.execute import STATUS_OK
from modelchain.chain.params import MAX_AMOUNT
from modelchain.contracts.registry import (
    MAX_DESCRIPTION_BYTES,
    MAX_IO_SIGNATURE_BYTES,
    MAX_LICENSE_BYTES,
    MAX_TAGS,
    REGISTRATION_FEE,
    REGISTRY,
    RegistryContract,
    find_by_sha256,
    get_model,
    get_version,
    list_versions,
    model_key,
    model_version_key,
    sha256_key,
    version_key,
)
from modelchain.contracts.split import RevenueSplit

# --- registering ---------------------------------------------------------------


def test_register_stores_the_version_and_moves_the_fee_to_the_registry_escrow(
    ledger, keys, register_args
):
    args = register_args()
    alice = keys.alice.account
    before = ledger.balance(alice)
    receipt = ledger.call(keys.alice, "registry", "register", args)
    assert receipt.status == STATUS_OK
    assert ledger.balance(alice) == before - DEFAULT_FEE - REGISTRATION_FEE
    assert ledger.balance(escrow_account_of("registry")) == REGISTRATION_FEE
    assert ledger.read_storage(REGISTRY, model_key("resnet")) == {
        "name": "resnet",
        "owner": alice,
        "versions": 1,
        "registered_height": ledger.height,
    }
    assert ledger.read_storage(REGISTRY, model_version_key("resnet", 0)) == "1.0.0"
    assert ledger.read_storage(REGISTRY, sha256_key(args["sha256"])) == {
        "name": "resnet",
        "version": "1.0.0",
    }
    stored = ledger.read_storage(REGISTRY, version_key("resnet", "1.0.0"))
    assert stored == {
        "name": "resnet",
        "version": "1.0.0",
        "sha256": args["sha256"],
        "registrant": alice,
        "price": 1000,
        "split": args["split"],
        "metadata": args["metadata"],
        "deprecated": False,
        "successor": None,
        "registered_height": ledger.height,
    }


def test_register_emits_model_registered_with_its_terms_and_index(ledger, keys, register_args):
    args = register_args()
    receipt = ledger.call(keys.alice, "registry", "register", args)
    (event,) = receipt.events
    assert (event.contract, event.type) == ("registry", "model-registered")
    assert event.data == {
        "name": "resnet",
        "version": "1.0.0",
        "sha256": args["sha256"],
        "owner": keys.alice.account,
        "new_model": True,
        "price": 1000,
        "split": args["split"],
        "metadata": args["metadata"],
        "registration_fee": REGISTRATION_FEE,
    }
    assert event.index == (
        ("model", "resnet"),
        ("version", "resnet@1.0.0"),
        ("sha256", args["sha256"]),
        ("account", keys.alice.account),
        ("account", keys.dave.account),
    )


def test_register_fills_missing_metadata_with_defaults(ledger, keys, register_args):
    args = register_args()
    del args["metadata"]
    assert ledger.call(keys.alice, "registry", "register", args).status == STATUS_OK
    info = get_version(ledger, "resnet", "1.0.0")
    assert info.metadata == {"description": "", "license": "", "tags": [], "io_signature": {}}


def test_owner_adds_a_version_and_the_model_counts_it(ledger, keys, model, register_args):
    receipt = ledger.call(keys.alice, "registry", "register", register_args(version="1.1.0"))
    assert receipt.status == STATUS_OK
    assert receipt.events[0].data["new_model"] is False
    assert list_versions(ledger, "resnet") == ("1.0.0", "1.1.0")
    assert get_model(ledger, "resnet").version_count == 2
    assert ledger.balance(escrow_account_of("registry")) == 2 * REGISTRATION_FEE


def test_free_version_registers_with_price_zero(ledger, keys, register_args):
    receipt = ledger.call(keys.alice, "registry", "register", register_args(price=0))
    assert receipt.status == STATUS_OK
    assert get_version(ledger, "resnet", "1.0.0").price == 0


def test_register_without_balance_for_the_registration_fee_is_refused(ledger, keys, register_args):
    poor = keys.erin
    ledger.state.set_account(poor.account, REGISTRATION_FEE + DEFAULT_FEE - 1, 0)
    with pytest.raises(TxInsufficientBalance):
        ledger.call(poor, "registry", "register", register_args())


# --- registering: rejected -----------------------------------------------------


def test_register_of_a_name_owned_by_another_is_rejected(assert_fails, keys, model, register_args):
    assert_fails(
        keys.bob, "registry", "register", register_args(version="2.0.0"), "registry-not-owner"
    )


def test_register_of_an_existing_name_and_version_is_rejected(
    assert_fails, keys, model, register_args
):
    args = register_args(sha256=digest("another file"))
    assert_fails(keys.alice, "registry", "register", args, "registry-version-exists")


@pytest.mark.parametrize(
    ("name", "version"), [("resnet", "2.0.0"), ("other-model", "1.0.0")], ids=["version", "name"]
)
def test_register_of_an_already_registered_sha256_is_rejected(
    assert_fails, keys, model, register_args, name, version
):
    args = register_args(name=name, version=version, sha256=model["sha256"])
    assert_fails(keys.alice, "registry", "register", args, "registry-sha256-exists")


def _split(keys, owners, node):
    return {"owners": [[key.account, bps] for key, bps in owners], "node": node}


BAD_REGISTER_ARGS = [
    ("missing-arg", lambda a, k: {key: v for key, v in a.items() if key != "price"}, "bad-args"),
    ("extra-arg", lambda a, k: {**a, "owner": k.alice.account}, "bad-args"),
    ("name-upper", lambda a, k: {**a, "name": "ResNet"}, "bad-name"),
    ("name-dash-end", lambda a, k: {**a, "name": "resnet-"}, "bad-name"),
    ("name-empty", lambda a, k: {**a, "name": ""}, "bad-name"),
    ("name-65", lambda a, k: {**a, "name": "a" * 65}, "bad-name"),
    ("name-at", lambda a, k: {**a, "name": "res@net"}, "bad-name"),
    ("name-int", lambda a, k: {**a, "name": 7}, "bad-name"),
    ("name-newline", lambda a, k: {**a, "name": "resnet\n"}, "bad-name"),
    ("version-slash", lambda a, k: {**a, "version": "1/0"}, "bad-version"),
    ("version-dot-first", lambda a, k: {**a, "version": ".1"}, "bad-version"),
    ("version-33", lambda a, k: {**a, "version": "1" * 33}, "bad-version"),
    ("version-empty", lambda a, k: {**a, "version": ""}, "bad-version"),
    ("version-newline", lambda a, k: {**a, "version": "1.0\n"}, "bad-version"),
    ("sha-upper", lambda a, k: {**a, "sha256": a["sha256"].upper()}, "bad-sha256"),
    ("sha-short", lambda a, k: {**a, "sha256": a["sha256"][:-1]}, "bad-sha256"),
    ("sha-newline", lambda a, k: {**a, "sha256": a["sha256"] + "\n"}, "bad-sha256"),
    ("price-negative", lambda a, k: {**a, "price": -1}, "bad-price"),
    ("price-over-max", lambda a, k: {**a, "price": MAX_AMOUNT + 1}, "bad-price"),
    ("price-bool", lambda a, k: {**a, "price": True}, "bad-price"),
    ("price-str", lambda a, k: {**a, "price": "10"}, "bad-price"),
    (
        "split-sum-low",
        lambda a, k: {**a, "split": _split(k, [(k.alice, 7000), (k.dave, 2000)], 999)},
        "bad-split",
    ),
    (
        "split-sum-high",
        lambda a, k: {**a, "split": _split(k, [(k.alice, 9001)], 1000)},
        "bad-split",
    ),
    ("split-no-owner", lambda a, k: {**a, "split": _split(k, [], 10000)}, "bad-split"),
    (
        "split-zero-owner",
        lambda a, k: {**a, "split": _split(k, [(k.alice, 9000), (k.dave, 0)], 1000)},
        "bad-split",
    ),
    (
        "split-negative-node",
        lambda a, k: {**a, "split": _split(k, [(k.alice, 10001)], -1)},
        "bad-split",
    ),
    (
        "split-duplicate-owner",
        lambda a, k: {**a, "split": _split(k, [(k.alice, 5000), (k.alice, 5000)], 0)},
        "bad-split",
    ),
    (
        "split-nine-owners",
        lambda a, k: {
            **a,
            "split": {"owners": [[digest(str(i)), 1000] for i in range(9)], "node": 1000},
        },
        "bad-split",
    ),
    (
        "split-bad-account",
        lambda a, k: {**a, "split": {"owners": [["alice", 10000]], "node": 0}},
        "bad-split",
    ),
    (
        "split-not-pair",
        lambda a, k: {**a, "split": {"owners": [[k.alice.account]], "node": 10000}},
        "bad-split",
    ),
    (
        "split-extra-key",
        lambda a, k: {**a, "split": {**a["split"], "miner": 0}},
        "bad-split",
    ),
    ("split-list", lambda a, k: {**a, "split": [[k.alice.account, 10000]]}, "bad-split"),
    ("metadata-list", lambda a, k: {**a, "metadata": []}, "bad-metadata"),
    (
        "metadata-unknown-key",
        lambda a, k: {**a, "metadata": {"homepage": "x"}},
        "bad-metadata",
    ),
    (
        "description-long",
        lambda a, k: {**a, "metadata": {"description": "é" * (MAX_DESCRIPTION_BYTES // 2 + 1)}},
        "bad-metadata",
    ),
    (
        "license-long",
        lambda a, k: {**a, "metadata": {"license": "x" * (MAX_LICENSE_BYTES + 1)}},
        "bad-metadata",
    ),
    ("license-int", lambda a, k: {**a, "metadata": {"license": 3}}, "bad-metadata"),
    (
        "tags-too-many",
        lambda a, k: {**a, "metadata": {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}},
        "bad-metadata",
    ),
    ("tag-bad", lambda a, k: {**a, "metadata": {"tags": ["Vision"]}}, "bad-metadata"),
    ("tags-duplicate", lambda a, k: {**a, "metadata": {"tags": ["a", "a"]}}, "bad-metadata"),
    (
        "description-surrogate",
        lambda a, k: {**a, "metadata": {"description": "\ud800"}},
        "bad-metadata",
    ),
    (
        "io-signature-float",
        lambda a, k: {**a, "metadata": {"io_signature": {"x": 1.5}}},
        "bad-metadata",
    ),
    ("io-signature-list", lambda a, k: {**a, "metadata": {"io_signature": []}}, "bad-metadata"),
    (
        "io-signature-large",
        lambda a, k: {**a, "metadata": {"io_signature": {"x": "y" * MAX_IO_SIGNATURE_BYTES}}},
        "bad-metadata",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [(mutate, code) for _, mutate, code in BAD_REGISTER_ARGS],
    ids=[case for case, _, _ in BAD_REGISTER_ARGS],
)
def test_register_with_a_malformed_argument_is_refused(
    assert_bad_call, keys, register_args, mutate, code
):
    args = mutate(register_args(), keys)
    assert_bad_call(keys.alice, "registry", "register", args, f"registry-{code}")


def test_a_version_at_the_grammar_limits_is_accepted(ledger, keys, register_args):
    name, version = "a" + "-b" * 31 + "c", "V" + "._-9" * 7 + "abc"
    assert (len(name), len(version)) == (64, 32)
    args = register_args(name=name, version=version)
    assert ledger.call(keys.alice, "registry", "register", args).status == STATUS_OK
    assert get_version(ledger, name, version).sha256 == args["sha256"]


def test_unknown_registry_method_is_refused(assert_bad_call, keys):
    assert_bad_call(keys.alice, "registry", "delete", {"name": "resnet"}, "registry-unknown-method")


def test_registry_call_with_args_not_an_object_is_refused():
    with pytest.raises(TxBadCall) as err:
        RegistryContract().check_call("register", ["resnet"])  # type: ignore[arg-type]
    assert err.value.code == "registry-bad-args"


# --- set_price -------------------------------------------------------------------


def test_owner_sets_the_price_of_later_calls(ledger, keys, model):
    args = {"name": "resnet", "version": "1.0.0", "price": 2500}
    receipt = ledger.call(keys.alice, "registry", "set_price", args)
    assert receipt.status == STATUS_OK
    assert get_version(ledger, "resnet", "1.0.0").price == 2500
    (event,) = receipt.events
    assert event.type == "price-changed"
    assert event.data == {
        "name": "resnet",
        "version": "1.0.0",
        "sha256": model["sha256"],
        "owner": keys.alice.account,
        "old_price": 1000,
        "new_price": 2500,
    }
    assert ("version", "resnet@1.0.0") in event.index
    assert ("account", keys.alice.account) in event.index


@pytest.mark.parametrize(
    ("who", "args", "code"),
    [
        ("bob", {"name": "resnet", "version": "1.0.0", "price": 1}, "registry-not-owner"),
        ("alice", {"name": "nothing", "version": "1.0.0", "price": 1}, "registry-unknown-model"),
        ("alice", {"name": "resnet", "version": "9.9.9", "price": 1}, "registry-unknown-version"),
    ],
    ids=["not-owner", "unknown-model", "unknown-version"],
)
def test_set_price_rejected(assert_fails, keys, model, who, args, code):
    assert_fails(getattr(keys, who), "registry", "set_price", args, code)


def test_set_price_of_a_deprecated_version_is_rejected(ledger, assert_fails, keys, model):
    ledger.call(keys.alice, "registry", "deprecate", {"name": "resnet", "version": "1.0.0"})
    args = {"name": "resnet", "version": "1.0.0", "price": 5}
    assert_fails(keys.alice, "registry", "set_price", args, "registry-deprecated")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"name": "resnet", "version": "1.0.0"}, "registry-bad-args"),
        ({"name": "resnet", "version": "1.0.0", "price": -5}, "registry-bad-price"),
        ({"name": "resnet", "version": "1.0.0", "price": MAX_AMOUNT + 1}, "registry-bad-price"),
        ({"name": "Resnet", "version": "1.0.0", "price": 5}, "registry-bad-name"),
        ({"name": "resnet", "version": "1 0", "price": 5}, "registry-bad-version"),
    ],
)
def test_set_price_with_a_malformed_argument_is_refused(assert_bad_call, keys, model, args, code):
    assert_bad_call(keys.alice, "registry", "set_price", args, code)


# --- deprecate -------------------------------------------------------------------


def test_owner_deprecates_a_version_naming_its_successor(ledger, keys, model, register_args):
    ledger.call(keys.alice, "registry", "register", register_args(version="1.1.0"))
    args = {"name": "resnet", "version": "1.0.0", "successor": "1.1.0"}
    receipt = ledger.call(keys.alice, "registry", "deprecate", args)
    assert receipt.status == STATUS_OK
    info = get_version(ledger, "resnet", "1.0.0")
    assert (info.deprecated, info.successor) == (True, "1.1.0")
    (event,) = receipt.events
    assert event.type == "version-deprecated"
    assert event.data == {
        "name": "resnet",
        "version": "1.0.0",
        "sha256": model["sha256"],
        "owner": keys.alice.account,
        "successor": "1.1.0",
    }
    assert event.index[:3] == (
        ("model", "resnet"),
        ("version", "resnet@1.0.0"),
        ("sha256", model["sha256"]),
    )


def test_deprecate_without_successor_stores_none(ledger, keys, model):
    args = {"name": "resnet", "version": "1.0.0", "successor": None}
    assert ledger.call(keys.alice, "registry", "deprecate", args).status == STATUS_OK
    assert get_version(ledger, "resnet", "1.0.0").successor is None


@pytest.mark.parametrize(
    ("who", "args", "code"),
    [
        ("bob", {"name": "resnet", "version": "1.0.0"}, "registry-not-owner"),
        ("alice", {"name": "nothing", "version": "1.0.0"}, "registry-unknown-model"),
        ("alice", {"name": "resnet", "version": "2.0.0"}, "registry-unknown-version"),
        (
            "alice",
            {"name": "resnet", "version": "1.0.0", "successor": "2.0.0"},
            "registry-unknown-successor",
        ),
    ],
    ids=["not-owner", "unknown-model", "unknown-version", "successor-missing"],
)
def test_deprecate_rejected(assert_fails, keys, model, who, args, code):
    assert_fails(getattr(keys, who), "registry", "deprecate", args, code)


def test_deprecating_twice_is_rejected(ledger, assert_fails, keys, model):
    args = {"name": "resnet", "version": "1.0.0"}
    ledger.call(keys.alice, "registry", "deprecate", args)
    assert_fails(keys.alice, "registry", "deprecate", args, "registry-deprecated")


def test_deprecate_with_a_deprecated_successor_is_rejected(
    ledger, assert_fails, keys, model, register_args
):
    ledger.call(keys.alice, "registry", "register", register_args(version="1.1.0"))
    ledger.call(keys.alice, "registry", "deprecate", {"name": "resnet", "version": "1.1.0"})
    args = {"name": "resnet", "version": "1.0.0", "successor": "1.1.0"}
    assert_fails(keys.alice, "registry", "deprecate", args, "registry-successor-deprecated")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"name": "resnet", "version": "1.0.0", "successor": "1.0.0"}, "registry-bad-successor"),
        ({"name": "resnet", "version": "1.0.0", "successor": "../x"}, "registry-bad-successor"),
        ({"name": "resnet", "version": "1.0.0", "successor": 2}, "registry-bad-successor"),
        ({"name": "resnet", "version": "1.0.0", "reason": "x"}, "registry-bad-args"),
        ({"name": "resnet"}, "registry-bad-args"),
        ({"name": "-resnet", "version": "1.0.0"}, "registry-bad-name"),
        ({"name": "resnet", "version": "1.0.0 "}, "registry-bad-version"),
    ],
)
def test_deprecate_with_a_malformed_argument_is_refused(assert_bad_call, keys, model, args, code):
    assert_bad_call(keys.alice, "registry", "deprecate", args, code)


# --- transfer --------------------------------------------------------------------


def test_transfer_hands_the_name_to_the_new_owner_but_not_the_revenue(
    ledger, assert_fails, keys, model, register_args
):
    args = {"name": "resnet", "to": keys.erin.account}
    receipt = ledger.call(keys.alice, "registry", "transfer", args)
    assert receipt.status == STATUS_OK
    (event,) = receipt.events
    assert event.type == "ownership-transferred"
    assert event.data == {"name": "resnet", "from": keys.alice.account, "to": keys.erin.account}
    assert event.index == (
        ("model", "resnet"),
        ("account", keys.alice.account),
        ("account", keys.erin.account),
    )
    assert get_model(ledger, "resnet").owner == keys.erin.account
    # the registered version keeps its split: revenue terms are fixed at registration
    assert get_version(ledger, "resnet", "1.0.0").split == RevenueSplit(
        ((keys.alice.account, 7000), (keys.dave.account, 2000)), 1000
    )
    new_version = register_args(version="2.0.0")
    assert ledger.call(keys.erin, "registry", "register", new_version).status == STATUS_OK
    later = register_args(version="3.0.0")
    assert_fails(keys.alice, "registry", "register", later, "registry-not-owner")


def test_transfer_to_oneself_keeps_the_owner_and_is_recorded(ledger, keys, model):
    args = {"name": "resnet", "to": keys.alice.account}
    receipt = ledger.call(keys.alice, "registry", "transfer", args)
    assert receipt.status == STATUS_OK
    assert receipt.events[0].index == (("model", "resnet"), ("account", keys.alice.account))
    assert get_model(ledger, "resnet").owner == keys.alice.account


@pytest.mark.parametrize(
    ("who", "name", "code"),
    [("bob", "resnet", "registry-not-owner"), ("alice", "nothing", "registry-unknown-model")],
)
def test_transfer_rejected(assert_fails, keys, model, who, name, code):
    args = {"name": name, "to": keys.erin.account}
    assert_fails(getattr(keys, who), "registry", "transfer", args, code)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"name": "resnet", "to": "erin"}, "registry-bad-account"),
        ({"name": "resnet", "to": "A" * 64}, "registry-bad-account"),
        ({"name": "resnet"}, "registry-bad-args"),
        ({"name": "res net", "to": "a" * 64}, "registry-bad-name"),
    ],
)
def test_transfer_with_a_malformed_argument_is_refused(assert_bad_call, keys, model, args, code):
    assert_bad_call(keys.alice, "registry", "transfer", args, code)


# --- read helpers ----------------------------------------------------------------


def test_read_helpers_find_a_version_by_name_and_by_sha256(ledger, keys, model):
    info = get_version(ledger, "resnet", "1.0.0")
    assert info.ref == "resnet@1.0.0"
    assert info.price == 1000
    assert info.registrant == keys.alice.account
    assert find_by_sha256(ledger, model["sha256"]) == info
    assert get_model(ledger, "resnet").owner == keys.alice.account


@pytest.mark.parametrize(
    "lookup",
    [
        lambda r: get_model(r, "nothing"),
        lambda r: get_model(r, "../x"),
        lambda r: get_version(r, "resnet", "2.0.0"),
        lambda r: get_version(r, "resnet", "bad version"),
        lambda r: find_by_sha256(r, digest("unknown")),
        lambda r: find_by_sha256(r, "zz"),
    ],
)
def test_read_helpers_answer_none_for_unknown_or_malformed_keys(ledger, model, lookup):
    assert lookup(ledger) is None


def test_list_versions_of_an_unknown_name_is_empty(ledger):
    assert list_versions(ledger, "nothing") == ()
