#!/usr/bin/env python
"""Build the wheel and use it the way a user would: installed in a fresh venv, away from the
source tree. Called by ``make test`` after pytest; about 3 minutes on 2 CPU cores.

1. copies the tracked (and untracked, not ignored) files to a temporary folder and runs
   ``python -m build --wheel --no-isolation`` there (no network, no ``build/`` in the tree);
2. checks the wheel's contents: every module, ``py.typed``, the shipped assets of
   ``pyg_wsss/graphs/assets``, the LICENSE, the version, no tests/examples/scripts;
3. creates a fresh venv (``python -m venv``) whose only link to this one is a ``.pth`` line
   naming this venv's site-packages, for the dependencies (torch is big); its ``.pth`` hooks,
   among them the editable install of pyg_wsss, are *not* run there. Installs the wheel with
   ``pip install --no-deps``;
4. from an empty temporary working folder (the source tree is not importable; checked:
   ``pyg_wsss.__file__`` must be inside the fresh venv) runs the README's ``python`` snippets
   and its marked shell quick start (the installed ``pyg-wsss`` command), found as
   ``tests/test_readme.py`` finds them, and every script of ``examples/`` on a tiny set.

Usage::

    python scripts/check_wheel.py            # everything
    python scripts/check_wheel.py --keep     # keep the temporary folder (printed)
    python scripts/check_wheel.py --only build,readme   # steps: build, readme, shell, examples
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("build", "readme", "shell", "examples")

#: ``examples/<script>`` -> arguments of a smoke run (tiny synthetic sets, a few seconds each).
EXAMPLES: dict[str, list[str]] = {
    "wsgcn.py": ["--num-images", "2", "--num-train", "8", "--epochs", "1", "--steps", "5",
                 "--quiet", "--no-ablation", "--image-size", "48", "--device", "cpu"],
    # tags: ~1 s of A2GNN (boxes take over a minute here: GrabCut + affinity training)
    "a2gnn.py": ["--supervision", "tag", "--num-images", "2", "--image-size", "48",
                 "--no-ablation", "--device", "cpu"],
    "group_wsss.py": ["--num-images", "4", "--image-size", "48", "--k", "2", "--dropout", "on",
                      "--epochs", "1", "--pretrain-epochs", "1", "--no-progress",
                      "--device", "cpu"],
    "knowledge_grm.py": ["--quick", "--stage1-only", "--knowledge", "cooccurrence",
                         "--device", "cpu"],
    "make_tiny_coco.py": ["tiny_coco"],
}

#: What the wheel must contain besides the modules (paths inside the wheel).
REQUIRED_FILES = (
    "pyg_wsss/py.typed",
    "pyg_wsss/graphs/assets/voc_knowledge.npz",
    "pyg_wsss/graphs/assets/coco_knowledge.npz",
    "pyg_wsss/graphs/assets/PROVENANCE.md",
)

_PROBE = r"""
import importlib.metadata as md, importlib.resources as res, os, sys
import pyg_wsss
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(pyg_wsss.__file__)
assert where.startswith(venv + os.sep), f"pyg_wsss imported from {where}, not from {venv}"
assert pyg_wsss.__version__ == md.version("pyg-wsss"), (pyg_wsss.__version__,
                                                      md.version("pyg-wsss"))
assets = res.files("pyg_wsss.graphs") / "assets"
assert (assets / "voc_knowledge.npz").is_file() and (assets / "coco_knowledge.npz").is_file()
from pyg_wsss.graphs import load_class_knowledge
relation, glove, names = load_class_knowledge("voc")
assert relation.shape == (20, 20) and len(names) == 20
print(f"pyg_wsss {pyg_wsss.__version__} from {where}")
"""

_README = r"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("_readme_test", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
kind = sys.argv[2]
blocks = mod.snippets() if kind == "python" else mod.shell_snippets()
print(len(blocks))
if kind == "python":
    for i, code in enumerate(blocks):
        t0 = time.perf_counter()
        exec(compile(code, f"README.md snippet {i}", "exec"), {"__name__": "__readme__"})
        print(f"[check_wheel] README python snippet {i}: ok ({time.perf_counter() - t0:.1f} s)",
              flush=True)
else:
    import pathlib
    for i, code in enumerate(blocks):
        pathlib.Path(f"shell_{i}.sh").write_text("set -euo pipefail\n" + code)
"""


def _log(msg: str) -> None:
    print(f"[check_wheel] {msg}", flush=True)


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.stdout.write(res.stdout[-20000:])
        sys.stderr.write(res.stderr[-20000:])
        raise SystemExit(f"[check_wheel] FAILED: {what} (exit {res.returncode})")
    _log(f"{what}: ok ({time.perf_counter() - t0:.1f} s)")
    return res


