"""The compiled (mypyc) modules and their pure-Python fallback (zabby/_compiled.py).

- ZABBY_PURE_PYTHON=1 makes a process import the .py files even where extensions exist.
- A build older than its sources (an edited .py) is not used: every compiled module
  falls back to its .py, with one warning, and the edit takes effect.
- `compiled_modules()` / `build_info()` / `zabby --version` say which is in use.
- When the build is present: the compiled modules and their pure twins give identical
  results on the same inputs (hypothesis: the wire codec; the tree's prepare/apply).

Tests that need the build skip without it, unless ZABBY_REQUIRE_COMPILED=1 (.ci/run's
compiled pass sets it), where a missing build fails.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zabby
from zabby import _compiled

SRC = Path(zabby.__file__).resolve().parent.parent  # the directory holding zabby/
COMPILED = zabby.compiled_modules()
REQUIRE = os.environ.get("ZABBY_REQUIRE_COMPILED", "") not in ("", "0")

needs_build = pytest.mark.skipif(
    not COMPILED and not REQUIRE,
    reason="zabby is not compiled here (pure Python install or ZABBY_PURE_PYTHON=1)",
)


def run_py(code: str, *, env_extra: dict[str, str] | None = None, pythonpath: Path = SRC,
           timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ZABBY_PURE_PYTHON", "PYTHONPATH")}
    env["PYTHONPATH"] = str(pythonpath)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-W", "default", "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


REPORT = """
import json, zabby, importlib
from zabby import _compiled
files = {n: importlib.import_module(n).__file__ for n in _compiled.COMPILED_MODULES}
print(json.dumps({"compiled": zabby.compiled_modules(), "info": zabby.build_info(),
                  "files": files}))
"""


def report(**kw) -> tuple[dict, str]:
    p = run_py(REPORT, **kw)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


# ------------------------------------------------------------ which modules load


def test_build_present_where_required():
    if REQUIRE and os.environ.get("ZABBY_PURE_PYTHON", "") in ("", "0"):
        assert COMPILED == list(_compiled.COMPILED_MODULES), zabby.build_info()
    assert zabby.build_info()  # always one line, compiled or not
    if not COMPILED:
        assert zabby.build_info().startswith("pure Python (")


@needs_build
def test_compiled_by_default():
    rep, err = report()
    assert rep["compiled"] == list(_compiled.COMPILED_MODULES)
    assert rep["info"].startswith("compiled (mypyc")
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert all(f.endswith(suffixes) for f in rep["files"].values()), rep["files"]
    assert "RuntimeWarning" not in err


@needs_build
def test_pure_python_env_imports_the_py_files():
    rep, err = report(env_extra={"ZABBY_PURE_PYTHON": "1"})
    assert rep["compiled"] == []
    assert rep["info"] == "pure Python (ZABBY_PURE_PYTHON=1)"
    for name, f in rep["files"].items():
        assert f == str(_compiled.source_path(name)), (name, f)
    assert "RuntimeWarning" not in err  # asked for: no warning
    rep, _ = report(env_extra={"ZABBY_PURE_PYTHON": "0"})  # 0 means no
    assert rep["compiled"] == list(_compiled.COMPILED_MODULES)


def test_version_line_names_the_build():
    p = subprocess.run([sys.executable, "-m", "zabby.cli.main", "--version"],
                       env={**os.environ, "PYTHONPATH": str(SRC), "ZABBY_PURE_PYTHON": "1"},
                       capture_output=True, text=True, timeout=60, check=False)
    if p.returncode != 0 and "No module named zabby.cli.main" in p.stderr:
        pytest.skip("zabby.cli.main is not runnable as a module")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"zabby {zabby.__version__}")
    assert "pure Python (ZABBY_PURE_PYTHON=1)" in p.stdout


# ------------------------------------------------------------------- stale builds


def _fake_package(root: Path, manifest: dict | None) -> Path:
    pkg = root / "zabby"
    for name in _compiled.COMPILED_MODULES:
        src = _compiled.source_path(name, pkg)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {name}\n")
        ext = src.with_name(src.stem + importlib.machinery.EXTENSION_SUFFIXES[0])
        ext.write_bytes(b"not really an extension")
    if manifest is not None:
        (pkg / "_build.json").write_text(json.dumps(manifest))
    return pkg


def test_stale_modules_compares_source_hashes(tmp_path):
    names = _compiled.COMPILED_MODULES
    pkg = _fake_package(tmp_path, None)
    hashes = {n: _compiled.file_hash(_compiled.source_path(n, pkg)) for n in names}
    # no build record: every extension counts as stale
    assert _compiled.stale_modules(names, pkg) == (list(names), list(names), "")
    (pkg / "_build.json").write_text(json.dumps({"compiler": "mypyc 9", "modules": hashes}))
    assert _compiled.stale_modules(names, pkg) == (list(names), [], "mypyc 9")
    edited = _compiled.source_path(names[1], pkg)
    edited.write_text(edited.read_text() + "x = 1\n")
    assert _compiled.stale_modules(names, pkg) == (list(names), [names[1]], "mypyc 9")
    # a module without an extension is pure Python already: not stale
    ext = next(edited.parent.glob(edited.stem + ".*.so"), None) or next(
        p for p in edited.parent.iterdir() if p.name != edited.name and p.stem.startswith(edited.stem))
    ext.unlink()
    built = [n for n in names if n != names[1]]
    assert _compiled.stale_modules(names, pkg) == (built, [], "mypyc 9")
    (pkg / "_build.json").write_text("{not json")
    assert _compiled.stale_modules(names, pkg) == (built, built, "")


def test_pure_finder_serves_the_source(tmp_path):
    pkg = tmp_path / "zabby_finder_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("WHERE = 'source'\n")
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from pathlib import Path
from zabby._compiled import PureFinder
sys.meta_path.insert(0, PureFinder({{"zabby_finder_probe.mod": Path({str(pkg / 'mod.py')!r})}}))
import zabby_finder_probe.mod as m
import zabby_finder_probe
print(m.WHERE, type(m.__loader__).__name__, m.__file__)
"""
    # shadow the .py with a module of the same name that a plain import would prefer
    (pkg / "mod").mkdir()
    (pkg / "mod" / "__init__.py").write_text("WHERE = 'shadow'\n")
    p = run_py(code)
    assert p.returncode == 0, p.stderr
    where, loader, f = p.stdout.split()
    assert (where, loader, f) == ("source", "SourceFileLoader", str(pkg / "mod.py"))


