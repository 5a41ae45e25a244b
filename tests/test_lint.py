"""The code base stays ruff-clean (rules in pyproject.toml)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (extra 'dev')")
    dirs = [d for d in ("pyg_wsss", "tests", "examples", "benchmarks", "scripts")
            if (ROOT / d).exists()]
    proc = subprocess.run([ruff, "check", "--output-format", "concise", *dirs], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
