"""MGnet: the real-time saliency generator of Dabkowski & Gal (NeurIPS 2017), the paper's Eq. 2.

MGnet is the paper's closest baseline: the same generator architecture as DRE
(`dre_jax.generator.MaskGenerator` on the classifier's taps, class-selected by
the spatial filter of Eq. 3, trained with Eq. 4 in stage 1), but with the mask

    M = upsample(sigmoid(G(E(I), t)))

(no distribution controller) and trained in stage 2 with the objective of the
paper's Eq. 2 in the form of the authors' released code
(github.com/PiotrDabkowski/pytorch-saliency, `SaliencyLoss`):

    L = w_d * CW_nt(f(psi(I, 1 - M)), t; 5)         destroyer ("lambda_bg" term)
      + w_p * CW_t(f(psi(I, M)), t; 1)              preserver (the -f_t term)
      + w_a * mean((M + 0.0005) ^ 0.3)              area (Theta_av)
      + w_s * smoothness(M)                          smoothness (Theta_tv)

CW_t(z, t; c) = ReLU(max_{k != t} z_k - z_t + c) and CW_nt(z, t; c) =
ReLU(z_t - max_{k != t} z_k + c) are their Carlini-Wagner logit margins;
smoothness(M) = sum of squared neighbour differences plus 0.3 x the squared
border values, over 2 and the batch size. Weights w_d = 1, w_p = 0.3, w_a = 8,
w_s = 0.005 (their saliency_train.py; `shared/REFERENCE_NOTES.md` section 2).
psi is DRE's training perturbation (the same backgrounds for both methods, paper
Sec. 4.1), drawn independently for the preserved and the destroyed image.

Differences from the released code, forced by "the same architecture as DRE":
the generator ends in one channel, so the mask is a sigmoid (their
`use_simple_activation`) instead of |a| / (|a| + |b|) of two channels; t is the
classifier's prediction (DRE uses no labels), so there are no fake labels in
stage 2.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dre_jax import perturbation
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE, upsample_masks

# The released code's values; a config may override any of them.
DEFAULTS = {
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


def default_config():
  """The MGnet objective's weights (`DEFAULTS`) as an ml_collections.ConfigDict."""
  import ml_collections
  return ml_collections.ConfigDict(DEFAULTS)


def settings(config: Any = None) -> dict[str, float]:
  """DEFAULTS updated from `config`: None (the defaults), a mapping or ConfigDict
  of MGnet settings, or the whole experiment config, whose `mgnet` group
  (`configs/mgnet.py`) is read; other fields are ignored.
  """
  out = dict(DEFAULTS)
  if config is not None and "mgnet" in config:
    config = config["mgnet"]
  if config is not None:
    for name in DEFAULTS:
      value = config.get(name, None) if hasattr(config, "get") else None
      if value is not None:
        out[name] = float(value)
  return out


def masks_from_taps(dre: DRE, generator_variables, taps, target, size,
                    train: bool = False):
  """M = upsample(sigmoid(G(taps, t))): [N, H, W] in (0, 1); with train=True
  (M, new batch_stats)."""
  if train:
    x, updates = dre.generator.apply(generator_variables, taps, target, train=True,
                                     mutable=["batch_stats"])
  else:
    x = dre.generator.apply(generator_variables, taps, target, train=False)
  masks = upsample_masks(jax.nn.sigmoid(x), size)
  return (masks, updates["batch_stats"]) if train else masks


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


def area_loss(masks: jnp.ndarray, power: float) -> jnp.ndarray:
  """Theta_av: mean((M + 0.0005) ^ power) (the offset keeps the gradient finite at 0)."""
  return jnp.mean((masks + 0.0005) ** power)


def smoothness_loss(masks: jnp.ndarray, power: float = 2.0,
                    border_penalty: float = 0.3) -> jnp.ndarray:
  """Theta_tv of the released code: (sum |dM|^p + border * sum border^p) / (p N); masks [N, H, W]."""
  dy = jnp.sum(jnp.abs(masks[:, 1:, :] - masks[:, :-1, :]) ** power)
  dx = jnp.sum(jnp.abs(masks[:, :, 1:] - masks[:, :, :-1]) ** power)
  border = border_penalty * jnp.sum(
      masks[:, 0, :] ** power + masks[:, -1, :] ** power
      + masks[:, :, 0] ** power + masks[:, :, -1] ** power)
  return (dy + dx + border) / (power * masks.shape[0])


def objective(classifier: Classifier, images: jnp.ndarray, masks: jnp.ndarray,
              target: jnp.ndarray, key: jax.Array,
              backgrounds: perturbation.BackgroundConfig, config: Any = None):
  """Eq. 2 as above for masks [N, H, W]: (loss, terms dict)."""
  s = settings(config)
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
      "area": area_loss(masks, s["area_power"]),
      "smoothness": smoothness_loss(masks, s["smoothness_power"],
                                    s["border_penalty"]),
  }
  loss = (s["destroyer_weight"] * terms["destroyer"]
          + s["preserver_weight"] * terms["preserver"]
          + s["area_weight"] * terms["area"]
          + s["smoothness_weight"] * terms["smoothness"])
  terms["accuracy"] = jnp.mean(jnp.argmax(kept, -1) == target)
  terms["destroyed_accuracy"] = jnp.mean(jnp.argmax(dropped, -1) == target)
  return loss, terms


def loss(dre: DRE, generator_params, generator_state, classifier: Classifier,
         images: jnp.ndarray, key: jax.Array,
         backgrounds: perturbation.BackgroundConfig = perturbation.BackgroundConfig(),
         config: Any = None):
  """Stage 2 of MGnet: Eq. 2 (`objective`) with M from the generator in train mode.

  The signature of `dre_jax.training.objectives` (`DRE.loss`'s, with `dre` first
  and the config last, see `settings`), so `train.py` runs it in place of Eq. 9
  with `config.dre.objective = "mgnet"` (`configs/mgnet.py`):
  differentiable in `generator_params`; `generator_state` is its batch_stats;
  t = argmax f(I).

  Returns:
    (loss, (new_batch_stats, aux)) with aux = {"accuracy": fraction of preserved
    images still classified as t, "mask_mean", and the four terms}.
  """
  dre.check_images(images)
  logits, taps = classifier.logits_and_taps(images)
  target = jnp.argmax(logits, axis=-1)
  masks, new_state = masks_from_taps(
      dre, {"params": generator_params, "batch_stats": generator_state}, taps,
      target, images.shape[1:3], train=True)
  value, terms = objective(classifier, images, masks, target, key, backgrounds,
                           config)
  aux = {"mask_mean": jnp.mean(masks), **terms}
  return value, (new_state, aux)
