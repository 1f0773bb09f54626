"""`python -m artstudio ...` is the `artstudio` command."""

import sys

from artstudio.cli import main

sys.exit(main())
