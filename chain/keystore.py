"""Encrypted keystores: an Ed25519 seed sealed under a passphrase, one JSON file each.

The passphrase is stretched by Argon2id (libsodium's crypto_pwhash) and the seed
sealed by XSalsa20-Poly1305 (crypto_secretbox_easy), so a browser with libsodium
reads the same files; the format is docs/keystore.md. Files are written
atomically with mode 0600, and `Wallets` keeps a directory of them by name.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import unicodedata
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret

from modelchain.chain.errors import (
    KeystoreBadName,
    KeystoreBadPassphrase,
    KeystoreExists,
    KeystoreMalformed,
    KeystoreNotFound,
)
from modelchain.chain.keys import KeyPair, is_account

KEYSTORE_VERSION = 1
KDF_NAME = "argon2id"
CIPHER_NAME = "xsalsa20poly1305"
SALT_BYTES = argon2id.SALTBYTES  # 16, crypto_pwhash_SALTBYTES
NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE  # 24, crypto_secretbox_NONCEBYTES
SEED_BYTES = 32
CIPHERTEXT_BYTES = nacl.secret.SecretBox.MACBYTES + SEED_BYTES  # 48: MAC then sealed seed

DEFAULT_OPSLIMIT = argon2id.OPSLIMIT_MODERATE
"""3 passes: about half a second on a laptop core."""
DEFAULT_MEMLIMIT = argon2id.MEMLIMIT_MODERATE
"""256 MiB."""
MIN_OPSLIMIT = argon2id.OPSLIMIT_MIN
MIN_MEMLIMIT = argon2id.MEMLIMIT_MIN
MAX_OPSLIMIT = 32
"""A file asking for more passes is refused: a hostile keystore must not hang us."""
MAX_MEMLIMIT = argon2id.MEMLIMIT_SENSITIVE
"""1 GiB, libsodium's 'sensitive' level; more is refused for the same reason."""

WALLET_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
"""Whole-name grammar (fullmatch): no path separators, no leading dot (so no
`.`, `..`, hidden or temp files)."""

_TOP_FIELDS = frozenset({"version", "account", "kdf", "cipher"})
_KDF_FIELDS = frozenset({"name", "opslimit", "memlimit", "salt"})
_CIPHER_FIELDS = frozenset({"name", "nonce", "ciphertext"})
_HEX_RE = re.compile(r"[0-9a-f]*")


