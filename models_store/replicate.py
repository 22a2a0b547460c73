"""Copy a model file into the store from somewhere else, trusting nothing but its hash.

A source is any callable that opens a stream of bytes (another node over HTTP, a
file, a test's BytesIO). The bytes are streamed into the store's staging area
while hashed; only bytes that hash to the sha256 asked for are kept, so a source
that lies or breaks off leaves nothing behind. Knows nothing of the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelchain.models_store.errors import ModelStoreError, StoreHashMismatch
from modelchain.models_store.store import ModelStore, StoredModel, normalize_sha256

log = logging.getLogger(__name__)

Opener = Callable[[], BinaryIO]
"""Opens one source's stream of the file's bytes; raises OSError when it cannot."""


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """Why one source gave no file."""

    source: str
    code: str
    """`store-hash-mismatch` for lying bytes; `source-unavailable` or the store's code."""
    message: str


@dataclass(frozen=True, slots=True)
class Replicated:
    """What `replicate` did: the stored file (None if no source had it) and each failure."""

    stored: StoredModel | None
    source: str | None
    failures: tuple[SourceFailure, ...]
    rejected: SourceFailure | None = None
    """The check refused the bytes that hash right: the file itself is bad, whoever
    sends it (also the last of `failures`). A source's own failures are not this."""


def replicate(
    store: ModelStore,
    sha256: str,
    sources: Iterable[tuple[str, Opener]],
    check: Callable[[Path], object] | None = None,
) -> Replicated:
    """Fetch the file with `sha256` from the first named source that has the right bytes.

    `check` (e.g. the upload's validation) runs on the staged file before it is kept;
    what it raises (a ModelStoreError) rejects the file, which is then not asked of the
    other sources: they would send the same bytes. A file the store holds already is
    not fetched. A source's stream is closed after use. Raises StoreBadHash for a
    malformed sha256; every source's failure is reported, never raised.
    """
    sha256 = normalize_sha256(sha256)
    if store.has(sha256):
        return Replicated(None, None, ())
    failures: list[SourceFailure] = []
    for name, opener in sources:
        try:
            with closing(opener()) as stream, store.staging(stream, sha256) as staged:
                if check is not None:
                    try:
                        check(staged.path)
                    except ModelStoreError as exc:
                        rejected = SourceFailure(name, exc.code, exc.message)
                        return Replicated(None, None, (*failures, rejected), rejected)
                stored = staged.commit()
        except StoreHashMismatch as exc:
            failures.append(SourceFailure(name, exc.code, exc.message))
            log.warning("model %s from %s: %s", sha256[:16], name, exc.message)
            continue
        except ModelStoreError as exc:
            failures.append(SourceFailure(name, exc.code, exc.message))
            continue
        except OSError as exc:
            failures.append(SourceFailure(name, "source-unavailable", str(exc)))
            continue
        return Replicated(stored, name, tuple(failures))
    return Replicated(None, None, tuple(failures))
