"""Atomic file writes: a temporary file beside the target, then os.replace. A reader never sees a
half-written file, and a failed or interrupted write leaves the old file as it was (nothing the user
owns is lost).

Through a symbolic link, the file the link points to is replaced and the link is kept. A replaced
file keeps its permission bits; a new file gets the ordinary mode for the process's umask (0644
under the usual 022), not the 0600 of a private temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "write_bytes", "write_text", "target_of", "default_mode"]


def target_of(path: str | Path) -> Path:
    """The file a write to `path` replaces: `path` itself, or the file its symbolic link(s) lead to."""
    p = Path(path)
    if p.is_symlink():
        return Path(os.path.realpath(p))
    return p


def default_mode() -> int:
    """0o666 less the process's umask: the mode `open(path, "w")` would give a new file."""
    mask = None
    try:  # Linux: read the umask without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    mask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError):
        mask = None
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def replacing(
    path: str | Path, *, suffix: str = ".tmp", keep_mode: bool = True, parents: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside the file `path` names (through symbolic links); when the block
    succeeds it replaces that file, when it fails or is interrupted it is removed. The new file keeps
    the old one's permission bits (`keep_mode=False`: the umask's default mode instead); `parents`
    creates missing folders (otherwise a missing folder is FileNotFoundError)."""
    path = target_of(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    tmp = Path(name)
    try:
        os.close(fd)
        yield tmp
        mode = default_mode()
        if keep_mode:
            try:
                mode = path.stat().st_mode & 0o7777
            except FileNotFoundError:
                pass
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes, *, keep_mode: bool = True, parents: bool = False) -> Path:
    with replacing(path, keep_mode=keep_mode, parents=parents) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, keep_mode: bool = True, parents: bool = False) -> Path:
    """Write text as UTF-8 without newline translation."""
    return write_bytes(path, text.encode("utf-8"), keep_mode=keep_mode, parents=parents)
