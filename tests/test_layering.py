"""Layers point down: what the lower modules of dre_jax may not import (read from the source)."""

import ast
import os

import pytest

import dre_jax

ROOT = os.path.dirname(dre_jax.__file__)

# module or package -> the dre_jax modules and packages it must not import,
# at the top or inside a function.
FORBIDDEN = {
    "dre_jax.config": ("dre_jax.evaluation", "dre_jax.explainers", "dre_jax.training",
                       "dre_jax.io", "dre_jax.data", "dre_jax.app"),
    "dre_jax.training": ("dre_jax.explainers", "dre_jax.evaluation"),
    "dre_jax.explainers": ("dre_jax.training", "dre_jax.evaluation"),
    "dre_jax.estimator": ("dre_jax.explainers", "dre_jax.training", "dre_jax.io"),
    "dre_jax.resize": ("dre_jax",),
    "dre_jax.app": ("dre_jax.training", "dre_jax.evaluation", "dre_jax.cli"),
}


def _modules(name: str) -> dict[str, str]:
  """{module name: path} of a module, or of every module in a package."""
  path = os.path.join(ROOT, *name.split(".")[1:])
  if os.path.isfile(path + ".py"):
    return {name: path + ".py"}
  return {f"{name}.{f[:-3]}": os.path.join(path, f)
          for f in sorted(os.listdir(path)) if f.endswith(".py")}


def _imports(module: str, path: str) -> set[str]:
  """Every dre_jax module `path` imports, relative imports resolved."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parent = module.split(".")[:-node.level]
        base = ".".join(parent + ([base] if base else []))
      out.update(f"{base}.{a.name}" for a in node.names)
  return {name for name in out if name.startswith("dre_jax.")}


def _inside(name: str, prefixes) -> bool:
  return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer):
  wrong = sorted(f"{module} imports {name}"
                 for module, path in _modules(layer).items()
                 for name in _imports(module, path)
                 if _inside(name, FORBIDDEN[layer]) and not _inside(name, [layer]))
  assert not wrong, wrong


def test_the_check_sees_lazy_imports(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("def f():\n  from dre_jax.io import pth\n  from . import registry\n")
  assert _imports("dre_jax.models.m", str(path)) == {"dre_jax.io.pth",
                                                     "dre_jax.models.registry"}
