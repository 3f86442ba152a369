"""`python -m tfkfp.cli`: the same as the `tfkfp` command."""

import sys

from tfkfp.cli import main

sys.exit(main())
