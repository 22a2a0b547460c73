"""GET /api/v1/openapi.json: the node's OpenAPI 3.1 document, covering /api/v1 and /v2.

The document itself is built in `web/openapi.py`; this module only serves it.
"""

from __future__ import annotations

from flask import Response, jsonify

from modelchain.web.api import bp
from modelchain.web.openapi import openapi_document


@bp.get("/openapi.json")
def get_openapi() -> Response:
    return jsonify(openapi_document())
