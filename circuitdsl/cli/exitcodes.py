"""The one owner of circuitdsl's exit codes."""

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    """Every file is valid and every `expect` holds."""
    CLAIM_FAILED = 1
    """A file was checked and at least one `expect` failed (or `fmt --check` found a change)."""
    USAGE = 2
    """A usage, language, dataset or model error: nothing was checked."""
