"""The training stages of DRE, run by `train.py`: `train_and_evaluate(config, workdir)`.

    0. classifier   fine-tune the classifier (config.classifier.epochs > 0),
                    from converted torchvision weights or from scratch, or
                    take the given weights as they are; then frozen.
    1. embeddings   stage 1: the spatial filter's class embeddings, Eq. 4,
                    true and fake labels; nothing else moves.
    2. dre          stage 2: the rest of the generator under Eq. 9 alone,
                    Adam, learning rate halved every 3 epochs (Sec. 4.1).

Each stage is skipped when its final checkpoint exists and resumes from its
newest checkpoint otherwise. The same config and seed give the same result:
the key of step s of stage k is fold_in(fold_in(key(seed), k), s) and the data
order depends only on (seed, epoch) (`dre_jax.data.pipelines`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Callable, Iterator

from absl import logging
from clu import metric_writers
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax import config as config_lib
from dre_jax.io import classifier_dir
from dre_jax.io import pth
from dre_jax.io import torch_weights
from dre_jax.io import workdir as workdir_lib
from dre_jax.models import registry
from dre_jax.perturbation import BackgroundConfig
from dre_jax.training import checkpoints
from dre_jax.training import input as input_lib
from dre_jax.training import parallel

State = dict[str, Any]  # {"params", "batch_stats", "opt_state", "step"}
StepFn = Callable[[State, dict[str, jax.Array], Any], tuple[State, dict]]


# ----------------------------------------------------------------------------
# Optimisers.


def _trainable_mask(params, train_embeddings: bool):
  """Labels "train"/"frozen": stage 1 moves only the embeddings, stage 2 the rest."""
  def label(path, _):
    is_embedding = path[:1] == ("spatial_filter",) and path[-1] == "embedding"
    return "train" if is_embedding == train_embeddings else "frozen"
  return flax.traverse_util.path_aware_map(label, params)


def _masked(tx: optax.GradientTransformation, train_embeddings: bool):
  return optax.multi_transform(
      {"train": tx, "frozen": optax.set_to_zero()},
      functools.partial(_trainable_mask, train_embeddings=train_embeddings))


def classifier_schedule(c: ml_collections.ConfigDict, steps_per_epoch: int):
  total = c.epochs * steps_per_epoch
  if c.lr_schedule == "cosine":
    return optax.cosine_decay_schedule(c.learning_rate, total)
  if c.lr_schedule == "step":
    return optax.exponential_decay(c.learning_rate,
                                   c.lr_step_epochs * steps_per_epoch,
                                   c.lr_step_factor, staircase=True)
  return optax.constant_schedule(c.learning_rate)


def classifier_optimizer(c: ml_collections.ConfigDict, schedule):
  if c.optimizer == "sgd":
    return optax.chain(optax.add_decayed_weights(c.weight_decay),
                       optax.sgd(schedule, momentum=c.momentum))
  return optax.adamw(schedule, weight_decay=c.weight_decay)


def dre_schedule(c: ml_collections.ConfigDict, steps_per_epoch: int):
  """Sec. 4.1: initial rate 1e-2, halved every 3 epochs (step decay)."""
  return optax.exponential_decay(
      c.learning_rate, c.lr_halve_every_epochs * steps_per_epoch, 0.5,
      staircase=True)


# ----------------------------------------------------------------------------
# Training steps: pure functions of (state, global batch, frozen variables).


def _step_key(seed: int, stage: int, step: jax.Array) -> jax.Array:
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), stage),
                            step)


def classifier_step(state: State, batch, frozen, *, module, spec, tx, schedule,
                    seed: int) -> tuple[State, dict]:
  """One SGD/Adam step of the classifier on cross-entropy with the labels."""
  del frozen
  key = _step_key(seed, 0, state["step"])

  def loss_fn(params):
    variables = {"params": params, "batch_stats": state["batch_stats"]}
    (logits, _), updates = module.apply(
        variables, spec.preprocess(batch["image"]), train=True,
        mutable=["batch_stats"], rngs={"dropout": key})
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (updates.get("batch_stats", {}), accuracy)

  (loss, (batch_stats, accuracy)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state["params"])
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {"params": optax.apply_updates(state["params"], updates),
               "batch_stats": batch_stats, "opt_state": opt_state,
               "step": state["step"] + 1}
  return new_state, {"loss": loss, "accuracy": accuracy,
                     "learning_rate": schedule(state["step"])}


def embeddings_step(state: State, batch, classifier: Classifier, *, dre: DRE, tx,
                    schedule, fake_prob: float, seed: int) -> tuple[State, dict]:
  """Stage 1, Eq. 4: only the embedding table moves (the others are masked)."""
  key = _step_key(seed, 1, state["step"])
  loss, grads = jax.value_and_grad(dre.embedding_loss)(
      state["params"], classifier, batch["image"], key, fake_prob)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {**state, "params": optax.apply_updates(state["params"], updates),
               "opt_state": opt_state, "step": state["step"] + 1}
  return new_state, {"loss": loss, "learning_rate": schedule(state["step"])}


def dre_step(state: State, batch, classifier: Classifier, *, dre: DRE, tx,
             schedule, backgrounds: BackgroundConfig, seed: int
             ) -> tuple[State, dict]:
  """Stage 2, Eq. 9: the generator except the embeddings, t = argmax f(I)."""
  key = _step_key(seed, 2, state["step"])
  (loss, (batch_stats, aux)), grads = jax.value_and_grad(dre.loss, has_aux=True)(
      state["params"], state["batch_stats"], classifier,
      batch["image"], key, backgrounds)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {"params": optax.apply_updates(state["params"], updates),
               "batch_stats": batch_stats, "opt_state": opt_state,
               "step": state["step"] + 1}
  return new_state, {"loss": loss, "accuracy": aux["accuracy"],
                     "mask_mean": aux["mask_mean"],
                     "learning_rate": schedule(state["step"])}


def init_state(params, batch_stats, tx) -> State:
  return {"params": params, "batch_stats": batch_stats,
          "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}


# ----------------------------------------------------------------------------
# The loop shared by the stages.


@dataclasses.dataclass
class Stage:
  """One training stage: its data, epochs and step function."""

  name: str
  input: input_lib.TrainInput
  epochs: int
  step_fn: StepFn
  frozen: Any            # variables passed to every step unchanged


class _Progress:
  """tqdm bar with ETA on a terminal (process 0), else periodic log lines."""

  def __init__(self, stage: str, start: int, total: int):
    self._stage, self._total = stage, total
    self._bar = None
    self._t0, self._s0 = time.perf_counter(), start
    if jax.process_index() == 0 and sys.stderr.isatty():
      import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm.tqdm(total=total, initial=start, desc=stage,
                            dynamic_ncols=True)

  def update(self, step: int, metrics: dict[str, float] | None) -> None:
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if metrics:
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})
    elif metrics is not None and jax.process_index() == 0:
      done = step - self._s0
      eta = (time.perf_counter() - self._t0) / max(done, 1) * (
          self._total - step)
      logging.info("%s step %d/%d, ETA %s: %s", self._stage, step, self._total,
                   _format_seconds(eta),
                   ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def _format_seconds(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def _batches(stage: Stage, mesh, start_step: int, steps_per_epoch: int
             ) -> Iterator[dict[str, jax.Array]]:
  """Global batches from step `start_step` on, epoch after epoch."""
  epoch, skip = divmod(start_step, steps_per_epoch)
  for e in range(epoch, stage.epochs):
    for local in stage.input.epoch(e, skip if e == epoch else 0):
      yield parallel.global_batch(mesh, local)


def run_stage(stage: Stage, state: State, mesh, workdir: str,
              config: ml_collections.ConfigDict,
              writer: metric_writers.MetricWriter) -> tuple[State, dict]:
  """Trains `state` through the stage, resuming from and writing checkpoints.

  Returns (final state, last logged metrics). A stage whose final checkpoint
  exists is restored without training.
  """
  steps_per_epoch = stage.input.steps_per_epoch()
  total = stage.epochs * steps_per_epoch
  ckpt = checkpoints.StageCheckpoints(workdir, stage.name,
                                      config.keep_checkpoints)
  start = ckpt.latest_step() or 0
  summary = {}
  if start:
    state, data = ckpt.restore(start, state)
    summary = data.get("metrics", {})
    if data["epoch"] * steps_per_epoch + data["batch"] != start:
      raise ValueError(
          f"{ckpt.directory}/{start} was written with {data['batch_size']} "
          f"images per batch, the config now says {stage.input.batch_size}; "
          "use the config that wrote it or another --workdir")
    logging.info("%s: resuming at step %d of %d (epoch %d, batch %d)",
                 stage.name, start, total, data["epoch"], data["batch"])
  if start >= total:
    ckpt.close()
    logging.info("%s: done earlier (checkpoint at step %d), skipped",
                 stage.name, start)
    return state, summary

  step_fn = jax.jit(stage.step_fn, donate_argnums=0)
  progress = _Progress(stage.name, start, total)
  pending, timer = [], None
  batch_size = stage.input.batch_size
  try:
    for step, batch in enumerate(_batches(stage, mesh, start, steps_per_epoch),
                                 start=start + 1):
      state, metrics = step_fn(state, batch, stage.frozen)
      pending.append(metrics)
      logged = None
      if step % config.log_every_steps == 0 or step == total:
        logged = {k: float(np.mean(v)) for k, v in
                  jax.tree.map(lambda *x: np.stack(x),
                               *jax.device_get(pending)).items()}
        now = time.perf_counter()
        if timer is not None:  # the first interval includes compilation
          logged["images_per_second"] = (
              (step - timer[1]) * batch_size / (now - timer[0]))
        timer, pending = (now, step), []
        writer.write_scalars(step, {f"{stage.name}/{k}": v
                                    for k, v in logged.items()})
        summary = logged
      progress.update(step, logged)
      if step % config.checkpoint_every_steps == 0 or step == total:
        epoch, batch_index = divmod(step, steps_per_epoch)
        ckpt.save(step, state, {"epoch": epoch, "batch": batch_index,
                                "batch_size": batch_size,
                                "metrics": summary})
  finally:
    progress.close()
    ckpt.close()
    writer.flush()
  if int(state["step"]) != total:
    raise RuntimeError(f"{stage.name}: the data ended at step "
                       f"{int(state['step'])} of {total}")
  return state, summary


# ----------------------------------------------------------------------------
# The stages.


def _load_weights(config: ml_collections.ConfigDict, spec: registry.ClassifierSpec,
                  dtype) -> tuple[dict | None, int | None]:
  """(variables, their class count) from config.model, or (None, None)."""
  m = config.model
  if m.checkpoint:
    loaded = classifier_dir.load_classifier(m.checkpoint, dtype)
    if loaded.spec.name != spec.name:
      raise ValueError(f"config.model.checkpoint holds a {loaded.spec.name}, "
                       f"config.model.name says {spec.name}")
    return loaded.variables, loaded.num_classes
  if m.torch_weights:
    state_dict = pth.load_state_dict(m.torch_weights)
    num_classes = torch_weights.infer_num_classes(spec, state_dict)
    return (torch_weights.torch_to_flax(spec, state_dict, num_classes, dtype),
            num_classes)
  return None, None


def _with_new_head(variables, fresh) -> dict:
  """`fresh` with the entries of `variables` whose shapes match (all but the head)."""
  old = flax.traverse_util.flatten_dict(variables)
  new = flax.traverse_util.flatten_dict(fresh)
  return flax.traverse_util.unflatten_dict(
      {p: (old[p] if p in old and np.shape(old[p]) == np.shape(v) else v)
       for p, v in new.items()})


def classifier_stage(config, workdir: str, mesh, writer, dtype) -> dict:
  """Writes workdir/classifier (fine-tuned or as given); returns its summary."""
  directory = os.path.join(workdir, workdir_lib.CLASSIFIER_DIR)
  if classifier_dir.is_complete(directory):
    logging.info("classifier: %s exists, skipped", directory)
    return {}
  spec = registry.get(config.model.name)
  variables, num_classes = _load_weights(config, spec, dtype)
  c, d = config.classifier, config.dataset
  if c.epochs == 0:
    logging.info("classifier: %s weights used as they are", spec.name)
    classifier_dir.save_classifier(directory, spec.name, num_classes, variables)
    return {}

  module = spec.build(num_classes=d.num_classes, dtype=dtype)
  fresh = module.init(jax.random.fold_in(jax.random.key(config.seed), 100),
                      jnp.zeros((1, d.image_size, d.image_size, 3)),
                      train=False)
  if variables is None:
    logging.info("classifier: %s from scratch", spec.name)
    variables = fresh
  else:
    logging.info("classifier: fine-tuning %s (%d classes) for %d classes",
                 spec.name, num_classes, d.num_classes)
    variables = _with_new_head(variables, fresh)
  data = _train_input(config, c.batch_size, augment=c.augment)
  schedule = classifier_schedule(c, data.steps_per_epoch())
  tx = classifier_optimizer(c, schedule)
  state = parallel.replicate(mesh, init_state(
      variables["params"], variables.get("batch_stats", {}), tx))
  stage = Stage("classifier", data, c.epochs, functools.partial(
      classifier_step, module=module, spec=spec, tx=tx, schedule=schedule,
      seed=config.seed), frozen=None)
  state, summary = run_stage(stage, state, mesh, workdir, config, writer)
  trained = {"params": state["params"]}
  if state["batch_stats"]:
    trained["batch_stats"] = state["batch_stats"]
  trained = jax.device_get(trained)
  summary = {**summary, "eval_accuracy": evaluate_classifier(
      config, mesh, module, spec, trained)}
  writer.write_scalars(int(state["step"]), {
      "classifier/eval_accuracy": summary["eval_accuracy"]})
  classifier_dir.save_classifier(directory, spec.name, d.num_classes, trained)
  return summary


def evaluate_classifier(config, mesh, module, spec, variables) -> float:
  """Top-1 accuracy on config.dataset.eval_split (all processes together)."""
  d = config.dataset

  @jax.jit
  def correct(variables, batch):
    logits, _ = module.apply(variables, spec.preprocess(batch["image"]),
                             train=False)
    hits = (jnp.argmax(logits, -1) == batch["label"]) & batch["valid"]
    return jnp.sum(hits), jnp.sum(batch["valid"])

  variables = parallel.replicate(mesh, variables)
  hits = total = 0
  for local in input_lib.eval_batches(
      d.name, d.eval_split, batch_size=config.classifier.batch_size,
      image_size=d.image_size, data_dir=d.data_dir or None):
    h, n = correct(variables, parallel.global_batch(mesh, local))
    hits, total = hits + int(h), total + int(n)
  accuracy = hits / max(total, 1)
  logging.info("classifier: accuracy %.4f on %d images of %s", accuracy,
               total, d.eval_split)
  return accuracy


def _train_input(config, batch_size: int, augment: bool) -> input_lib.TrainInput:
  d = config.dataset
  return input_lib.TrainInput(
      name=d.name, split=d.train_split, batch_size=batch_size,
      image_size=d.image_size, augment=augment, seed=config.seed,
      data_dir=d.data_dir or None, manual_dir=d.manual_dir or None,
      shuffle_buffer=d.shuffle_buffer, num_shards=d.num_shards)


def make_dre(config, spec, num_classes: int, dtype) -> DRE:
  return DRE.create(spec, num_classes, upsample=config.dre.upsample,
                    widths=tuple(config.dre.widths) or None, eta=config.dre.eta,
                    h=config.dre.h, dtype=dtype)


def estimator_stages(config, workdir: str, mesh, writer, dtype) -> dict:
  """Stages 1 and 2 for the classifier in workdir/classifier; writes workdir/estimator."""
  classifier = classifier_dir.load_classifier(
      os.path.join(workdir, workdir_lib.CLASSIFIER_DIR), dtype)
  num_classes = classifier.num_classes
  dre = make_dre(config, classifier.spec, num_classes, dtype)
  size = config.dataset.image_size
  generator = dre.init_generator(
      jax.random.fold_in(jax.random.key(config.seed), 101), classifier, size)
  frozen = parallel.replicate(mesh, classifier)
  summary = {}

  e = config.embeddings
  if e.epochs > 0:
    data = _train_input(config, e.batch_size, augment=False)
    schedule = optax.constant_schedule(e.learning_rate)
    tx = _masked(optax.adam(schedule), train_embeddings=True)
    state = parallel.replicate(mesh, init_state(
        generator["params"], generator["batch_stats"], tx))
    stage = Stage("embeddings", data, e.epochs, functools.partial(
        embeddings_step, dre=dre, tx=tx, schedule=schedule,
        fake_prob=e.fake_prob, seed=config.seed), frozen)
    state, summary["embeddings"] = run_stage(stage, state, mesh, workdir,
                                             config, writer)
    generator = {"params": state["params"],
                 "batch_stats": state["batch_stats"]}

  c = config.dre
  data = _train_input(config, c.batch_size, augment=False)
  schedule = dre_schedule(c, data.steps_per_epoch())
  tx = _masked(optax.adam(schedule), train_embeddings=False)
  state = parallel.replicate(mesh, init_state(
      jax.device_get(generator["params"]),
      jax.device_get(generator["batch_stats"]), tx))
  stage = Stage("dre", data, c.epochs, functools.partial(
      dre_step, dre=dre, tx=tx, schedule=schedule,
      backgrounds=BackgroundConfig(**c.backgrounds.to_dict()),
      seed=config.seed), frozen)
  state, summary["dre"] = run_stage(stage, state, mesh, workdir, config, writer)
  workdir_lib.save_estimator(
      workdir, workdir_lib.estimator_metadata(dre, num_classes, size),
      {"params": state["params"], "batch_stats": state["batch_stats"]})
  return summary


def check_config(config: ml_collections.ConfigDict) -> None:
  """Everything that can be checked before any work: fields, values, devices."""
  config_lib.validate(config)
  for stage in config_lib.STAGES:
    if config[stage].epochs:
      parallel.check_batch_size(config[stage].batch_size,
                                f"config.{stage}.batch_size")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the stages that are not done yet; returns the summary of each stage."""
  check_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  _check_workdir_config(config, workdir)
  dtype = jnp.dtype(config.model.dtype)
  mesh = parallel.make_mesh()
  logging.info("data parallel over %d devices (%s) in %d processes",
               jax.device_count(), jax.devices()[0].platform,
               jax.process_count())
  d = config.dataset
  input_lib.prepare(d.name, d.train_split, data_dir=d.data_dir or None,
                    manual_dir=d.manual_dir or None, download=d.download)
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  summary = {"classifier": classifier_stage(config, workdir, mesh, writer,
                                            dtype)}
  if workdir_lib.has_estimator(workdir):
    logging.info("estimator: %s exists, skipped",
                 os.path.join(workdir, workdir_lib.ESTIMATOR_DIR))
  else:
    summary.update(estimator_stages(config, workdir, mesh, writer, dtype))
  writer.close()
  workdir_lib.write_json(workdir, "summary.json", summary)
  return summary


def _check_workdir_config(config, workdir: str) -> None:
  """Writes config.json on the first run; later runs log what changed."""
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json())
  if os.path.isfile(path):
    with open(path) as f:
      first = json.load(f)
    changed = sorted(k for k in set(_flat(first)) | set(_flat(current))
                     if _flat(first).get(k) != _flat(current).get(k))
    if changed:
      logging.warning("the config differs from the one that started %s in: "
                      "%s; finished stages are kept", workdir,
                      ", ".join(changed))
    return
  workdir_lib.write_json(workdir, "config.json", current)


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out
