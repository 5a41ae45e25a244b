"""Run several ``pyg-wsss`` commands in one process of a torchrun job (one process group for
all, so the test pays the start-up of torch once): ``cli_worker.py CMD1 ... --next CMD2 ...``.
Exit code: the largest of the commands'."""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from pyg_wsss import cli
    from pyg_wsss import distributed as D

    D.init_distributed(backend="gloo", timeout=60)
    commands, current = [], []
    for a in argv:
        if a == "--next":
            commands.append(current)
            current = []
        else:
            current.append(a)
    commands.append(current)
    code = 0
    for args in commands:
        code = max(code, cli.main(args))
    D.cleanup()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
