"""The `registry` contract: who registered which model version, at what price and split.

A name belongs to the first account that registers it; only its owner adds
versions, reprices or deprecates them and hands the name on. A version's
sha256 is unique chain-wide and its revenue split is fixed at registration.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

from modelchain.chain.contract import CallContext, ContractView
from modelchain.chain.encoding import canonical_bytes, check_canonical_value
from modelchain.chain.errors import NonCanonicalValue
from modelchain.chain.keys import is_account
from modelchain.contracts.errors import (
    RegistryBadAccount,
    RegistryBadArgs,
    RegistryBadMetadata,
    RegistryBadName,
    RegistryBadPrice,
    RegistryBadSha256,
    RegistryBadSplit,
    RegistryBadSuccessor,
    RegistryBadVersion,
    RegistryDeprecated,
    RegistryNotOwner,
    RegistrySha256Exists,
    RegistrySuccessorDeprecated,
    RegistryUnknownMethod,
    RegistryUnknownModel,
    RegistryUnknownSuccessor,
    RegistryUnknownVersion,
    RegistryVersionExists,
)
from modelchain.contracts.grammar import (
    NAME_RE,
    is_amount,
    is_hash_hex,
    is_model_name,
    is_version,
    validate_arg_names,
)
from modelchain.contracts.split import RevenueSplit, split_problem

REGISTRY = "registry"
"""The contract's name, under which its storage lives."""

REGISTRATION_FEE = 1_000_000
"""Base units every registration moves into the registry's escrow, for ever.

A registered version occupies state for ever; this makes each one cost
something without creating or destroying money (docs/contracts.md)."""

MAX_DESCRIPTION_BYTES = 4096
"""Longest description, in UTF-8 bytes."""
MAX_LICENSE_BYTES = 64
"""Longest license string (an SPDX id fits), in UTF-8 bytes."""
MAX_TAGS = 16
"""Most tags on one version; each tag follows the model name grammar."""
MAX_IO_SIGNATURE_BYTES = 16_384
"""Largest I/O signature object, measured as its canonical JSON bytes."""

METADATA_KEYS = ("description", "license", "tags", "io_signature")
"""Metadata fields; missing ones default to "", "", [] and {}."""

_METHOD_ARGS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "register": (
        frozenset({"name", "version", "sha256", "price", "split"}),
        frozenset({"metadata"}),
    ),
    "set_price": (frozenset({"name", "version", "price"}), frozenset()),
    "deprecate": (frozenset({"name", "version"}), frozenset({"successor"})),
    "transfer": (frozenset({"name", "to"}), frozenset()),
}


# --- storage layout ----------------------------------------------------------


def model_key(name: str) -> str:
    """`model/{name}` -> {name, owner, versions (count), registered_height}."""
    return f"model/{name}"


def model_version_key(name: str, position: int) -> str:
    """`model/{name}/{i}` -> the i-th version registered under `name` (from 0)."""
    return f"model/{name}/{position}"


def version_key(name: str, version: str) -> str:
    """`version/{name}@{version}` -> the version's record (see VersionInfo)."""
    return f"version/{name}@{version}"


def sha256_key(sha256: str) -> str:
    """`sha256/{hex}` -> {name, version} that registered this file."""
    return f"sha256/{sha256}"


# --- read helpers ------------------------------------------------------------


