"""The controller on typical input distributions: Eq. 8 and Appendix B (Eqs. 17-32).

For an input X with density p_x, mean E[x] and standard deviation s, the
controller's output z = phi(omega(x)) (Eqs. 6-7) has the density

    p(z) = p_x(phi^{-1}(z) s + E[x]) * s * |d phi^{-1}(z) / dz|      Eqs. 17-19, 18

with phi^{-1}(z) = -ln(z^{-1/h} - 1) / eta (Eq. 13) and
|d phi^{-1} / dz| = 1 / (eta h z (1 - z^{1/h})) (Eq. 14). `controlled_density`
is that one formula; the standard normal input gives Eq. 8
(`dre_jax.controller.controlled_pdf`), the uniform Eq. 26, the skew normal
Eq. 29, the mixture of normals Eq. 32. The inputs are `Distribution`s built
on scipy.stats (pdf, exact mean and standard deviation, sampler), so the same
objects draw the synthetic data of Fig. 6.

The paper's Eq. 28 writes the skew normal's mean as sqrt(2) a / sqrt((1 + a) pi);
the correct value, used here (scipy's), is sqrt(2 / pi) a / sqrt(1 + a^2).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import scipy.stats

from dre_jax import controller


@dataclasses.dataclass(frozen=True)
class Distribution:
  """An input distribution of the controller: its pdf, mean, std and sampler."""

  name: str
  pdf: Callable[[np.ndarray], np.ndarray]
  mean: float
  std: float
  sample: Callable[[np.random.Generator, int], np.ndarray]


def _from_scipy(name: str, dist) -> Distribution:
  return Distribution(name, dist.pdf, float(dist.mean()), float(dist.std()),
                      lambda rng, n: dist.rvs(size=n, random_state=rng))


def standard_normal() -> Distribution:
  return _from_scipy("N(0, 1)", scipy.stats.norm())


def uniform(a: float = 0.0, b: float = 1.0) -> Distribution:
  """Eq. 20: U(a, b)."""
  return _from_scipy(f"U({a:g}, {b:g})", scipy.stats.uniform(a, b - a))


def skew_normal(a: float) -> Distribution:
  """Eq. 27: p(x) = 2 phi(x) Phi(a x)."""
  return _from_scipy(f"skew normal a={a:g}", scipy.stats.skewnorm(a))


def normal_mixture(r1: float, mu: tuple[float, float] = (0.0, 2.0),
                   sigma: tuple[float, float] = (1.0, 1.0)) -> Distribution:
  """Eq. 30 with two components: weights (r1, 1 - r1), means mu, stds sigma."""
  r = np.array([r1, 1.0 - r1])
  mu_a, sigma_a = np.asarray(mu, float), np.asarray(sigma, float)
  mean = float(r @ mu_a)
  var = float(r @ sigma_a ** 2 + r[0] * r[1] * (mu_a[0] - mu_a[1]) ** 2)

  def pdf(x):
    x = np.asarray(x, np.float64)[..., None]
    return np.sum(r * scipy.stats.norm.pdf(x, mu_a, sigma_a), axis=-1)

  def sample(rng, n):
    component = rng.random(n) >= r1
    return rng.normal(mu_a[component.astype(int)], sigma_a[component.astype(int)])

  return Distribution(f"mixture r1={r1:g}, mu2={mu[1]:g}", pdf, mean,
                      float(np.sqrt(var)), sample)


def controlled_density(dist: Distribution, z, eta: float = controller.ETA,
                       h: float = controller.H) -> np.ndarray:
  """Eqs. 17-19 and 18: the density of the controller's output for input `dist`.

  z: array in (0, 1); returns p(z) (0 outside (0, 1)), float64.
  """
  z = np.asarray(z, np.float64)
  inside = (z > 0) & (z < 1)
  zc = np.where(inside, z, 0.5)
  y = controller.inverse_skew_transform(zc, eta, h)          # Eq. 13
  jacobian = 1.0 / (eta * h * zc * (1.0 - zc ** (1.0 / h)))  # Eq. 14
  density = dist.pdf(y * dist.std + dist.mean) * dist.std * jacobian
  return np.where(inside, density, 0.0)


def apply_controller(samples: np.ndarray, eta: float = controller.ETA,
                     h: float = controller.H) -> np.ndarray:
  """The controller (Eqs. 6-7) on a 1-D sample, as one map: [n] -> [n] in (0, 1)."""
  samples = np.asarray(samples, np.float32)
  z = controller.distribution_controller(samples.reshape(1, 1, -1), eta, h)
  return np.asarray(z, np.float64).reshape(-1)
