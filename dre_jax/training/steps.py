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


def classifier_step(state: TrainState, batch: Batch, frozen: None, *,
                    module: nn.Module, spec: registry.ClassifierSpec,
                    schedule: optax.Schedule, seed: int
                    ) -> tuple[TrainState, Metrics]:
  """One SGD/Adam step of the classifier on cross-entropy with the labels."""
  del frozen
  key = step_key(seed, 0, state.step)

  def loss_fn(params):
    variables = {"params": params, "batch_stats": state.batch_stats}
    (logits, _), updates = module.apply(
        variables, spec.preprocess(batch["image"]), train=True,
        mutable=["batch_stats"], rngs={"dropout": key})
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (updates.get("batch_stats", {}), accuracy)

  (loss, (batch_stats, accuracy)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  return (state.apply_gradients(grads=grads, batch_stats=batch_stats),
          {"loss": loss, "accuracy": accuracy,
           "learning_rate": schedule(state.step)})


def embeddings_step(state: TrainState, batch: Batch, classifier: Classifier, *,
                    dre: DRE, schedule: optax.Schedule, fake_prob: float,
                    seed: int) -> tuple[TrainState, Metrics]:
  """Stage 1, Eq. 4: only the embedding table moves (the optimiser masks the rest)."""
  key = step_key(seed, 1, state.step)
  loss, grads = jax.value_and_grad(dre.embedding_loss)(
      state.params, classifier, batch["image"], key, fake_prob)
  return (state.apply_gradients(grads=grads),
          {"loss": loss, "learning_rate": schedule(state.step)})


def dre_step(state: TrainState, batch: Batch, classifier: Classifier, *,
             dre: DRE, schedule: optax.Schedule, backgrounds: BackgroundConfig,
             config: ml_collections.ConfigDict, seed: int
             ) -> tuple[TrainState, Metrics]:
  """Stage 2: the generator except the embeddings under `config.dre.objective`
  (Eq. 9 by default), t = argmax f(I)."""
  key = step_key(seed, 2, state.step)
  loss_fn = objectives.get(config.dre.objective)

  def loss_of(params):
    return loss_fn(dre, params, state.batch_stats, classifier, batch["image"],
                   key, backgrounds, config)

  (loss, (batch_stats, aux)), grads = jax.value_and_grad(
      loss_of, has_aux=True)(state.params)
  metrics = {"loss": loss, "learning_rate": schedule(state.step),
             **{k: v for k, v in aux.items() if jnp.ndim(v) == 0}}
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics
