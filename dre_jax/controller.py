"""The distribution controller C of DRE (paper Sec. 3.3-3.4, Eqs. 5-8 and 13).

C maps the generator's coarse map X to relevance scores Z in (0, 1) whose
distribution is right-skewed:

    Y = omega(X)                          Eq. 6, instance normalisation
    Z = phi(Y) = sigmoid(eta * Y) ** h    Eq. 7

For Y ~ N(0, 1) and the paper's eta = 1.5, h = 2.5, Z has mean 0.2725, median
0.5 ** 2.5 = 0.1768 and skewness 0.85; its density is `controlled_pdf` (Eq. 8).
Both maps are monotonic (Principle 3), so C never changes the ranking of X.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

ETA = 1.5
H = 2.5
EPS = 1e-5  # as torch.nn.InstanceNorm2d


def _check_map(x) -> None:
  """Shape and value checks on a controller input; only for concrete arrays."""
  if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 1):
    raise ValueError(
        f"the controller expects maps of shape [N, H, W] or [N, H, W, 1], got "
        f"shape {tuple(x.shape)}; squeeze or add the batch axis first")
  if not isinstance(x, jax.core.Tracer) and bool(jnp.isnan(x).any()):
    raise ValueError(
        "the controller's input map contains NaN; the generator output is "
        "broken (check the learning rate and the classifier's inputs)")


def _check_params(eta: float, h: float) -> None:
  if not (eta > 0 and h > 0):
    raise ValueError(f"eta and h must be positive, got eta={eta}, h={h}")


def instance_norm(x: jnp.ndarray, eps: float = EPS) -> jnp.ndarray:
  """Eq. 6: y = (x - E[x]) / sqrt(V[x] + eps) over the spatial axes of each map.

  x: [N, H, W]. The variance is the biased one, as in `nn.InstanceNorm2d`; the
  eps keeps a constant map finite (it maps to zeros).
  """
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def skew_transform(y: jnp.ndarray, eta: float = ETA, h: float = H) -> jnp.ndarray:
  """Eq. 7: z = sigmoid(eta * y) ** h, computed as exp(h * log_sigmoid(eta y))."""
  return jnp.exp(h * jax.nn.log_sigmoid(eta * y))


@functools.partial(jax.jit, static_argnames=("eta", "h"))
def _controller(x, eta, h):
  squeeze = x.ndim == 4
  x = x[..., 0] if squeeze else x
  z = skew_transform(instance_norm(x.astype(jnp.float32)), eta, h)
  return z[..., None] if squeeze else z


def distribution_controller(x: jnp.ndarray, eta: float = ETA,
                            h: float = H) -> jnp.ndarray:
  """Eq. 5: Z = C(X) = phi(omega(X)), per sample (Eqs. 6 and 7), jit-compiled.

  Args:
    x: [N, H, W] or [N, H, W, 1] generator output X.
    eta, h: the controller's hyper-parameters (paper: 1.5 and 2.5).

  Returns:
    Z, float32 of the input's shape, in (0, 1) (for maps with extreme outliers
    the smallest scores can round to 0 in float32).

  Raises:
    ValueError: wrong rank or channel count, NaN in the map, eta or h <= 0.
  """
  x = jnp.asarray(x)
  _check_map(x)
  _check_params(eta, h)
  return _controller(x, float(eta), float(h))


def inverse_skew_transform(z, eta: float = ETA, h: float = H):
  """Eq. 13: y = phi^{-1}(z) = -ln(z^(-1/h) - 1) / eta, for z in (0, 1)."""
  z = np.asarray(z, np.float64)
  return -np.log(z ** (-1.0 / h) - 1.0) / eta


def controlled_pdf(z, eta: float = ETA, h: float = H):
  """Eq. 8: density of z = phi(y) for y ~ N(0, 1); zero outside (0, 1).

      p(z) = exp(-(ln(z^(-1/h) - 1))^2 / (2 eta^2)) / (sqrt(2 pi) h eta z (1 - z^(1/h)))

  Computed in float64 with numpy (it is an analysis tool, not part of the model).
  """
  _check_params(eta, h)
  z = np.asarray(z, np.float64)
  inside = (z > 0) & (z < 1)
  zc = np.where(inside, z, 0.5)
  y = inverse_skew_transform(zc, eta, h)
  jacobian = 1.0 / (eta * h * zc * (1.0 - zc ** (1.0 / h)))  # Eq. 14
  density = np.exp(-0.5 * y * y) / np.sqrt(2 * np.pi) * jacobian  # Eq. 15
  return np.where(inside, density, 0.0)


def skewness(maps) -> np.ndarray:
  """Pearson's moment coefficient of skewness E[(z - mu)^3] / sigma^3 per map.

  maps: [N, ...]; returns [N]. This is the CoS that the paper lists in Fig. 6
  (0.85 for the controller applied to N(0, 1) samples).
  """
  z = np.asarray(maps, np.float64).reshape(len(maps), -1)
  centred = z - z.mean(axis=1, keepdims=True)
  sigma = np.sqrt(np.mean(centred ** 2, axis=1))
  return np.mean(centred ** 3, axis=1) / sigma ** 3
