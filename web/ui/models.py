"""The model page (/models/<name>[/<version>]): what a version is, what it costs, where it
was registered, its paid calls per block, and a "try it" form that pays from the browser.

The server renders everything the chain says about the version (the same catalog entries as
GET /api/v1/models/<name>); model.js draws the chart of paid calls from the audit events and
tryit.js builds the form from the registered input signature, signs and pays in the browser.
"""

from __future__ import annotations

from typing import Any

from flask import render_template

from modelchain.chain.errors import ModelchainError
from modelchain.market import catalog
from modelchain.web.ui import bp, node


def chosen_version(detail: dict[str, Any], version: str | None) -> dict[str, Any]:
    """The version asked for, else the newest live one, else the newest (all deprecated)."""
    wanted = version if version is not None else detail["latest"]
    for entry in detail["versions"]:
        if entry["version"] == wanted:
            return entry
    return detail["versions"][-1]


def split_rows(split: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(role, account, basis points) rows of a revenue split, owners first, then the node."""
    rows = [("owner", account, bps) for account, bps in split["owners"]]
    rows.append(("serving node", "", split["node"]))
    return rows


@bp.get("/models/<name>")
@bp.get("/models/<name>/<version>")
def model_page(name: str, version: str | None = None) -> tuple[str, int]:
    chain = node().chain
    try:
        detail = catalog.model_detail(chain, name, has_file=node().models.has)
        if version is not None:  # an unknown version says so, rather than showing another
            catalog.version_detail(chain, name, version, has_file=node().models.has)
    except ModelchainError as exc:
        return render_template("ui/model.html", error=exc, name=name), exc.http_status
    entry = chosen_version(detail, version)
    try_it = {
        "name": entry["name"],
        "version": entry["version"],
        "sha256": entry["sha256"],
        "price": entry["price"],
        "deprecated": entry["deprecated"],
        "file_available": entry["file_available"],
        "inputs": entry["metadata"]["io_signature"].get("inputs", []),
        "outputs": entry["metadata"]["io_signature"].get("outputs", []),
        "node_account": node().account,
        "chain_id": node().params.chain_id,
    }
    return render_template(
        "ui/model.html",
        error=None,
        name=name,
        model=detail,
        entry=entry,
        split=split_rows(entry["split"]),
        try_it=try_it,
    ), 200
