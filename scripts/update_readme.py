"""Put the committed benchmark tables into README.md (between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` markers), so README numbers always come from a results file.

    python scripts/update_readme.py           # rewrite README.md in place
    python scripts/update_readme.py --check   # exit 1 if README.md is out of date

Blocks: ``quality`` <- the table of ``benchmarks/results/quality.md`` (made by
``python benchmarks/quality.py``).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: block name -> results file whose markdown table (the first one) fills the block
BLOCKS = {"quality": ROOT / "benchmarks" / "results" / "quality.md"}


def first_table(text: str) -> str:
    """The first markdown table of ``text`` (consecutive lines starting with ``|``)."""
    lines, out = text.splitlines(), []
    for line in lines:
        if line.startswith("|"):
            out.append(line)
        elif out:
            break
    if not out:
        raise ValueError("no markdown table found")
    return "\n".join(out)


def render(readme: str) -> str:
    for name, path in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md has no <!-- {name}:begin/end --> block")
        table = first_table(path.read_text())
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
