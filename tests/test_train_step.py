"""One training step of every stage and architecture, on `tfds.testing.mock_data`.

A batch comes from the real input pipeline (`places365_small` mocked by TFDS)
and goes through the jitted step of `dre_jax.training.steps` on a one-device
mesh. What a step must do, checked against Adam's own arithmetic: its first
update moves every parameter with a non-zero gradient by at most the learning
rate (|m / sqrt(v)| = 1), and the parameters a stage freezes do not move at all.
"""

import functools
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from dre_jax import config as config_lib
from dre_jax import models
from dre_jax import parallel
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.perturbation import BackgroundConfig
from dre_jax.io import classifier_dir
from dre_jax.training import input as input_lib
from dre_jax.training import objectives
from dre_jax.training import optimizers
from dre_jax.training import stages
from dre_jax.training import steps
from dre_jax.training import trainer
from dre_jax.training.steps import TrainState

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


def _stage2_setup(dre, classifier_variables, size, config=None):
  """(initial state, jitted stage-2 step) with Adam at 1e-2."""
  gen = dre.init_generator(jax.random.key(1), classifier_variables, size)
  schedule = optax.constant_schedule(1e-2)
  tx = optimizers.masked(optax.adam(schedule), train_embeddings=False)
  state = TrainState.start(gen["params"], gen["batch_stats"], tx)
  step = jax.jit(functools.partial(
      steps.dre_step, dre=dre, schedule=schedule,
      backgrounds=BackgroundConfig(),
      config=config or config_lib.default_config(), seed=0))
  return state, step


def _stage2_step(dre, classifier_variables, batch, size, config=None):
  state, step = _stage2_setup(dre, classifier_variables, size, config)
  new_state, metrics = step(state, batch, classifier_variables)
  return state, new_state, jax.device_get(metrics)


@pytest.mark.slow  # ~16 s even for tiny_cnn
def test_stage2_step_moves_the_generator_but_not_the_embeddings(batch):
  dre = DRE.create("tiny_cnn", num_classes=10)
  classifier_variables = Classifier.init("tiny_cnn", jax.random.key(0),
                                        num_classes=10, image_size=64)
  state, new_state, metrics = _stage2_step(dre, classifier_variables, batch, 64)
  assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
  assert 0 <= metrics["accuracy"] <= 1 and 0 < metrics["mask_mean"] < 1
  assert metrics["learning_rate"] == pytest.approx(1e-2)
  _check_adam_first_step(state.params, new_state.params, 1e-2,
                         lambda p: not _is_embedding(p))
  assert int(new_state.step) == 1
  # Training-mode BatchNorm updated the running statistics.
  changed = [not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(jax.device_get(state.batch_stats)),
      jax.tree.leaves(jax.device_get(new_state.batch_stats)))]
  assert all(changed)


@pytest.mark.parametrize("arch", ["resnet50", "vgg19", "googlenet",
                                  "efficientnet_lite0"])
def test_stage2_step_of_every_backbone_traces_to_the_same_state(arch, batch):
  """The paper's backbones in the stage-2 step, traced from initialisation on
  (`jax.eval_shape`, nothing computed): the generator fits the classifier's
  taps and the step returns a state of the same structure, shapes and dtypes,
  and scalar metrics. The step's numerics are the architecture-independent
  ones of the tiny_cnn test above (initialising and compiling a full-size
  network's backward costs a minute or more per network on 2 cores)."""
  dre = DRE.create(arch, num_classes=10)

  def step_from_scratch(key):
    classifier = Classifier.init(arch, key, num_classes=10, image_size=64)
    state, step = _stage2_setup(dre, classifier, 64)
    return (state, *step(state, batch, classifier))

  state, new_state, metrics = jax.eval_shape(step_from_scratch,
                                             jax.random.key(0))
  shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
  assert shapes(new_state) == shapes(state)
  assert {"loss", "accuracy", "mask_mean", "learning_rate"} <= set(metrics)
  assert all(m.shape == () for m in jax.tree.leaves(metrics))


