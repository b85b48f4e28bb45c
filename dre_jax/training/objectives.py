"""Stage-2 objectives by name: `config.dre.objective` picks the loss stage 2 minimises.

The names are `dre_jax.config.OBJECTIVES` (the one list, which the config
validates); the objective named "x" is the function `x_objective` here:

  "dre"    Eq. 9 (`DRE.loss`), plus the ad-hoc constraints of Sec. 4.4.3 when
           `config.dre.constraints` weights them (`dre_objective`);
  "mgnet"  Dabkowski & Gal's objective, the paper's Eq. 2 (`mgnet_objective`).

Every objective is one function

    x_objective(dre, generator_params, generator_state, classifier, images, key,
                backgrounds, config) -> (loss, (new_batch_stats, aux))

with the arguments and return of `dre_jax.estimator.DRE.loss`, the estimator
`dre` first and the whole experiment config last (read what you need, e.g.
`config.dre.constraints`); differentiable in `generator_params`; aux holds at
least "accuracy" (perturbed images still classified as t) and "mask_mean",
the metrics stage 2 logs. A new objective: its name in
`dre_jax.config.OBJECTIVES` and its `<name>_objective` function here.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from dre_jax import config as config_lib
from dre_jax import perturbation
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE

Objective = Callable[..., tuple[jax.Array, tuple[Any, dict[str, jax.Array]]]]


def get(name: str) -> Objective:
  """The objective registered as `name` (`<name>_objective`); a clear error otherwise."""
  if name not in config_lib.OBJECTIVES:
    raise ValueError(f"unknown stage-2 objective {name!r}; choose one of "
                     f"{', '.join(config_lib.OBJECTIVES)} (config.dre.objective)")
  return globals()[f"{name}_objective"]


# ------------------------------------------------------------------ DRE, Eq. 9


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


# ------------------------------------------------------ MGnet, the paper's Eq. 2
#
# MGnet is the real-time saliency generator of Dabkowski & Gal (NeurIPS 2017),
# the paper's closest baseline: the same generator architecture as DRE
# (`dre_jax.generator.MaskGenerator` on the classifier's taps, class-selected by
# the spatial filter of Eq. 3, trained with Eq. 4 in stage 1), but with the mask
#
#     M = upsample(sigmoid(G(E(I), t)))          `DRE.mgnet_masks_from_taps`
#
# (no distribution controller; the explainer "mgnet" in
# `dre_jax.explainers.generators`) and trained in stage 2 with the objective of
# the paper's Eq. 2 in the form of the authors' released code
# (github.com/PiotrDabkowski/pytorch-saliency, `SaliencyLoss`):
#
#     L = w_d * CW_nt(f(psi(I, 1 - M)), t; 5)         destroyer ("lambda_bg" term)
#       + w_p * CW_t(f(psi(I, M)), t; 1)              preserver (the -f_t term)
#       + w_a * mean((M + 0.0005) ^ 0.3)              area (Theta_av)
#       + w_s * smoothness(M)                          smoothness (Theta_tv)
#
# CW_t(z, t; c) = ReLU(max_{k != t} z_k - z_t + c) and CW_nt(z, t; c) =
# ReLU(z_t - max_{k != t} z_k + c) are their Carlini-Wagner logit margins;
# smoothness(M) = sum of squared neighbour differences plus 0.3 x the squared
# border values, over 2 and the batch size. Weights w_d = 1, w_p = 0.3, w_a = 8,
# w_s = 0.005 (their saliency_train.py; `shared/REFERENCE_NOTES.md` section 2).
# psi is DRE's training perturbation (the same backgrounds for both methods,
# paper Sec. 4.1), drawn independently for the preserved and the destroyed image.
#
# Differences from the released code, forced by "the same architecture as DRE":
# the generator ends in one channel, so the mask is a sigmoid (their
# `use_simple_activation`) instead of |a| / (|a| + |b|) of two channels; t is the
# classifier's prediction (DRE uses no labels), so there are no fake labels in
# stage 2.


# The released code's values; a config may override any of them (`config.mgnet`).
MGNET_DEFAULTS = {
    "destroyer_weight": 1.0,
    "preserver_weight": 0.3,
    "area_weight": 8.0,
    "area_power": 0.3,
    "smoothness_weight": 0.005,
    "smoothness_power": 2.0,
    "border_penalty": 0.3,
    "preserver_confidence": 1.0,
    "destroyer_confidence": 5.0,
}


def mgnet_settings(config: Any = None) -> dict[str, float]:
  """MGNET_DEFAULTS updated from `config`: None (the defaults), a mapping or
  ConfigDict of MGnet settings, or the whole experiment config, whose `mgnet`
  group (`configs/mgnet.py`) is read; other fields are ignored.
  """
  out = dict(MGNET_DEFAULTS)
  if config is not None and "mgnet" in config:
    config = config["mgnet"]
  if config is not None:
    for name in MGNET_DEFAULTS:
      value = config.get(name, None) if hasattr(config, "get") else None
      if value is not None:
        out[name] = float(value)
  return out


def cw_margin(logits: jnp.ndarray, target: jnp.ndarray, confidence: float,
              targeted: bool) -> jnp.ndarray:
  """The released code's `cw_loss` per image: [N].

  targeted: ReLU(max_{k != t} z_k - z_t + c) (keep t ahead by c);
  else ReLU(z_t - max_{k != t} z_k + c) (push t behind by c).
  """
  z_t = jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(target, logits.shape[-1], dtype=bool),
                     -jnp.inf, logits)
  z_other = jnp.max(others, axis=-1)
  margin = z_other - z_t if targeted else z_t - z_other
  return jax.nn.relu(margin + confidence)


def mgnet_area(masks: jnp.ndarray, power: float) -> jnp.ndarray:
  """Theta_av of the released code: mean((M + 0.0005) ^ power) (the offset
  keeps the gradient finite at 0)."""
  return jnp.mean((masks + 0.0005) ** power)


def mgnet_smoothness(masks: jnp.ndarray, power: float = 2.0,
                     border_penalty: float = 0.3) -> jnp.ndarray:
  """Theta_tv of the released code: (sum |dM|^p + border * sum border^p) / (p N); masks [N, H, W]."""
  dy = jnp.sum(jnp.abs(masks[:, 1:, :] - masks[:, :-1, :]) ** power)
  dx = jnp.sum(jnp.abs(masks[:, :, 1:] - masks[:, :, :-1]) ** power)
  border = border_penalty * jnp.sum(
      masks[:, 0, :] ** power + masks[:, -1, :] ** power
      + masks[:, :, 0] ** power + masks[:, :, -1] ** power)
  return (dy + dx + border) / (power * masks.shape[0])


def saliency_loss(classifier: Classifier, images: jnp.ndarray, masks: jnp.ndarray,
                  target: jnp.ndarray, key: jax.Array,
                  backgrounds: perturbation.BackgroundConfig, config: Any = None):
  """Eq. 2 as above (the released code's `SaliencyLoss`) for masks [N, H, W]:
  (loss, terms dict)."""
  s = mgnet_settings(config)
  k_keep, k_drop = jax.random.split(key)
  preserved = perturbation.training_perturbation(k_keep, images, masks, backgrounds)
  destroyed = perturbation.training_perturbation(k_drop, images, 1.0 - masks,
                                                 backgrounds)
  logits = classifier.logits(jnp.concatenate([preserved, destroyed]))
  kept, dropped = jnp.split(logits, 2)
  terms = {
      "preserver": jnp.mean(cw_margin(kept, target, s["preserver_confidence"], True)),
      "destroyer": jnp.mean(cw_margin(dropped, target, s["destroyer_confidence"],
                                      False)),
      "area": mgnet_area(masks, s["area_power"]),
      "smoothness": mgnet_smoothness(masks, s["smoothness_power"],
                                     s["border_penalty"]),
  }
  loss = (s["destroyer_weight"] * terms["destroyer"]
          + s["preserver_weight"] * terms["preserver"]
          + s["area_weight"] * terms["area"]
          + s["smoothness_weight"] * terms["smoothness"])
  terms["accuracy"] = jnp.mean(jnp.argmax(kept, -1) == target)
  terms["destroyed_accuracy"] = jnp.mean(jnp.argmax(dropped, -1) == target)
  return loss, terms


def mgnet_objective(dre: DRE, generator_params, generator_state,
                    classifier: Classifier, images: jnp.ndarray, key: jax.Array,
                    backgrounds: perturbation.BackgroundConfig = perturbation.BackgroundConfig(),
                    config: Any = None):
  """Stage 2 of MGnet: Eq. 2 (`saliency_loss`) with M from the generator in
  train mode (`DRE.mgnet_masks_from_taps`); the weights from `config`
  (`mgnet_settings`); t = argmax f(I).

  Returns:
    (loss, (new_batch_stats, aux)) with aux = {"accuracy": fraction of preserved
    images still classified as t, "mask_mean", and the four terms}.
  """
  dre.check_images(images)
  logits, taps = classifier.logits_and_taps(images)
  target = jnp.argmax(logits, axis=-1)
  masks, new_state = dre.mgnet_masks_from_taps(
      {"params": generator_params, "batch_stats": generator_state}, taps,
      target, images.shape[1:3], train=True)
  value, terms = saliency_loss(classifier, images, masks, target, key, backgrounds,
                               config)
  aux = {"mask_mean": jnp.mean(masks), **terms}
  return value, (new_state, aux)
