"""The audit page (/audit): a model's, an account's or a tx's history, and receipt checks.

The page is a form; audit.js asks the audit queries (/api/v1/audit/...) and lists the
events with their confirmations, and verifies a pasted receipt in the browser (and with the
node's verifier as a cross-check). ?model=, ?account= or ?tx= open a history directly.
"""

from __future__ import annotations

from flask import render_template, request

from modelchain.web.ui import bp

KINDS = {"model": "Model name", "account": "Account", "tx": "Transaction id"}


@bp.get("/audit")
def audit_page() -> str:
    kind, value = "model", ""
    for name in KINDS:
        if request.args.get(name):
            kind, value = name, request.args[name]
            break
    return render_template("ui/audit.html", kinds=KINDS, kind=kind, value=value)
