"""Shared by the evaluation tests: a tiny workdir and evaluate.py's command.

`make_workdir`: the tiny boxed dataset `tiny_boxes` (`data_util.TINY`: 64x64
images of a coloured square on grey noise, the class is the colour, the
square's box in a `bbox` feature so M_E applies), tiny_cnn fitted to it and an
initialised DRE generator written as train.py writes them, plus a config file
and the workdir's config.json.
"""

from __future__ import annotations

import json
import os
import subprocess

import jax
import numpy as np
import tensorflow_datasets as tfds

from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
import data_util
import util

SIZE = data_util.BOXES_SIZE


CONFIG_TEMPLATE = """
from dre_jax import config as config_lib

def get_config():
  c = config_lib.default_config()
  c.dataset.name = "tiny_boxes"
  c.dataset.data_dir = {data_dir!r}
  c.dataset.image_size = {size}
  c.dataset.num_classes = 4
  c.model.name = "tiny_cnn"
  c.model.checkpoint = {classifier!r}
  c.eval.batch_size = 4
  c.eval.shard_size = 8
  c.eval.num_steps = 8
  c.eval.tie_break_effect_images = 8
  c.eval.figure_images = 3
  return c
"""


def _train_classifier(data_dir: str, size: int, steps: int = 60) -> Classifier:
  """tiny_cnn fitted to the colours of the train split (seconds); it gets the
  relabelled fifth of the test images wrong."""
  import optax  # pylint: disable=import-outside-toplevel
  builder = tfds.builder("tiny_boxes", data_dir=data_dir)
  data = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
  images = jax.image.resize(data["image"].astype(np.float32) / 255,
                            (len(data["image"]), size, size, 3), "bilinear")
  labels = data["label"]
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4,
                        image_size=size)
  tx = optax.adam(3e-3)
  params, stats = clf.variables["params"], clf.variables["batch_stats"]
  opt = tx.init(params)

  @jax.jit
  def step(params, stats, opt):
    def loss(p):
      logits, updates = clf.module.apply(
          {"params": p, "batch_stats": stats}, clf.preprocess(images),
          train=True, mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(
          logits[0], labels).mean(), updates["batch_stats"]
    (_, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = tx.update(grads, opt)
    return optax.apply_updates(params, updates), stats, opt

  for _ in range(steps):
    params, stats, opt = step(params, stats, opt)
  return Classifier.create("tiny_cnn", {"params": params, "batch_stats": stats})


def make_workdir(root: str, size: int = SIZE) -> tuple[str, str]:
  """(workdir, config path): the dataset prepared under root/tfds."""
  data_dir = data_util.prepare("tiny_boxes", os.path.join(root, "tfds"))
  workdir = os.path.join(root, "workdir")
  classifier = _train_classifier(data_dir, size)
  dre = DRE.create("tiny_cnn", 4)
  util.write_workdir(workdir, classifier, dre,
                     dre.init_generator(jax.random.key(1), classifier, size), size)
  config_path = os.path.join(root, "tiny_eval_config.py")
  with open(config_path, "w") as f:
    f.write(CONFIG_TEMPLATE.format(data_dir=data_dir, size=size,
                                   classifier=os.path.join(workdir, "classifier")))
  # config.json as train.py writes it (the config's JSON).
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(util.load_config_file(config_path).to_json())
  return workdir, config_path


def evaluate_command(workdir: str, *flags: str) -> list[str]:
  return util.cli_command("evaluate.py", f"--workdir={workdir}", "--noprogress",
                          *flags)


def run_evaluate(workdir: str, *flags: str, num_devices: int = 1,
                 timeout: float = 600, check: bool = True, env: dict | None = None
                 ) -> subprocess.CompletedProcess:
  return util.run_cli(evaluate_command(workdir, *flags), num_devices=num_devices,
                      timeout=timeout, check=check, env=env)


def read_results(workdir: str, link: str = "eval") -> dict:
  with open(os.path.join(workdir, link, "results.json")) as f:
    return json.load(f)


# --- In-process protocol inputs (no TFDS): shared by test_evaluation.py and
# the 8-device / 2-process scripts it runs.

PROTOCOL_KW = dict(num_steps=8, batch_size=8, shard_size=8, seed=3,
                   tie_break_effect_images=8, figure_images=2)


def protocol_inputs(num_images: int = 20, size: int = SIZE):
  """(classifier, arrays, methods): tiny_cnn with random weights, images with a
  bright square and its box, and three explainers: a centre Gaussian (no
  ties), random maps (uses the key) and the box itself (ties: 0 / 1)."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from dre_jax.evaluation import protocol  # pylint: disable=import-outside-toplevel
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4,
                        image_size=size)
  rng = np.random.default_rng(0)
  images = rng.uniform(0.2, 0.6, (num_images, size, size, 3)).astype(np.float32)
  boxes = np.zeros((num_images, size, size), np.float32)
  for n in range(num_images):
    y, x = rng.integers(0, size // 2, 2)
    images[n, y:y + size // 3, x:x + size // 3] = rng.uniform(0.7, 1.0, 3)
    boxes[n, y:y + size // 3, x:x + size // 3] = 1
  arrays = {"image": images, "label": rng.integers(0, 4, num_images).astype(np.int32),
            "box_mask": boxes}
  yy, xx = np.mgrid[:size, :size] / size - 0.5
  # A centre Gaussian plus a ramp that makes every score distinct (no ties).
  centre = (np.exp(-(yy ** 2 + xx ** 2) / 0.08)
            + 1e-2 * np.arange(size * size).reshape(size, size) / size ** 2
            ).astype(np.float32)

  def centre_map(classifier, x, t, key):
    del classifier, t, key
    return jnp.broadcast_to(jnp.asarray(centre), x.shape[:3])

  def random_map(classifier, x, t, key):
    del classifier, t
    return jax.random.uniform(key, x.shape[:3])

  def box_map(classifier, x, t, key):
    del classifier, t, key
    # The box is where the bright square is: pixels brighter than the noise.
    return (jnp.min(x, axis=-1) > 0.6).astype(jnp.float32)

  methods = [protocol.EvalMethod("centre", centre_map),
             protocol.EvalMethod("random", random_map),
             protocol.EvalMethod("box", box_map)]
  return clf, arrays, methods


def run_protocol(cache_dir: str, num_images: int = 20, max_shards=None,
                 mesh=None, constants=None, **overrides):
  """protocol.run + cache.collect + summarise on `protocol_inputs` -> (summary, per_image)."""
  from dre_jax.evaluation import cache, protocol, results  # pylint: disable=import-outside-toplevel
  clf, arrays, methods = protocol_inputs(num_images)
  sample = protocol.make_sample(num_images + 7, num_images=num_images, seed=5)
  padded = {k: np.concatenate([v, v[:7]]) for k, v in arrays.items()}
  p = protocol.Protocol(**{**PROTOCOL_KW, **overrides})
  dirs = protocol.run(clf, methods, sample, protocol.array_source(padded),
                      cache_dir, p, max_shards=max_shards, mesh=mesh,
                      progress=False, constants=constants)
  per_method, common = cache.collect(dirs, [m.name for m in methods], sample,
                                     p, max_shards)
  return results.summarise(per_method, common, labels_match=True)
