"""Merging evaluations of the same images (`dre_jax.evaluation.merge`) against
the one run that evaluated every method (the committed 224-px reference run)."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dre_jax.evaluation import merge
from dre_jax.evaluation import report
from dre_jax.evaluation import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "results", "reference_lite0_224", "images64")
COMPARED = ("faithfulness_normalised", "faithfulness", "explainability")


@pytest.fixture(scope="module")
def reference():
  return merge.load(REFERENCE)


def _part(run, names, directory, change=None):
  """A run of `names` only, written like evaluate.py writes one (its normalised
  arrays and comparisons left as the full run had them: merge recomputes them)."""
  results = copy.deepcopy(run["results"])
  results["methods"] = {n: results["methods"][n] for n in names}
  per_image = {k: v for k, v in run["per_image"].items()
               if "/" not in k or k.split("/")[0] in names}
  if change:
    change(results, per_image)
  os.makedirs(directory, exist_ok=True)
  report.write_results(str(directory), results, per_image)
  return str(directory)


def test_merging_two_parts_reproduces_the_run_of_every_method(reference, tmp_path):
  names = list(reference["results"]["methods"])
  first = _part(reference, ["dre", "gcam", "mpert", "finv"], tmp_path / "a")
  second = _part(reference, [n for n in names if n not in ("gcam", "mpert", "finv")],
                 tmp_path / "b")
  merged, per_image = merge.merge([merge.load(first), merge.load(second)])
  assert set(merged["methods"]) == set(names)
  for got, want in zip(merged["pools"], reference["results"]["pools"], strict=True):
    assert (got["name"], sorted(got["methods"]), got["images"]) == (
        want["name"], sorted(want["methods"]), want["images"])
  for name, want in reference["results"]["methods"].items():
    got = merged["methods"][name]
    for key in COMPARED:
      assert got[key] == pytest.approx(want[key], abs=1e-9), (name, key)
    assert json.dumps(got.get("versus_dre"), sort_keys=True) == json.dumps(
        want.get("versus_dre"), sort_keys=True), name
    np.testing.assert_array_equal(per_image[f"{name}/faithfulness_normalised"],
                                  reference["per_image"][f"{name}/faithfulness_normalised"])
  # DRE ran in both parts with the same values.
  assert merged["duplicates"] == {"dre": {second: 0.0}}
  assert merged["methods"]["gcam"]["evaluated_in"] == first
  assert merged["methods"]["mpert"]["sanity_images"] == reference["results"]["sanity"]["images"]


def test_a_method_that_differs_between_runs_is_reported(reference, tmp_path):
  def shift(results, per_image):
    per_image["dre/faithfulness"] = per_image["dre/faithfulness"] + 0.5
  first = _part(reference, ["dre", "gcam"], tmp_path / "a")
  second = _part(reference, ["dre", "vgrad"], tmp_path / "b", shift)
  merged, _ = merge.merge([merge.load(first), merge.load(second)])
  assert merged["duplicates"]["dre"][second] == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("change,message", [
    (lambda r, p: p.__setitem__("index", p["index"][::-1].copy()), "different images"),
    (lambda r, p: r.__setitem__("image_size", 128), "image_size"),
    (lambda r, p: r["protocol"].__setitem__("num_steps", 16), "num_steps"),
])
def test_evaluations_of_other_images_or_protocols_do_not_merge(reference, tmp_path, change,
                                                              message):
  first = _part(reference, ["dre", "gcam"], tmp_path / "a")
  second = _part(reference, ["vgrad"], tmp_path / "b", change)
  with pytest.raises(ValueError, match=message):
    merge.merge([merge.load(first), merge.load(second)])


def _script(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "merge_results.py"),
                         *args], capture_output=True, text=True, timeout=300)


def test_script_writes_the_merged_report_and_names_a_bad_directory(reference, tmp_path):
  first = _part(reference, ["dre", "gcam"], tmp_path / "a")
  second = _part(reference, ["vgrad"], tmp_path / "b")
  out = tmp_path / "merged"
  done = _script(first, second, "--out", str(out))
  assert done.returncode == 0, done.stderr
  results = json.loads((out / "results.json").read_text())
  assert set(results["methods"]) == {"dre", "gcam", "vgrad"}
  text = (out / "tables.md").read_text()
  assert all(tables.display_name(n) in text for n in ("dre", "gcam", "vgrad")), text
  assert np.load(out / "per_image.npz")["gcam/faithfulness"].shape == (64,)
  bad = _script(first, str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
  assert bad.returncode == 2
  assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
  assert "nowhere" in bad.stderr and "evaluate.py" in bad.stderr
  assert not (tmp_path / "x").exists()
