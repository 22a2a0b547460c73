"""The web layer: a Flask app factory serving the web UI and the JSON APIs.

`create_app` builds the node's services (or takes them ready-made), keeps
them in `app.extensions["modelchain"]`, registers the blueprints and one
error handling that answers JSON under /api and /v2.
"""

from __future__ import annotations

from flask import Flask

from modelchain.market.config import NodeConfig
from modelchain.market.node import MarketNode
from modelchain.web.errors import register_error_handlers


def create_app(config: NodeConfig | None = None, node: MarketNode | None = None) -> Flask:
    """The node's Flask app. With no `node`, one is built (not started) from `config`."""
    if node is None:
        if config is None:
            raise ValueError("create_app needs a NodeConfig or a MarketNode")
        node = MarketNode(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = node.config.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["modelchain"] = node

    from modelchain.web.api import bp as api_bp
    from modelchain.web.api import load_route_modules
    from modelchain.web.inference import bp as inference_bp
    from modelchain.web.ui import add_security_headers
    from modelchain.web.ui import bp as ui_bp
    from modelchain.web.ui import load_route_modules as load_ui_modules

    load_route_modules()
    load_ui_modules()

    app.register_blueprint(api_bp)
    app.register_blueprint(inference_bp)
    app.register_blueprint(ui_bp)
    app.after_request(add_security_headers)
    register_error_handlers(app)
    return app