def encrypt_key(
    key: KeyPair,
    passphrase: str,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> dict[str, Any]:
    """A keystore document sealing `key`'s seed under `passphrase`, with fresh salt and nonce.

    Raises ValueError for limits outside MIN..MAX, and KeystoreBadPassphrase for a
    passphrase that is not valid Unicode text.
    """
    if not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise ValueError(f"opslimit {opslimit} outside {MIN_OPSLIMIT}..{MAX_OPSLIMIT}")
    if not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT:
        raise ValueError(f"memlimit {memlimit} outside {MIN_MEMLIMIT}..{MAX_MEMLIMIT}")
    salt = secrets.token_bytes(SALT_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    secret = _derive_key(passphrase, salt, opslimit, memlimit)
    sealed = nacl.secret.SecretBox(secret).encrypt(key.seed, nonce)
    return {
        "version": KEYSTORE_VERSION,
        "account": key.account,
        "kdf": {
            "name": KDF_NAME,
            "opslimit": opslimit,
            "memlimit": memlimit,
            "salt": salt.hex(),
        },
        "cipher": {
            "name": CIPHER_NAME,
            "nonce": nonce.hex(),
            "ciphertext": sealed.ciphertext.hex(),
        },
    }


def decrypt_key(doc: Any, passphrase: str) -> KeyPair:
    """The key pair sealed in `doc`.

    Raises KeystoreMalformed for a document outside the format or whose seed
    is not the key of its `account`, and KeystoreBadPassphrase when the
    passphrase is wrong or the sealed bytes were altered (indistinguishable).
    """
    check_keystore_doc(doc)
    kdf, cipher = doc["kdf"], doc["cipher"]
    secret = _derive_key(passphrase, bytes.fromhex(kdf["salt"]), kdf["opslimit"], kdf["memlimit"])
    try:
        seed = nacl.secret.SecretBox(secret).decrypt(
            bytes.fromhex(cipher["ciphertext"]), bytes.fromhex(cipher["nonce"])
        )
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreBadPassphrase(
            f"wrong passphrase for keystore of {doc['account'][:16]}, or the file is damaged"
        ) from exc
    key = KeyPair.from_seed(seed)
    if key.account != doc["account"]:
        raise KeystoreMalformed(
            f"keystore names account {doc['account'][:16]} but holds the key of {key.account[:16]}"
        )
    return key


def _derive_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        _passphrase_bytes(passphrase),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )


def _passphrase_bytes(passphrase: str) -> bytes:
    """NFC then UTF-8, so the same typed passphrase gives the same bytes on every platform."""
    if not isinstance(passphrase, str):
        raise TypeError("a passphrase is a str")
    try:
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise KeystoreBadPassphrase("passphrase holds a lone surrogate") from exc


def check_keystore_doc(doc: Any) -> None:
    """Raise KeystoreMalformed unless `doc` has exactly the format of docs/keystore.md."""
    _check_object(doc, _TOP_FIELDS, "keystore")
    if type(doc["version"]) is not int or doc["version"] != KEYSTORE_VERSION:
        raise KeystoreMalformed(f"keystore version {doc['version']!r} is not {KEYSTORE_VERSION}")
    if not is_account(doc["account"]):
        raise KeystoreMalformed("keystore account must be 64 lowercase hex characters")
    kdf = doc["kdf"]
    _check_object(kdf, _KDF_FIELDS, "kdf")
    if kdf["name"] != KDF_NAME:
        raise KeystoreMalformed(f"kdf {kdf['name']!r} is not {KDF_NAME!r}")
    _check_limit(kdf["opslimit"], "opslimit", MIN_OPSLIMIT, MAX_OPSLIMIT)
    _check_limit(kdf["memlimit"], "memlimit", MIN_MEMLIMIT, MAX_MEMLIMIT)
    _check_hex(kdf["salt"], "kdf.salt", SALT_BYTES)
    cipher = doc["cipher"]
    _check_object(cipher, _CIPHER_FIELDS, "cipher")
    if cipher["name"] != CIPHER_NAME:
        raise KeystoreMalformed(f"cipher {cipher['name']!r} is not {CIPHER_NAME!r}")
    _check_hex(cipher["nonce"], "cipher.nonce", NONCE_BYTES)
    _check_hex(cipher["ciphertext"], "cipher.ciphertext", CIPHERTEXT_BYTES)


def _check_object(value: Any, fields: frozenset[str], what: str) -> None:
    if not isinstance(value, dict):
        raise KeystoreMalformed(f"{what} must be a JSON object")
    if set(value) != fields:
        missing = sorted(fields - set(value))
        extra = sorted(set(value) - fields)
        raise KeystoreMalformed(f"{what} fields wrong: missing {missing}, unexpected {extra}")


def _check_limit(value: Any, what: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise KeystoreMalformed(f"kdf.{what} must be an integer in {low}..{high}, got {value!r}")


def _check_hex(value: Any, what: str, size: int) -> None:
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX_RE.fullmatch(value):
        raise KeystoreMalformed(f"{what} must be {2 * size} lowercase hex characters")


def save_keystore(
    path: str | os.PathLike[str], doc: dict[str, Any], *, overwrite: bool = False
) -> None:
    """Write `doc` to `path` atomically, mode 0600 from the first byte on.

    The bytes go to a fresh temp file beside `path` (O_CREAT|O_EXCL, 0600),
    are fsynced, then linked (or, with `overwrite`, renamed) into place, so a
    reader sees the old file or the whole new one. Raises KeystoreMalformed
    for a bad `doc` and KeystoreExists when `path` exists and not `overwrite`.
    """
    check_keystore_doc(doc)
    target = Path(path)
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # a umask may only have taken bits away; make it exact
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, target)
        else:
            _link_no_overwrite(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_directory(target.parent)


def _link_no_overwrite(temp: Path, target: Path) -> None:
    """Put `temp` at `target` unless something is there; link() checks and places in one step."""
    try:
        os.link(temp, target)
    except FileExistsError as exc:
        raise KeystoreExists(f"keystore {target} already exists") from exc
    except OSError:
        # a file system without hard links: check, then rename (a narrow race remains)
        if target.exists():
            raise KeystoreExists(f"keystore {target} already exists") from None
        os.rename(temp, target)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_keystore(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keystore document at `path`; raises KeystoreNotFound or KeystoreMalformed."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise KeystoreNotFound(f"no keystore at {path}") from exc
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise KeystoreMalformed(f"keystore {path} is not JSON: {exc}") from exc
    check_keystore_doc(doc)
    return doc


def check_wallet_name(name: Any) -> None:
    """Raise KeystoreBadName unless `name` is 1..64 of [A-Za-z0-9_.-], not starting with '.'."""
    if not isinstance(name, str) or not WALLET_NAME_RE.fullmatch(name):
        raise KeystoreBadName(
            f"wallet name {name!r} must be 1..64 of A-Z a-z 0-9 _ . - and not start with '.'"
        )


class Wallets:
    """A directory of named keystores, `<directory>/<name>.json`, created with mode 0700.

    `opslimit`/`memlimit` are the Argon2id cost of keystores it creates (tests
    pass the minimum); loading uses whatever cost each file records.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> None:
        self.directory = Path(directory)
        self.opslimit = opslimit
        self.memlimit = memlimit

    def path(self, name: str) -> Path:
        """Where wallet `name` lives; raises KeystoreBadName."""
        check_wallet_name(name)
        return self.directory / f"{name}.json"

    def create(self, name: str, passphrase: str) -> KeyPair:
        """A new random key saved as wallet `name`; raises KeystoreExists, KeystoreBadName."""
        target = self.path(name)
        if target.exists():  # fail before spending the KDF; save_keystore re-checks atomically
            raise KeystoreExists(f"wallet {name!r} already exists")
        key = KeyPair.generate()
        doc = encrypt_key(key, passphrase, opslimit=self.opslimit, memlimit=self.memlimit)
        self._save(name, doc)
        return key

    def load(self, name: str, passphrase: str) -> KeyPair:
        """The key of wallet `name`; raises KeystoreNotFound, KeystoreBadPassphrase, ..."""
        return decrypt_key(self.export(name), passphrase)

    def export(self, name: str) -> dict[str, Any]:
        """Wallet `name`'s keystore document (still encrypted)."""
        return load_keystore(self.path(name))

    def import_doc(self, name: str, doc: dict[str, Any], *, overwrite: bool = False) -> str:
        """Save a keystore document as wallet `name`; returns its account.

        Raises KeystoreMalformed, KeystoreExists, KeystoreBadName. The seed is
        not checked against the account until the wallet is loaded.
        """
        check_keystore_doc(doc)
        self._save(name, doc, overwrite=overwrite)
        return doc["account"]

    def list(self) -> list[tuple[str, str]]:
        """(name, account) of every readable wallet, sorted by name; other files are skipped."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            name = entry.name.removesuffix(".json")
            if entry.suffix != ".json" or not WALLET_NAME_RE.fullmatch(name):
                continue
            try:
                doc = load_keystore(entry)
            except (KeystoreMalformed, KeystoreNotFound, OSError):
                continue
            found.append((name, doc["account"]))
        return sorted(found)

    def _save(self, name: str, doc: dict[str, Any], *, overwrite: bool = False) -> None:
        target = self.path(name)
        self._ensure_directory()
        try:
            save_keystore(target, doc, overwrite=overwrite)
        except KeystoreExists as exc:
            raise KeystoreExists(f"wallet {name!r} already exists") from exc

    def _ensure_directory(self) -> None:
        """Create the directory (and parents) if missing; a directory we create is 0700."""
        if self.directory.is_dir():
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # mkdir's mode passed through the umask
