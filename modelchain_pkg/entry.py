"""The `modelchain` console script: the CLI of `market/` with the web server plugged in.

`market/` may not import `web/` (imports point down the layers), so the
commands that run a node get the server through the click context, wired
here, above every layer.
"""

from __future__ import annotations

from modelchain.market.cli import CliContext, cli
from modelchain.web.server import serve


def main() -> None:
    cli(obj=CliContext(serve=serve))


if __name__ == "__main__":  # pragma: no cover
    main()
