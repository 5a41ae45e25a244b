"""Every lazily exported name is the function or class it names, never a sub-module (issue 17:
``from pyg_wsss.pseudo import generate`` used to be the module ``generate.py``)."""
import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import pyg_wsss


def _lazy_packages() -> list[str]:
    """The packages with a lazy ``_MEMBERS`` map (found by walking the package tree)."""
    found = []
    for info in pkgutil.walk_packages(pyg_wsss.__path__, "pyg_wsss."):
        if info.ispkg and isinstance(getattr(importlib.import_module(info.name), "_MEMBERS",
                                             None), dict):
            found.append(info.name)
    return found


LAZY_PACKAGES = _lazy_packages()


def test_the_lazy_packages_are_found():
    for name in ("pyg_wsss.pseudo", "pyg_wsss.data", "pyg_wsss.graphs", "pyg_wsss.nn",
                 "pyg_wsss.nn.conv", "pyg_wsss.nn.models", "pyg_wsss.nn.functional"):
        assert name in LAZY_PACKAGES


def _check_members(package: str) -> int:
    pkg = importlib.import_module(package)
    for name in pkg._MEMBERS:
        value = getattr(pkg, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"
        assert name in pkg.__all__ and name in dir(pkg)
    return len(pkg._MEMBERS)


_SCRIPT = """
import importlib, pkgutil, sys, types
import pyg_wsss
packages = sys.argv[1:]
if {all_first}:
    for info in pkgutil.walk_packages(pyg_wsss.__path__, "pyg_wsss."):
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional dependency that is not installed
            pass
bad = []
for package in packages:
    pkg = importlib.import_module(package)
    for name in pkg._MEMBERS:
        if isinstance(getattr(pkg, name), types.ModuleType):
            bad.append(package + "." + name)
print(" ".join(bad) or "ok")
"""


@pytest.mark.parametrize("all_first", [False, True], ids=["lazy", "after-all-imports"])
def test_members_are_not_modules_in_a_fresh_interpreter(all_first):
    """Before and after importing every sub-module of the package (which binds each module
    as an attribute of its package), in a fresh interpreter."""
    res = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(all_first=all_first), *LAZY_PACKAGES],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok", f"members that are modules: {res.stdout}"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_members_resolve(package):
    assert _check_members(package) > 0


def test_driver_and_walk_are_functions():
    from pyg_wsss.pseudo import generate, random_walk

    assert isinstance(generate, types.FunctionType) and generate.__name__ == "generate"
    assert isinstance(random_walk, types.FunctionType) and random_walk.__name__ == "random_walk"
    import pyg_wsss.pseudo.driver
    import pyg_wsss.pseudo.walk

    assert pyg_wsss.pseudo.generate is pyg_wsss.pseudo.driver.generate
    assert pyg_wsss.pseudo.random_walk is pyg_wsss.pseudo.walk.random_walk


@pytest.mark.parametrize("statement, new", [
    ("import pyg_wsss.pseudo.generate", "pyg_wsss.pseudo.driver"),
    ("from pyg_wsss.pseudo.generate import generate", "pyg_wsss.pseudo.driver"),
    ("from pyg_wsss.pseudo.random_walk import transition_matrix", "pyg_wsss.pseudo.walk"),
    ("import pyg_wsss.pseudo.random_walk", "pyg_wsss.pseudo.walk"),
])
def test_old_module_paths_name_the_new_module(statement, new):
    with pytest.raises(ImportError, match=new.replace(".", r"\.")):
        exec(statement, {})
    res = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr and new in res.stderr


def test_a_submodule_never_shadows_a_member():
    """``pyg_wsss.nn.conv.co_attention`` is a function in a module of the same name."""
    import pyg_wsss.nn.conv.co_attention  # noqa: F401 - binds the module to the package
    from pyg_wsss.nn.conv import co_attention

    assert isinstance(co_attention, types.FunctionType)
    assert isinstance(sys.modules["pyg_wsss.nn.conv.co_attention"], types.ModuleType)
