"""Clean activations kept on disk instead of in memory (the engine's clean-cache budget).

The scrub reads clean activations by example: `resid_pre[L][a]` is one [P, D] slab per example in `a`,
and a head's output `result[L][a, :, h]` one [P, D] slab per (example, head). A `SpilledRows` file
holds such slabs back to back; a gather reads the distinct slabs it needs with `os.pread` (runs of
consecutive slabs in one call) into a fresh tensor. The file's pages live in the operating system's
page cache, which the kernel can drop under memory pressure and re-read: they are not part of the
process's resident memory, so the clean activations of any number of examples fit in a bounded
process. A read returns exactly the bytes that were written: a spilled cache gives bit-identical
results.

`SpilledTensor` ([B, ...] fields: embeddings, residuals, MLP outputs) and `SpilledHeads` ([B, P, H, D]
per-head outputs, stored head-major per example) support the indexing the engine uses, `.shape`,
`.dtype`, `.device` and `rows(lo, hi)` (a contiguous block, for streaming reductions).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SpillDir",
    "sweep_stale",
    "SpilledRows",
    "SpilledTensor",
    "SpilledHeads",
    "is_spilled",
    "rows_of",
    "release_free_memory",
]

SPILL_DIR_ENV = "CIRCUITDSL_SPILL_DIR"
"""Environment variable naming the directory spill files are created in (default: the temp dir)."""


LOCK_NAME = ".owner.lock"
"""A file in every spill directory, locked (flock) by the process that owns it for as long as it lives.
The kernel drops the lock when that process dies, however it dies, so a directory whose lock can be
taken belongs to nobody: it is left over from a killed process and is removed (`sweep_stale`)."""

STALE_UNLOCKED_SECONDS = 24 * 3600
"""A `circuitdsl-spill-*` directory without a lock file (made by an older circuitdsl) is removed once
it has not changed for this long."""

_SWEPT: set[str] = set()


def sweep_stale(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the spill directories under `parent` (default: $CIRCUITDSL_SPILL_DIR or the temp dir)
    left by processes that died without cleaning up (SIGKILL, out of memory, power). Returns them."""
    root = Path(parent or os.environ.get(SPILL_DIR_ENV) or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = [
            p for p in root.iterdir() if p.name.startswith("circuitdsl-spill-") and p.is_dir() and not p.is_symlink()
        ]
    except OSError:
        return removed
    for d in candidates:
        try:
            if _abandoned(d):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        except OSError:
            continue
    return removed


def _abandoned(d: Path) -> bool:
    lock = d / LOCK_NAME
    if not lock.exists():
        return time.time() - d.stat().st_mtime > STALE_UNLOCKED_SECONDS
    import fcntl

    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its owner is alive
        return False
    else:
        return True
    finally:
        os.close(fd)  # (closing releases a lock we took)


class SpillDir:
    """A private temporary directory for one engine's spill files, removed when closed or collected,
    and by the next circuitdsl process if this one is killed before it can (see LOCK_NAME)."""

    def __init__(self, parent: str | os.PathLike | None = None):
        parent = parent or os.environ.get(SPILL_DIR_ENV) or None
        key = str(parent or tempfile.gettempdir())
        if key not in _SWEPT:  # once per process and folder: leftovers of killed runs go first
            _SWEPT.add(key)
            sweep_stale(parent)
        self.path = Path(tempfile.mkdtemp(prefix="circuitdsl-spill-", dir=parent))
        self._lock_fd = _hold_lock(self.path / LOCK_NAME)
        self._count = 0
        self._finalizer = weakref.finalize(self, _remove, str(self.path), self._lock_fd)

    def new_file(self, tag: str) -> Path:
        self._count += 1
        return self.path / f"{self._count:05d}-{tag}.bin"

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive


def _hold_lock(path: Path) -> int | None:
    try:
        import fcntl

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except (ImportError, OSError):  # no flock (e.g. Windows): the age rule still cleans up eventually
        return None


def _remove(path: str, lock_fd: int | None) -> None:
    shutil.rmtree(path, True)
    if lock_fd is not None:
        try:
            os.close(lock_fd)
        except OSError:
            pass


class SpilledRows:
    """n_rows slabs of shape `row_shape` and dtype `dtype`, in one file."""

    def __init__(
        self,
        path: Path,
        n_rows: int,
        row_shape: tuple[int, ...],
        dtype: torch.dtype,
        device: str | torch.device = "cpu",
    ):
        self.path = Path(path)
        self.n_rows = int(n_rows)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = dtype
        self.device = torch.device(device)
        self._np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self._np_dtype.itemsize
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, self.row_bytes * self.n_rows)
        self._finalizer = weakref.finalize(self, os.close, self._fd)

    def write(self, start: int, values: torch.Tensor) -> None:
        """Rows start .. start + len(values) (values: [k, *row_shape])."""
        if tuple(values.shape[1:]) != self.row_shape or values.dtype != self.dtype:
            raise ValueError(
                f"rows of shape {tuple(values.shape[1:])} {values.dtype} do not fit {self.row_shape} {self.dtype}"
            )
        if start < 0 or start + values.shape[0] > self.n_rows:
            raise IndexError(f"rows {start}..{start + values.shape[0]} are outside 0..{self.n_rows}")
        arr = values.detach().to("cpu").contiguous().numpy()  # written from its own buffer: no bytes copy
        off, view = start * self.row_bytes, arr.reshape(-1).data.cast("B")
        while view:
            wrote = os.pwrite(self._fd, view, off)
            view, off = view[wrote:], off + wrote

    def read(self, rows) -> torch.Tensor:
        """The slabs at `rows` (any integer sequence, repeats allowed), as a new [len(rows), *row_shape]."""
        idx = np.asarray(rows.cpu().numpy() if torch.is_tensor(rows) else rows, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return torch.empty((0, *self.row_shape), dtype=self.dtype, device=self.device)
        if idx.min() < 0 or idx.max() >= self.n_rows:
            raise IndexError(f"row index out of range 0..{self.n_rows}")
        uniq, inv = np.unique(idx, return_inverse=True)
        out = np.empty((len(uniq), *self.row_shape), dtype=self._np_dtype)
        flat = out.reshape(-1).view(np.uint8).data
        # runs of consecutive rows: one pread each
        breaks = np.nonzero(np.diff(uniq) != 1)[0] + 1
        starts = np.concatenate([[0], breaks]).astype(np.int64)
        ends = np.concatenate([breaks, [len(uniq)]]).astype(np.int64)
        rb = self.row_bytes
        for s, e in zip(starts.tolist(), ends.tolist()):
            self._read_into(flat[s * rb : e * rb], int(uniq[s]) * rb)
        got = torch.from_numpy(out)
        if len(uniq) != len(idx) or not np.array_equal(uniq, idx):
            got = got[torch.from_numpy(inv.reshape(-1))]
        return got.to(self.device)

    def block(self, lo: int, hi: int) -> torch.Tensor:
        """Rows lo .. hi as a new tensor."""
        out = np.empty((max(0, hi - lo), *self.row_shape), dtype=self._np_dtype)
        self._read_into(out.reshape(-1).view(np.uint8).data, lo * self.row_bytes)
        return torch.from_numpy(out).to(self.device)

    def _read_into(self, view: memoryview, off: int) -> None:
        while view:
            got = os.preadv(self._fd, [view], off)
            if got <= 0:
                raise OSError(f"short read from spill file {self.path}")
            view, off = view[got:], off + got

    @property
    def nbytes(self) -> int:
        return self.row_bytes * self.n_rows


class _Spilled:
    """What both spilled field kinds share: their rows file, its dtype, device and size."""

    _rows: SpilledRows

    @property
    def dtype(self) -> torch.dtype:
        return self._rows.dtype

    @property
    def device(self) -> torch.device:
        return self._rows.device

    @property
    def nbytes(self) -> int:
        return self._rows.nbytes


class SpilledTensor(_Spilled):
    """A [B, *rest] tensor on disk; `t[idx]` gathers examples."""

    def __init__(self, rows: SpilledRows):
        self._rows = rows

    @classmethod
    def create(cls, d: SpillDir, tag: str, shape: tuple[int, ...], dtype: torch.dtype, device="cpu") -> SpilledTensor:
        return cls(SpilledRows(d.new_file(tag), shape[0], tuple(shape[1:]), dtype, device))

    def write(self, start: int, values: torch.Tensor) -> None:
        self._rows.write(start, values)

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, tuple):
            raise TypeError("a spilled tensor is gathered by example only")
        return self._rows.read(idx)

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        return self._rows.block(lo, hi)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self._rows.n_rows, *self._rows.row_shape))