def test_stage1_step_moves_only_the_embeddings_of_the_batch(batch):
  dre = DRE.create("tiny_cnn", num_classes=10)
  classifier_variables = Classifier.init("tiny_cnn", jax.random.key(0),
                                        num_classes=10, image_size=64)
  gen = dre.init_generator(jax.random.key(1), classifier_variables, 64)
  schedule = optax.constant_schedule(1e-3)
  tx = optimizers.masked(optax.adam(schedule), train_embeddings=True)
  state = TrainState.start(gen["params"], gen["batch_stats"], tx)
  step = jax.jit(functools.partial(steps.embeddings_step, dre=dre,
                                   schedule=schedule, fake_prob=0.5, seed=0))
  new_state, metrics = step(state, batch, classifier_variables)
  assert np.isfinite(float(metrics["loss"]))
  before = _flat(state.params)
  after = _flat(new_state.params)
  for path in before:
    if not _is_embedding(path):
      np.testing.assert_array_equal(before[path], after[path])
  table_delta = np.abs(after[("spatial_filter", "embedding")]
                       - before[("spatial_filter", "embedding")])
  assert table_delta.max() <= 1e-3 * (1 + 1e-4)
  # Only rows of labels used in the batch (true or fake) have a gradient.
  assert 1 <= np.sum(table_delta.max(axis=1) > 0) <= BATCH


@pytest.mark.parametrize("microbatches", [1, 2])
def test_classifier_step_learns_the_batch(batch, microbatches):
  dre = DRE.create("tiny_cnn", num_classes=10)
  classifier = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                               image_size=64)
  module, spec, variables = classifier.module, classifier.spec, classifier.variables
  schedule = optax.constant_schedule(0.05)
  tx = optax.sgd(schedule, momentum=0.9)
  state = TrainState.start(variables["params"], variables["batch_stats"], tx)
  step = jax.jit(functools.partial(steps.classifier_step, module=module,
                                   spec=spec, schedule=schedule, seed=0,
                                   microbatches=microbatches))
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


def test_microbatches_give_the_whole_batch_gradient_of_a_mean_loss():
  """Least squares, loss = mean_n (x_n . w - y_n)^2: its gradient over the
  batch is the mean of the slices' gradients exactly; BatchNorm-like state
  passes through every slice once; each slice gets its own key."""
  rng = np.random.default_rng(0)
  batch = {"x": jnp.asarray(rng.normal(size=(12, 3)), jnp.float32),
           "y": jnp.asarray(rng.normal(size=(12,)), jnp.float32)}
  w = jnp.asarray([0.5, -1.0, 2.0])

  def loss_fn(params, count, part, key):
    residual = part["x"] @ params - part["y"]
    return jnp.mean(residual ** 2), (count + 1, {
        "max_abs": jnp.max(jnp.abs(residual)),
        "draw": jax.random.uniform(key)})

  key = jax.random.key(3)
  (loss1, (count1, m1)), g1 = steps.value_and_grad_over(loss_fn, w, 0, batch, key)
  (loss4, (count4, m4)), g4 = jax.jit(functools.partial(
      steps.value_and_grad_over, loss_fn, microbatches=4))(w, 0, batch, key)
  x, y = np.asarray(batch["x"], np.float64), np.asarray(batch["y"], np.float64)
  r = x @ np.asarray(w, np.float64) - y
  np.testing.assert_allclose(loss4, np.mean(r ** 2), rtol=1e-6)
  np.testing.assert_allclose(g4, 2 * x.T @ r / len(r), rtol=1e-5)
  np.testing.assert_allclose(g4, g1, rtol=1e-5)
  assert int(count1) == 1 and int(count4) == 4
  # Slice i holds rows i, i + 4, i + 8: the metric is the slices' mean.
  slice_max = [np.max(np.abs(r[i::4])) for i in range(4)]
  np.testing.assert_allclose(m4["max_abs"], np.mean(slice_max), rtol=1e-5)
  draws = [float(jax.random.uniform(jax.random.fold_in(key, i))) for i in range(4)]
  np.testing.assert_allclose(m4["draw"], np.mean(draws), rtol=1e-6)
  with pytest.raises(ValueError, match="config.microbatches"):
    steps.value_and_grad_over(loss_fn, w, 0, batch, key, microbatches=5)


