"""Encrypted keystores: sealing, opening, refusing, and files that stay private.

Argon2id runs at its minimum cost here so the tests are fast; the cost a
file records is what opening it uses.
"""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import nacl.secret
import pytest

import modelchain.chain.keystore as keystore_module
from modelchain.chain.errors import (
    KeystoreBadName,
    KeystoreBadPassphrase,
    KeystoreError,
    KeystoreExists,
    KeystoreMalformed,
    KeystoreNotFound,
)
from modelchain.chain.keys import KeyPair
from modelchain.chain.keystore import (
    MAX_MEMLIMIT,
    MAX_OPSLIMIT,
    Wallets,
    decrypt_key,
    encrypt_key,
    load_keystore,
    save_keystore,
)

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def doc(keypair) -> dict[str, Any]:
    return encrypt_key(keypair("alice"), PASSPHRASE, **FAST)


@pytest.fixture
def wallets(tmp_path: Path) -> Wallets:
    return Wallets(tmp_path / "wallets", **FAST)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _flip_hex(text: str, index: int = 0) -> str:
    return text[:index] + ("1" if text[index] == "0" else "0") + text[index + 1 :]


# --- sealing and opening ----------------------------------------------------


def test_encrypted_key_decrypts_to_the_same_key_pair(keypair, doc) -> None:
    assert decrypt_key(doc, PASSPHRASE) == keypair("alice")


def test_keystore_document_has_the_documented_shape(keypair, doc) -> None:
    assert doc == {
        "version": 1,
        "account": keypair("alice").account,
        "kdf": {
            "name": "argon2id",
            "opslimit": FAST["opslimit"],
            "memlimit": FAST["memlimit"],
            "salt": doc["kdf"]["salt"],
        },
        "cipher": {
            "name": "xsalsa20poly1305",
            "nonce": doc["cipher"]["nonce"],
            "ciphertext": doc["cipher"]["ciphertext"],
        },
    }
    assert len(doc["kdf"]["salt"]) == 32
    assert len(doc["cipher"]["nonce"]) == 48
    assert len(doc["cipher"]["ciphertext"]) == 96  # 16-byte MAC + 32-byte seed


def test_keystore_is_plain_argon2id_and_secretbox(keypair, doc) -> None:
    """What a browser with libsodium does: crypto_pwhash, then crypto_secretbox_open_easy."""
    secret = argon2id.kdf(
        32,
        PASSPHRASE.encode(),
        bytes.fromhex(doc["kdf"]["salt"]),
        opslimit=doc["kdf"]["opslimit"],
        memlimit=doc["kdf"]["memlimit"],
    )
    seed = nacl.secret.SecretBox(secret).decrypt(
        bytes.fromhex(doc["cipher"]["ciphertext"]), bytes.fromhex(doc["cipher"]["nonce"])
    )
    assert seed == keypair("alice").seed


def test_each_encryption_uses_a_fresh_salt_and_nonce(keypair) -> None:
    first = encrypt_key(keypair("alice"), PASSPHRASE, **FAST)
    second = encrypt_key(keypair("alice"), PASSPHRASE, **FAST)
    assert first["kdf"]["salt"] != second["kdf"]["salt"]
    assert first["cipher"]["nonce"] != second["cipher"]["nonce"]


def test_passphrase_is_unicode_normalized_before_stretching(keypair) -> None:
    composed, decomposed = "caf\u00e9 ☕", "cafe\u0301 ☕"
    doc = encrypt_key(keypair("alice"), composed, **FAST)
    assert decrypt_key(doc, decomposed) == keypair("alice")


def test_empty_passphrase_works_and_is_not_the_same_as_a_space(keypair) -> None:
    doc = encrypt_key(keypair("alice"), "", **FAST)
    assert decrypt_key(doc, "") == keypair("alice")
    with pytest.raises(KeystoreBadPassphrase):
        decrypt_key(doc, " ")


def test_wrong_passphrase_is_refused(doc) -> None:
    with pytest.raises(KeystoreBadPassphrase) as err:
        decrypt_key(doc, PASSPHRASE + "!")
    assert err.value.code == "keystore-bad-passphrase"


