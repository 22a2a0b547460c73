"""Quotes: what a call with this request body would cost here, answered with 200.

The same quote a priced /v2 infer answers with 402, without running or paying
anything; the browser uses it to check its own request hash before it signs.
"""

from __future__ import annotations

from flask import Response, jsonify

from modelchain.web.api import bp, json_body, node


@bp.post("/models/<name>/versions/<version>/quote")
def quote_call(name: str, version: str) -> Response:
    body = json_body()
    service = node().inference
    info = service.resolve_at_tip(node().chain, name, version)
    prepared = service.prepare(info, body)
    return jsonify({"quote": node().payments.quote(prepared)})
