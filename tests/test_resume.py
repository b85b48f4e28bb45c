"""A run killed with SIGKILL mid-stage and started again ends where an unkilled run ends.

`train.py` runs in a subprocess on the tiny prepared dataset with tiny_cnn; it
is killed as soon as stage 2 has written a checkpoint before its last step,
started again with the same command, and its final generator is compared with
that of a run never killed (same config, same device count: the results must
agree to float rounding). A third start finds every stage done.
"""

import json
import os
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

import training_util
import util
from dre_jax.io import workdir as workdir_lib

pytestmark = pytest.mark.slow  # train.py in subprocesses


@pytest.fixture(scope="module")
def setup(tmp_path_factory, trained_workdir):
  """(root, config, the run never killed)."""
  config, reference = trained_workdir
  return tmp_path_factory.mktemp("resume"), config, reference


def _steps(stage_dir):
  if not os.path.isdir(stage_dir):
    return []
  return sorted(int(d) for d in os.listdir(stage_dir) if d.isdigit())


def _kill_mid_stage(config, workdir, stage="dre", total=12):
  """Starts train.py and SIGKILLs it once `stage` has a checkpoint before `total`."""
  process = subprocess.Popen(training_util.train_command(config, workdir),
                             env=util.subprocess_env(), cwd=util.REPO,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  stage_dir = os.path.join(workdir, "checkpoints", stage)
  deadline = time.time() + 600
  try:
    while time.time() < deadline and process.poll() is None:
      steps = _steps(stage_dir)
      if steps and steps[-1] < total:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return steps[-1]
      time.sleep(0.05)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  raise AssertionError(f"no mid-stage checkpoint of {stage} seen "
                       f"(exit code {process.returncode})")


def _generator(workdir):
  _, _, variables, _ = workdir_lib.load_estimator(workdir)
  return jax.tree.map(np.asarray, variables)


def test_killed_run_resumes_to_the_same_parameters(setup):
  root, config, reference = setup
  workdir = str(root / "killed")
  killed_at = _kill_mid_stage(config, workdir)
  assert 0 < killed_at < 12
  assert not workdir_lib.has_estimator(workdir)
  training_util.run_train(config, workdir)

  got, want = _generator(workdir), _generator(reference)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The stage really resumed: training moved the parameters after the kill
  # (the final checkpoint differs from the one the kill left).
  assert _steps(os.path.join(workdir, "checkpoints", "dre"))[-1] == 12

  # Every stage done: a third start trains nothing and keeps the outputs.
  before = os.path.getmtime(os.path.join(workdir, "estimator",
                                         "estimator.json"))
  result = training_util.run_train(config, workdir)
  assert "skipped" in result.stderr
  assert "dre/loss" not in result.stderr  # no stage-2 metric line: no step
  assert os.path.getmtime(os.path.join(workdir, "estimator",
                                       "estimator.json")) == before
  with open(os.path.join(workdir, "summary.json")) as f:
    assert "classifier" in json.load(f)
