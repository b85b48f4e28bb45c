"""Stage-2 objectives by name: `config.dre.objective` picks the loss stage 2 minimises.

Every objective is one function

    loss_fn(dre, generator_params, generator_state, classifier, images, key,
            backgrounds, config) -> (loss, (new_batch_stats, aux))

with the arguments and return of `dre_jax.estimator.DRE.loss`, the estimator
`dre` first and the whole experiment config last (read what you need, e.g.
`config.dre.constraints`); differentiable in `generator_params`; aux holds at
least "accuracy" (perturbed images still classified as t) and "mask_mean",
the metrics stage 2 logs. Where the objectives live:

  "dre"    Eq. 9 (`DRE.loss`), plus the ad-hoc constraints of Sec. 4.4.3 when
           `config.dre.constraints` weights them (`dre_objective`, here);
  "mgnet"  Dabkowski & Gal's objective, the paper's Eq. 2
           (`dre_jax.explainers.mgnet.loss`).

`get(name)` imports an objective's module only when it is asked for, so
training does not depend on the explainers at import time. A new objective:
add "module:function" to `OBJECTIVES` and its name to
`dre_jax.config.OBJECTIVES`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from dre_jax import perturbation
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE

OBJECTIVES = {
    "dre": "dre_jax.training.objectives:dre_objective",
    "mgnet": "dre_jax.explainers.mgnet:loss",
}

Objective = Callable[..., tuple[jax.Array, tuple[Any, dict[str, jax.Array]]]]


def get(name: str) -> Objective:
  """The objective registered as `name` (imported now); a clear error otherwise."""
  if name not in OBJECTIVES:
    raise ValueError(f"unknown stage-2 objective {name!r}; choose one of "
                     f"{', '.join(OBJECTIVES)} (config.dre.objective)")
  module, _, function = OBJECTIVES[name].partition(":")
  try:
    return getattr(importlib.import_module(module), function)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"the stage-2 objective {name!r} is {OBJECTIVES[name]}, "
                     f"which cannot be loaded ({type(e).__name__}: {e})") from None


def area(masks: jax.Array) -> jax.Array:
  """Theta_av of Eq. 2: the mean relevance score, [N, H, W] -> scalar."""
  return jnp.mean(masks)


def smoothness(masks: jax.Array) -> jax.Array:
  """Theta_tv of Eq. 2: total variation, the mean squared difference of
  vertical and horizontal neighbours (Dabkowski & Gal's, power 2), [N, H, W]
  -> scalar."""
  return (jnp.mean(jnp.square(masks[:, 1:, :] - masks[:, :-1, :]))
          + jnp.mean(jnp.square(masks[:, :, 1:] - masks[:, :, :-1])))


def dre_objective(dre: DRE, generator_params, generator_state,
                  classifier: Classifier, images: jax.Array, key: jax.Array,
                  backgrounds: perturbation.BackgroundConfig,
                  config: ml_collections.ConfigDict):
  """Eq. 9, and with nonzero `config.dre.constraints` the terms of Eq. 2 added
  back (Sec. 4.4.3):

      CE(f(psi(I, M)), t) + lambda_av Theta_av(M) + lambda_tv Theta_tv(M)
                          + lambda_bg f_t(psi(I, 1 - M))

  (area, smoothness, background). The background term uses the same
  background B and image noise as the main term (the same `key`). With every
  weight 0 this is exactly `dre.loss` (the paper's DRE).
  """
  loss, (new_state, aux) = dre.loss(generator_params, generator_state,
                                    classifier, images, key, backgrounds)
  weights = config.dre.constraints
  if not any(weights.values()):
    return loss, (new_state, aux)
  masks, target = aux["masks"], aux["target"]
  terms = {}
  if weights.area:
    terms["area"] = weights.area * area(masks)
  if weights.smoothness:
    terms["smoothness"] = weights.smoothness * smoothness(masks)
  if weights.background:
    removed = perturbation.training_perturbation(key, images, 1 - masks,
                                                 backgrounds)
    terms["background"] = weights.background * jnp.mean(
        classifier.probability(removed, target))
  aux = {**aux, **{f"constraint_{k}": v for k, v in terms.items()}}
  return loss + sum(terms.values()), (new_state, aux)
