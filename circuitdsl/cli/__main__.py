"""`python -m circuitdsl.cli` is the `circuitdsl` command."""

import sys

from circuitdsl.cli import main

sys.exit(main())
