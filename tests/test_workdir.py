"""Every workdir state resumes or names its repair.

Each test works on a copy of the tiny trained workdir (conftest's
`trained_workdir`: tiny_cnn on 32-px shapes), damaged the way a kill or a user
would damage it, and runs `train.py` again in a subprocess.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import training_util
import util
from dre_jax.io import classifier_dir
from dre_jax.io import workdir as workdir_lib
from dre_jax.training import trainer

pytestmark = pytest.mark.slow  # train.py in subprocesses


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_workdir):
  """(root for copies, config, the trained workdir)."""
  config, workdir = trained_workdir
  return tmp_path_factory.mktemp("hardening"), config, workdir


def _copy(trained, name):
  root, config, workdir = trained
  copy = str(root / name)
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns(".lock.*"))
  return config, copy


def _train(config, workdir, *flags):
  return training_util.run_train(config, workdir, *flags, check=False)


def _variables(path):
  return jax.tree.map(np.asarray, workdir_lib.load_estimator(path)[2])


def _same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_killed_before_the_completion_marks_resumes_and_keeps_summary(trained):
  """Items 4 and 5: variables written, marks not (a kill in between); the
  rerun completes both outputs with the same values, and summary.json keeps
  the metrics of every stage."""
  config, workdir = _copy(trained, "killed_before_marks")
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert set(summary) == {"classifier", "embeddings", "dre"}
  before = _variables(workdir)
  classifier_before = classifier_dir.load_classifier(
      os.path.join(workdir, "classifier")).variables
  os.remove(os.path.join(workdir, "classifier", "classifier.json"))
  os.remove(os.path.join(workdir, "estimator", "estimator.json"))

  result = _train(config, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "done earlier" in result.stderr  # restored, not retrained
  _same(_variables(workdir), before)
  _same(classifier_dir.load_classifier(
      os.path.join(workdir, "classifier")).variables, classifier_before)
  with open(os.path.join(workdir, "summary.json")) as f:
    after = json.load(f)
  assert set(after) == {"classifier", "embeddings", "dre"}
  assert after["dre"] == summary["dre"]

  # Item 5: a run on a finished workdir trains nothing and loses nothing.
  result = _train(config, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "estimator exists, skipped" in result.stderr
  assert "trained estimator:" in result.stdout
  with open(os.path.join(workdir, "summary.json")) as f:
    assert json.load(f) == after


def test_a_second_training_in_the_same_workdir_is_refused(trained):
  """Item 4: the workdir lock; the first process keeps it until it ends."""
  config, workdir = _copy(trained, "locked")
  with trainer.WorkdirLock(workdir):
    line = util.one_error_line(_train(config, workdir))
  assert f"{workdir} is in use by train.py (pid {os.getpid()})" in line
  assert "another --workdir" in line
  with trainer.WorkdirLock(workdir):  # released: it can be taken again
    pass


def test_damaged_estimator_names_the_file_and_the_repair(trained):
  """Item 6: what a rerun would skip is verified."""
  config, workdir = _copy(trained, "damaged")
  estimator = os.path.join(workdir, "estimator")
  files = [os.path.join(d, f) for d, _, fs in os.walk(
      os.path.join(estimator, "variables")) for f in fs]
  largest = max(files, key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.truncate(os.path.getsize(largest) // 3)
  line = util.one_error_line(_train(config, workdir))
  assert f"delete {estimator} and rerun train.py" in line
  with pytest.raises(ValueError, match=f"delete {estimator}"):
    workdir_lib.load_estimator(workdir)

  meta_path = os.path.join(estimator, "estimator.json")
  with open(meta_path) as f:
    meta = json.load(f)
  with open(meta_path, "w") as f:
    f.write('{"arch": "tiny_cnn", "num_cl')
  with pytest.raises(ValueError, match="estimator.json is damaged.*delete"):
    workdir_lib.load_estimator(workdir)
  shutil.rmtree(os.path.join(estimator, "variables"))
  shutil.copytree(os.path.join(trained[2], "estimator", "variables"),
                  os.path.join(estimator, "variables"))
  meta["generator"]["widths"] = [4, 8, 16]  # edited by hand
  with open(meta_path, "w") as f:
    json.dump(meta, f)
  with pytest.raises(ValueError, match="delete .*estimator"):
    workdir_lib.load_estimator(workdir)


def test_old_estimator_json_layout_still_loads(trained):
  """Issue 8: estimator.json written before config.generator (flat fields)."""
  _, workdir = _copy(trained, "old_layout")
  path = os.path.join(workdir, "estimator", "estimator.json")
  with open(path) as f:
    meta = json.load(f)
  with open(path, "w") as f:
    json.dump({**{k: v for k, v in meta.items() if k != "generator"},
               **meta["generator"]}, f)
  dre, _, variables, loaded = workdir_lib.load_estimator(workdir)
  assert loaded == meta
  assert tuple(dre.generator.widths) == tuple(meta["generator"]["widths"])
  _same(jax.tree.map(np.asarray, variables), _variables(trained[2]))


def test_tilde_paths_are_expanded(trained, monkeypatch):
  """Item 8: `~` in a workdir or classifier path is the home directory."""
  config, workdir = _copy(trained, "home/wd")
  monkeypatch.setenv("HOME", os.path.dirname(workdir))
  _same(_variables("~/wd"), _variables(workdir))
  assert classifier_dir.load_classifier("~/wd/classifier").num_classes == 4
  result = util.run_cli(training_util.train_command(config, "~/wd"), check=False,
                        env={"HOME": os.path.dirname(workdir)})
  assert result.returncode == 0, result.stderr[-3000:]
  assert "estimator exists, skipped" in result.stderr
  assert not os.path.exists(os.path.join(util.REPO, "~"))
