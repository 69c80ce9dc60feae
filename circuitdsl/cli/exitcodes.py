"""The one owner of circuitdsl's exit codes.

A subcommand records what happened in an `Outcome` (`outcome.error()`, `outcome.claim_failed()`)
and returns it; `circuitdsl.cli.main` turns whatever escapes a subcommand into a code with
`code_for(exc)`. No other module chooses a number.

| code | meaning |
|---|---|
| 0 | every file is valid and every `expect` holds (`fmt`: nothing to change) |
| 1 | a claim failed: an `expect` did not hold (`fmt --check`: a file would change; `falsify`: a counterexample) |
| 2 | a usage, language, dataset or model error: something could not be checked |
| 3 | an internal error (a bug in circuitdsl): one line on stderr names the file holding the traceback |
| 130 | interrupted (SIGINT, Ctrl-C) |
| 141 | stdout was closed before the output was written (`circuitdsl check` piped into `head`): the verdict was not delivered |
| 143 | terminated (SIGTERM) |
"""

from __future__ import annotations

import enum

from circuitdsl.cli.runtime import Terminated

__all__ = ["ExitCode", "Outcome", "Terminated", "code_for"]


class ExitCode(enum.IntEnum):
    OK = 0
    """Every file is valid and every `expect` holds."""
    CLAIM_FAILED = 1
    """A file was checked and at least one `expect` failed (or `fmt --check` found a change)."""
    USAGE = 2
    """A usage, language, dataset or model error: nothing was checked for that file."""
    INTERNAL = 3
    """A bug in circuitdsl: the traceback is written to a file whose path is printed."""
    INTERRUPTED = 130
    """SIGINT (Ctrl-C): 128 + 2, as a shell reports a process killed by it."""
    BROKEN_PIPE = 141
    """stdout's reader went away before the output was written: 128 + SIGPIPE, as for a process the pipe
    killed. Never 0: a failed claim whose verdict could not be printed must not read as success."""
    TERMINATED = 143
    """SIGTERM: 128 + 15."""


class Outcome:
    """What one command run came to, file by file: the worst of OK < CLAIM_FAILED < USAGE < INTERNAL wins."""

    def __init__(self) -> None:
        self.code = ExitCode.OK

    def record(self, code: ExitCode) -> None:
        if code > self.code:
            self.code = ExitCode(code)

    def error(self) -> None:
        """Something could not be checked (usage, language, dataset or model error)."""
        self.record(ExitCode.USAGE)

    def claim_failed(self) -> None:
        self.record(ExitCode.CLAIM_FAILED)

    @property
    def failed(self) -> bool:
        """An error was recorded (a run with an error writes no report files)."""
        return self.code >= ExitCode.USAGE

    def __int__(self) -> int:
        return int(self.code)


def code_for(exc: BaseException) -> ExitCode:
    """The exit code for an exception that escaped a subcommand."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, Terminated):  # (decided before importing anything: the signal may have cut an import short)
        return ExitCode.TERMINATED
    from circuitdsl.diagnostics import CircuitError

    if isinstance(exc, CircuitError):
        return ExitCode.USAGE
    return ExitCode.INTERNAL