class StorageReader(Protocol):
    """Anything that reads contract storage: a StateOverlay, a store snapshot."""

    def read_storage(self, contract: str, key: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered name."""

    name: str
    owner: str
    """The account that may add versions, reprice, deprecate and transfer."""
    version_count: int
    registered_height: int
    """Height of the block that registered the first version."""

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ModelInfo:
        return cls(value["name"], value["owner"], value["versions"], value["registered_height"])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "versions": self.version_count,
            "registered_height": self.registered_height,
        }


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A registered model version and its terms."""

    name: str
    version: str
    sha256: str
    registrant: str
    """The account that registered it (the name's owner at the time)."""
    price: int
    """Base units per call; 0 is free. Changed by `set_price` for later calls."""
    split: RevenueSplit
    metadata: dict[str, Any]
    """description, license, tags, io_signature (all present, defaults filled)."""
    deprecated: bool
    successor: str | None
    """The version to use instead, when deprecated with one."""
    registered_height: int

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> VersionInfo:
        return cls(
            name=value["name"],
            version=value["version"],
            sha256=value["sha256"],
            registrant=value["registrant"],
            price=value["price"],
            split=RevenueSplit.from_json(value["split"]),
            metadata=value["metadata"],
            deprecated=value["deprecated"],
            successor=value["successor"],
            registered_height=value["registered_height"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "registrant": self.registrant,
            "price": self.price,
            "split": self.split.to_json(),
            "metadata": self.metadata,
            "deprecated": self.deprecated,
            "successor": self.successor,
            "registered_height": self.registered_height,
        }


def get_model(reader: StorageReader, name: str) -> ModelInfo | None:
    """The registered name `name`, or None (also for a name outside the grammar)."""
    if not is_model_name(name):
        return None
    value = reader.read_storage(REGISTRY, model_key(name))
    return None if value is None else ModelInfo.from_json(value)


def list_versions(reader: StorageReader, name: str) -> tuple[str, ...]:
    """The versions registered under `name`, oldest first; () for an unknown name."""
    model = get_model(reader, name)
    if model is None:
        return ()
    return tuple(
        reader.read_storage(REGISTRY, model_version_key(name, i))
        for i in range(model.version_count)
    )


def get_version(reader: StorageReader, name: str, version: str) -> VersionInfo | None:
    """The version `name@version`, or None."""
    if not (is_model_name(name) and is_version(version)):
        return None
    value = reader.read_storage(REGISTRY, version_key(name, version))
    return None if value is None else VersionInfo.from_json(value)


def find_by_sha256(reader: StorageReader, sha256: str) -> VersionInfo | None:
    """The version registered with this file hash, or None."""
    if not is_hash_hex(sha256):
        return None
    ref = reader.read_storage(REGISTRY, sha256_key(sha256))
    return None if ref is None else get_version(reader, ref["name"], ref["version"])


def version_index(name: str, version: str, sha256: str) -> tuple[tuple[str, str], ...]:
    """The index pairs every event about one version carries."""
    return (("model", name), ("version", f"{name}@{version}"), ("sha256", sha256))


def account_index(*accounts: str) -> tuple[tuple[str, str], ...]:
    """("account", a) for each distinct account, in first-seen order."""
    return tuple(("account", account) for account in dict.fromkeys(accounts))


# --- call shape --------------------------------------------------------------


def normalize_metadata(value: Any) -> dict[str, Any]:
    """A fresh copy of the metadata with defaults filled; raises RegistryBadMetadata."""
    if not isinstance(value, dict):
        raise RegistryBadMetadata("metadata must be an object")
    extra = sorted(set(value) - set(METADATA_KEYS))
    if extra:
        raise RegistryBadMetadata(f"unknown metadata keys {extra}")
    try:
        check_canonical_value(value)
    except NonCanonicalValue as exc:
        raise RegistryBadMetadata(f"metadata is not canonical JSON: {exc.message}") from exc
    defaults: dict[str, Any] = {"description": "", "license": "", "tags": [], "io_signature": {}}
    metadata = copy.deepcopy({**defaults, **value})
    description, license_, tags, io_signature = (
        metadata["description"],
        metadata["license"],
        metadata["tags"],
        metadata["io_signature"],
    )
    if not isinstance(description, str) or len(description.encode()) > MAX_DESCRIPTION_BYTES:
        raise RegistryBadMetadata(
            f"description must be a string of at most {MAX_DESCRIPTION_BYTES} UTF-8 bytes"
        )
    if not isinstance(license_, str) or len(license_.encode()) > MAX_LICENSE_BYTES:
        raise RegistryBadMetadata(
            f"license must be a string of at most {MAX_LICENSE_BYTES} UTF-8 bytes"
        )
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise RegistryBadMetadata(f"tags must be a list of at most {MAX_TAGS} tags")
    for tag in tags:
        if not is_model_name(tag):
            raise RegistryBadMetadata(f"tag {tag!r} does not match {NAME_RE.pattern}")
    if len(set(tags)) != len(tags):
        raise RegistryBadMetadata("tags must be distinct")
    if not isinstance(io_signature, dict):
        raise RegistryBadMetadata("io_signature must be a JSON object")
    size = len(canonical_bytes(io_signature))
    if size > MAX_IO_SIGNATURE_BYTES:
        raise RegistryBadMetadata(
            f"io_signature is {size} bytes, over the {MAX_IO_SIGNATURE_BYTES} limit"
        )
    return metadata


def _check_name_version(where: str, args: dict[str, Any]) -> None:
    if not is_model_name(args["name"]):
        raise RegistryBadName(f"{where}: name {args['name']!r} does not match {NAME_RE.pattern}")
    if "version" in args and not is_version(args["version"]):
        raise RegistryBadVersion(f"{where}: version {args['version']!r} is not a valid version")


def _check_price(where: str, price: Any) -> None:
    if not is_amount(price):
        raise RegistryBadPrice(f"{where}: price must be an integer amount >= 0, got {price!r}")


class RegistryContract:
    """register / set_price / deprecate / transfer (docs/contracts.md#registry)."""

    name = REGISTRY

    # --- stateless -----------------------------------------------------------

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        """Raises a RegistryBadCall subclass naming the first broken shape rule."""
        if method not in _METHOD_ARGS:
            raise RegistryUnknownMethod(
                f"registry has no method {method!r} (it has: {', '.join(_METHOD_ARGS)})"
            )
        required, optional = _METHOD_ARGS[method]
        where = f"registry.{method}"
        validate_arg_names(where, args, required, RegistryBadArgs, optional)
        _check_name_version(where, args)
        if method == "register":
            if not is_hash_hex(args["sha256"]):
                raise RegistryBadSha256(f"{where}: sha256 must be 64 lowercase hex characters")
            _check_price(where, args["price"])
            problem = split_problem(args["split"])
            if problem is not None:
                raise RegistryBadSplit(f"{where}: {problem}")
            normalize_metadata(args.get("metadata", {}))
        elif method == "set_price":
            _check_price(where, args["price"])
        elif method == "deprecate":
            successor = args.get("successor")
            if successor is not None and not is_version(successor):
                raise RegistryBadSuccessor(f"{where}: successor {successor!r} is not a version")
            if successor == args["version"]:
                raise RegistryBadSuccessor(f"{where}: a version cannot succeed itself")
        elif method == "transfer":
            if not is_account(args["to"]):
                raise RegistryBadAccount(f"{where}: to {args['to']!r} is not an account")

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return REGISTRATION_FEE if method == "register" else 0

    # --- stateful ------------------------------------------------------------

    def execute(
        self, view: ContractView, ctx: CallContext, method: str, args: dict[str, Any]
    ) -> None:
        handlers = {
            "register": self._register,
            "set_price": self._set_price,
            "deprecate": self._deprecate,
            "transfer": self._transfer,
        }
        handlers[method](view, ctx, args)

    def _register(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        name, version, sha256 = args["name"], args["version"], args["sha256"]
        model = view.get(model_key(name))
        if model is not None and model["owner"] != ctx.sender:
            raise RegistryNotOwner(
                f"{name} is owned by {model['owner'][:16]}, not {ctx.sender[:16]}"
            )
        if view.get(version_key(name, version)) is not None:
            raise RegistryVersionExists(f"{name}@{version} is already registered")
        taken = view.get(sha256_key(sha256))
        if taken is not None:
            raise RegistrySha256Exists(
                f"sha256 {sha256[:16]} is already registered as {taken['name']}@{taken['version']}"
            )
        view.transfer(ctx.sender, view.escrow_account(), REGISTRATION_FEE)
        new_model = model is None
        if model is None:
            model = {
                "name": name,
                "owner": ctx.sender,
                "versions": 0,
                "registered_height": ctx.height,
            }
        position = model["versions"]
        view.put(model_key(name), {**model, "versions": position + 1})
        view.put(model_version_key(name, position), version)
        info = VersionInfo(
            name=name,
            version=version,
            sha256=sha256,
            registrant=ctx.sender,
            price=args["price"],
            split=RevenueSplit.from_json(args["split"]),
            metadata=normalize_metadata(args.get("metadata", {})),
            deprecated=False,
            successor=None,
            registered_height=ctx.height,
        )
        view.put(version_key(name, version), info.to_json())
        view.put(sha256_key(sha256), {"name": name, "version": version})
        owners = [account for account, _ in info.split.owners]
        view.emit(
            "model-registered",
            {
                "name": name,
                "version": version,
                "sha256": sha256,
                "owner": ctx.sender,
                "new_model": new_model,
                "price": info.price,
                "split": info.split.to_json(),
                "metadata": copy.deepcopy(info.metadata),
                "registration_fee": REGISTRATION_FEE,
            },
            version_index(name, version, sha256) + account_index(ctx.sender, *owners),
        )

    def _owned_model(self, view: ContractView, ctx: CallContext, name: str) -> dict[str, Any]:
        model = view.get(model_key(name))
        if model is None:
            raise RegistryUnknownModel(f"no model named {name!r}")
        if model["owner"] != ctx.sender:
            raise RegistryNotOwner(
                f"{name} is owned by {model['owner'][:16]}, not {ctx.sender[:16]}"
            )
        return model

    def _live_version(self, view: ContractView, name: str, version: str) -> dict[str, Any]:
        record = view.get(version_key(name, version))
        if record is None:
            raise RegistryUnknownVersion(f"{name}@{version} is not registered")
        if record["deprecated"]:
            raise RegistryDeprecated(f"{name}@{version} is deprecated")
        return record

    def _set_price(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        name, version, price = args["name"], args["version"], args["price"]
        self._owned_model(view, ctx, name)
        record = self._live_version(view, name, version)
        view.put(version_key(name, version), {**record, "price": price})
        view.emit(
            "price-changed",
            {
                "name": name,
                "version": version,
                "sha256": record["sha256"],
                "owner": ctx.sender,
                "old_price": record["price"],
                "new_price": price,
            },
            version_index(name, version, record["sha256"]) + account_index(ctx.sender),
        )

    def _deprecate(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        name, version = args["name"], args["version"]
        successor = args.get("successor")
        self._owned_model(view, ctx, name)
        record = self._live_version(view, name, version)
        if successor is not None:
            target = view.get(version_key(name, successor))
            if target is None:
                raise RegistryUnknownSuccessor(f"successor {name}@{successor} is not registered")
            if target["deprecated"]:
                raise RegistrySuccessorDeprecated(f"successor {name}@{successor} is deprecated")
        view.put(version_key(name, version), {**record, "deprecated": True, "successor": successor})
        view.emit(
            "version-deprecated",
            {
                "name": name,
                "version": version,
                "sha256": record["sha256"],
                "owner": ctx.sender,
                "successor": successor,
            },
            version_index(name, version, record["sha256"]) + account_index(ctx.sender),
        )

    def _transfer(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        name, to = args["name"], args["to"]
        model = self._owned_model(view, ctx, name)
        view.put(model_key(name), {**model, "owner": to})
        view.emit(
            "ownership-transferred",
            {"name": name, "from": ctx.sender, "to": to},
            (("model", name),) + account_index(ctx.sender, to),
        )
