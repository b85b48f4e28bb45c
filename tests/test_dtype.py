"""The compute dtype of inference: bfloat16 maps against float32 ones, float32 the default.

tiny_cnn with random weights and 4 classes on the boxed images of
`eval_util.protocol_inputs` (64 px), and a DRE generator initialised for it.
Measured on a CPU with 16 images: the per-image Spearman rank correlation of
the bfloat16 maps with the float32 ones was at least 1.000 (DRE), 0.996
(vanilla gradient) and 0.9996 (Grad-CAM); the per-image M_F and M_E moved by
at most 0.10 and 0.18 points. The bounds below (0.98 for each image, 0.5
points for the means) leave that a margin.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from dre_jax import app
from dre_jax import config as config_lib
from dre_jax import explainers
from dre_jax import models
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.evaluation import cache
from dre_jax.evaluation import protocol
from dre_jax.evaluation import report
from dre_jax.evaluation import scoring
from dre_jax.evaluation import workdir_config
import eval_util
import util

METHODS = ("dre", "vgrad", "gcam")
MIN_SPEARMAN = 0.98
METRIC_TOLERANCE = 0.5  # points of M_F and M_E (0-100), means over the images


@pytest.fixture(scope="module")
def inputs():
  """(float32 classifier, images, box masks, float32 DRE, generator variables)."""
  classifier, arrays, _ = eval_util.protocol_inputs(8)
  dre = DRE.create("tiny_cnn", 4)
  variables = dre.init_generator(jax.random.key(1), classifier, eval_util.SIZE)
  return (classifier, jnp.asarray(arrays["image"]), jnp.asarray(arrays["box_mask"]),
          dre, variables)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, inputs):
  classifier, _, _, dre, variables = inputs
  return util.write_workdir(tmp_path_factory.mktemp("workdir"), classifier, dre,
                            variables, eval_util.SIZE)


def _maps(name, classifier, dre, variables, images, target):
  bound = dict(estimator=dre, generator_variables=variables) if name == "dre" else {}
  return explainers.get(name, **bound)(classifier, images, target,
                                       jax.random.key(2))


def test_compute_dtype_names_the_choices():
  assert config_lib.compute_dtype("float32") == jnp.float32
  assert config_lib.compute_dtype("bfloat16") == jnp.bfloat16
  assert config_lib.default_config().model.dtype == "float32"
  with pytest.raises(ValueError, match="'float16' is not one of float32, bfloat16"):
    config_lib.compute_dtype("float16")


@pytest.mark.parametrize("name", METHODS)
def test_bfloat16_maps_rank_like_float32(inputs, name):
  classifier, images, boxes, dre, variables = inputs
  half = Classifier.create(classifier.spec, classifier.variables,
                           dtype=jnp.bfloat16)
  half_dre = DRE.create("tiny_cnn", 4, dtype=jnp.bfloat16)
  assert half.dtype == jnp.bfloat16 and half_dre.generator.dtype == jnp.bfloat16
  assert half.logits(images).dtype == jnp.float32
  target = jnp.argmax(classifier.logits(images), axis=-1)
  full_maps = _maps(name, classifier, dre, variables, images, target)
  half_maps = _maps(name, half, half_dre, variables, images, target)
  assert half_maps.dtype == jnp.float32 and half_maps.shape == full_maps.shape
  assert not np.array_equal(half_maps, full_maps)  # bfloat16 did compute them
  for a, b in zip(np.asarray(full_maps), np.asarray(half_maps)):
    assert scipy.stats.spearmanr(a.ravel(), b.ravel())[0] > MIN_SPEARMAN
  # M_F and M_E as an evaluation in each dtype scores them (its classifier in
  # the same dtype).
  p = protocol.Protocol(**eval_util.PROTOCOL_KW)
  full = scoring.score(classifier, images, full_maps, target, boxes, protocol=p)
  half_scores = scoring.score(half, images, half_maps, target, boxes, protocol=p)
  for metric in ("faithfulness", "explainability"):
    assert abs(np.mean(full[metric]) - np.mean(half_scores[metric])) < METRIC_TOLERANCE


def test_float32_is_the_default_and_unchanged(inputs, workdir):
  classifier, images, _, dre, variables = inputs
  model = app.load_model(workdir)
  assert model.classifier.dtype == jnp.float32
  assert model.dre.generator.dtype == jnp.float32
  # The same maps, to the bit, as a model built without any dtype (the
  # classifier and DRE that the fixture made).
  built = dataclasses.replace(model, classifier=classifier, dre=dre,
                              generator_variables=jax.device_put(variables),
                              compiled={})
  explain = functools.partial(app.explain_images, np.asarray(images),
                              methods=METHODS, batch_size=len(images))
  out, expected = explain(model=model), explain(model=built)
  np.testing.assert_array_equal(out.probabilities, expected.probabilities)
  for name in METHODS:
    assert out.maps[name].dtype == np.float32
    np.testing.assert_array_equal(out.maps[name], expected.maps[name])
  # The evaluation's cache: float32 keeps its fingerprint, bfloat16 gets its own.
  half = Classifier.create(classifier.spec, classifier.variables,
                           dtype=jnp.bfloat16)
  assert (cache.classifier_fingerprint(half)
          == cache.classifier_fingerprint(classifier) + "-bfloat16")


def test_loading_takes_the_dtype(workdir):
  from dre_jax.evaluation import runner  # pylint: disable=import-outside-toplevel
  half = app.load_model(workdir, dtype="bfloat16")
  assert half.classifier.dtype == jnp.bfloat16
  assert half.dre.generator.dtype == jnp.bfloat16
  directory = os.path.join(workdir, "classifier")
  assert app.load_model(classifier_dir=directory,
                        dtype="bfloat16").classifier.dtype == jnp.bfloat16
  loaded = runner.load_workdir(workdir, jnp.bfloat16)
  assert loaded.classifier.dtype == jnp.bfloat16
  assert loaded.generator.estimator.generator.dtype == jnp.bfloat16
  assert runner.load_workdir(workdir).classifier.dtype == jnp.float32
  with pytest.raises(ValueError, match="not one of float32, bfloat16"):
    app.load_model(workdir, dtype="float16")


@pytest.mark.slow  # torch state_dicts, a full-size ResNet50's among them
def test_every_source_takes_the_dtype(tmp_path, released_dre):
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  from dre_jax.io import torch_weights  # pylint: disable=import-outside-toplevel
  spec = models.get("tiny_cnn")
  tiny = {spec.torch_key(path): torch.ones(torch_weights._torch_shape(path, s.shape))
          for path, s in torch_weights.variable_shapes(spec, 4).items()}
  torch.save(tiny, tmp_path / "tiny.pth")
  pretrained = app.load_model(arch="tiny_cnn", torch_weights=tmp_path / "tiny.pth",
                              dtype="bfloat16")
  assert pretrained.classifier.dtype == jnp.bfloat16
  torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")
  released = app.load_model(released_dre=released_dre[0],
                            torch_weights=tmp_path / "resnet50.pth",
                            dtype="bfloat16")
  assert released.classifier.dtype == jnp.bfloat16
  assert released.dre.generator.dtype == jnp.bfloat16


@pytest.mark.slow  # the CLIs in subprocesses
@pytest.mark.parametrize("script", ["explain.py", "evaluate.py"])
def test_commands_reject_an_unknown_dtype_in_one_line(workdir, tmp_path, script):
  photos = ["a.jpg"] if script == "explain.py" else []
  result = util.run_cli(util.cli_command(
      script, f"--workdir={workdir}", "--dtype=float16", *photos), check=False,
      cwd=str(tmp_path))
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "--dtype=float16" in lines[0], lines
  assert "float32, bfloat16" in lines[0], lines


@pytest.mark.slow  # a fitted classifier and two evaluations (TFDS)
def test_evaluation_in_bfloat16_scores_like_float32(tmp_path):
  from dre_jax.evaluation import runner  # pylint: disable=import-outside-toplevel
  path, config_path = eval_util.make_workdir(str(tmp_path))
  results = {}
  for dtype in ("float32", "bfloat16"):
    config = workdir_config.for_workdir(path, util.load_config_file(config_path),
                                        methods=",".join(METHODS), num_images=8,
                                        dtype=dtype)
    plan = runner.plan(path, config, log=lambda _: None)
    assert plan.loaded.classifier.dtype == jnp.dtype(dtype)
    assert plan.loaded.generator.estimator.generator.dtype == jnp.dtype(dtype)
    results[dtype] = runner.run_plan(plan, progress=False, log=lambda _: None)
    assert results[dtype]["dtype"] == dtype
  # Each dtype has its own cache directories: nothing of float32 was reused.
  caches = os.listdir(os.path.join(path, report.CACHE))
  assert len([c for c in caches if c.startswith("dre-")]) == 2, caches
  for name in METHODS:
    full, half = (results[d]["methods"][name] for d in ("float32", "bfloat16"))
    for metric in ("faithfulness", "explainability"):
      assert abs(full[metric] - half[metric]) < METRIC_TOLERANCE, (name, metric)
