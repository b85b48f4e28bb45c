"""Ranking-based metrics of saliency maps (paper Sec. 4.1, 4.2.1, Eqs. 10 and 11).

Faithfulness M_F (Eq. 10): starting from a fully blurred image, the pixels with
the top i * Delta highest scores are restored from the clean image; Q_i is the
classifier's probability of the target class; M_F = 100 * sum_{i=1..m} Q_i Delta
with m * Delta = 1 (the paper: Delta = 1/32, 33 points Q_0..Q_32).

Explainability M_E (Eq. 11): pixels ranked by score are a retrieval of the
bounding-box pixels; M_E = 100 * sum_i P_i (R_i - R_{i-1}), the area under the
precision-recall curve (scikit-learn's average precision when no scores tie).

Ties (Sec. 4.2.1, "we add a smoothed mask over the original one with a small
weight"): both metrics rank the pixels, and many maps have runs of equal
scores (saturated MGnet masks, Grad-CAM's zeros, float32 underflow in DRE's
controller). The paper gives neither the kernel nor the weight. Here
(`TieBreak`) the smoothed copy is the per-image min-max normalised map blurred
with a Gaussian of sigma = `sigma` x the image side (1/16: 14 px at 224, 4 px
at 64). `weight > 0` ranks by the normalised map plus `weight x smoothed`
(the evaluation's default, `config.TIE_BREAK_WEIGHT` = 1e-3, reorders
near-ties too), with the smoothed copy as the second sort key; weight 0 is
the limit of a vanishing weight: the map's own score is the first sort key
and the smoothed copy the second, so only pixels of exactly equal score
change their order (among themselves: nearer to relevant regions first).
`sigma = 0` switches the tie-breaker off (equal scores keep raster order).
Pixels still tied after both keys keep raster order.

Normalised M_F (Sec. 4.2.1, Tables 3 and 5): per image, min-max over the
evaluated methods, `normalise_across_methods`.

Skewness of a map: Pearson's moment coefficient E[(z - mu)^3] / sigma^3 (the
population "g1", `scipy.stats.skew(bias=True)`; 0.85 for the controller's
output on N(0, 1) input) and Pearson's median coefficient 3 (mean - median) /
sigma, the statistic Doane & Seward (the paper's ref. [5]) revisit.

All functions are vectorised over the batch; the insertion curve runs its
m + 1 classifier calls as one `jax.lax.map` over the ratios, `steps_per_call`
of them vmapped together.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import perturbation
from dre_jax import validation

# Released evaluation code: the base image is blurred with sigma 10, kernel 55.
BLUR_SIGMA = 10.0
BLUR_KERNEL = 55


@dataclasses.dataclass(frozen=True)
class TieBreak:
  """How the metrics order pixels of equal score (see the module docstring).

  sigma: the smoothing Gaussian's sigma as a fraction of the image's shorter
    side; 0 switches the tie-breaker off.
  weight: 0 orders by (score, smoothed score) lexicographically, the limit of
    a vanishing weight (only exact ties move); > 0 ranks by
    normalised score + weight x smoothed normalised score.
  """

  sigma: float = 1.0 / 16
  weight: float = 0.0

  def __post_init__(self):
    if self.sigma < 0 or self.weight < 0:
      raise ValueError(f"tie-breaker sigma and weight must be >= 0, got "
                       f"sigma={self.sigma}, weight={self.weight}")

  @property
  def enabled(self) -> bool:
    return self.sigma > 0


NO_TIE_BREAK = TieBreak(sigma=0.0)


def _minmax(masks: jnp.ndarray) -> jnp.ndarray:
  """Per-map min-max normalisation to [0, 1] (a constant map -> zeros)."""
  lo = jnp.min(masks, axis=(1, 2), keepdims=True)
  hi = jnp.max(masks, axis=(1, 2), keepdims=True)
  return (masks - lo) / jnp.where(hi > lo, hi - lo, 1.0)


def smoothed(masks: jnp.ndarray, sigma: float) -> jnp.ndarray:
  """The tie-breaker's smoothed copy: min-max normalised, Gaussian blurred.

  masks: [N, H, W]; sigma: fraction of min(H, W). Returns [N, H, W] float32.
  """
  sigma_px = sigma * min(masks.shape[1:3])
  kernel = 2 * math.ceil(3 * sigma_px) + 1
  normalised = _minmax(masks.astype(jnp.float32))
  return perturbation.gaussian_blur(normalised[..., None], sigma_px, kernel)[..., 0]


def ranking_keys(masks: jnp.ndarray, tie_break: TieBreak = TieBreak()
                 ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(primary, secondary) sort keys, higher = more relevant: [N, H, W] each."""
  masks = masks.astype(jnp.float32)
  if not tie_break.enabled:
    return masks, jnp.zeros_like(masks)
  smooth = smoothed(masks, tie_break.sigma)
  if tie_break.weight == 0:
    return masks, smooth
  return _minmax(masks) + tie_break.weight * smooth, smooth


def pixel_order(masks: jnp.ndarray, tie_break: TieBreak = TieBreak()
                ) -> jnp.ndarray:
  """[N, H, W] scores -> [N, H * W] flat pixel indices, most relevant first.

  Sorted by the keys of `ranking_keys` (descending), then raster order.
  """
  n = masks.shape[0]
  primary, secondary = ranking_keys(masks, tie_break)
  iota = jnp.broadcast_to(jnp.arange(primary[0].size, dtype=jnp.int32),
                          (n, primary[0].size))
  _, _, order = jax.lax.sort(
      (-primary.reshape(n, -1), -secondary.reshape(n, -1), iota),
      dimension=1, num_keys=2, is_stable=True)
  return order


