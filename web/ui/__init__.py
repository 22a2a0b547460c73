"""The web UI: server-rendered HTML pages (Jinja) with small ES modules for the browser's part.

Every module of this package adds its page routes to the one `ui` blueprint;
`load_route_modules` imports them all, as web/api does. Pages read the node
through the same `market` services as the JSON API; what must happen in the
browser (keys, signing, hashing files, live updates) lives in web/static/js.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, render_template

from modelchain.chain.errors import ModelchainError
from modelchain.market.node import MarketNode

bp = Blueprint("ui", __name__, template_folder="../templates", static_folder=None)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
"""No inline script, style or handler anywhere: pages pass data to JS in data-* attributes
or <script type="application/json"> blocks. 'wasm-unsafe-eval' lets the vendored libsodium
compile its WebAssembly (Argon2id for keystores)."""


def node() -> MarketNode:
    return current_app.extensions["modelchain"]


def add_security_headers(response: Response) -> Response:
    """Every answer is nosniff and no-referrer; HTML answers carry the CSP and no framing."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.errorhandler(ModelchainError)
def error_page(error: ModelchainError) -> tuple[str, int]:
    """A page's failure in words (its code and message), never a traceback."""
    return render_template("ui/error.html", error=error), error.http_status


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre> (autoescaped by the template like any text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@bp.app_template_filter("short")
def short(value: Any, size: int = 16) -> str:
    """The first `size` characters of a hash or account, with an ellipsis."""
    text = str(value)
    return text if len(text) <= size else text[:size] + "…"


@bp.app_template_filter("utc")
def utc(timestamp: int) -> str:
    """A block timestamp (Unix seconds) as UTC date and time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def load_route_modules() -> None:
    """Import every module of this package so its routes land on `bp`."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every site; a missing one shows as a console error."""
    return current_app.send_static_file("favicon.png")
