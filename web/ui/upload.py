"""The upload page (/upload): a model developer publishes an ONNX file from the browser.

The page itself is a form; upload.js does the work in the browser: hash the file (WebCrypto),
ask the node's dry run (POST /api/v1/models/inspect) for the signature or the rejection
reason, sign the registry.register tx with the browser wallet, send file and tx together
(POST /api/v1/models) with a progress bar, and follow the tx until it is confirmed.
"""

from __future__ import annotations

from flask import render_template

from modelchain.contracts.registry import REGISTRATION_FEE
from modelchain.market.upload import DEFAULT_NODE_BPS, DEFAULT_OWNER_BPS
from modelchain.web.ui import bp, node


@bp.get("/upload")
def upload_page() -> str:
    return render_template(
        "ui/upload.html",
        registration_fee=REGISTRATION_FEE,
        owner_bps=DEFAULT_OWNER_BPS,
        node_bps=DEFAULT_NODE_BPS,
        max_upload_bytes=node().config.max_upload_bytes,
    )
