"""What the `circuitdsl` process does around a subcommand: signals and crash reports.

- SIGTERM raises `Terminated` and SIGINT `KeyboardInterrupt` in the main thread, so every `finally`
  runs (temporary files beside outputs, spill directories) before the process exits 143 / 130 with
  one line on stderr. While that cleanup runs, further SIGINT/SIGTERM are ignored.
- An internal error (a bug) writes its traceback to a file under the cache directory (else the temp
  directory) and prints one line naming it.
"""

from __future__ import annotations

import os
import sys

try:  # the C module: `signal` imports enum first, which is time a Ctrl-C could land in before the handlers
    import _signal as signal
except ImportError:  # pragma: no cover - not CPython
    import signal

__all__ = ["Terminated", "signals_handled", "write_crash_report", "crash_dir", "REPORT_HOW"]


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives, so that `finally` blocks (temporary and spill
    files) run before the process exits. A BaseException, like KeyboardInterrupt: `except Exception`
    does not swallow it."""


_SIGNALS = (signal.SIGINT, signal.SIGTERM)

REPORT_HOW = "please report this circuitdsl bug with that file, the command line and (if you can share it) the input"


def _ignore_further() -> None:
    for s in _SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _on_term(signum, frame):
    _ignore_further()
    raise Terminated()


def _on_int(signum, frame):
    _ignore_further()
    raise KeyboardInterrupt()


class signals_handled:
    """SIGTERM -> Terminated, SIGINT -> KeyboardInterrupt inside the block (main thread only); the
    previous handlers come back afterwards. A class, not @contextmanager: importing contextlib would
    be more time before the handlers are in."""

    def __enter__(self):
        self.old = None
        try:
            old = {s: signal.getsignal(s) for s in _SIGNALS}
            signal.signal(signal.SIGTERM, _on_term)
            signal.signal(signal.SIGINT, _on_int)
            self.old = old
        except ValueError:  # not the main thread (main() called from a worker thread): leave signals alone
            pass
        return self

    def __exit__(self, *exc):
        for s, h in (self.old or {}).items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        return False


def crash_dir():
    """`$CIRCUITDSL_CACHE/crashes`, else `~/.cache/circuitdsl/crashes`."""
    from pathlib import Path

    env = os.environ.get("CIRCUITDSL_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "circuitdsl"
    return root / "crashes"


def write_crash_report(exc: BaseException, argv: list[str] | None):
    """Write the traceback of `exc` (with the version, Python and command line) to a new file under
    crash_dir(), else the temp directory. Returns its path, or None if nothing could be written."""
    import platform
    import tempfile
    import time
    import traceback
    from pathlib import Path

    from circuitdsl import __version__

    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # formatting itself failed (e.g. a RecursionError deep in the stack)
        tb = f"{type(exc).__name__}: (the traceback could not be formatted)\n"
    body = (
        f"circuitdsl {__version__} internal error, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f"python {platform.python_version()} on {platform.platform()}\n"
        f"command: circuitdsl {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"cwd: {os.getcwd()}\n\n{tb}"
    )
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, prefix=f"circuitdsl-crash-{stamp}-", suffix=".txt")
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
                f.write(body)
            return Path(name)
        except OSError:
            continue
    return None
