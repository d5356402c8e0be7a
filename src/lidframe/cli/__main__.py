"""``python -m lidframe.cli``: the ``lidframe`` command."""

import sys

from lidframe.cli import main

if __name__ == "__main__":
    sys.exit(main())
