"""DRE+ (paper Sec. 4.4.1): two post hoc tunings of DRE's masks.

Self-based (`dre+self`): with the DRE mask M, compute the insertion curve of
the faithfulness metric (Eq. 10) at the i x Delta points, make it monotone
(Q_i = max_{j <= i} Q_j), read the probability Q_k at every pixel k by linear
interpolation between the i x Delta points (pixel k, of rank r among P pixels,
is inserted at fraction (r + 1) / P), and weight the mask:

    M'_k = M_k x W_k,   W_k = Q_max - Q_k,   Q_max = max_k Q_k.

Pixels ranked after the curve has reached its maximum get weight 0. The
ranking, baseline (blur sigma 10, kernel 55) and tie-breaker are the metric's
(`dre_jax.metrics`). Cost: DRE plus m + 1 classifier forward passes.

MGnet-based (`dre+mgnet`): M' = M_DRE x M_MGnet, the product of the masks of
DRE and of an MGnet generator trained for the same classifier (two workdirs:
bind both with `bind("dre+mgnet", dre=..., mgnet=...)`; `evaluate.py` takes
the MGnet one from `config.eval.mgnet_workdir`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from dre_jax import metrics
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.explainers import generators
from dre_jax.explainers import registry


def self_based_weights(probability_fn: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
                       images: jnp.ndarray, masks: jnp.ndarray, target: jnp.ndarray,
                       num_steps: int = 32, steps_per_call: int = 4,
                       tie_break: metrics.TieBreak = metrics.TieBreak()
                       ) -> jnp.ndarray:
  """Sec. 4.4.1: W_k = Q_max - Q_k per pixel, [N, H, W] (>= 0).

  Q: the insertion curve of `masks` (Eq. 10, m = num_steps), made monotone,
  linearly interpolated at each pixel's insertion fraction.
  """
  curve = metrics.insertion_curve(probability_fn, images, masks, target,
                                  num_steps=num_steps,
                                  steps_per_call=steps_per_call,
                                  tie_break=tie_break)
  q = jax.lax.cummax(curve, axis=1)                      # [N, m + 1], monotone
  ranks = metrics.pixel_ranks(masks, tie_break)          # [N, H, W]
  num_pixels = masks.shape[1] * masks.shape[2]
  x = (ranks + 1).astype(jnp.float32) * (num_steps / num_pixels)  # in Delta units
  lower = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, num_steps - 1)
  frac = x - lower
  n = masks.shape[0]
  flat = lambda i: jnp.take_along_axis(q, i.reshape(n, -1), axis=1).reshape(i.shape)  # noqa: E731
  q_k = flat(lower) * (1 - frac) + flat(lower + 1) * frac
  return q[:, -1][:, None, None] - q_k


def _self_passes(num_steps: int = 32, **_) -> float:
  return (1 + num_steps + 1) / 3.0  # DRE's forward and m + 1 metric forwards


@registry.register("dre+self", passes=_self_passes, load=generators.load_generator,
                   needs=("dre",), display="DRE+ (self-based)",
                   table2=registry.Table2(11, "-", "1 + 33 forwards"),
                   output="mask",
                   reference="the DRE paper (TPAMI), Sec. 4.4.1, self-based")
def dre_plus_self(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                  key=None, *, estimator: DRE, generator_variables,
                  num_steps: int = 32, steps_per_call: int = 4) -> jnp.ndarray:
  """DRE+ (self-based): M' = M_DRE x (Q_max - Q_k). Settings: num_steps (m =
  1 / Delta, the paper's 32), steps_per_call (insertion ratios run together).

  Returns [N, H, W] float32 in [0, 1).
  """
  masks = generators.dre_explainer(classifier, images, target, key,
                                   estimator=estimator,
                                   generator_variables=generator_variables)
  weights = self_based_weights(classifier.probability, images, masks, target,
                               num_steps, steps_per_call)
  return masks * weights


def _needs_two_workdirs(workdir: str) -> dict[str, Any]:
  raise TypeError(
      "dre+mgnet needs two trained generators (DRE and MGnet for the same "
      "classifier): evaluate.py takes the MGnet one from "
      "config.eval.mgnet_workdir; in Python use bind('dre+mgnet', "
      "dre=Generator(...), mgnet=Generator(...))")


@registry.register("dre+mgnet", passes=lambda **_: 2.0 / 3.0, load=_needs_two_workdirs,
                   needs=("dre", "mgnet"), display="DRE+ (MGnet-based)",
                   table2=registry.Table2(12, "-", "2"), output="mask",
                   reference="the DRE paper (TPAMI), Sec. 4.4.1, MGnet-based")
def dre_plus_mgnet(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                   key=None, *, estimator: DRE, generator_variables,
                   mgnet_estimator: DRE, mgnet_variables) -> jnp.ndarray:
  """DRE+ (MGnet-based): M' = M_DRE x M_MGnet (element-wise). No settings.

  Returns [N, H, W] float32 in (0, 1).
  """
  dre = generators.dre_explainer(classifier, images, target, key,
                                 estimator=estimator,
                                 generator_variables=generator_variables)
  mgnet = generators.mgnet_explainer(classifier, images, target, key,
                                     estimator=mgnet_estimator,
                                     generator_variables=mgnet_variables)
  return dre * mgnet
