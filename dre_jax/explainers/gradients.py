"""Gradient methods: vanilla gradient, SmoothGrad, Integrated Gradients.

All three are sums of input gradients of the target's class score S_t over
sample images x_s with weights w_s,

    A(x) = sum_s w_s * dS_t(x_s)/dx,                                     (*)

  vgrad  (Simonyan et al. 2014):     x_1 = x, w_1 = 1
  smgrad (Smilkov et al. 2017, Eq. 3): x_s = x + N(0, sigma^2), w_s = 1/n,
         by default of the squared gradients (their library's "magnitude")
  itgrad (Sundararajan et al. 2017, Eq. 3): x_s = x' + a_s (x - x'), w_s the
         quadrature weights of the path integral over a in [0, 1], and the
         attribution is (x - x') * A(x)

computed by one function, `_gradient_sum`: all (sample, image) pairs of a
batch run through the classifier in equal chunks of at most `batch_size` pairs
inside one `lax.scan` (one compiled program, memory bounded by `batch_size`
whatever the number of samples or images), each chunk's gradients added into
its images' sums; when all pairs fit in one chunk there is no loop. The
default `batch_size` (`default_batch_size`) is 64 pairs on accelerators and 8
on the CPU (fewer above 224 x 224 px): XLA:CPU runs a ResNet50 forward + input
gradient at 224 px 1.2x faster per image in chunks of 4-8 than in one pass of
32 (cache; docs/benchmarks.md). The classifiers' convolutions
keep their fast CPU form inside the loop (`models.layers.conv_general_dilated`).
A sample's noise or path point depends on the key and the sample index only,
never on the image's position in the batch, so a batch gives the same maps as
its images one at a time.

The per-pixel map [N, H, W] reduces the 3 colour channels (`channels`):
"max_abs" (Simonyan et al. Sec. 3.1: M_ij = max_c |w_ijc|), "abs_sum" (PAIR
saliency's grayscale map, `VisualizeImageGrayscale`: sum_c |A_ijc|, without
its display clip at the 99th percentile, which would tie the top 1% of the
pixels) or "sum" (signed; keeps IG's completeness: the map sums to S_t(x) -
S_t(x')). Each method's default is its reference implementation's: VGrad
Simonyan et al.'s own max_abs; SmoothGrad and Integrated Gradients the
reduction of PAIR saliency (github.com/PAIR-code/saliency, the library of
Smilkov et al., whose examples show both methods with
`VisualizeImageGrayscale`), abs_sum. The DRE paper's Sec. 4.1 names the
methods and not their reductions.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax.classifier import Classifier
from dre_jax.explainers import registry

REDUCTIONS = ("max_abs", "abs_sum", "sum")


def reduce_channels(attribution: jnp.ndarray, channels: str) -> jnp.ndarray:
  """[N, H, W, 3] -> [N, H, W] by `channels` (see the module docstring)."""
  if channels == "max_abs":
    return jnp.max(jnp.abs(attribution), axis=-1)
  if channels == "abs_sum":
    return jnp.sum(jnp.abs(attribution), axis=-1)
  if channels == "sum":
    return jnp.sum(attribution, axis=-1)
  raise ValueError(f"channels must be one of {REDUCTIONS}, got {channels!r}")


# The pairs and the pixels of one classifier pass on the CPU by default: eight
# pairs, fewer for images above 224 x 224 (see `default_batch_size`).
CPU_PAIRS_PER_PASS = 8
CPU_PIXELS_PER_PASS = 8 * 224 * 224


def default_batch_size(image_shape: tuple[int, ...], backend: str | None = None) -> int:
  """(sample, image) pairs per classifier pass for images of `image_shape`
  ([..., H, W, C]) on `backend` (default `jax.default_backend()`): 64 on GPUs
  and TPUs; on the CPU CPU_PAIRS_PER_PASS, fewer for larger images (at most
  CPU_PIXELS_PER_PASS pixels, at least one pair). XLA:CPU and torch both run a
  ResNet50 forward + input gradient faster per image in small batches (cache):
  at 224 px, one core, SmoothGrad's pairs in chunks of 4 / 8 / 16 inside the
  scan and in one pass of 32: 218.6 / 222.9 / 245.5 / 266.8 ms per pair;
  torch's pass at batch 8 / 32: 237.3 / 291.2 ms per image; at 96 px any
  chunk of 4-43 runs at 40-41 ms per pair (`benchmarks/bench_cpu_loop_chunks.py`,
  docs/benchmarks.md)."""
  if (backend or jax.default_backend()) != "cpu":
    return 64
  height, width = image_shape[-3], image_shape[-2]
  return int(max(1, min(CPU_PAIRS_PER_PASS, CPU_PIXELS_PER_PASS // (height * width))))


def _gradient_sum(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                  sample_fn, weights: np.ndarray, score: str,
                  batch_size: int | None, squared: bool = False) -> jnp.ndarray:
  """(*): sum_s weights[s] * dS_t(sample_fn(s, x))/dx for each image x: [N, H, W, 3];
  squared: sum_s weights[s] * (dS_t(sample_fn(s, x))/dx)^2.

  sample_fn(s, x): sample index s (int32 scalar) and one image [H, W, 3] -> the
  sample image [H, W, 3]; it must not depend on anything but s and x.
  batch_size: at most this many pairs per pass (None: `default_batch_size`),
  in chunks of equal size (100 pairs at 64: two passes of 50, not 64 + 36
  padded to 64).
  """
  n = images.shape[0]
  num_samples = len(weights)
  total = num_samples * n
  if batch_size is None:
    batch_size = default_batch_size(images.shape)
  if int(batch_size) < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  steps = math.ceil(total / min(int(batch_size), total))
  chunk = math.ceil(total / steps)
  weights = jnp.asarray(weights, jnp.float32)

  def score_sum(x, t, w):
    return jnp.sum(w * registry.target_scores(classifier.logits(x), t, score))

  def body(total_grad, c):
    pair = c * chunk + jnp.arange(chunk)
    valid = pair < total
    pair = jnp.where(valid, pair, 0)
    s, i = pair // n, pair % n
    x = jax.vmap(sample_fn)(s, images[i])
    w = jnp.where(valid, weights[s], 0.0)
    if squared:
      g = jax.grad(score_sum)(x, target[i], valid.astype(jnp.float32))
      g = w[:, None, None, None] * g * g
    else:
      g = jax.grad(score_sum)(x, target[i], w)
    return total_grad.at[i].add(g), None

  if steps == 1:  # one chunk: no loop
    return body(jnp.zeros_like(images), 0)[0]
  total_grad, _ = jax.lax.scan(body, jnp.zeros_like(images), jnp.arange(steps))
  return total_grad


def _vgrad_passes(**_) -> float:
  return 1.0


@registry.register("vgrad", passes=_vgrad_passes, display="VGrad",
                   table2=registry.Table2(8, "-", "1"),
                   paper=registry.PaperMeans(15.93, 67.97),
                   reference="Simonyan, Vedaldi & Zisserman, ICLR workshop 2014")
def vanilla_gradient(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                     key=None, *, score: str = "logit", channels: str = "max_abs",
                     batch_size: int | None = None) -> jnp.ndarray:
  """Vanilla gradient: M_ij = max_c |dS_t/dI_ijc| (Simonyan et al. 2014, Sec. 3.1).

  Settings (defaults and their sources):
    score: "logit": the unnormalised class score S_t, as in Simonyan et al.
      Sec. 3.1 ("probability" and "log_probability" are available).
    channels: "max_abs", Simonyan et al. Sec. 3.1 (see `reduce_channels`).
    batch_size: images per classifier pass (memory bound; not a paper
      setting; None: `default_batch_size`).

  Returns [N, H, W] float32 >= 0. One forward + backward pass per image.
  """
  del key
  grad = _gradient_sum(classifier, images, target, lambda s, x: x,
                       np.ones(1), score, batch_size)
  return reduce_channels(grad, channels)


def _smgrad_passes(*, samples: int, **_) -> float:
  return float(samples)


# revision 2: PAIR saliency's magnitude and channel reduction (2026-12-03).
@registry.register("smgrad", passes=_smgrad_passes, display="SMGrad",
                   table2=registry.Table2(9, "1", "50"),
                   paper=registry.PaperMeans(35.03, 72.50),
                   quick=lambda samples, iterations: {"samples": samples},
                   reference="Smilkov, Thorat, Kim, Viegas & Wattenberg, 2017",
                   revision=2)
def smooth_grad(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                key=None, *, samples: int = 50, noise: float = 0.15,
                magnitude: bool = True, score: str = "logit",
                channels: str = "abs_sum", batch_size: int | None = None) -> jnp.ndarray:
  """SmoothGrad, Smilkov et al. 2017 Eq. 3: mean gradient over x + N(0, sigma^2).

  sigma = noise * (max(x) - min(x)) of each image (Sec. 3: noise "as a fraction
  of the input range"). The sample s draws its noise [H, W, 3] from
  `fold_in(key, s)`, shared by the images of a batch (each image's estimate is
  the same as when it is explained alone).

  Settings (defaults and their sources):
    samples: 50, the DRE paper's Table 2 (Smilkov et al. find n ~ 50 enough).
    noise: 0.15, Smilkov et al. Sec. 3.1 (10-20% works best) and PAIR saliency's
      `stdev_spread` default.
    magnitude: True, the mean of the squared gradients: PAIR saliency's
      `GetSmoothedMask(magnitude=True)` default (Captum's "smoothgrad_sq");
      False: the mean signed gradient of Eq. 3.
    score: the logit S_t, as `vgrad`.
    channels: "abs_sum", PAIR saliency's `VisualizeImageGrayscale` (see the
      module docstring).
    batch_size: (sample, image) pairs per classifier pass (memory bound;
      None: `default_batch_size`).

  Returns [N, H, W] float32 >= 0. `samples` forward + backward passes per image.
  """
  key = registry.require_key("smgrad", key)
  if samples < 1:
    raise ValueError(f"smgrad needs samples >= 1, got {samples}")

  def sample_fn(s, x):
    sigma = noise * (jnp.max(x) - jnp.min(x))
    eps = jax.random.normal(jax.random.fold_in(key, s), x.shape, x.dtype)
    return x + sigma * eps

  grad = _gradient_sum(classifier, images, target, sample_fn,
                       np.full(samples, 1.0 / samples), score, batch_size,
                       squared=magnitude)
  return reduce_channels(grad, channels)


def path_quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
  """(alphas, weights) for int_0^1 g(a) da ~ sum_k weights[k] g(alphas[k]).

  "riemann_right": a_k = k/m, k = 1..m, weights 1/m (Sundararajan et al. Eq. 3);
  "riemann_trapezoid": a_k = k/(m-1), k = 0..m-1, trapezoid weights;
  "gausslegendre": m-point Gauss-Legendre nodes on [0, 1] (Captum's default).
  """
  if steps < 1 or (method == "riemann_trapezoid" and steps < 2):
    raise ValueError(f"itgrad needs steps >= 1 (>= 2 for the trapezoid), got {steps}")
  if method == "riemann_right":
    return np.arange(1, steps + 1) / steps, np.full(steps, 1.0 / steps)
  if method == "riemann_trapezoid":
    alphas = np.linspace(0.0, 1.0, steps)
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2
    return alphas, weights
  if method == "gausslegendre":
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1) / 2, weights / 2
  raise ValueError(f"itgrad method must be 'riemann_right', 'riemann_trapezoid' or "
                   f"'gausslegendre', got {method!r}")


def _itgrad_passes(*, steps: int, **_) -> float:
  return float(steps)


# revision 2: PAIR saliency's channel reduction (2026-12-03).
@registry.register("itgrad", passes=_itgrad_passes, display="ITGrad",
                   table2=registry.Table2(10, "-", "200"),
                   paper=registry.PaperMeans(26.73, 65.64),
                   quick=lambda samples, iterations: {"steps": samples},
                   reference="Sundararajan, Taly & Yan, ICML 2017", revision=2)
def integrated_gradients(classifier: Classifier, images: jnp.ndarray,
                         target: jnp.ndarray, key=None, *, steps: int = 200,
                         baseline: float = 0.0, method: str = "riemann_trapezoid",
                         score: str = "logit", channels: str = "abs_sum",
                         batch_size: int | None = None) -> jnp.ndarray:
  """Integrated Gradients, Sundararajan et al. 2017 Eqs. 1 and 3.

      IG_i(x) = (x_i - x'_i) * int_0^1 dS_t(x' + a (x - x'))/dx_i da

  with the integral as a quadrature over `steps` path points (`path_quadrature`).
  Completeness (their Prop. 1): sum_i IG_i(x) = S_t(x) - S_t(x').

  Settings (defaults and their sources):
    steps: 200, the DRE paper's Table 2 (Sundararajan et al.: 20-300 steps).
    baseline: 0.0, the black image (Sundararajan et al. Sec. 3, images); any
      constant in [0, 1] pixel units.
    method: "riemann_trapezoid", the trapezoid form of the Riemann sum of
      Sundararajan et al. Eq. 3 (Captum's "riemann_trapezoid"). Their right
      sum ("riemann_right") is biased by half a step at the ends: on the real
      EfficientNet-Lite0 at 96 px with 200 steps it missed completeness by
      2.5% (the trapezoid by 0.3%, Captum's default "gausslegendre" by 1.5%).
    score: "logit", the class score S_t before the softmax.
    channels: "abs_sum", PAIR saliency's `VisualizeImageGrayscale` of its
      IntegratedGradients (see the module docstring); "sum" keeps the sign
      and completeness (the map sums to S_t(x) - S_t(x')).
    batch_size: (path point, image) pairs per classifier pass (memory bound;
      None: `default_batch_size`).

  Returns [N, H, W] float32 (>= 0 for "abs_sum"). `steps` forward + backward
  passes per image.
  """
  del key
  alphas, weights = path_quadrature(steps, method)
  alphas_j = jnp.asarray(alphas, jnp.float32)

  def sample_fn(s, x):
    return baseline + alphas_j[s] * (x - baseline)

  grad = _gradient_sum(classifier, images, target, sample_fn, weights, score,
                       batch_size)
  return reduce_channels((images - baseline) * grad, channels)
