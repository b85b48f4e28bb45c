"""One training step per stage: pure functions of (state, global batch, frozen).

The state is flax's `TrainState` with the BatchNorm statistics beside the
parameters (`TrainState.start`); `apply_gradients` is the one update rule of
every stage. The key of step s of stage k is
fold_in(fold_in(key(seed), k), s), so a resumed run draws the same keys.

    classifier_step   fine-tuning: cross-entropy with the labels
    embeddings_step   stage 1, Eq. 4: the spatial filter's class embeddings
    dre_step          stage 2: the objective `config.dre.objective` (Eq. 9 by
                      default, `dre_jax.training.objectives`)

Each returns (new state, {metric: scalar}); the loop averages the metrics.

`microbatches` = k > 1 (`config.microbatches`) computes a step's gradient
as the mean over k equal slices of the batch, one after another inside the
compiled step (`value_and_grad_over`): the same update as the whole batch
(the loss is a batch mean) except that BatchNorm's batch statistics are per
slice, and each slice draws its own randomness. On a CPU, where a pass does
not get cheaper per image with the batch size, slices of 16 train about
twice as fast as one batch of 64 (`benchmarks/bench_microbatches.py`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import optax

from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.models import registry
from dre_jax.perturbation import BackgroundConfig
from dre_jax.training import objectives

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
  """params, opt_state and step (flax), and the module's batch_stats."""

  batch_stats: Any = None

  @classmethod
  def start(cls, params, batch_stats, tx: optax.GradientTransformation
            ) -> "TrainState":
    """Step 0 (an int32 array, so checkpoints and jit see one type)."""
    return cls.create(apply_fn=None, params=params, tx=tx,
                      batch_stats=batch_stats).replace(
                          step=jnp.zeros((), jnp.int32))


def step_key(seed: int, stage: int, step: jax.Array) -> jax.Array:
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), stage),
                            step)


def value_and_grad_over(loss_fn, params, batch_stats, batch: Batch,
                        key: jax.Array, microbatches: int = 1):
  """(loss, (batch_stats, metrics)), grads of `loss_fn` averaged over slices.

  loss_fn(params, batch_stats, batch, key) -> (loss, (batch_stats, metrics))
  with loss a mean over the batch and metrics a dict of scalars. With
  microbatches = k > 1 the batch [n, ...] is cut into k slices of n / k
  (slice i: rows i, i + k, ...; a device's share of a sharded batch stays on
  it), computed in turn with key fold_in(key, i), the BatchNorm statistics
  passed from slice to slice; loss, metrics and gradients are the slices'
  means. The slices are unrolled, not a `lax.scan`: XLA's CPU backend runs
  training passes inside a loop body several times slower.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if microbatches == 1:
    return grad_fn(params, batch_stats, batch, key)
  n = jax.tree.leaves(batch)[0].shape[0]
  if n % microbatches:
    raise ValueError(f"a batch of {n} cannot be cut into {microbatches} equal "
                     "microbatches: make config.microbatches divide the batch "
                     "size on each device")
  sliced = jax.tree.map(
      lambda x: x.reshape(n // microbatches, microbatches, *x.shape[1:]), batch)
  total = None
  for i in range(microbatches):
    part = jax.tree.map(lambda x: x[:, i], sliced)
    (loss, (batch_stats, metrics)), grads = grad_fn(
        params, batch_stats, part, jax.random.fold_in(key, i))
    result = (loss, metrics, grads)
    total = result if total is None else jax.tree.map(jnp.add, total, result)
  loss, metrics, grads = jax.tree.map(lambda v: v / microbatches, total)
  return (loss, (batch_stats, metrics)), grads


def classifier_step(state: TrainState, batch: Batch, frozen: None, *,
                    module: nn.Module, spec: registry.ClassifierSpec,
                    schedule: optax.Schedule, seed: int, microbatches: int = 1
                    ) -> tuple[TrainState, Metrics]:
  """One SGD/Adam step of the classifier on cross-entropy with the labels."""
  del frozen

  def loss_fn(params, batch_stats, batch, key):
    variables = {"params": params, "batch_stats": batch_stats}
    (logits, _), updates = module.apply(
        variables, spec.preprocess(batch["image"]), train=True,
        mutable=["batch_stats"], rngs={"dropout": key})
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (updates.get("batch_stats", {}), {"accuracy": accuracy})

  (loss, (batch_stats, metrics)), grads = value_and_grad_over(
      loss_fn, state.params, state.batch_stats, batch,
      step_key(seed, 0, state.step), microbatches)
  return (state.apply_gradients(grads=grads, batch_stats=batch_stats),
          {"loss": loss, **metrics, "learning_rate": schedule(state.step)})


def embeddings_step(state: TrainState, batch: Batch, classifier: Classifier, *,
                    dre: DRE, schedule: optax.Schedule, fake_prob: float,
                    seed: int, microbatches: int = 1
                    ) -> tuple[TrainState, Metrics]:
  """Stage 1, Eq. 4: only the embedding table moves (the optimiser masks the rest)."""

  def loss_fn(params, batch_stats, batch, key):
    loss = dre.embedding_loss(params, classifier, batch["image"], key, fake_prob)
    return loss, (batch_stats, {})

  (loss, _), grads = value_and_grad_over(
      loss_fn, state.params, state.batch_stats, batch,
      step_key(seed, 1, state.step), microbatches)
  return (state.apply_gradients(grads=grads),
          {"loss": loss, "learning_rate": schedule(state.step)})


def dre_step(state: TrainState, batch: Batch, classifier: Classifier, *,
             dre: DRE, schedule: optax.Schedule, backgrounds: BackgroundConfig,
             config: ml_collections.ConfigDict, seed: int, microbatches: int = 1
             ) -> tuple[TrainState, Metrics]:
  """Stage 2: the generator except the embeddings under `config.dre.objective`
  (Eq. 9 by default), t = argmax f(I)."""
  objective = objectives.get(config.dre.objective)

  def loss_fn(params, batch_stats, batch, key):
    loss, (batch_stats, aux) = objective(dre, params, batch_stats, classifier,
                                         batch["image"], key, backgrounds, config)
    return loss, (batch_stats, {k: v for k, v in aux.items() if jnp.ndim(v) == 0})

  (loss, (batch_stats, metrics)), grads = value_and_grad_over(
      loss_fn, state.params, state.batch_stats, batch,
      step_key(seed, 2, state.step), microbatches)
  metrics = {"loss": loss, "learning_rate": schedule(state.step), **metrics}
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics
