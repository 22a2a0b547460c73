"""The catalog: every registered model version, read from the node's own chain state.

Records come from the registry contract's storage; confirmations from the block of each
version's `model-registered` event; usage counts and revenue from the `usage-paid` and
`channel-claimed` events. Only main-chain blocks have events, so every answer follows reorgs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from modelchain.chain.errors import ModelchainError
from modelchain.chain.keys import is_account
from modelchain.chain.node import ChainNode
from modelchain.contracts import registry
from modelchain.contracts.grammar import is_hash_hex, is_model_name
from modelchain.market.explorer import MAX_PAGE, BadQuery, check_limit
from modelchain.market.upload import store_errors
from modelchain.models_store import ModelStore

SORTS = ("newest", "most_used", "price", "name")
"""newest: latest registration first; most_used: most paid calls, then revenue;
price: cheapest first; name: by name, then registration order."""
MAX_QUERY_CHARS = 200
MAX_OFFSET = 1_000_000

USAGE_EVENTS = ("usage-paid", "channel-claimed")


class CatalogUnknownModel(ModelchainError):
    code = "catalog-unknown-model"
    http_status = 404


class CatalogUnknownVersion(ModelchainError):
    code = "catalog-unknown-version"
    http_status = 404


@dataclass(frozen=True, slots=True)
class Usage:
    """What one version earned, from its events on the main chain."""

    paid_calls: int = 0
    """`usage-paid` events: one per paid call."""
    paid_amount: int = 0
    channel_claims: int = 0
    """`channel-claimed` events: each settles many calls paid by vouchers."""
    channel_amount: int = 0

    @property
    def revenue(self) -> int:
        return self.paid_amount + self.channel_amount

    def plus(self, other: Usage) -> Usage:
        return Usage(
            self.paid_calls + other.paid_calls,
            self.paid_amount + other.paid_amount,
            self.channel_claims + other.channel_claims,
            self.channel_amount + other.channel_amount,
        )

    def to_json(self) -> dict[str, int]:
        return {
            "paid_calls": self.paid_calls,
            "paid_amount": self.paid_amount,
            "channel_claims": self.channel_claims,
            "channel_amount": self.channel_amount,
            "revenue": self.revenue,
        }


@dataclass(frozen=True, slots=True)
class Registration:
    """Where a version's `model-registered` event lies."""

    event_id: int
    txid: str
    block_hash: str
    height: int


# --- event reads -------------------------------------------------------------------------


def usage_by_version(
    chain: ChainNode, *, model: str | None = None, ref: str | None = None
) -> dict[str, Usage]:
    """Usage of every version (of `model`, or only `ref` = name@version) from the events."""
    sql = (
        "SELECT ei.value, e.type, COUNT(*),"
        " COALESCE(SUM(json_extract(e.data, '$.amount')), 0),"
        " COALESCE(SUM(json_extract(e.data, '$.paid')), 0)"
        " FROM event_index ei JOIN events e ON e.id = ei.event_id"
        " WHERE ei.key = 'version' AND e.type IN (?, ?)"
    )
    params: list[Any] = list(USAGE_EVENTS)
    if ref is not None:
        sql += " AND ei.value = ?"
        params.append(ref)
    if model is not None:  # names never hold "@": "name@" prefixes exactly its versions
        sql += " AND ei.value >= ? AND ei.value < ?"
        params += [f"{model}@", f"{model}@\uffff"]
    sql += " GROUP BY ei.value, e.type"
    usage: dict[str, Usage] = {}
    for value, type_, count, amount, paid in chain.store.db.execute(sql, params).fetchall():
        if type_ == "usage-paid":
            found = Usage(paid_calls=count, paid_amount=amount)
        else:  # a claim's `amount` is the voucher's running total; `paid` is this claim
            found = Usage(channel_claims=count, channel_amount=paid)
        usage[value] = usage.get(value, Usage()).plus(found)
    return usage