def _source_files() -> list[str]:
    """The files of the source tree: tracked plus untracked-but-not-ignored (git), so a new
    module that is not committed yet is in the wheel too."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        out = None
    if out is not None and out.stdout:
        return [f for f in out.stdout.decode().split("\0") if f and (ROOT / f).is_file()]
    skip = {".venv", ".git", "build", "dist", "outputs", "__pycache__"}
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def build_wheel(work: Path) -> Path:
    src = work / "src"
    for rel in _source_files():
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
          str(work / "dist"), str(src)], "python -m build --wheel")
    (wheel,) = (work / "dist").glob("pyg_wsss-*.whl")
    check_wheel_contents(wheel)
    return wheel


def check_wheel_contents(wheel: Path) -> None:
    import pyg_wsss

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        modules = {str(p.relative_to(ROOT)) for p in (ROOT / "pyg_wsss").rglob("*.py")
                   if "__pycache__" not in p.parts}
        missing = sorted((modules | set(REQUIRED_FILES)) - names)
        if missing:
            raise SystemExit(f"[check_wheel] FAILED: the wheel lacks {missing}")
        stray = sorted(n for n in names if n.split("/")[0] in ("tests", "examples", "scripts",
                                                               "benchmarks", "docs"))
        if stray:
            raise SystemExit(f"[check_wheel] FAILED: the wheel ships {stray[:5]}")
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(info).decode()
        licence = [n for n in names if n.endswith("LICENSE") and ".dist-info/" in n]
        if not licence:
            raise SystemExit("[check_wheel] FAILED: no LICENSE in the wheel's .dist-info")
    if f"\nVersion: {pyg_wsss.__version__}\n" not in meta:
        raise SystemExit(f"[check_wheel] FAILED: the wheel's version is not "
                         f"pyg_wsss.__version__ = {pyg_wsss.__version__}")
    if "License-Expression: MIT" not in meta:
        raise SystemExit("[check_wheel] FAILED: the wheel's metadata has no MIT licence")
    _log(f"{wheel.name}: {len(names)} files, assets, py.typed and LICENSE present")


def fresh_venv(work: Path, wheel: Path) -> Path:
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "fresh venv")
    vpy = venv / "bin" / "python"
    purelib = subprocess.run([str(vpy), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # plain path lines: the dependencies become importable, but the .pth hooks of this
    # venv (among them the editable pyg_wsss) are not executed in the fresh one
    (Path(purelib) / "_pyg_wsss_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    _run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "--quiet",
          "--no-deps", "--no-index", str(wheel)], "pip install --no-deps the wheel")
    return venv


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    return env


def run_checks(work: Path, venv: Path, steps: set[str]) -> None:
    vpy = str(venv / "bin" / "python")
    env = _env(venv)
    run = work / "run"
    run.mkdir()
    res = _run([vpy, "-c", _PROBE, str(venv)], "import from the fresh venv", cwd=run, env=env)
    _log(res.stdout.strip())
    readme_test = str(ROOT / "tests" / "test_readme.py")
    if "readme" in steps:
        res = _run([vpy, "-c", _README, readme_test, "python"], "README python snippets",
                   cwd=run, env=env, timeout=900)
        sys.stdout.write("".join(line + "\n" for line in res.stdout.splitlines()
                                 if line.startswith("[check_wheel]")))
    if "shell" in steps:
        shell = work / "shell"
        shell.mkdir()
        (shell / "examples").symlink_to(ROOT / "examples")
        res = _run([vpy, "-c", _README, readme_test, "shell"], "README shell snippets (read)",
                   cwd=shell, env=env)
        for i in range(int(res.stdout.split()[0])):
            if shutil.which("pyg-wsss", path=env["PATH"]) != str(venv / "bin" / "pyg-wsss"):
                raise SystemExit("[check_wheel] FAILED: the wheel installed no pyg-wsss command")
            _run(["bash", f"shell_{i}.sh"], f"README shell snippet {i} (installed pyg-wsss)",
                 cwd=shell, env=env, timeout=900)
    if "examples" in steps:
        scripts = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
        unknown = sorted(set(scripts) - set(EXAMPLES))
        if unknown:
            raise SystemExit(f"[check_wheel] FAILED: no smoke arguments for examples {unknown} "
                             "(add them to EXAMPLES in scripts/check_wheel.py)")
        for name in scripts:
            _run([vpy, str(ROOT / "examples" / name), *EXAMPLES[name]], f"examples/{name}",
                 cwd=run, env=env, timeout=900)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--only", default=",".join(STEPS),
                   help=f"comma-separated steps out of {','.join(STEPS)} (default all)")
    args = p.parse_args(argv)
    steps = {s for s in args.only.split(",") if s}
    if steps - set(STEPS):
        p.error(f"unknown steps {sorted(steps - set(STEPS))}")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="pyg_wsss_wheel."))
    try:
        wheel = build_wheel(work)
        venv = fresh_venv(work, wheel)
        run_checks(work, venv, steps)
    finally:
        if args.keep:
            _log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _log(f"all checks passed ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
