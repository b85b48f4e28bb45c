"""The distribution controller (Eqs. 5-8, 13) against closed forms and scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from dre_jax import controller


def _cdf_from_pdf(eta, h):
  """CDF of Eq. 8 by numerical integration of the pdf (independent of Eq. 7)."""
  grid = np.linspace(0, 1, 801)
  pieces = [integrate.quad(controller.controlled_pdf, a, b, args=(eta, h),
                           limit=200)[0] for a, b in zip(grid[:-1], grid[1:])]
  values = np.concatenate([[0.0], np.cumsum(pieces)])
  return lambda z: np.interp(z, grid, values)


def test_monotonic_and_inside_unit_interval():
  x = jnp.sort(jax.random.normal(jax.random.key(0), (4096,)) * 3.0 + 1.0)
  z = controller.distribution_controller(x.reshape(1, 64, 64))
  z = np.asarray(z).ravel()
  assert np.all(np.diff(z) > 0), "the controller must be strictly increasing"
  assert z.min() > 0 and z.max() < 1


def test_accepts_channel_axis_and_is_per_sample():
  x = jax.random.normal(jax.random.key(1), (3, 16, 16))
  z3 = controller.distribution_controller(x)
  z4 = controller.distribution_controller(x[..., None])
  assert z4.shape == (3, 16, 16, 1)
  np.testing.assert_array_equal(np.asarray(z3), np.asarray(z4[..., 0]))
  # Instance normalisation: an affine change of one sample changes nothing.
  z_affine = controller.distribution_controller(x.at[1].multiply(7.0).at[1].add(-3.0))
  np.testing.assert_allclose(np.asarray(z_affine), np.asarray(z3), atol=1e-5)


def test_matches_equations_6_and_7_in_numpy():
  x = np.random.default_rng(0).gamma(2.0, size=(2, 8, 8)).astype(np.float32)
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)  # biased, as Eq. 6 in the code
  y = (x - mean) / np.sqrt(var + 1e-5)
  expected = (1.0 / (1.0 + np.exp(-1.5 * y))) ** 2.5
  np.testing.assert_allclose(np.asarray(controller.distribution_controller(x)),
                             expected, rtol=1e-5, atol=1e-7)


def test_constant_map_is_finite():
  z = controller.distribution_controller(jnp.full((2, 7, 7), 3.0))
  assert np.all(np.isfinite(z))
  np.testing.assert_allclose(np.asarray(z), 0.5 ** 2.5, rtol=1e-6)


def test_histogram_matches_controlled_pdf_ks():
  # A big N(0, 1) map: instance normalisation is then nearly the identity; a
  # subsample is tested so the KS test's resolution is above that residual.
  x = jax.random.normal(jax.random.key(2), (1, 512, 512))
  z = np.asarray(controller.distribution_controller(x)).ravel()
  sample = np.random.default_rng(0).choice(z, 4000, replace=False)
  assert stats.kstest(sample, _cdf_from_pdf(1.5, 2.5)).pvalue > 0.01
  # The same test rejects the pdf of another h: it can fail.
  assert stats.kstest(sample, _cdf_from_pdf(1.5, 2.0)).pvalue < 1e-6


def test_mean_median_skewness_for_standard_normal_input():
  mean = integrate.quad(lambda z: z * controller.controlled_pdf(z), 0, 1)[0]
  assert mean == pytest.approx(0.2725, abs=5e-4)
  median = 0.5 ** 2.5  # phi(0), Eq. 7
  assert integrate.quad(controller.controlled_pdf, 0, median)[0] == pytest.approx(
      0.5, abs=1e-6)
  z = np.asarray(controller.distribution_controller(
      jax.random.normal(jax.random.key(3), (1, 1024, 1024))))
  assert z.mean() == pytest.approx(0.2725, abs=2e-3)
  assert np.median(z) == pytest.approx(0.176, abs=2e-3)
  assert controller.skewness(z)[0] == pytest.approx(0.85, abs=0.01)


@pytest.mark.parametrize("eta,h", [(0.5, 1.0), (1.5, 1.0), (1.5, 2.5), (2.5, 4.0),
                                   (0.7, 0.3)])
def test_pdf_integrates_to_one(eta, h):
  total, _ = integrate.quad(controller.controlled_pdf, 0, 1, args=(eta, h),
                            limit=400, points=[1e-6, 0.01, 0.5, 0.99])
  assert total == pytest.approx(1.0, abs=1e-6)


def test_inverse_is_the_inverse_of_eq7():
  y = np.linspace(-4, 4, 101)
  z = np.asarray(controller.skew_transform(jnp.asarray(y, jnp.float32)), np.float64)
  np.testing.assert_allclose(controller.inverse_skew_transform(z), y, atol=2e-4)


def test_skewness_signs():
  rng = np.random.default_rng(0)
  assert controller.skewness(rng.exponential(size=(1, 10000)))[0] > 1.5
  assert abs(controller.skewness(rng.normal(size=(1, 10000)))[0]) < 0.1


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8, 3), (1, 2, 8, 8, 1)])
def test_wrong_rank_or_channels(shape):
  with pytest.raises(ValueError, match="shape"):
    controller.distribution_controller(jnp.zeros(shape))


def test_nan_input_is_named():
  with pytest.raises(ValueError, match="NaN"):
    controller.distribution_controller(jnp.zeros((1, 4, 4)).at[0, 1, 1].set(jnp.nan))


def test_bad_hyper_parameters():
  with pytest.raises(ValueError, match="positive"):
    controller.distribution_controller(jnp.zeros((1, 4, 4)), eta=0.0)


def test_works_inside_jit():
  f = jax.jit(lambda x: controller.distribution_controller(x) * 2)
  assert f(jnp.ones((1, 4, 4))).shape == (1, 4, 4)
