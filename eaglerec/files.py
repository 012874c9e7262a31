"""File helpers shared by every stage: checksums and all-or-nothing folder replacement."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK_BYTES = 1 << 20


def compute_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def write_then_rename(path: Path) -> Iterator[Path]:
    """Yield a sibling path to write; on success it replaces `path` in one rename: readers never see half a file.
    The sibling is the writer's own (process and thread), so writers racing for one path each rename a whole file."""
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def replace_dir(staged: Path, dest: Path) -> None:
    """Swap staged into dest so readers see the old folder or the new one, never a half-written one."""
    if dest.exists():
        retired = dest.with_name(f".retired-{dest.name}-{os.getpid()}")
        os.replace(dest, retired)
        os.replace(staged, dest)
        shutil.rmtree(retired)
    else:
        os.replace(staged, dest)
