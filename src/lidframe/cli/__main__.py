"""``python -m lidframe.cli``: the ``lidframe`` command."""

import sys

from lidframe.cli import main

sys.exit(main())
