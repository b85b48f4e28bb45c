"""Optimisers and learning-rate schedules of the training stages (Sec. 4.1).

* classifier fine-tuning: SGD with momentum and weight decay, or AdamW; a
  constant, cosine or step schedule (`config.classifier`);
* stage 1: Adam at a constant rate on the spatial filter's embeddings only;
* stage 2: Adam from 1e-2, halved every 3 epochs (step decay), on everything
  but the embeddings.

The stages that train part of the generator mask the rest with
`optax.multi_transform` (`set_to_zero`), so the frozen part keeps its values
exactly.
"""

from __future__ import annotations

import functools

import flax
import ml_collections
import optax


def trainable_mask(params, train_embeddings: bool):
  """Labels "train"/"frozen": stage 1 moves only the embeddings, stage 2 the rest."""
  def label(path, _):
    is_embedding = path[:1] == ("spatial_filter",) and path[-1] == "embedding"
    return "train" if is_embedding == train_embeddings else "frozen"
  return flax.traverse_util.path_aware_map(label, params)


def masked(tx: optax.GradientTransformation, train_embeddings: bool
           ) -> optax.GradientTransformation:
  """`tx` on the trainable part of the generator, zero updates elsewhere."""
  return optax.multi_transform(
      {"train": tx, "frozen": optax.set_to_zero()},
      functools.partial(trainable_mask, train_embeddings=train_embeddings))


def classifier_schedule(c: ml_collections.ConfigDict, steps_per_epoch: int
                        ) -> optax.Schedule:
  """`config.classifier.lr_schedule`: "constant", "cosine" (to 0 at the end) or
  "step" (times `lr_step_factor` every `lr_step_epochs` epochs)."""
  total = c.epochs * steps_per_epoch
  if c.lr_schedule == "cosine":
    return optax.cosine_decay_schedule(c.learning_rate, total)
  if c.lr_schedule == "step":
    return optax.exponential_decay(c.learning_rate,
                                   c.lr_step_epochs * steps_per_epoch,
                                   c.lr_step_factor, staircase=True)
  return optax.constant_schedule(c.learning_rate)


def classifier_optimizer(c: ml_collections.ConfigDict, schedule
                         ) -> optax.GradientTransformation:
  if c.optimizer == "sgd":
    return optax.chain(optax.add_decayed_weights(c.weight_decay),
                       optax.sgd(schedule, momentum=c.momentum))
  return optax.adamw(schedule, weight_decay=c.weight_decay)


def embeddings_optimizer(c: ml_collections.ConfigDict):
  """Stage 1: (Adam on the embeddings only, its constant schedule)."""
  schedule = optax.constant_schedule(c.learning_rate)
  return masked(optax.adam(schedule), train_embeddings=True), schedule


def dre_schedule(c: ml_collections.ConfigDict, steps_per_epoch: int
                 ) -> optax.Schedule:
  """Sec. 4.1: initial rate 1e-2, halved every 3 epochs (step decay)."""
  return optax.exponential_decay(
      c.learning_rate, c.lr_halve_every_epochs * steps_per_epoch, 0.5,
      staircase=True)


def dre_optimizer(c: ml_collections.ConfigDict, steps_per_epoch: int):
  """Stage 2: (Adam on all but the embeddings, the halving schedule)."""
  schedule = dre_schedule(c, steps_per_epoch)
  return masked(optax.adam(schedule), train_embeddings=False), schedule
