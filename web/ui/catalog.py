"""The catalog page (/): model versions to search, filter by tag and owner, and sort.

The server renders the first page from the same catalog query as GET /api/v1/models, so the
page works without scripts; catalog.js then refreshes the cards from that API as the
visitor types or changes a filter.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from modelchain.chain.errors import ModelchainError
from modelchain.market import catalog
from modelchain.web.ui import bp, node

PAGE_SIZE = 24
SORT_LABELS = {"newest": "Newest", "most_used": "Most used", "price": "Price (cheapest first)"}


def catalog_query() -> dict[str, str]:
    """The page's filters as given in the query string (absent ones empty; sort by newest)."""
    return {
        "q": request.args.get("q", ""),
        "tag": request.args.get("tag", ""),
        "owner": request.args.get("owner", ""),
        "sort": request.args.get("sort", "newest") or "newest",
    }


@bp.get("/")
def catalog_page() -> tuple[str, int]:
    query = catalog_query()
    page: dict[str, Any] = {"versions": [], "total": 0}
    error: ModelchainError | None = None
    try:
        page = catalog.search_versions(
            node().chain,
            limit=PAGE_SIZE,
            offset=0,
            include_deprecated=False,
            has_file=node().models.has,
            **query,
        )
    except ModelchainError as exc:  # a bad filter is said in the page, as the API would
        error = exc
    return render_template(
        "ui/catalog.html",
        query=query,
        sorts=SORT_LABELS,
        page=page,
        page_size=PAGE_SIZE,
        error=error,
    ), (error.http_status if error else 200)