def test_passphrase_with_lone_surrogate_is_refused(keypair, doc) -> None:
    with pytest.raises(KeystoreBadPassphrase):
        decrypt_key(doc, "\ud800")
    with pytest.raises(KeystoreBadPassphrase):
        encrypt_key(keypair("alice"), "\ud800", **FAST)


@pytest.mark.parametrize(
    ("section", "field", "index"),
    [
        ("cipher", "ciphertext", 0),  # inside the MAC
        ("cipher", "ciphertext", 95),  # inside the sealed seed
        ("cipher", "nonce", 10),
        ("kdf", "salt", 5),
    ],
)
def test_tampered_keystore_does_not_open(doc, section: str, field: str, index: int) -> None:
    """Poly1305 cannot tell tampering from a wrong passphrase: both are refused alike."""
    doc[section][field] = _flip_hex(doc[section][field], index)
    with pytest.raises(KeystoreBadPassphrase) as err:
        decrypt_key(doc, PASSPHRASE)
    assert err.value.code == "keystore-bad-passphrase"


def test_keystore_naming_another_account_than_its_seed_is_refused(keypair, doc) -> None:
    doc["account"] = keypair("mallory").account
    with pytest.raises(KeystoreMalformed) as err:
        decrypt_key(doc, PASSPHRASE)
    assert err.value.code == "keystore-malformed"


def _set(path: tuple[str, ...], value: Any):
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: tuple[str, ...]):
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


MALFORMED = {
    "missing-version": _delete(("version",)),
    "missing-salt": _delete(("kdf", "salt")),
    "missing-cipher": _delete(("cipher",)),
    "extra-field": _set(("comment",), "hi"),
    "extra-kdf-field": _set(("kdf", "parallelism"), 1),
    "version-2": _set(("version",), 2),
    "version-as-string": _set(("version",), "1"),
    "version-true": _set(("version",), True),
    "account-uppercase": lambda d: d.update(account=d["account"].upper()),
    "account-short": lambda d: d.update(account=d["account"][:-2]),
    "kdf-scrypt": _set(("kdf", "name"), "scrypt"),
    "kdf-not-object": _set(("kdf",), "argon2id"),
    "cipher-aes": _set(("cipher", "name"), "aes-256-gcm"),
    "opslimit-zero": _set(("kdf", "opslimit"), 0),
    "opslimit-huge": _set(("kdf", "opslimit"), MAX_OPSLIMIT + 1),
    "opslimit-float": _set(("kdf", "opslimit"), 1.0),
    "opslimit-bool": _set(("kdf", "opslimit"), True),
    "memlimit-below-minimum": _set(("kdf", "memlimit"), argon2id.MEMLIMIT_MIN - 1),
    "memlimit-huge": _set(("kdf", "memlimit"), MAX_MEMLIMIT + 1),
    "salt-short": _set(("kdf", "salt"), "00" * 15),
    "salt-not-hex": _set(("kdf", "salt"), "zz" * 16),
    "salt-uppercase": _set(("kdf", "salt"), "AB" * 16),
    "salt-trailing-newline": _set(("kdf", "salt"), "00" * 15 + "0\n"),
    "nonce-long": _set(("cipher", "nonce"), "00" * 25),
    "ciphertext-short": _set(("cipher", "ciphertext"), "00" * 47),
    "ciphertext-not-string": _set(("cipher", "ciphertext"), 12),
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_keystore_outside_the_format_is_refused_before_any_kdf(doc, change, monkeypatch) -> None:
    broken = copy.deepcopy(doc)
    change(broken)
    monkeypatch.setattr(argon2id, "kdf", _never_called)  # a hostile file costs us nothing
    with pytest.raises(KeystoreMalformed) as err:
        decrypt_key(broken, PASSPHRASE)
    assert err.value.code == "keystore-malformed"


def _never_called(*args: object, **kwargs: object) -> bytes:
    raise AssertionError("the KDF ran on a malformed keystore")


@pytest.mark.parametrize("doc_value", [None, [], "keystore", 1])
def test_keystore_that_is_not_an_object_is_refused(doc_value: object) -> None:
    with pytest.raises(KeystoreMalformed):
        decrypt_key(doc_value, PASSPHRASE)


@pytest.mark.parametrize(
    "limits",
    [
        {"opslimit": 0, "memlimit": argon2id.MEMLIMIT_MIN},
        {"opslimit": 1, "memlimit": argon2id.MEMLIMIT_MIN - 1},
        {"opslimit": MAX_OPSLIMIT + 1, "memlimit": argon2id.MEMLIMIT_MIN},
    ],
)
def test_encrypting_with_limits_outside_the_accepted_range_is_refused(keypair, limits) -> None:
    with pytest.raises(ValueError):
        encrypt_key(keypair("alice"), PASSPHRASE, **limits)


# --- files ------------------------------------------------------------------


def test_saved_keystore_is_mode_0600_even_under_a_permissive_umask(tmp_path, doc) -> None:
    path = tmp_path / "k.json"
    old = os.umask(0)
    try:
        save_keystore(path, doc)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600
    assert load_keystore(path) == doc


def test_keystore_file_is_private_before_its_first_byte_is_written(
    tmp_path, doc, monkeypatch
) -> None:
    seen: list[int] = []
    real_write = os.write

    def spy_write(fd: int, data: bytes) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(keystore_module.os, "write", spy_write)
    old = os.umask(0)
    try:
        save_keystore(tmp_path / "k.json", doc)
    finally:
        os.umask(old)
    assert seen == [0o600]


def test_saving_over_an_existing_keystore_is_refused(tmp_path, keypair, doc) -> None:
    path = tmp_path / "k.json"
    save_keystore(path, doc)
    other = encrypt_key(keypair("bob"), PASSPHRASE, **FAST)
    with pytest.raises(KeystoreExists) as err:
        save_keystore(path, other)
    assert err.value.code == "keystore-exists"
    assert load_keystore(path) == doc
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]  # no temp file left