class SpilledHeads(_Spilled):
    """A [B, P, H, D] per-head output on disk, stored as B x H slabs of [P, D]; `t[idx, :, h]` gathers
    head h's output on examples idx (the only indexing the engine does on per-head outputs)."""

    def __init__(self, rows: SpilledRows, n_heads: int):
        self._rows = rows
        self.n_heads = int(n_heads)

    @classmethod
    def create(cls, d: SpillDir, tag: str, shape: tuple[int, ...], dtype: torch.dtype, device="cpu") -> SpilledHeads:
        B, P, H, D = shape
        return cls(SpilledRows(d.new_file(tag), B * H, (P, D), dtype, device), H)

    def write(self, start: int, values: torch.Tensor) -> None:
        """values: [k, P, H, D] for examples start .. start + k."""
        self._rows.write(start * self.n_heads, values.permute(0, 2, 1, 3).reshape(-1, *self._rows.row_shape))

    def __getitem__(self, key) -> torch.Tensor:
        if not (isinstance(key, tuple) and len(key) == 3 and key[1] == slice(None) and isinstance(key[2], int)):
            raise TypeError("spilled head outputs are gathered as t[examples, :, head]")
        idx, _, h = key
        ex = np.asarray(idx.cpu().numpy() if torch.is_tensor(idx) else idx, dtype=np.int64).reshape(-1)
        return self._rows.read(ex * self.n_heads + h)

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        """Examples lo .. hi as [k, P, H, D]."""
        got = self._rows.block(lo * self.n_heads, hi * self.n_heads)
        return got.reshape(hi - lo, self.n_heads, *self._rows.row_shape).permute(0, 2, 1, 3).contiguous()

    @property
    def shape(self) -> torch.Size:
        P, D = self._rows.row_shape
        return torch.Size((self._rows.n_rows // self.n_heads, P, self.n_heads, D))


_TRIM: list = []


def release_free_memory() -> None:
    """Give memory the allocator holds but no longer uses back to the system (glibc `malloc_trim`;
    a no-op elsewhere). Spilling frees a batch's activations right after writing them; glibc keeps
    such freed blocks in its heap (its mmap threshold rises after the first large free), so without
    this the process's resident memory grew with N although nothing was held (measured on SmolLM2:
    +1.3 GB after the clean runs of 256 spilled examples, back to the loaded size after a trim)."""
    if not _TRIM:
        fn = None
        try:
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            lib = ctypes.CDLL(name) if name else None
            fn = getattr(lib, "malloc_trim", None) if lib is not None else None
        except (OSError, AttributeError):
            fn = None
        _TRIM.append(fn)
    if _TRIM[0] is not None:
        _TRIM[0](0)


def is_spilled(t) -> bool:
    return isinstance(t, _Spilled)


def rows_of(t, lo: int, hi: int) -> torch.Tensor:
    """Examples lo .. hi of an in-memory or spilled field, contiguous."""
    return t.rows(lo, hi) if is_spilled(t) else t[lo:hi].contiguous()
