"""Eqs. 10 and 11 against closed forms and scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from dre_jax import metrics


def test_explainability_is_sklearn_average_precision():
  rng = np.random.default_rng(0)
  masks = rng.random((5, 12, 10)).astype(np.float32)
  boxes = np.zeros((5, 12, 10), np.float32)
  for n in range(5):
    y0, x0 = rng.integers(0, 6, 2)
    boxes[n, y0:y0 + 5, x0:x0 + 4] = 1
  masks = masks + 0.3 * boxes  # informative but imperfect
  ours = np.asarray(metrics.explainability(jnp.asarray(masks), jnp.asarray(boxes)))
  ref = [100 * average_precision_score(b.ravel(), m.ravel()) for b, m in zip(boxes, masks)]
  np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_explainability_extremes():
  boxes = jnp.zeros((1, 8, 8)).at[0, 2:4, 2:6].set(1.0)
  assert float(metrics.explainability(boxes + 0.01, boxes)[0]) == pytest.approx(100.0)
  inverted = metrics.explainability(1.0 - boxes, boxes)[0]
  assert float(inverted) < 20
  assert np.isnan(metrics.explainability(boxes, jnp.zeros_like(boxes))[0])


def _mean_brightness(images, target):
  del target
  return jnp.mean(images, axis=(1, 2, 3))


def test_insertion_curve_closed_form():
  # Clean image 1, baseline 0, "probability" = mean pixel: Q_i = i / m exactly.
  m = 8
  images = jnp.ones((2, 16, 16, 3))
  masks = jax.random.uniform(jax.random.key(0), (2, 16, 16))
  curve = metrics.insertion_curve(_mean_brightness, images, masks, jnp.zeros(2, jnp.int32),
                                  num_steps=m, steps_per_call=3,
                                  baseline=jnp.zeros_like(images))
  np.testing.assert_allclose(np.asarray(curve), np.tile(np.arange(m + 1) / m, (2, 1)),
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(metrics.faithfulness(curve)),
                             100 * (m + 1) / (2 * m), rtol=1e-6)


def test_insertion_curve_rewards_the_right_pixels():
  # The "classifier" only looks at the top-left quadrant.
  def probability(images, target):
    del target
    return jnp.mean(images[:, :8, :8], axis=(1, 2, 3))
  images = jnp.ones((1, 16, 16, 3))
  good = jnp.zeros((1, 16, 16)).at[:, :8, :8].set(1.0)
  kw = dict(num_steps=16, baseline=jnp.zeros_like(images))
  target = jnp.zeros(1, jnp.int32)
  f_good = metrics.faithfulness(metrics.insertion_curve(probability, images, good, target, **kw))
  f_bad = metrics.faithfulness(metrics.insertion_curve(probability, images, 1 - good, target, **kw))
  assert float(f_good[0]) > 90 and float(f_bad[0]) < 30


def test_default_baseline_is_the_blurred_image_and_ends_clean():
  images = jax.random.uniform(jax.random.key(1), (1, 64, 64, 3))
  masks = jax.random.uniform(jax.random.key(2), (1, 64, 64))
  curve = metrics.insertion_curve(lambda x, t: jnp.mean(x, axis=(1, 2, 3)), images, masks,
                                  jnp.zeros(1, jnp.int32), num_steps=4)
  blurred = metrics.perturbation.gaussian_blur(images, 10.0, 55)
  assert float(curve[0, 0]) == pytest.approx(float(jnp.mean(blurred)), rel=1e-5)
  assert float(curve[0, -1]) == pytest.approx(float(jnp.mean(images)), rel=1e-5)


def test_shape_errors():
  with pytest.raises(ValueError, match="differ in shape"):
    metrics.explainability(jnp.zeros((1, 4, 4)), jnp.zeros((1, 4, 5)))
  with pytest.raises(ValueError, match="masks"):
    metrics.insertion_curve(_mean_brightness, jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 4, 4)),
                            jnp.zeros(1, jnp.int32))


# --- The tie-breaker (Sec. 4.2.1), the normalisation across methods, skewness.

def _quantised_maps(key, n=3, size=32, levels=4):
  """Maps with large runs of exactly equal scores (as saturated masks have)."""
  return jnp.floor(jax.random.uniform(key, (n, size, size)) * levels) / levels


def test_tie_breaker_reorders_only_tied_pixels():
  masks = _quantised_maps(jax.random.key(3))
  flat = np.asarray(masks).reshape(3, -1)
  plain = np.asarray(metrics.pixel_order(masks, metrics.NO_TIE_BREAK))
  tied = np.asarray(metrics.pixel_order(masks, metrics.TieBreak()))
  # Without a tie-breaker equal scores keep raster order (a stable sort).
  np.testing.assert_array_equal(plain, np.argsort(-flat, axis=1, kind="stable"))
  # The scores along both orders are the same sequence: only pixels of equal
  # score traded places ...
  np.testing.assert_array_equal(np.take_along_axis(flat, tied, 1),
                                np.take_along_axis(flat, plain, 1))
  # ... and they did trade places, by the smoothed map (descending) in each run.
  assert (tied != plain).mean() > 0.5
  smooth = np.asarray(metrics.smoothed(masks, 1 / 16)).reshape(3, -1)
  for n in range(3):
    for level in np.unique(flat[n]):
      run = tied[n][flat[n][tied[n]] == level]
      assert np.all(np.diff(smooth[n][run]) <= 0)


def test_tie_breaker_leaves_untied_maps_alone():
  masks = jax.random.uniform(jax.random.key(4), (2, 24, 24))
  assert float(metrics.tied_fraction(masks).max()) == 0.0
  np.testing.assert_array_equal(
      np.asarray(metrics.pixel_order(masks, metrics.TieBreak())),
      np.asarray(metrics.pixel_order(masks, metrics.NO_TIE_BREAK)))


def test_weighted_tie_breaker_ranks_the_sum():
  masks = _quantised_maps(jax.random.key(5), levels=16)
  tb = metrics.TieBreak(sigma=0.1, weight=0.05)
  m = np.asarray(masks, np.float64).reshape(3, -1)
  m = (m - m.min(1, keepdims=True)) / (m.max(1, keepdims=True) - m.min(1, keepdims=True))
  key = m + 0.05 * np.asarray(metrics.smoothed(masks, 0.1)).reshape(3, -1)
  ranks = np.asarray(metrics.pixel_ranks(masks, tb)).reshape(3, -1)
  # Higher key -> smaller rank (ties in the float32 sum aside).
  for n in range(3):
    order = ranks[n].argsort()
    assert np.all(np.diff(key[n][order]) <= 1e-6)


def test_tied_fraction_hand_case():
  masks = jnp.array([[[0.0, 0.0], [1.0, 2.0]], [[3.0, 3.0], [3.0, 3.0]]])
  np.testing.assert_allclose(np.asarray(metrics.tied_fraction(masks)), [0.5, 1.0])


def test_normalisation_hand_computed_with_known_curves():
  # Two methods on two images whose insertion curves are known exactly: the
  # "classifier" is the mean brightness of the top-left quadrant, clean image 1,
  # baseline 0. Method A ranks the quadrant first on image 0, last on image 1;
  # method B the other way round.
  def probability(images, target):
    del target
    return jnp.mean(images[:, :8, :8], axis=(1, 2, 3))
  images = jnp.ones((2, 16, 16, 3))
  quadrant = jnp.zeros((16, 16)).at[:8, :8].set(1.0)
  ramp = jnp.arange(256.0).reshape(16, 16) / 1e4  # no ties
  a = jnp.stack([quadrant + ramp, 1 - quadrant + ramp])
  b = a[::-1]
  kw = dict(num_steps=4, baseline=jnp.zeros_like(images))
  t = jnp.zeros(2, jnp.int32)
  curves = [metrics.insertion_curve(probability, images, m, t, **kw) for m in (a, b)]
  # Quadrant first: Q = (0, 1, 1, 1, 1) -> M_F 100; quadrant last: Q = (0, 0, 0, 0, 1) -> 25.
  np.testing.assert_allclose(np.asarray(curves[0]), [[0, 1, 1, 1, 1], [0, 0, 0, 0, 1]],
                             atol=1e-6)
  mf = np.stack([np.asarray(metrics.faithfulness(c)) for c in curves])
  np.testing.assert_allclose(mf, [[100, 25], [25, 100]], rtol=1e-6)
  np.testing.assert_allclose(metrics.normalise_across_methods(mf), [[100, 0], [0, 100]])
  # Three methods: the middle one lands where it lies between the other two;
  # an image where all agree, or one is NaN, is NaN for every method.
  values = np.array([[80.0, 10.0, 5.0, 1.0], [20.0, 30.0, 5.0, np.nan],
                     [50.0, 20.0, 5.0, 2.0]])
  np.testing.assert_allclose(
      metrics.normalise_across_methods(values),
      [[100, 0, np.nan, np.nan], [0, 100, np.nan, np.nan], [50, 50, np.nan, np.nan]])


def test_skewness_against_scipy_and_the_controller():
  import scipy.stats
  from dre_jax import controller
  maps = np.asarray(jax.random.beta(jax.random.key(6), 2.0, 5.0, (4, 20, 30)), np.float64)
  ref = scipy.stats.skew(maps.reshape(4, -1), axis=1, bias=True)
  np.testing.assert_allclose(np.asarray(metrics.skewness(jnp.asarray(maps))), ref, rtol=1e-4)
  np.testing.assert_allclose(controller.skewness(maps), ref, rtol=1e-10)
  flat = maps.reshape(4, -1).astype(np.float64)
  median_ref = 3 * (flat.mean(1) - np.median(flat, 1)) / flat.std(1)
  np.testing.assert_allclose(np.asarray(metrics.median_skewness(jnp.asarray(maps))),
                             median_ref, rtol=1e-4)
  assert np.isnan(np.asarray(metrics.skewness(jnp.ones((1, 4, 4)))[0]))
