"""Perturbation psi (Eq. 1) and the training backgrounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from dre_jax import perturbation as pt


def _images(n=4, size=16, key=0):
  return jax.random.uniform(jax.random.key(key), (n, size, size, 3))


def test_eq1_exactly():
  rng = np.random.default_rng(0)
  i, b = rng.random((2, 3, 5, 7, 3)).astype(np.float32)
  m = rng.random((3, 5, 7)).astype(np.float32)
  expected = i * m[..., None] + b * (1 - m[..., None])
  np.testing.assert_allclose(np.asarray(pt.perturb(i, m, b)), expected, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(pt.perturb(i, m[..., None], b)), expected,
                             rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(pt.perturb(i, np.ones_like(m), b)), i)
  np.testing.assert_array_equal(np.asarray(pt.perturb(i, np.zeros_like(m), b)), b)


def test_gaussian_blur_matches_scipy():
  x = np.asarray(_images(2, 20))
  ours = np.asarray(pt.gaussian_blur(jnp.asarray(x), sigma=2.0, kernel_size=9))
  # torch/jnp "reflect" padding is scipy's "mirror"; radius 4 = truncate 2 sigma.
  ref = ndimage.gaussian_filter(x, sigma=(0, 2.0, 2.0, 0), truncate=2.0, mode="mirror")
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_blur_kernel_wider_than_image_is_clipped():
  out = pt.gaussian_blur(_images(1, 8), sigma=11.0, kernel_size=55)
  assert out.shape == (1, 8, 8, 3) and np.all(np.isfinite(out))


def test_backgrounds_reproducible_from_key():
  x = _images(8)
  a = pt.sample_backgrounds(jax.random.key(1), x)
  b = pt.sample_backgrounds(jax.random.key(1), x)
  c = pt.sample_backgrounds(jax.random.key(2), x)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.allclose(np.asarray(a), np.asarray(c))


def test_backgrounds_are_blur_or_colour_plus_noise():
  config = pt.BackgroundConfig(blur_sigma=2.0, blur_kernel_size=9)
  x = _images(400, 16)
  bg = np.asarray(pt.sample_backgrounds(jax.random.key(3), x, config))
  blurred = np.asarray(pt.gaussian_blur(x, 2.0, 9))
  is_blur = np.all(np.isclose(bg, blurred, atol=1e-6), axis=(1, 2, 3))
  assert 0.4 < is_blur.mean() < 0.6  # Bernoulli(0.5) over 400 images
  noisy = bg[~is_blur]
  colour = noisy.mean(axis=(1, 2))  # per image and channel
  assert np.all(np.abs(colour - 0.5) < config.color_range + 0.03)
  assert colour.std() > 0.05  # colours really vary
  residual = noisy - noisy.mean(axis=(1, 2), keepdims=True)
  assert residual.std() == pytest.approx(config.noise_std, rel=0.05)


def test_training_perturbation_keeps_image_where_mask_is_one():
  x = _images(2)
  out = pt.training_perturbation(jax.random.key(4), x, jnp.ones((2, 16, 16)))
  assert np.asarray(out - x).std() == pytest.approx(0.015, rel=0.1)


def test_errors_name_the_problem():
  x = _images(2)
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    pt.perturb(x[..., :2], jnp.ones((2, 16, 16)), x[..., :2])
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    pt.perturb(x[0], jnp.ones((16, 16)), x[0])
  with pytest.raises(ValueError, match="differ in batch or spatial size"):
    pt.perturb(x, jnp.ones((2, 8, 8)), x)
  with pytest.raises(ValueError, match="backgrounds"):
    pt.perturb(x, jnp.ones((2, 16, 16)), x[:1])
  with pytest.raises(ValueError, match="odd"):
    pt.gaussian_blur(x, 2.0, 8)