def test_microbatches_must_divide_every_stage_batch():
  config = config_lib.paper_config("composites", "resnet50", classifier_epochs=1)
  config.microbatches = 4
  config_lib.validate(config)  # 64 / 4
  config.embeddings.batch_size = 30
  with pytest.raises(ValueError, match="embeddings.batch_size=30"):
    config_lib.validate(config)
  config.embeddings.batch_size = 64
  config.microbatches = 0
  with pytest.raises(ValueError, match="microbatches must be >= 1"):
    config_lib.validate(config)


# ------------------------------------------------- schedules and fine-tuning


def test_step_and_halving_schedules_follow_their_closed_forms():
  c = config_lib.default_config().classifier
  c.learning_rate, c.lr_schedule = 0.1, "step"
  c.lr_step_epochs, c.lr_step_factor, c.epochs = 2, 0.1, 6
  schedule = optimizers.classifier_schedule(c, steps_per_epoch=5)
  for step in (0, 9, 10, 19, 20, 29):  # lr * factor ** floor(step / (2 * 5))
    assert float(schedule(step)) == pytest.approx(0.1 * 0.1 ** (step // 10))
  d = config_lib.default_config().dre  # Sec. 4.1: 1e-2 halved every 3 epochs
  schedule = optimizers.dre_schedule(d, steps_per_epoch=4)
  for step in (0, 11, 12, 23, 24, 39):
    assert float(schedule(step)) == pytest.approx(1e-2 * 0.5 ** (step // 12))
  c.lr_schedule = "cosine"
  schedule = optimizers.classifier_schedule(c, steps_per_epoch=5)
  assert float(schedule(15)) == pytest.approx(0.05)  # half way: lr / 2
  assert float(schedule(30)) == pytest.approx(0.0, abs=1e-9)


def _tiny_torch_state_dict(variables):
  """tiny_cnn Flax variables as the PyTorch state_dict they convert from."""
  spec = models.get("tiny_cnn")
  out = {}
  for path, value in flax.traverse_util.flatten_dict(variables).items():
    value = np.asarray(value)
    if path[-1] == "kernel":
      value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
    out[spec.torch_key(path)] = np.ascontiguousarray(value)
  return out


@pytest.mark.parametrize("source", ["checkpoint", "torch_weights"])
def test_fine_tuning_starts_from_the_weights_with_a_new_head(tmp_path, source):
  """_load_weights reads a 1000-class classifier; _with_new_head keeps every
  tensor but the 1000-way head, which comes fresh at the dataset's 4 classes."""
  pretrained = Classifier.init("tiny_cnn", jax.random.key(3), num_classes=1000,
                               image_size=64).variables
  config = config_lib.default_config()
  config.model.name = "tiny_cnn"
  if source == "checkpoint":
    config.model.checkpoint = classifier_dir.save_classifier(
        tmp_path / "weights", "tiny_cnn", 1000, pretrained)
  else:
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pth"
    torch.save({k: torch.from_numpy(v) for k, v in
                _tiny_torch_state_dict(pretrained).items()}, path)
    config.model.torch_weights = str(path)
  spec = models.get("tiny_cnn")
  variables, num_classes = stages._load_weights(config, spec, jnp.float32)  # pylint: disable=protected-access
  assert num_classes == 1000
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(variables),
               jax.device_get(pretrained))
  fresh = spec.build(num_classes=4).init(jax.random.key(9),
                                         jnp.zeros((1, 64, 64, 3)))
  tuned = _flat(stages._with_new_head(variables, fresh))  # pylint: disable=protected-access
  old, new = _flat(pretrained), _flat(fresh)
  assert tuned.keys() == new.keys()
  for path, value in tuned.items():
    expected = new[path] if path[1] == "fc" else old[path]
    np.testing.assert_array_equal(value, expected, err_msg=str(path))
  assert tuned[("params", "fc", "kernel")].shape == (128, 4)


def test_changed_config_warns_once_with_the_fields(tmp_path, caplog):
  config = config_lib.default_config()
  trainer._check_workdir_config(config, str(tmp_path))  # pylint: disable=protected-access
  assert (tmp_path / "config.json").exists()
  config.dre.epochs, config.generator.eta = 3, 2.0
  with caplog.at_level("WARNING"):
    trainer._check_workdir_config(config, str(tmp_path))  # pylint: disable=protected-access
  warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert len(warnings) == 1
  assert "dre.epochs, generator.eta; finished stages are kept" in warnings[0]


def test_config_json_of_an_older_workdir_is_compared_in_todays_names(tmp_path,
                                                                     caplog):
  config = config_lib.default_config()
  old = json.loads(config.to_json())
  old["dre"].update(old.pop("generator"))  # the layout before config.generator
  (tmp_path / "config.json").write_text(json.dumps(old))
  with caplog.at_level("WARNING"):
    trainer._check_workdir_config(config, str(tmp_path))  # pylint: disable=protected-access
  assert not [r for r in caplog.records if r.levelname == "WARNING"]


# ---------------------------------------------------------- stage-2 objectives


@pytest.mark.slow  # four compiled stage-2 losses and a gradient
def test_constraints_add_the_eq2_terms_to_eq9(batch):
  """Sec. 4.4.3: loss = Eq. 9 + lambda_av mean(M) + lambda_tv TV(M)
  + lambda_bg f_t(psi(I, 1 - M)); all weights 0 is dre.loss exactly."""
  dre = DRE.create("tiny_cnn", num_classes=10)
  classifier = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                               image_size=64)
  gen = dre.init_generator(jax.random.key(1), classifier, 64)
  key, images = jax.random.key(5), batch["image"]
  config = config_lib.default_config()
  objective = objectives.get("dre")
  rest = (gen["batch_stats"], classifier, images, key, BackgroundConfig())

  def loss_of(settings):
    """The dre objective under `settings` (a config), compiled."""
    return jax.jit(lambda p: objective(dre, p, *rest, settings))

  base, (_, aux) = jax.jit(lambda p: dre.loss(p, *rest))(gen["params"])
  plain, _ = loss_of(config)(gen["params"])
  assert float(plain) == float(base)

  masks = np.asarray(aux["masks"], np.float64)
  tv = (np.mean(np.diff(masks, axis=1) ** 2)
        + np.mean(np.diff(masks, axis=2) ** 2))
  config.dre.constraints.update({"area": 2.0, "smoothness": 3.0})
  loss, (_, aux2) = loss_of(config)(gen["params"])
  np.testing.assert_allclose(float(loss),
                             float(base) + 2.0 * masks.mean() + 3.0 * tv,
                             rtol=1e-5)
  assert set(aux2) >= {"constraint_area", "constraint_smoothness"}

  config.dre.constraints.update({"area": 0.0, "smoothness": 0.0,
                                 "background": 1.0})
  loss, (_, aux3) = loss_of(config)(gen["params"])
  background = float(aux3["constraint_background"])
  assert 0 < background < 1  # a mean probability
  np.testing.assert_allclose(float(loss), float(base) + background, rtol=1e-6)
  # The background term differentiates: the masks get a gradient from it.
  grads = jax.jit(jax.grad(lambda p: loss_of(config)(p)[0]))(gen["params"])
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grads))


def test_objectives_are_looked_up_by_name():
  assert objectives.get("dre") is objectives.dre_objective
  for name in config_lib.OBJECTIVES:  # the one list: each has its function
    assert callable(objectives.get(name)), name
  with pytest.raises(ValueError, match="unknown stage-2 objective 'mse'.*dre"):
    objectives.get("mse")
