"""Paired statistics (dre_jax.evaluation.statistics) against scipy and by hand.

* The percentile bootstrap interval of the mean difference agrees with
  `scipy.stats.bootstrap(..., paired=True, method="percentile")` on the same
  data (other resamples: within a small part of the standard error).
* A constant difference gives a zero-width interval at that value; the
  interval is seeded; win / tie / loss counts and NaN images by hand.
"""

import numpy as np
import pytest
import scipy.stats

from dre_jax.evaluation import statistics


def _sample(n=60, seed=3):
  rng = np.random.default_rng(seed)
  other = rng.uniform(20, 80, n)
  reference = other + rng.normal(1.5, 6.0, n)  # paired: shares each image's level
  return reference, other


@pytest.mark.parametrize("n", [12, 60])
def test_interval_agrees_with_scipy_paired_percentile_bootstrap(n):
  reference, other = _sample(n)
  got = statistics.compare(reference, other, resamples=40_000, seed=1)
  want = scipy.stats.bootstrap(
      (reference, other), lambda a, b, axis: a.mean(axis) - b.mean(axis),
      paired=True, vectorized=True, method="percentile", n_resamples=40_000,
      confidence_level=0.95, random_state=np.random.default_rng(7))
  se = np.std(reference - other, ddof=1) / np.sqrt(n)
  assert got["low"] == pytest.approx(want.confidence_interval.low, abs=0.05 * se)
  assert got["high"] == pytest.approx(want.confidence_interval.high, abs=0.05 * se)
  # The same statistic as the bootstrap of the differences alone.
  differences = scipy.stats.bootstrap(
      (reference - other,), np.mean, method="percentile", n_resamples=40_000,
      random_state=np.random.default_rng(7)).confidence_interval
  assert differences.low == pytest.approx(want.confidence_interval.low, abs=0.05 * se)
  assert got["difference"] == pytest.approx(np.mean(reference - other))


def test_a_constant_difference_has_a_zero_width_interval_at_it():
  other = np.linspace(10, 90, 40)
  got = statistics.compare(other + 2.5, other, resamples=2_000, seed=0)
  assert got["low"] == pytest.approx(2.5) and got["high"] == pytest.approx(2.5)
  assert not got["level"]
  assert (got["wins"], got["ties"], got["losses"], got["images"]) == (40, 0, 0, 40)


def test_seeded_counts_and_nan_images():
  reference = np.array([5.0, 3.0, 3.0, np.nan, 1.0, 7.0])
  other = np.array([4.0, 3.0, 3.5, 2.0, np.nan, 7.0 + 1e-9])
  got = statistics.compare(reference, other, resamples=500, seed=4)
  assert got == statistics.compare(reference, other, resamples=500, seed=4)
  assert (got["wins"], got["ties"], got["losses"], got["images"]) == (1, 2, 1, 4)
  assert got["difference"] == pytest.approx((1.0 + 0 - 0.5 - 1e-9) / 4)
  assert got["level"] and got["low"] <= 0 <= got["high"]
  assert statistics.compare([np.nan], [1.0]) is None
  with pytest.raises(ValueError, match="two \\[N\\] arrays"):
    statistics.compare([1.0, 2.0], [1.0])
