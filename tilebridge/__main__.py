"""`python -m tilebridge ...`: the same as the `tilebridge` command, for when its script is not on PATH."""
import sys

from tilebridge.tools.cli import main

sys.exit(main())
