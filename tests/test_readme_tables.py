"""README's result tables are the committed results files (scripts/update_readme.py)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("update_readme",
                                                  ROOT / "scripts" / "update_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_tables_match_results_files():
    mod = _script()
    readme = (ROOT / "README.md").read_text()
    assert mod.render(readme) == readme, "run: python scripts/update_readme.py"


def test_render_replaces_a_stale_block():
    mod = _script()
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- quality:begin -->")
    block = readme[start:readme.index("<!-- quality:end -->")]
    stale = readme[:start] + block.replace("| A2GNN (box) |", "| A2GNN (box) stale |", 1) + \
        readme[start + len(block):]
    assert stale != readme
    assert mod.render(stale) == readme


def test_demo_and_premises_blocks_are_generated_and_name_their_command():
    mod = _script()
    readme = (ROOT / "README.md").read_text()
    for name, command in (("demo", "python -m pyg_wsss.demo"),
                          ("premises", "python benchmarks/premises.py"),
                          ("kernels", "python benchmarks/kernels.py")):
        path = mod.BLOCKS[name]
        text = path.read_text()
        assert f"`{command}" in text, f"{path.name} must name the command that made it"
        start = readme.index(f"<!-- {name}:begin -->")
        block = readme[start:readme.index(f"<!-- {name}:end -->")]
        assert mod.first_table(text) in block
        # a README edited by hand (or a stale results file) fails the check
        row = mod.first_table(text).splitlines()[2]
        stale = readme.replace(row, row.replace("|", "| stale", 1), 1)
        assert stale != readme and mod.render(stale) == readme
