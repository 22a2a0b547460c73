"""The `modelchain` command line: one click group, noun-verb subcommands."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """modelchain: a model marketplace on its own proof-of-work chain."""


if __name__ == "__main__":  # pragma: no cover
    main()
