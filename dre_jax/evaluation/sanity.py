"""Checks that a method's maps say something before it is ranked.

A method has collapsed when, on more than half of its images with finite
maps, the map is near-constant (`metrics.spread`, the standard deviation over
the largest |score|, below `NEAR_CONSTANT`), or, for a method whose output is
a mask on an absolute scale (`explainers.method(name).output == "mask"`), the
mask's mean is outside `MASK_MEAN_RANGE` (all kept or all removed: a
saturated generator). A collapsed method is flagged in results.json and
tables.md and left out of the normalisation pools and the ranks
(`dre_jax.evaluation.results`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

NEAR_CONSTANT = 1e-6
MASK_MEAN_RANGE = (0.02, 0.98)
MOST = 0.5  # collapsed when more than this share of the images is
RULE = (f"collapsed: on more than {MOST:.0%} of the images with finite maps, "
        f"std < {NEAR_CONSTANT:g} x max |score|, or for a mask output a mean "
        f"outside {MASK_MEAN_RANGE}")


def output_kind(name: str) -> str:
  """The registry's `Method.output` ("mask" or "attribution"); "attribution"
  for a method that is not registered (no absolute scale assumed)."""
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  return explainers.method(name).output if name in explainers.names() else "attribution"


def collapse(arrays: dict[str, Any], output: str) -> str | None:
  """Why a method's maps have collapsed (one line), or None.

  arrays: the method's per-image metrics with `map_spread` and `map_mean`
  (NaN where the map is not finite); output: "mask" or "attribution".
  """
  spread = np.asarray(arrays["map_spread"], np.float64)
  finite = np.isfinite(spread)
  n = int(finite.sum())
  if n == 0:
    return "no finite map"
  flat = int(np.sum(spread[finite] < NEAR_CONSTANT))
  if flat > MOST * n:
    return (f"near-constant maps on {flat} of {n} images (std < "
            f"{NEAR_CONSTANT:g} x max |score|)")
  if output == "mask":
    mean = np.asarray(arrays["map_mean"], np.float64)[finite]
    lo, hi = MASK_MEAN_RANGE
    outside = int(np.sum((mean <= lo) | (mean >= hi)))
    if outside > MOST * n:
      return (f"mask mean outside ({lo:g}, {hi:g}) on {outside} of {n} images "
              f"(mean {mean.mean():.3f})")
  return None
