"""The documentation's promises about the public API, checked without Sphinx:

- every public name (``deepret.__all__`` and the ``__all__`` of every public
  submodule, i.e. every ``deepret.NAME`` module whose name does not start
  with an underscore) is listed in an ``autosummary`` of docs/api/*.rst;
- every public function and class has numpydoc See Also and Examples sections
  (functions: Parameters, Returns and Raises too);
- every example in the package's docstrings runs and prints what it shows
  (doctest, on the installed deepret).

A new public name (a new submodule's ``__all__`` included) fails the first
test until it is added to the API reference.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import numpy as np
import pytest

import deepret

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
SOURCE_TREE = API.is_dir()  # the wheel legs of CI run these tests from outside the checkout too


def _public_modules() -> list[str]:
    """deepret's public submodules (imported or not): no leading underscore."""
    return sorted(info.name for info in pkgutil.iter_modules(deepret.__path__)
                  if not info.name.startswith("_"))


def _module_all(name: str) -> tuple[types.ModuleType | None, list[str]]:
    """(the module, its __all__); a module whose optional dependency is
    missing is read with ast instead (its names must be documented all the
    same)."""
    try:
        module = importlib.import_module(f"deepret.{name}")
    except ImportError:
        spec = importlib.util.find_spec(f"deepret.{name}")
        path = spec.origin if spec is not None else None
        if path is None:
            raise
        for node in ast.parse(Path(path).read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                return None, list(ast.literal_eval(node.value))
        return None, []
    return module, list(getattr(module, "__all__", []))


def public_names() -> dict[str, object]:
    """Full documented name -> object (None where the module could not be
    imported). Names re-exported by ``deepret`` are documented there."""
    names: dict[str, object] = {}
    for name in deepret.__all__:
        names[f"deepret.{name}"] = getattr(deepret, name)
    for module_name in _public_modules():
        module, exported = _module_all(module_name)
        for name in exported:
            obj = None if module is None else getattr(module, name)
            if name in deepret.__all__ and obj is getattr(deepret, name):
                continue  # documented as deepret.NAME
            names[f"deepret.{module_name}.{name}"] = obj
    return names


def documented_names() -> set[str]:
    """Every entry of an autosummary directive in docs/api/*.rst, with the
    current module it is listed under, and every automodule."""
    found: set[str] = set()
    for page in sorted(API.glob("*.rst")):
        module = "deepret"
        in_summary = False
        for line in page.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            match = re.match(r"\.\. automodule:: (\S+)", stripped)
            if match:
                found.add(match.group(1))
                in_summary = False
                continue
            match = re.match(r"\.\. currentmodule:: (\S+)", stripped)
            if match:
                module, in_summary = match.group(1), False
                continue
            if stripped.startswith(".. autosummary::"):
                in_summary = True
                continue
            if not in_summary or not stripped or stripped.startswith(":"):
                continue
            if not line.startswith("   "):
                in_summary = False
                continue
            found.add(f"{module}.{stripped.lstrip('~')}")
    return found


@pytest.mark.skipif(not SOURCE_TREE, reason="docs/ is not beside these tests (an installed wheel's run)")
def test_every_public_name_is_in_the_api_reference():
    missing = sorted(set(public_names()) - documented_names())
    assert not missing, f"public names missing from docs/api/*.rst autosummaries: {missing}"


@pytest.mark.skipif(not SOURCE_TREE, reason="docs/ is not beside these tests (an installed wheel's run)")
def test_the_api_reference_lists_only_real_names():
    for full in sorted(documented_names()):
        module_name, _, attribute = full.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), f"docs/api lists {full}, which does not exist"


def _callables() -> list[tuple[str, object]]:
    return [(name, obj) for name, obj in sorted(public_names().items())
            if inspect.isfunction(obj) or inspect.isclass(obj)]


@pytest.mark.parametrize("name,obj", _callables(), ids=[name for name, _ in _callables()])
def test_public_function_or_class_has_sections(name, obj):
    doc = inspect.getdoc(obj) or ""
    headers = set(re.findall(r"^(\w[\w ]*)\n-{3,}$", doc, flags=re.MULTILINE))
    assert "Examples" in headers, f"{name} has no Examples section"
    assert ">>>" in doc.split("Examples\n--------", 1)[1], f"{name}'s Examples section has no example"
    assert "See Also" in headers, f"{name} has no See Also section"
    if inspect.isfunction(obj):
        takes_arguments = bool(inspect.signature(obj).parameters)
        for section in ("Parameters", "Returns", "Raises"):
            if section != "Returns" and not takes_arguments:
                continue  # nothing to pass, nothing to refuse
            assert section in headers, f"{name} has no {section} section"


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    modules = {"deepret"} | {f"deepret.{name}" for name in _public_modules()}
    # ... and the private modules that define public names (deepret._backend).
    modules |= {obj.__module__ for obj in public_names().values()
                if inspect.isfunction(obj) or inspect.isclass(obj)}
    tests = []
    for full in sorted(modules):
        try:
            module = importlib.import_module(full)
        except ImportError:
            continue  # an optional dependency is missing: its examples cannot run here
        tests.extend(t for t in finder.find(module, full, globs={"np": np, "deepret": deepret})
                     if t.examples)
    return sorted(tests, key=lambda t: t.name)


@pytest.mark.parametrize("test", _doctests(), ids=lambda t: t.name)
def test_docstring_examples_run(test):
    # Printing as numpy 2 does whatever a previous test set; examples round
    # what they print, so the output is the same on every numpy >= 2.0.
    with np.printoptions(legacy=False, precision=8, suppress=False):
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        output: list[str] = []
        runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


@pytest.mark.skipif(not (ROOT / "python" / "deepret" / "_core.pyi").is_file(), reason="no source tree")
def test_core_stub_names_every_engine_function():
    from deepret import _core

    tree = ast.parse((ROOT / "python" / "deepret" / "_core.pyi").read_text(encoding="utf-8"))
    stubbed = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {node.target.id for node in tree.body
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    engine = {name for name in dir(_core) if not name.startswith("__")}
    assert engine - stubbed == set(), f"python/deepret/_core.pyi lacks {sorted(engine - stubbed)}"
    assert stubbed - engine == set(), f"python/deepret/_core.pyi names {sorted(stubbed - engine)}, not in _core"
