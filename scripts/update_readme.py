"""Put the committed benchmark tables into README.md (between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` markers), so README numbers always come from a results file.

    python scripts/update_readme.py           # rewrite README.md in place
    python scripts/update_readme.py --check   # exit 1 if README.md is out of date

Blocks (each <- the first table of a committed results file):

* ``quality`` <- ``benchmarks/results/quality.md`` (made by ``python benchmarks/quality.py``);
* ``demo`` <- ``benchmarks/results/demo.md`` (made by
  ``make demo DEMO_ARGS="--results-copy benchmarks/results/demo.md"``, i.e.
  ``python -m pyg_wsss.demo --results-copy benchmarks/results/demo.md``);
* ``premises`` / ``premises-checks`` <- the first / second table of
  ``benchmarks/results/premises.md`` (made by ``python benchmarks/premises.py``);
* ``kernels`` <- the headline table of ``benchmarks/results/kernels.md`` (made by
  ``python benchmarks/kernels.py --repeats 2``).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: block name -> results file whose markdown table (the first one) fills the block
BLOCKS = {
    "quality": ROOT / "benchmarks" / "results" / "quality.md",
    "demo": ROOT / "benchmarks" / "results" / "demo.md",
    "premises": ROOT / "benchmarks" / "results" / "premises.md",
    "premises-checks": ROOT / "benchmarks" / "results" / "premises.md",
    "kernels": ROOT / "benchmarks" / "results" / "kernels.md",
}
#: blocks filled by another than the first table of their file (0-based table index)
TABLE_INDEX = {"premises-checks": 1}


def tables(text: str) -> list[str]:
    """Every markdown table of ``text`` (runs of consecutive lines starting with ``|``)."""
    found, out = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            out.append(line)
        elif out:
            found.append("\n".join(out))
            out = []
    return found


def first_table(text: str) -> str:
    """The first markdown table of ``text``."""
    return nth_table(text, 0)


def nth_table(text: str, n: int) -> str:
    found = tables(text)
    if len(found) <= n:
        raise ValueError(f"the results file has {len(found)} markdown tables, table {n + 1} "
                         "is missing")
    return found[n]


def render(readme: str) -> str:
    for name, path in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md has no <!-- {name}:begin/end --> block")
        table = nth_table(path.read_text(), TABLE_INDEX.get(name, 0))
        readme = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(3), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check, do not write")
    args = ap.parse_args(argv)
    old = README.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print("README.md is out of date: run python scripts/update_readme.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
