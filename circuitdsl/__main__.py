"""`python -m circuitdsl` is the `circuitdsl` command."""

import sys

from circuitdsl.cli import main

sys.exit(main())
