"""Paired statistics of one method against the others over the same images.

For a reference method (DRE) and another method scored on the same images,
the per-image differences d_i = reference_i - other_i of a metric give

* a percentile bootstrap interval of their mean: resample the images with
  replacement `resamples` times (seeded), take the mean difference of each
  resample, and report the (1 - confidence) / 2 and (1 + confidence) / 2
  percentiles (Efron & Tibshirani 1993, Sec. 13.3; `scipy.stats.bootstrap`
  with method="percentile" on the differences is the same statistic). Pairing
  (one resample of images for both methods) removes the variation between
  images that both methods share;
* win / tie / loss counts: images where d_i > `TIE_TOLERANCE`, |d_i| <=
  `TIE_TOLERANCE`, d_i < -`TIE_TOLERANCE`.

An interval that contains zero is "level": the sample does not separate the
two methods. Images where either value is NaN are left out of both. Pure
numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 10_000
CONFIDENCE = 0.95
# |difference| up to this (the metrics' units, percentage points) is a tie:
# float32 noise of two identical curves, not a difference.
TIE_TOLERANCE = 1e-6
# Resampled means computed per block of this many index draws (memory bound).
_BLOCK = 1 << 22


def paired_differences(reference, other) -> np.ndarray:
  """reference - other per image, float64, images where both are finite."""
  a = np.asarray(reference, np.float64)
  b = np.asarray(other, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"paired values must be two [N] arrays, got shapes "
                     f"{a.shape} and {b.shape}")
  ok = np.isfinite(a) & np.isfinite(b)
  return a[ok] - b[ok]


def bootstrap_interval(differences, *, resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0, confidence: float = CONFIDENCE
                       ) -> tuple[float, float]:
  """The percentile bootstrap interval of the mean of `differences` [N].

  Raises ValueError on an empty sample or fewer than 1 resample.
  """
  d = np.asarray(differences, np.float64)
  if d.ndim != 1 or len(d) == 0:
    raise ValueError(f"need a non-empty [N] sample, got shape {d.shape}")
  if resamples < 1 or not 0 < confidence < 1:
    raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got "
                     f"{resamples} and {confidence}")
  rng = np.random.default_rng(seed)
  n = len(d)
  rows = max(1, _BLOCK // n)
  means = np.concatenate([
      d[rng.integers(0, n, (min(rows, resamples - start), n))].mean(axis=1)
      for start in range(0, resamples, rows)])
  alpha = (1 - confidence) / 2
  low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
  return float(low), float(high)


def compare(reference, other, *, resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0, confidence: float = CONFIDENCE) -> dict[str, Any] | None:
  """reference minus other over the images where both are finite.

  Returns {"difference": mean difference, "low", "high": the bootstrap
  interval, "level": whether it contains zero, "wins", "ties", "losses",
  "images"}; None where no image has both values.
  """
  d = paired_differences(reference, other)
  if len(d) == 0:
    return None
  low, high = bootstrap_interval(d, resamples=resamples, seed=seed,
                                 confidence=confidence)
  return {"difference": float(d.mean()), "low": low, "high": high,
          "level": bool(low <= 0 <= high),
          "wins": int(np.sum(d > TIE_TOLERANCE)),
          "ties": int(np.sum(np.abs(d) <= TIE_TOLERANCE)),
          "losses": int(np.sum(d < -TIE_TOLERANCE)),
          "images": int(len(d))}


def text(c: dict[str, Any]) -> str:
  """A `compare` result as "+1.23 [-0.50, +2.96] 10/2/4": the mean
  difference, its interval and the wins / ties / losses."""
  return (f"{c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] "
          f"{c['wins']}/{c['ties']}/{c['losses']}")