def test_saving_with_overwrite_replaces_the_keystore(tmp_path, keypair, doc) -> None:
    path = tmp_path / "k.json"
    save_keystore(path, doc)
    other = encrypt_key(keypair("bob"), PASSPHRASE, **FAST)
    save_keystore(path, other, overwrite=True)
    assert load_keystore(path) == other
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def test_failed_save_leaves_no_file_behind(tmp_path, doc, monkeypatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(keystore_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        save_keystore(tmp_path / "k.json", doc)
    assert list(tmp_path.iterdir()) == []


def test_malformed_document_is_not_saved(tmp_path, doc) -> None:
    del doc["cipher"]
    with pytest.raises(KeystoreMalformed):
        save_keystore(tmp_path / "k.json", doc)
    assert list(tmp_path.iterdir()) == []


def test_loading_a_missing_keystore_says_not_found(tmp_path) -> None:
    with pytest.raises(KeystoreNotFound) as err:
        load_keystore(tmp_path / "absent.json")
    assert err.value.code == "keystore-not-found"


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2", b'{"version": 1}', b"\xff"])
def test_loading_a_file_that_is_not_a_keystore_says_malformed(tmp_path, content) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(KeystoreMalformed):
        load_keystore(path)


# --- wallets ----------------------------------------------------------------


def test_created_wallet_loads_with_its_passphrase(wallets) -> None:
    key = wallets.create("alice", PASSPHRASE)
    assert wallets.load("alice", PASSPHRASE) == key


def test_wallet_directory_is_0700_and_wallet_files_0600(wallets) -> None:
    wallets.create("alice", PASSPHRASE)
    assert _mode(wallets.directory) == 0o700
    assert _mode(wallets.directory / "alice.json") == 0o600


def test_wallet_list_names_every_wallet_with_its_account_sorted(wallets) -> None:
    bob = wallets.create("bob", PASSPHRASE)
    alice = wallets.create("alice", "other passphrase")
    assert wallets.list() == [("alice", alice.account), ("bob", bob.account)]


def test_wallet_list_skips_files_that_are_not_wallets(wallets) -> None:
    alice = wallets.create("alice", PASSPHRASE)
    (wallets.directory / "notes.txt").write_text("hi")
    (wallets.directory / "broken.json").write_text("{")
    (wallets.directory / ".alice.json.0123.tmp").write_text("{}")
    (wallets.directory / "subdir.json").mkdir()
    assert wallets.list() == [("alice", alice.account)]


def test_wallet_list_of_a_missing_directory_is_empty(tmp_path) -> None:
    assert Wallets(tmp_path / "none", **FAST).list() == []


def test_creating_an_existing_wallet_is_refused_and_keeps_the_old_key(wallets) -> None:
    key = wallets.create("alice", PASSPHRASE)
    with pytest.raises(KeystoreExists) as err:
        wallets.create("alice", "new passphrase")
    assert err.value.code == "keystore-exists"
    assert wallets.load("alice", PASSPHRASE) == key


def test_loading_a_wallet_with_the_wrong_passphrase_is_refused(wallets) -> None:
    wallets.create("alice", PASSPHRASE)
    with pytest.raises(KeystoreBadPassphrase) as err:
        wallets.load("alice", "wrong")
    assert err.value.code == "keystore-bad-passphrase"


def test_loading_an_unknown_wallet_says_not_found(wallets) -> None:
    with pytest.raises(KeystoreNotFound) as err:
        wallets.load("nobody", PASSPHRASE)
    assert err.value.code == "keystore-not-found"


def test_exported_wallet_imports_elsewhere_and_opens(tmp_path, wallets) -> None:
    key = wallets.create("alice", PASSPHRASE)
    exported = wallets.export("alice")
    elsewhere = Wallets(tmp_path / "other", **FAST)
    assert elsewhere.import_doc("alice-copy", exported) == key.account
    assert elsewhere.load("alice-copy", PASSPHRASE) == key
    assert elsewhere.list() == [("alice-copy", key.account)]


def test_importing_over_an_existing_wallet_is_refused_unless_overwrite(wallets, keypair) -> None:
    wallets.create("alice", PASSPHRASE)
    doc = encrypt_key(keypair("bob"), PASSPHRASE, **FAST)
    with pytest.raises(KeystoreExists):
        wallets.import_doc("alice", doc)
    wallets.import_doc("alice", doc, overwrite=True)
    assert wallets.load("alice", PASSPHRASE) == keypair("bob")


def test_importing_a_malformed_document_is_refused(wallets, doc) -> None:
    doc["kdf"]["name"] = "pbkdf2"
    with pytest.raises(KeystoreMalformed):
        wallets.import_doc("alice", doc)
    assert wallets.list() == []


def test_wallet_opens_with_the_cost_its_file_records(tmp_path, keypair) -> None:
    doc = encrypt_key(keypair("alice"), PASSPHRASE, opslimit=2, memlimit=argon2id.MEMLIMIT_MIN)
    wallets = Wallets(tmp_path / "w", **FAST)
    wallets.import_doc("alice", doc)
    assert wallets.load("alice", PASSPHRASE) == keypair("alice")


BAD_NAMES = [
    "../x",
    "a/b",
    "/etc/passwd",
    "a\\b",
    "",
    ".",
    "..",
    ".hidden",
    "a" * 65,
    "with space",
    "é",
    "nul\x00byte",
    "trailing\n",
    None,
    7,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_bad_wallet_names_are_refused_by_every_operation(wallets, doc, name) -> None:
    operations = [
        lambda: wallets.create(name, PASSPHRASE),
        lambda: wallets.load(name, PASSPHRASE),
        lambda: wallets.export(name),
        lambda: wallets.import_doc(name, doc),
    ]
    for operation in operations:
        with pytest.raises(KeystoreBadName) as err:
            operation()
        assert err.value.code == "keystore-bad-name"
    assert not wallets.directory.exists() or wallets.list() == []


@pytest.mark.parametrize("name", ["a", "A-Z_0.9", "x" * 64, "_", "my.wallet-2"])
def test_wallet_names_in_the_grammar_are_accepted(wallets, name) -> None:
    key = wallets.create(name, PASSPHRASE)
    assert wallets.list() == [(name, key.account)]


def test_keystore_errors_share_one_family() -> None:
    for error in (KeystoreBadName, KeystoreBadPassphrase, KeystoreExists, KeystoreMalformed):
        assert issubclass(error, KeystoreError)


def test_key_pair_round_trips_through_a_file(tmp_path, keypair) -> None:
    path = tmp_path / "k.json"
    save_keystore(path, encrypt_key(keypair("carol"), PASSPHRASE, **FAST))
    assert decrypt_key(load_keystore(path), PASSPHRASE) == keypair("carol")
    assert isinstance(decrypt_key(load_keystore(path), PASSPHRASE), KeyPair)
