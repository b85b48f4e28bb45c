"""Ranking-based metrics of saliency maps (paper Sec. 4.1, Eqs. 10 and 11).

Faithfulness M_F (Eq. 10): starting from a fully blurred image, the pixels with
the top i * Delta highest scores are restored from the clean image; Q_i is the
classifier's probability of the target class; M_F = 100 * sum_{i=1..m} Q_i Delta
with m * Delta = 1 (the paper: Delta = 1/32, 33 points Q_0..Q_32).

Explainability M_E (Eq. 11): pixels ranked by score are a retrieval of the
bounding-box pixels; M_E = 100 * sum_i P_i (R_i - R_{i-1}), the area under the
precision-recall curve (scikit-learn's average precision when no scores tie).

All functions are vectorised over the batch; the insertion curve runs its
m + 1 classifier calls as one `jax.lax.map` over the ratios, `steps_per_call`
of them vmapped together.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dre_jax import perturbation

# Released evaluation code: the base image is blurred with sigma 10, kernel 55.
BLUR_SIGMA = 10.0
BLUR_KERNEL = 55


def _ranks(masks: jnp.ndarray) -> jnp.ndarray:
  """[N, H, W] scores -> [N, H, W] rank of each pixel, 0 = highest (stable)."""
  n = masks.shape[0]
  flat = masks.reshape(n, -1)
  order = jnp.argsort(-flat, axis=1, stable=True)
  ranks = jnp.empty_like(order).at[jnp.arange(n)[:, None], order].set(
      jnp.arange(flat.shape[1])[None, :])
  return ranks.reshape(masks.shape)


def insertion_curve(probability_fn: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
                    images: jnp.ndarray, masks: jnp.ndarray, target: jnp.ndarray,
                    num_steps: int = 32, steps_per_call: int = 1,
                    baseline: jnp.ndarray | None = None) -> jnp.ndarray:
  """Q_0..Q_m of Eq. 10 for each image.

  Args:
    probability_fn: (images [N, H, W, 3] in [0, 1], target [N]) -> [N] the
      classifier's softmax probability of the target class.
    images: [N, H, W, 3] clean images; masks: [N, H, W] scores (any range).
    target: [N] int classes.
    num_steps: m = 1 / Delta.
    steps_per_call: ratios evaluated together in one vmapped call (memory).
    baseline: [N, H, W, 3] the fully perturbed image; default the blur of the
      released evaluation code (sigma 10, kernel 55).

  Returns:
    [N, m + 1] probabilities at ratios 0, Delta, ..., 1.
  """
  perturbation.check_images(images)
  if masks.shape != images.shape[:3]:
    raise ValueError(f"masks {tuple(masks.shape)} must be [N, H, W] of the images "
                     f"{tuple(images.shape[:3])}")
  if baseline is None:
    baseline = perturbation.gaussian_blur(images, BLUR_SIGMA, BLUR_KERNEL)
  ranks = _ranks(masks)
  num_pixels = masks.shape[1] * masks.shape[2]
  counts = jnp.round(jnp.arange(num_steps + 1) / num_steps * num_pixels)

  def q(count):
    keep = (ranks < count).astype(images.dtype)
    return probability_fn(perturbation.perturb(images, keep, baseline), target)

  return jax.lax.map(q, counts, batch_size=steps_per_call).T


def faithfulness(curve: jnp.ndarray) -> jnp.ndarray:
  """Eq. 10: M_F = 100 * sum_{i=1..m} Q_i * Delta; curve [N, m + 1] -> [N]."""
  m = curve.shape[-1] - 1
  return 100.0 * jnp.sum(curve[..., 1:], axis=-1) / m


def explainability(masks: jnp.ndarray, box_masks: jnp.ndarray) -> jnp.ndarray:
  """Eq. 11: M_E = 100 * sum_i P_i (R_i - R_{i-1}) over pixels ranked by score.

  masks: [N, H, W] scores; box_masks: [N, H, W] in {0, 1}. Returns [N]; NaN for
  an image whose box mask is empty.
  """
  if masks.shape != box_masks.shape:
    raise ValueError(f"masks {tuple(masks.shape)} and box masks "
                     f"{tuple(box_masks.shape)} differ in shape")
  n = masks.shape[0]
  order = jnp.argsort(-masks.reshape(n, -1), axis=1, stable=True)
  relevant = jnp.take_along_axis(box_masks.reshape(n, -1) > 0.5, order, axis=1)
  hits = jnp.cumsum(relevant, axis=1)
  precision = hits / jnp.arange(1, hits.shape[1] + 1)
  total = hits[:, -1]
  ap = jnp.sum(precision * relevant, axis=1) / total
  return jnp.where(total > 0, 100.0 * ap, jnp.nan)
