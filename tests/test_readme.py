"""The README's API tour and its shell quick starts must run as written."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets():
    text = README.read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_snippets():
    assert len(snippets()) >= 3


@pytest.mark.parametrize("index", range(len(snippets())))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = snippets()[index]
    exec(compile(code, f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


#: A ```bash block right after this marker line is run by :func:`test_readme_shell_runs`.
SHELL_MARKER = "<!-- readme-test: bash -->"


def shell_snippets():
    text = README.read_text()
    return re.findall(re.escape(SHELL_MARKER) + r"\n```bash\n(.*?)```", text, flags=re.S)


def test_readme_has_a_shell_quick_start():
    assert any("pyg-wsss pseudo-label" in s for s in shell_snippets())


@pytest.mark.parametrize("index", range(len(shell_snippets())))
def test_readme_shell_runs(index, tmp_path):
    """Run a marked bash block in a fresh folder: ``examples/`` is linked in, and ``python``
    / ``pyg-wsss`` are this interpreter and ``python -m pyg_wsss``."""
    pytest.importorskip("pycocotools")
    repo = README.parent
    (tmp_path / "examples").symlink_to(repo / "examples")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    for name, cmd in (("python", f'exec "{sys.executable}" "$@"'),
                      ("pyg-wsss", f'exec "{sys.executable}" -m pyg_wsss "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{cmd}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    script = "set -euo pipefail\n" + shell_snippets()[index]
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"README shell snippet {index} failed:\n{r.stdout}\n{r.stderr}"
    if "pyg-wsss evaluate" in shell_snippets()[index]:
        assert re.search(r"^mIoU \d\.\d{4}$", r.stdout, flags=re.M), r.stdout
