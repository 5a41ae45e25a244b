"""House rules of the code base (issue 18, "one config style").

Every function in ``pyg_wsss/`` has at most 60 code lines and at most 12 parameters, unless
its docstring says why:

* more than 60 code lines needs a docstring line starting ``Long because:``;
* more than 12 parameters (``self`` / ``cls`` not counted; ``*args`` and ``**kwargs`` count
  one each) needs ``Many parameters because:``.

Code lines are the lines of the function's body after its docstring that are neither
blank nor only a comment (a nested function's lines count for the outer one too; the
signature and decorators do not count). Settings that grow beyond the limit belong in a
dataclass passed whole (``GenerateConfig``, ``SegmentationTrainConfig``, ``CRFSeedConfig``,
``RandomWalkCRFConfig``, ``GroupTrainConfig``, ``KnowledgeTrainConfig``, ``Stage2Config``,
``KnowledgeGRMConfig``, ``WSGCNConfig``, ``ClassifierTrainConfig``; the shared "config or
keyword overrides" step is :func:`pyg_wsss._config.resolve_config`).

There is no allowlist (the one used while issue 18 was under way is empty and gone). Run
``python tests/test_house.py`` to print every offender.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyg_wsss"
MAX_LINES = 60
MAX_PARAMS = 12
LONG = "Long because:"
MANY = "Many parameters because:"

def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    body = node.body
    if ast.get_docstring(node) is not None:
        body = body[1:]
    if not body:
        return 0
    first = min(getattr(body[0], "decorator_list", None) or [body[0]],
                key=lambda n: n.lineno).lineno
    text = lines[first - 1:node.end_lineno]
    return sum(1 for line in text if line.strip() and not line.strip().startswith("#"))


def _num_params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return len([n for n in names if n not in ("self", "cls")])


def _functions(path: Path):
    """``(qualified name, node)`` of every function and method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                yield name, child
                yield from walk(child, name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def offenders() -> dict[str, str]:
    """``{"path::qualified name": what is over the limit}`` for every function whose
    docstring does not give the reason."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        rel = path.relative_to(ROOT).as_posix()
        for name, node in _functions(path):
            doc = ast.get_docstring(node) or ""
            n_lines, n_params = _code_lines(node, lines), _num_params(node)
            why = []
            if n_lines > MAX_LINES and LONG not in doc:
                why.append(f"{n_lines} code lines > {MAX_LINES} without '{LONG}'")
            if n_params > MAX_PARAMS and MANY not in doc:
                why.append(f"{n_params} parameters > {MAX_PARAMS} without '{MANY}'")
            if why:
                found[f"{rel}::{name}"] = "; ".join(why)
    return found


def _report(found: dict[str, str]) -> str:
    out = [f"functions over the house limits: {len(found)}"]
    return "\n".join(out + [f"  {k}: {v}" for k, v in sorted(found.items())])


def test_functions_are_short_or_say_why():
    found = offenders()
    print(_report(found))
    bad = found
    assert not bad, (
        "functions over the house limits (shorten them: helpers, a config dataclass passed "
        "whole; or give the reason in the docstring with a line starting 'Long because:' / "
        "'Many parameters because:'):\n"
        + "\n".join(f"  {k}: {v}" for k, v in sorted(bad.items()))
    )


@pytest.mark.parametrize("source, expected", [
    ("def f(a, b):\n    '''Doc.\n\n    More.\n    '''\n    x = 1\n\n    # c\n    return x\n",
     {}),
    ("def f(" + ", ".join(f"a{i}" for i in range(13)) + "):\n    pass\n",
     {"f": "13 parameters"}),
    ("class C:\n    def m(self, " + ", ".join(f"a{i}" for i in range(12)) + "):\n"
     "        pass\n", {}),
    ("def f():\n    '''Long because: one algorithm.'''\n" + "    x = 1\n" * 61, {}),
    ("def f():\n    '''Doc.'''\n" + "    x = 1\n" * 61, {"f": "61 code lines"}),
    ("def f():\n    def g():\n" + "        x = 1\n" * 60 + "    return g\n",
     {"f": "62 code lines"}),
])
def test_the_counting(tmp_path, monkeypatch, source, expected):
    pkg = tmp_path / "pyg_wsss"
    pkg.mkdir()
    (pkg / "m.py").write_text(source)
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = offenders()
    assert sorted(k.split("::")[1] for k in found) == sorted(expected)
    for name, what in expected.items():
        assert what in found[f"pyg_wsss/m.py::{name}"]


if __name__ == "__main__":
    print(_report(offenders()))
