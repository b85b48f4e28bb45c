"""8 simulated CPU devices train like 1 device on the same global batches.

1. The step functions of the three stages, with plain SGD, run for several
   steps on a one-device array and on a batch split over 8 devices
   (`--xla_force_host_platform_device_count=8`, one image per device): the
   gradients and the BatchNorm statistics are over the global batch in both,
   so the parameters agree to float rounding.
2. `train.py` runs all stages (classifier fine-tuning, stage 1, stage 2 with
   Adam) on the tiny dataset with tiny_cnn on 1 and on 8 devices. Adam turns
   the float rounding of gradients that are exactly zero in exact arithmetic
   (e.g. the bias before the controller's instance norm) into steps of the
   full learning rate, so after a dozen steps the generators agree loosely;
   the SGD-trained classifier and the stage losses agree closely.
"""

import json
import os
import sys

import jax
import numpy as np
import pytest

import training_util
import util
from dre_jax.io import workdir as workdir_lib
from dre_jax import config as config_lib

pytestmark = pytest.mark.slow  # train.py on 8 simulated devices, in subprocesses


def _summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


STEPS_SCRIPT = r"""
import functools
import jax, numpy as np, optax
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.perturbation import BackgroundConfig
from dre_jax import config as config_lib
from dre_jax import parallel
from dre_jax.training import steps as steps_lib
from dre_jax.training.steps import TrainState

assert jax.device_count() == 8
mesh = parallel.make_mesh()
dre = DRE.create("tiny_cnn", 4)
clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4, image_size=32)
cls = clf.variables
gen = dre.init_generator(jax.random.key(1), clf, 32)
rng = np.random.RandomState(0)
batches = [{"image": rng.rand(8, 32, 32, 3).astype(np.float32),
            "label": rng.randint(0, 4, 8).astype(np.int32)} for _ in range(3)]
tx = optax.sgd(0.1, momentum=0.9)
sched = optax.constant_schedule(0.1)
steps = {
    "classifier": (functools.partial(steps_lib.classifier_step, module=clf.module,
                                     spec=dre.spec, schedule=sched, seed=0),
                   cls, None),
    "embeddings": (functools.partial(steps_lib.embeddings_step, dre=dre,
                                     schedule=sched, fake_prob=0.5, seed=0),
                   gen, clf),
    "dre": (functools.partial(steps_lib.dre_step, dre=dre, schedule=sched,
                              backgrounds=BackgroundConfig(),
                              config=config_lib.default_config(), seed=0),
            gen, clf),
}
for name, (step, variables, frozen) in steps.items():
  state = TrainState.start(variables["params"], variables["batch_stats"], tx)
  one, eight = state, parallel.replicate(mesh, state)
  frozen8 = parallel.replicate(mesh, frozen)
  for batch in batches:
    one, m1 = jax.jit(step)(one, batch, frozen)
    eight, m8 = jax.jit(step)(eight, parallel.global_batch(mesh, batch), frozen8)
    np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)
  assert eight.params[next(iter(eight.params))]
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
              zip(jax.tree.leaves(one.params), jax.tree.leaves(variables["params"])))
  assert moved > 1e-3, (name, moved)
  print(name, "matches", float(m1["loss"]))
"""


def test_steps_on_eight_devices_match_one_device():
  result = util.run_cli([sys.executable, "-c", STEPS_SCRIPT], num_devices=8,
                        check=False)
  assert result.returncode == 0, result.stderr[-5000:]
  for stage in config_lib.STAGES:
    assert f"{stage} matches" in result.stdout


def test_train_py_on_eight_devices_matches_one(tmp_path, trained_workdir):
  config, one_device = trained_workdir
  workdirs = {1: one_device, 8: str(tmp_path / "devices8")}
  result = training_util.run_train(config, workdirs[8], num_devices=8)
  assert "over 8 devices" in result.stderr

  summaries = {n: _summary(w) for n, w in workdirs.items()}
  for stage, rtol, keys in (
      ("classifier", 1e-4, ("loss", "accuracy", "eval_accuracy")),
      ("embeddings", 1e-4, ("loss",)), ("dre", 2e-2, ("loss",))):
    for key in keys:
        np.testing.assert_allclose(summaries[8][stage][key],
                                   summaries[1][stage][key], rtol=rtol,
                                   err_msg=f"{stage}/{key}")

  one = workdir_lib.load_estimator(workdirs[1])
  eight = workdir_lib.load_estimator(workdirs[8])
  for a, b in zip(jax.tree.leaves(one[1]), jax.tree.leaves(eight[1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # fine-tuned classifier
  images = np.random.RandomState(0).rand(8, 32, 32, 3).astype(np.float32)
  masks_one, t_one = one[0].explain(one[1], one[2], images)
  masks_eight, t_eight = eight[0].explain(eight[1], eight[2], images)
  np.testing.assert_array_equal(t_one, t_eight)
  np.testing.assert_allclose(masks_eight, masks_one, atol=0.1)
  assert np.std(masks_one) > 0.1  # masks far from constant
