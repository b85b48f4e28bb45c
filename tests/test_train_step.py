"""One training step of every stage and architecture, on `tfds.testing.mock_data`.

A batch comes from the real input pipeline (`places365_small` mocked by TFDS)
and goes through the jitted step of `dre_jax.training.trainer` on a one-device
mesh. What a step must do, checked against Adam's own arithmetic: its first
update moves every parameter with a non-zero gradient by at most the learning
rate (|m / sqrt(v)| = 1), and the parameters a stage freezes do not move at all.
"""

import functools
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.perturbation import BackgroundConfig
from dre_jax.training import input as input_lib
from dre_jax.training import parallel
from dre_jax.training import trainer

NUM_MOCK = 8
BATCH = 4


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
  """A global batch of 64-px mock Places365 images from the training pipeline."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder = tfds.builder("places365_small", data_dir=data_dir)
  template = tfds.core.ShardedFileTemplate(
      data_dir=builder.data_dir, dataset_name=builder.name,
      filetype_suffix="tfrecord")
  builder.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
      name="train", shard_lengths=[NUM_MOCK], num_bytes=0,
      filename_template=template.replace(split="train"))]))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)
  data = input_lib.TrainInput(name="places365_small", split="train",
                              batch_size=BATCH, image_size=64, augment=False,
                              data_dir=data_dir, shuffle_buffer=NUM_MOCK)
  with tfds.testing.mock_data(num_examples=NUM_MOCK, data_dir=data_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    assert data.steps_per_epoch() == NUM_MOCK // BATCH
    local = next(data.epoch(0))
  assert local["image"].shape == (BATCH, 64, 64, 3)
  return parallel.global_batch(parallel.make_mesh(), local)


def _flat(tree):
  return flax.traverse_util.flatten_dict(jax.device_get(tree))


def _is_embedding(path):
  return path[0] == "spatial_filter" and path[-1] == "embedding"


def _check_adam_first_step(before, after, lr, moves):
  """Params for which moves(path) is True changed, by at most lr; others did not."""
  before, after = _flat(before), _flat(after)
  assert before.keys() == after.keys()
  moved = 0
  for path, old in before.items():
    delta = np.abs(after[path] - old)
    if moves(path):
      assert delta.max() <= lr * (1 + 1e-4), path
      moved += int(delta.max() > 0)
    else:
      np.testing.assert_array_equal(delta, 0, err_msg=str(path))
  assert moved >= sum(map(moves, before)) // 2  # most trainable params moved
  return moved


def _stage2_step(dre, classifier_variables, batch, size):
  gen = dre.init_generator(jax.random.key(1), classifier_variables, size)
  schedule = optax.constant_schedule(1e-2)
  tx = trainer._masked(optax.adam(schedule), train_embeddings=False)  # pylint: disable=protected-access
  state = trainer.init_state(gen["params"], gen["batch_stats"], tx)
  step = jax.jit(functools.partial(
      trainer.dre_step, dre=dre, tx=tx, schedule=schedule,
      backgrounds=BackgroundConfig(), seed=0))
  new_state, metrics = step(state, batch, classifier_variables)
  return state, new_state, jax.device_get(metrics)


@pytest.mark.parametrize("arch", ["resnet50", "vgg19", "googlenet",
                                  "efficientnet_lite0", "tiny_cnn"])
def test_stage2_step_moves_the_generator_but_not_the_embeddings(arch, batch):
  dre = DRE.create(arch, num_classes=10)
  classifier_variables = Classifier.init(arch, jax.random.key(0),
                                        num_classes=10, image_size=64)
  state, new_state, metrics = _stage2_step(dre, classifier_variables, batch, 64)
  assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
  assert 0 <= metrics["accuracy"] <= 1 and 0 < metrics["mask_mean"] < 1
  assert metrics["learning_rate"] == pytest.approx(1e-2)
  _check_adam_first_step(state["params"], new_state["params"], 1e-2,
                         lambda p: not _is_embedding(p))
  assert int(new_state["step"]) == 1
  # Training-mode BatchNorm updated the running statistics.
  changed = [not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(jax.device_get(state["batch_stats"])),
      jax.tree.leaves(jax.device_get(new_state["batch_stats"])))]
  assert all(changed)


def test_stage1_step_moves_only_the_embeddings_of_the_batch(batch):
  dre = DRE.create("tiny_cnn", num_classes=10)
  classifier_variables = Classifier.init("tiny_cnn", jax.random.key(0),
                                        num_classes=10, image_size=64)
  gen = dre.init_generator(jax.random.key(1), classifier_variables, 64)
  schedule = optax.constant_schedule(1e-3)
  tx = trainer._masked(optax.adam(schedule), train_embeddings=True)  # pylint: disable=protected-access
  state = trainer.init_state(gen["params"], gen["batch_stats"], tx)
  step = jax.jit(functools.partial(trainer.embeddings_step, dre=dre, tx=tx,
                                   schedule=schedule, fake_prob=0.5, seed=0))
  new_state, metrics = step(state, batch, classifier_variables)
  assert np.isfinite(float(metrics["loss"]))
  before = _flat(state["params"])
  after = _flat(new_state["params"])
  for path in before:
    if not _is_embedding(path):
      np.testing.assert_array_equal(before[path], after[path])
  table_delta = np.abs(after[("spatial_filter", "embedding")]
                       - before[("spatial_filter", "embedding")])
  assert table_delta.max() <= 1e-3 * (1 + 1e-4)
  # Only rows of labels used in the batch (true or fake) have a gradient.
  assert 1 <= np.sum(table_delta.max(axis=1) > 0) <= BATCH


def test_classifier_step_learns_the_batch(batch):
  dre = DRE.create("tiny_cnn", num_classes=10)
  classifier = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                               image_size=64)
  module, spec, variables = classifier.module, classifier.spec, classifier.variables
  schedule = optax.constant_schedule(0.05)
  tx = optax.sgd(schedule, momentum=0.9)
  state = trainer.init_state(variables["params"], variables["batch_stats"], tx)
  step = jax.jit(functools.partial(trainer.classifier_step, module=module,
                                   spec=spec, tx=tx, schedule=schedule, seed=0))
  batch = {**batch, "label": batch["label"] % 10}  # mock labels go to 364
  losses = []
  for _ in range(5):
    state, metrics = step(state, batch, None)
    losses.append(float(metrics["loss"]))
  # Repeated steps on one batch must fit it: the loss falls.
  assert losses[-1] < losses[0], losses
  # The first loss is the cross-entropy of a freshly initialised model,
  # close to log(10) for 10 classes.
  assert abs(losses[0] - np.log(10)) < 1.0
