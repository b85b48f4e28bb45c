"""The stages of Sec. 4.1, each set up from the config and run by `loop.run_stage`.

    classifier   fine-tune the classifier (config.classifier.epochs > 0), from
                 converted torchvision weights with a new head or from
                 scratch, or take the given weights as they are; then frozen;
                 writes workdir/classifier
    embeddings   stage 1, Eq. 4: the spatial filter's class embeddings
    dre          stage 2: the rest of the generator (`steps.dre_step`);
                 writes workdir/estimator
"""

from __future__ import annotations

import functools
import os

from absl import logging
from clu import metric_writers
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dre_jax import parallel
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.io import classifier_dir
from dre_jax.io import pth
from dre_jax.io import torch_weights
from dre_jax.io import workdir as workdir_lib
from dre_jax.models import registry
from dre_jax.perturbation import BackgroundConfig
from dre_jax.training import input as input_lib
from dre_jax.training import loop
from dre_jax.training import optimizers
from dre_jax.training import steps
from dre_jax.training.steps import TrainState

Config = ml_collections.ConfigDict


def _load_weights(config: Config, spec: registry.ClassifierSpec, dtype
                  ) -> tuple[dict | None, int | None]:
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


def train_input(config: Config, batch_size: int, augment: bool
                ) -> input_lib.TrainInput:
  d = config.dataset
  return input_lib.TrainInput(
      name=d.name, split=d.train_split, batch_size=batch_size,
      image_size=d.image_size, augment=augment, seed=config.seed,
      data_dir=d.data_dir or None, manual_dir=d.manual_dir or None,
      shuffle_buffer=d.shuffle_buffer, num_shards=d.num_shards)


def classifier_stage(config: Config, workdir: str, mesh,
                     writer: metric_writers.MetricWriter, dtype) -> dict:
  """Writes workdir/classifier (fine-tuned or as given); returns its summary."""
  directory = os.path.join(workdir, workdir_lib.CLASSIFIER_DIR)
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
  data = train_input(config, c.batch_size, augment=c.augment)
  schedule = optimizers.classifier_schedule(c, data.steps_per_epoch())
  tx = optimizers.classifier_optimizer(c, schedule)
  state = parallel.replicate(mesh, TrainState.start(
      variables["params"], variables.get("batch_stats", {}), tx))
  stage = loop.Stage("classifier", data, c.epochs, functools.partial(
      steps.classifier_step, module=module, spec=spec, schedule=schedule,
      seed=config.seed, microbatches=config.microbatches), frozen=None)
  state, summary = loop.run_stage(stage, state, mesh, workdir, config, writer)
  trained = {"params": state.params}
  if state.batch_stats:
    trained["batch_stats"] = state.batch_stats
  trained = jax.device_get(trained)
  summary = {**summary, "eval_accuracy": evaluate_classifier(
      config, mesh, Classifier.create(spec, trained, num_classes=d.num_classes,
                                      dtype=dtype))}
  writer.write_scalars(int(state.step), {
      "classifier/eval_accuracy": summary["eval_accuracy"]})
  classifier_dir.save_classifier(directory, spec.name, d.num_classes, trained)
  return summary


def evaluate_classifier(config: Config, mesh, classifier: Classifier) -> float:
  """Top-1 accuracy on config.dataset.eval_split (all processes together)."""
  d = config.dataset

  @jax.jit
  def correct(classifier, batch):
    hits = ((jnp.argmax(classifier.logits(batch["image"]), -1) == batch["label"])
            & batch["valid"])
    return jnp.sum(hits), jnp.sum(batch["valid"])

  classifier = parallel.replicate(mesh, classifier)
  hits = total = 0
  for local in input_lib.eval_batches(
      d.name, d.eval_split, batch_size=config.classifier.batch_size,
      image_size=d.image_size, data_dir=d.data_dir or None):
    h, n = correct(classifier, parallel.global_batch(mesh, local))
    hits, total = hits + int(h), total + int(n)
  accuracy = hits / max(total, 1)
  logging.info("classifier: accuracy %.4f on %d images of %s", accuracy,
               total, d.eval_split)
  return accuracy


def make_dre(config: Config, spec: registry.ClassifierSpec, num_classes: int,
             dtype) -> DRE:
  """The estimator of `config.generator` (model settings) for the classifier."""
  g = config.generator
  return DRE.create(spec, num_classes, upsample=g.upsample,
                    widths=tuple(g.widths) or None, eta=g.eta, h=g.h,
                    dtype=dtype)


def estimator_stages(config: Config, workdir: str, mesh,
                     writer: metric_writers.MetricWriter, dtype) -> dict:
  """Stages 1 and 2 for workdir/classifier; writes workdir/estimator last."""
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
    data = train_input(config, e.batch_size, augment=False)
    tx, schedule = optimizers.embeddings_optimizer(e)
    state = parallel.replicate(mesh, TrainState.start(
        generator["params"], generator["batch_stats"], tx))
    stage = loop.Stage("embeddings", data, e.epochs, functools.partial(
        steps.embeddings_step, dre=dre, schedule=schedule,
        fake_prob=e.fake_prob, seed=config.seed,
        microbatches=config.microbatches), frozen)
    state, summary["embeddings"] = loop.run_stage(stage, state, mesh, workdir,
                                                  config, writer)
    generator = {"params": state.params, "batch_stats": state.batch_stats}

  c = config.dre
  data = train_input(config, c.batch_size, augment=False)
  tx, schedule = optimizers.dre_optimizer(c, data.steps_per_epoch())
  state = parallel.replicate(mesh, TrainState.start(
      jax.device_get(generator["params"]),
      jax.device_get(generator["batch_stats"]), tx))
  stage = loop.Stage("dre", data, c.epochs, functools.partial(
      steps.dre_step, dre=dre, schedule=schedule,
      backgrounds=BackgroundConfig(**c.backgrounds.to_dict()), config=config,
      seed=config.seed, microbatches=config.microbatches), frozen)
  state, summary["dre"] = loop.run_stage(stage, state, mesh, workdir, config,
                                         writer)
  workdir_lib.save_estimator(
      workdir, workdir_lib.estimator_metadata(dre, num_classes, size),
      {"params": state.params, "batch_stats": state.batch_stats})
  return summary
