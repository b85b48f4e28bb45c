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
