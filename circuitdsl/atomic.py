"""Atomic file writes: a temporary file beside the target, then os.replace. A reader never sees a
half-written file, and a failed write leaves the old file as it was (nothing the user owns is lost)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "write_bytes", "write_text"]


@contextmanager
def replacing(
    path: str | Path, *, suffix: str = ".tmp", keep_mode: bool = False, parents: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path`, when it fails
    it is removed. `keep_mode` gives the new file the old one's permission bits; `parents` creates
    missing folders (otherwise a missing folder is FileNotFoundError)."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if keep_mode and path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes, *, keep_mode: bool = False, parents: bool = False) -> Path:
    with replacing(path, keep_mode=keep_mode, parents=parents) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, keep_mode: bool = False, parents: bool = False) -> Path:
    """Write text as UTF-8 without newline translation."""
    return write_bytes(path, text.encode("utf-8"), keep_mode=keep_mode, parents=parents)
