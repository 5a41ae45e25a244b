"""``python slow_rank_worker.py ARGS``: ``pyg-wsss ARGS`` in one rank of a job, where rank 1
stops for a long time after writing its first label PNG (so a test can kill it mid-run
without racing a fast method). The package is not changed: the pause is patched in here."""
from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    from pyg_wsss import cli
    from pyg_wsss.pseudo import driver

    if os.environ.get("RANK") == "1":
        write = driver.atomic_write

        def write_then_stall(path, data):  # type: ignore[no-untyped-def]
            write(path, data)
            if str(path).endswith(".png"):
                time.sleep(600)  # the test kills this rank here

        driver.atomic_write = write_then_stall
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