def pixel_ranks(masks: jnp.ndarray, tie_break: TieBreak = TieBreak()
                ) -> jnp.ndarray:
  """[N, H, W] scores -> [N, H, W] int32 rank of each pixel, 0 = most relevant."""
  n = masks.shape[0]
  order = pixel_order(masks, tie_break)
  ranks = jnp.zeros_like(order).at[jnp.arange(n)[:, None], order].set(
      jnp.arange(order.shape[1], dtype=order.dtype)[None, :])
  return ranks.reshape(masks.shape)


def tied_fraction(masks: jnp.ndarray) -> jnp.ndarray:
  """[N, H, W] -> [N] fraction of pixels whose score equals another pixel's."""
  n = masks.shape[0]
  v = jnp.sort(masks.reshape(n, -1), axis=1)
  same = v[:, 1:] == v[:, :-1]
  pad = jnp.zeros((n, 1), bool)
  tied = jnp.concatenate([same, pad], 1) | jnp.concatenate([pad, same], 1)
  return jnp.mean(tied, axis=1)


def insertion_curve(probability_fn: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
                    images: jnp.ndarray, masks: jnp.ndarray, target: jnp.ndarray,
                    num_steps: int = 32, steps_per_call: int = 1,
                    baseline: jnp.ndarray | None = None,
                    tie_break: TieBreak = TieBreak()) -> jnp.ndarray:
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
    tie_break: how pixels of equal score are ordered (`TieBreak`).

  Returns:
    [N, m + 1] probabilities at ratios 0, Delta, ..., 1.
  """
  validation.as_images(images)
  if masks.shape != images.shape[:3]:
    raise ValueError(f"masks {tuple(masks.shape)} must be [N, H, W] of the images "
                     f"{tuple(images.shape[:3])}")
  if baseline is None:
    baseline = perturbation.gaussian_blur(images, BLUR_SIGMA, BLUR_KERNEL)
  ranks = pixel_ranks(masks, tie_break)
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


def explainability(masks: jnp.ndarray, box_masks: jnp.ndarray,
                   tie_break: TieBreak = TieBreak()) -> jnp.ndarray:
  """Eq. 11: M_E = 100 * sum_i P_i (R_i - R_{i-1}) over pixels ranked by score.

  masks: [N, H, W] scores; box_masks: [N, H, W] in {0, 1}. Pixels are ranked
  as in M_F (`pixel_order` with `tie_break`). Returns [N]; NaN for an image
  whose box mask is empty.
  """
  if masks.shape != box_masks.shape:
    raise ValueError(f"masks {tuple(masks.shape)} and box masks "
                     f"{tuple(box_masks.shape)} differ in shape")
  n = masks.shape[0]
  order = pixel_order(masks, tie_break)
  relevant = jnp.take_along_axis(box_masks.reshape(n, -1) > 0.5, order, axis=1)
  hits = jnp.cumsum(relevant, axis=1)
  precision = hits / jnp.arange(1, hits.shape[1] + 1)
  total = hits[:, -1]
  ap = jnp.sum(precision * relevant, axis=1) / total
  return jnp.where(total > 0, 100.0 * ap, jnp.nan)


def spread(masks: jnp.ndarray) -> jnp.ndarray:
  """Standard deviation over max |score| per map: [N, H, W] -> [N] in [0, 1].

  Scale-free (gradients and masks alike); 0 for a constant map.
  """
  z = masks.reshape(masks.shape[0], -1).astype(jnp.float32)
  peak = jnp.max(jnp.abs(z), axis=1)
  return jnp.where(peak > 0, jnp.std(z, axis=1) / jnp.where(peak > 0, peak, 1.0), 0.0)


def skewness(masks: jnp.ndarray) -> jnp.ndarray:
  """Pearson's moment coefficient E[(z - mu)^3] / sigma^3 per map: [N, ...] -> [N].

  The population value (`scipy.stats.skew(bias=True)`, the same statistic as
  `dre_jax.controller.skewness` in float32 on the device); NaN for a constant map.
  """
  z = masks.reshape(masks.shape[0], -1).astype(jnp.float32)
  c = z - jnp.mean(z, axis=1, keepdims=True)
  m2 = jnp.mean(c * c, axis=1)
  return jnp.mean(c * c * c, axis=1) / (m2 * jnp.sqrt(m2))


def median_skewness(masks: jnp.ndarray) -> jnp.ndarray:
  """Pearson's median coefficient 3 (mean - median) / sigma per map: [N, ...] -> [N].

  sigma is the population standard deviation; NaN for a constant map.
  """
  z = masks.reshape(masks.shape[0], -1).astype(jnp.float32)
  return 3.0 * (jnp.mean(z, axis=1) - jnp.median(z, axis=1)) / jnp.std(z, axis=1)


def normalise_across_methods(values) -> np.ndarray:
  """Per-image min-max normalisation of M_F over methods (Sec. 4.2.1).

  values: [M, N] the M_F of M methods on N images. Returns [M, N]:
  100 (v - min_m v) / (max_m v - min_m v) for each image. An image where the
  methods all score the same, or where any method's value is NaN, is NaN for
  every method (means then exclude it for all alike).
  """
  v = np.asarray(values, np.float64)
  if v.ndim != 2:
    raise ValueError(f"values must be [methods, images], got shape {v.shape}")
  lo, hi = v.min(axis=0), v.max(axis=0)  # NaN if any method is NaN
  ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
  span = np.where(ok, hi - lo, 1.0)
  return np.where(ok[None], 100.0 * (v - lo) / span, np.nan)