def registrations_by_version(chain: ChainNode, name: str | None = None) -> dict[str, Registration]:
    """Where each version (of `name`, or all) was registered on the main chain."""
    sql = (
        "SELECT json_extract(e.data, '$.name') || '@' || json_extract(e.data, '$.version'),"
        " e.id, e.txid, e.block_hash, e.height FROM events e"
        " WHERE e.contract = ? AND e.type = 'model-registered'"
    )
    params: list[Any] = [registry.REGISTRY]
    if name is not None:
        sql += " AND e.id IN (SELECT event_id FROM event_index WHERE key = 'model' AND value = ?)"
        params.append(name)
    rows = chain.store.db.execute(sql, params).fetchall()
    return {ref: Registration(eid, txid, block, height) for ref, eid, txid, block, height in rows}


# --- entries -----------------------------------------------------------------------------


def version_entry(
    chain: ChainNode,
    info: registry.VersionInfo,
    owner: str,
    registration: Registration | None,
    usage: Usage,
    has_file: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """One version as the catalog shows it: its on-chain record and what the node knows."""
    entry = info.to_json()
    entry["ref"] = info.ref
    entry["owner"] = owner
    if registration is None:  # only a store written by a newer node could lack it
        entry["registration"] = None
        entry["confirmations"] = 0
    else:
        confirmations = chain.confirmations(registration.block_hash)
        entry["registration"] = {
            "txid": registration.txid,
            "block_hash": registration.block_hash,
            "height": registration.height,
            "confirmations": confirmations,
        }
        entry["confirmations"] = confirmations
    entry["usage"] = usage.to_json()
    if has_file is not None:
        entry["file_available"] = has_file(info.sha256)
    return entry


def all_versions(chain: ChainNode) -> list[registry.VersionInfo]:
    """Every registered version's record, in storage key order."""
    return [
        registry.VersionInfo.from_json(value)
        for _, value in chain.store.iter_storage(registry.REGISTRY, "version/")
    ]


def model_owners(chain: ChainNode) -> dict[str, str]:
    """Every registered name and its current owner."""
    owners = {}
    for key, value in chain.store.iter_storage(registry.REGISTRY, "model/"):
        if key.count("/") == 1:  # model/{name}; model/{name}/{i} list its versions
            owners[value["name"]] = value["owner"]
    return owners


def _matches(info: registry.VersionInfo, owner: str, q: str, tag: str, by: str) -> bool:
    if tag and tag not in info.metadata["tags"]:
        return False
    if by and owner != by:
        return False
    if q:
        text = " ".join([info.name, info.metadata["description"], *info.metadata["tags"]])
        if q.lower() not in text.lower():
            return False
    return True


def _sort_key(sort: str) -> Callable[[tuple[dict[str, Any], int]], Any]:
    """Order of (entry, registration event id) pairs; the id breaks ties in chain order."""
    if sort == "newest":
        return lambda pair: (-pair[0]["registered_height"], -pair[1])
    if sort == "most_used":
        return lambda pair: (
            -pair[0]["usage"]["paid_calls"],
            -pair[0]["usage"]["revenue"],
            -pair[0]["registered_height"],
            -pair[1],
        )
    if sort == "price":
        return lambda pair: (pair[0]["price"], -pair[0]["registered_height"], -pair[1])
    return lambda pair: (pair[0]["name"], pair[1])


def validate_catalog_query(
    q: str, tag: str, owner: str, sort: str, limit: int, offset: int
) -> None:
    """Raises BadQuery (query-invalid) naming the first parameter out of bounds."""
    if len(q) > MAX_QUERY_CHARS:
        raise BadQuery(f"q is {len(q)} characters, over the {MAX_QUERY_CHARS} limit")
    if tag and not is_model_name(tag):
        raise BadQuery(f"tag {tag!r} is not a tag (tags follow the model name grammar)")
    if owner and not is_account(owner):
        raise BadQuery(f"owner {owner!r} is not an account (64 lowercase hex)")
    if sort not in SORTS:
        raise BadQuery(f"sort {sort!r} is not one of {', '.join(SORTS)}")
    check_limit(limit)
    if not 0 <= offset <= MAX_OFFSET:
        raise BadQuery(f"offset {offset} is outside 0..{MAX_OFFSET}")


def search_versions(
    chain: ChainNode,
    *,
    q: str = "",
    tag: str = "",
    owner: str = "",
    sort: str = "newest",
    limit: int = 20,
    offset: int = 0,
    include_deprecated: bool = False,
    has_file: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """A page of the catalog: versions matching text `q` (name, description, tags), `tag`
    and `owner` (the name's current owner), sorted by `sort`; raises BadQuery.
    """
    validate_catalog_query(q, tag, owner, sort, limit, offset)
    with chain.lock:  # one consistent view: no block connects while we read
        owners = model_owners(chain)
        registrations = registrations_by_version(chain)
        usage = usage_by_version(chain)
        found: list[tuple[dict[str, Any], int]] = []
        for info in all_versions(chain):
            model_owner = owners.get(info.name, info.registrant)
            if info.deprecated and not include_deprecated:
                continue
            if not _matches(info, model_owner, q, tag, owner):
                continue
            registration = registrations.get(info.ref)
            entry = version_entry(
                chain, info, model_owner, registration, usage.get(info.ref, Usage()), has_file
            )
            found.append((entry, registration.event_id if registration else 0))
        height = chain.height
    found.sort(key=_sort_key(sort))
    return {
        "versions": [entry for entry, _ in found[offset : offset + limit]],
        "total": len(found),
        "limit": limit,
        "offset": offset,
        "sort": sort,
        "height": height,
    }


def model_detail(
    chain: ChainNode, name: str, has_file: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """A model with every version, oldest first; raises CatalogUnknownModel."""
    with chain.lock:
        model = registry.get_model(chain.store, name)
        if model is None:
            raise CatalogUnknownModel(f"no model named {name!r} is registered")
        registrations = registrations_by_version(chain, name)
        usage_of = usage_by_version(chain, model=name)
        versions = []
        total = Usage()
        for version in registry.list_versions(chain.store, name):
            info = registry.get_version(chain.store, name, version)
            assert info is not None  # the registry writes both in one call
            usage = usage_of.get(info.ref, Usage())
            total = total.plus(usage)
            versions.append(
                version_entry(
                    chain, info, model.owner, registrations.get(info.ref), usage, has_file
                )
            )
        height = chain.height
    live = [v["version"] for v in versions if not v["deprecated"]]
    return {
        "name": model.name,
        "owner": model.owner,
        "version_count": model.version_count,
        "registered_height": model.registered_height,
        "latest": live[-1] if live else None,
        "usage": total.to_json(),
        "versions": versions,
        "height": height,
    }


def version_detail(
    chain: ChainNode, name: str, version: str, has_file: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """One version's catalog entry; raises CatalogUnknownModel or CatalogUnknownVersion."""
    with chain.lock:
        model = registry.get_model(chain.store, name)
        if model is None:
            raise CatalogUnknownModel(f"no model named {name!r} is registered")
        info = registry.get_version(chain.store, name, version)
        if info is None:
            raise CatalogUnknownVersion(f"{name} has no version {version!r}")
        registration = registrations_by_version(chain, name).get(info.ref)
        usage = usage_by_version(chain, ref=info.ref).get(info.ref, Usage())
        entry = version_entry(chain, info, model.owner, registration, usage, has_file)
        entry["height"] = chain.height
        return entry


# --- files -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelFile:
    """An open, verified model file and the name to download it under."""

    file: BinaryIO
    sha256: str
    download_name: str


def open_model_file(chain: ChainNode, models: ModelStore, sha256: str) -> ModelFile:
    """The stored file whose bytes hash to `sha256`, just verified; the caller closes it.

    Raises BadQuery for a malformed hash, ModelFileRejected (store-model-not-found, 404)
    when the node does not hold it, and (store-corrupt-file, 500) when its bytes changed.
    """
    if not is_hash_hex(sha256):
        raise BadQuery(f"{sha256!r} is not a sha256 (64 lowercase hex)")
    with store_errors():
        file = models.open_verified(sha256)
    info = registry.find_by_sha256(chain.store, sha256)
    name = f"{info.name}-{info.version}.onnx" if info is not None else f"{sha256}.onnx"
    return ModelFile(file, sha256, name)


__all__ = [
    "MAX_PAGE",
    "SORTS",
    "CatalogUnknownModel",
    "CatalogUnknownVersion",
    "ModelFile",
    "Registration",
    "Usage",
    "all_versions",
    "model_owners",
    "search_versions",
    "model_detail",
    "open_model_file",
    "registrations_by_version",
    "usage_by_version",
    "version_detail",
    "version_entry",
]
