"""``python -m pyg_wsss``: the ``pyg-wsss`` command (:mod:`pyg_wsss.cli`)."""
import sys

from pyg_wsss.cli import main

if __name__ == "__main__":
    sys.exit(main())