@needs_build
def test_edited_source_falls_back_to_pure_python_with_one_warning(tmp_path):
    """A copy of the built package; an edit to one compiled module's .py must take
    effect (the stale .so is not loaded) and every compiled module goes pure."""
    dst = tmp_path / "src"
    shutil.copytree(SRC / "zabby", dst / "zabby",
                    ignore=shutil.ignore_patterns("__pycache__", ".mypy_cache"))
    for lib in SRC.glob("zabby__mypyc*"):  # the group's shared library sits beside zabby/
        shutil.copy2(lib, dst / lib.name)
    # the untouched copy runs compiled: the fallback below is caused by the edit
    rep, err = report(pythonpath=dst)
    assert rep["compiled"] == list(_compiled.COMPILED_MODULES), rep["info"]
    edited = _compiled.COMPILED_MODULES[-1]
    src = _compiled.source_path(edited, dst / "zabby")
    src.write_text(src.read_text() + "\nEDITED_AFTER_BUILD = 42\n")
    code = REPORT + f"import {edited} as m\nprint(m.EDITED_AFTER_BUILD)\n"
    p = run_py(code, pythonpath=dst)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "42"
    rep = json.loads(lines[-2])
    assert rep["compiled"] == []
    assert rep["info"] == f"pure Python (stale build: {edited})"
    for name, f in rep["files"].items():
        assert f == str(_compiled.source_path(name, dst / "zabby")), (name, f)
    assert p.stderr.count("RuntimeWarning") == 1, p.stderr
    assert "older than their sources" in p.stderr


def test_makefile_rebuilds_when_a_compiled_source_changes():
    """The install stamp depends on every compiled module's source (and the list)."""
    text = (SRC.parent / "Makefile").read_text().replace("\\\n", " ")
    listed = next(line for line in text.splitlines() if line.startswith("COMPILED_SRC :="))
    listed = listed.split(":=", 1)[1].split()
    assert listed == [f"src/{_compiled.source_path(n, Path('zabby'))}"
                      for n in _compiled.COMPILED_MODULES]
    stamp_rule = next(line for line in text.splitlines() if line.startswith("$(STAMP):"))
    for dep in ("pyproject.toml", "setup.py", "src/zabby/_compiled.py", "$(COMPILED_SRC)"):
        assert dep in stamp_rule.split()
