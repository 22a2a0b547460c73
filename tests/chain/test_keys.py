"""Ed25519 key pairs, accounts and signature checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelchain.chain import keys
from modelchain.chain.errors import BadKey
from modelchain.chain.keys import ExpandedKey, KeyPair, is_account, verify_signature

# RFC 8032 section 7.1, tests 1 and 2.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
        "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da08"
        "5ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("seed", "account", "message", "signature"), RFC8032)
def test_key_pair_matches_rfc8032_vectors(
    seed: str, account: str, message: str, signature: str
) -> None:
    key = KeyPair.from_seed(bytes.fromhex(seed))
    assert key.account == account
    assert key.sign(bytes.fromhex(message)).hex() == signature
    assert verify_signature(account, bytes.fromhex(message), bytes.fromhex(signature))


def test_same_seed_gives_same_key_and_same_signature(keypair) -> None:
    key = keypair("alice")
    again = KeyPair.from_seed(key.seed)
    assert again == key
    assert again.sign(b"m") == key.sign(b"m")


def test_generated_keys_are_distinct_and_sign() -> None:
    first, second = KeyPair.generate(), KeyPair.generate()
    assert first.account != second.account
    assert is_account(first.account)
    assert verify_signature(first.account, b"hello", first.sign(b"hello"))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_seed_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(BadKey) as err:
        KeyPair.from_seed(bytes(length))
    assert err.value.code == "key-invalid"


def test_repr_never_shows_the_seed(keypair) -> None:
    key = keypair("alice")
    assert key.seed.hex() not in repr(key)
    assert key.account in repr(key)


def test_signature_does_not_verify_for_another_message_or_key(keypair) -> None:
    alice, bob = keypair("alice"), keypair("bob")
    signature = alice.sign(b"pay bob 10")
    assert verify_signature(alice.account, b"pay bob 10", signature)
    assert not verify_signature(alice.account, b"pay bob 11", signature)
    assert not verify_signature(bob.account, b"pay bob 10", signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify_signature(alice.account, b"pay bob 10", flipped)


@pytest.mark.parametrize(
    ("account", "signature"),
    [
        pytest.param("zz" * 32, bytes(64), id="non-hex-account"),
        pytest.param("00" * 31, bytes(64), id="short-account"),
        pytest.param(None, bytes(64), id="account-not-a-string"),
        pytest.param("ab" * 32, bytes(63), id="short-signature"),
        pytest.param("ab" * 32, "00" * 64, id="signature-not-bytes"),
    ],
)
def test_malformed_inputs_make_verification_false_not_an_exception(
    account: object, signature: object
) -> None:
    assert verify_signature(account, b"m", signature) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("AB" * 32, id="uppercase"),
        pytest.param("ab" * 31, id="too-short"),
        pytest.param("ab" * 33, id="too-long"),
        pytest.param("ab" * 32 + "\n", id="trailing-newline"),
        pytest.param("0x" + "ab" * 31, id="0x-prefix"),
        pytest.param(" " + "ab" * 32, id="leading-space"),
        pytest.param(b"ab" * 32, id="bytes"),
        pytest.param(None, id="none"),
    ],
)
def test_only_64_lowercase_hex_characters_are_an_account(value: object) -> None:
    assert not is_account(value)


def test_64_lowercase_hex_characters_are_an_account() -> None:
    assert is_account("0123456789abcdef" * 4)


# --- libsodium called with the GIL held, and PyNaCl's own calls -------------------------


def test_libsodium_is_called_with_the_gil_held_here() -> None:
    # PyNaCl's module exports the detached functions; if a new PyNaCl stops doing so,
    # the node falls back to PyNaCl's calls (correct, slower on a busy server)
    assert keys._SODIUM is not None


@given(
    message=st.binary(max_size=300),
    seed=st.binary(min_size=32, max_size=32),
    flip=st.integers(min_value=-1, max_value=64 * 8 - 1),
)
def test_verifying_with_the_gil_held_answers_as_pynacl_does(
    message: bytes, seed: bytes, flip: int
) -> None:
    key = KeyPair.from_seed(seed)
    signature = bytearray(key.sign(message))
    if flip >= 0:
        signature[flip // 8] ^= 1 << (flip % 8)
    expected = keys._verify_with_pynacl(key.account, message, bytes(signature))
    assert verify_signature(key.account, message, bytes(signature)) is expected
    assert expected is (flip < 0)


@pytest.mark.parametrize("held", [True, False], ids=["gil-held", "pynacl"])
def test_expanded_key_signs_as_the_key_pair_does(
    keypair, monkeypatch: pytest.MonkeyPatch, held: bool
) -> None:
    if not held:
        monkeypatch.setattr(keys, "_SODIUM", None)
    key = keypair("alice")
    expanded = ExpandedKey(key)
    assert expanded.account == key.account
    for message in (b"", b"receipt", bytes(range(256)) * 3):
        assert expanded.sign(message) == key.sign(message)
        assert verify_signature(key.account, message, expanded.sign(message))
