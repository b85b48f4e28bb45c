"""Masks optimised per image: Meaningful Perturbation (MPert) and Extremal Perturbation (XPert).

Both optimise a mask M per image through the classifier's response to the
perturbed image of the DRE paper's Eq. 1,

    psi(I, M) = I * M + B * (1 - M),

with DRE's backgrounds B (Sec. 4.1: "all perturbation-based methods apply the
same strategy for adding perturbations"): `background="blur"` is DRE's training
blur (sigma 11, kernel 55, `dre_jax.perturbation.BackgroundConfig`), the blur
perturbation of both original papers; `background="training"` redraws DRE's
training mixture (50% blur, 50% colour + noise) at every iteration.

Batched in one compiled program: each image's optimisation is written for one
image and `lax.map` runs the batch through it in chunks (vmapped), every
iteration a `lax.scan` step with optax inside. Random draws (jitter, training
backgrounds) depend on the key and the iteration only, so a batch gives the
same masks as its images one at a time. `batch_size` bounds the classifier
images per pass (memory).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dre_jax import perturbation as dre_perturbation
from dre_jax.classifier import Classifier
from dre_jax.explainers import registry
from dre_jax.resize import upsample_masks

BACKGROUNDS = ("blur", "training")
REFERENCE_SIZE = 224  # the original papers' image side; XPert's step and sigma are in its pixels


def background_fn(background: str, x: jnp.ndarray):
  """`fn(key) -> B [H, W, 3]` for one image x [H, W, 3] (see the module docstring)."""
  config = dre_perturbation.BackgroundConfig()
  if background == "blur":
    blurred = dre_perturbation.gaussian_blur(x[None], config.blur_sigma,
                                             config.blur_kernel_size)[0]
    return lambda key: blurred
  if background == "training":
    return lambda key: dre_perturbation.sample_backgrounds(key, x[None], config)[0]
  raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")


def map_images(fn, images: jnp.ndarray, target: jnp.ndarray, images_per_pass: int,
               batch_size: int):
  """lax.map of fn(x [H, W, 3], t) over the batch, vmapped in chunks.

  A chunk holds max(1, batch_size // images_per_pass) images, so one classifier
  pass sees at most ~batch_size images.
  """
  chunk = max(1, int(batch_size) // max(1, int(images_per_pass)))
  return jax.lax.map(lambda xt: fn(*xt), (images, target),
                     batch_size=min(chunk, images.shape[0]))


def probability(classifier: Classifier, x: jnp.ndarray, t) -> jnp.ndarray:
  """Softmax probability of class t for images x [n, H, W, 3]: [n]."""
  p = jax.nn.softmax(classifier.logits(x), axis=-1)
  return p[:, t]


# ---------------------------------------------------------------------------
# Meaningful Perturbation (Fong & Vedaldi, ICCV 2017)

def total_variation(m: jnp.ndarray, beta: float) -> jnp.ndarray:
  """Fong & Vedaldi Eq. 4's TV term: sum_u |dM/dx(u)|^beta + |dM/dy(u)|^beta, m [H, W]."""
  dy = jnp.abs(m[1:, :] - m[:-1, :])
  dx = jnp.abs(m[:, 1:] - m[:, :-1])
  return jnp.sum(dy ** beta) + jnp.sum(dx ** beta)


def mpert_regulariser(m: jnp.ndarray, *, l1_weight: float, tv_weight: float,
                      tv_beta: float) -> jnp.ndarray:
  """Fong & Vedaldi Eq. 3's lambda1 ||1 - m||_1 + lambda2 TV(m) on the
  optimised mask's own grid, m [k, k] (28 x 28), as the authors' released code
  computes both (ruthcfong/perturb_explanations, `code/caffe/python/
  optimize_mask.py`: the L1 and TV sums over the mask of side 224 / 8 before
  its upsampling). So the term, and the masks, do not depend on the image
  size. The TV is Eq. 4's anisotropic sum (`total_variation`); the released
  code sums the isotropic |grad m|^beta.
  """
  return (l1_weight * jnp.sum(jnp.abs(1.0 - m))
          + tv_weight * total_variation(m, tv_beta))


def jitter_image(x: jnp.ndarray, key: jax.Array, pixels: int) -> jnp.ndarray:
  """x [H, W, 3] shifted by (dy, dx) in 0..pixels (Fong & Vedaldi's jitter; wraps)."""
  if pixels <= 0:
    return x
  shift = jax.random.randint(key, (2,), 0, pixels + 1)
  return jnp.roll(x, (shift[0], shift[1]), axis=(0, 1))


def optimize_mpert(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                   key: jax.Array, *, iterations: int = 300, learning_rate: float = 0.1,
                   l1_weight: float = 1e-4, tv_weight: float = 1e-2,
                   tv_beta: float = 3.0, mask_size: int = 28, jitter: int = 4,
                   background: str = "blur", batch_size: int = 64):
  """The deletion game of Fong & Vedaldi 2017 (their Eqs. 3-4), all images at once.

      min_m  lambda1 ||1 - M||_1 + lambda2 sum_u ||grad M(u)||_beta^beta
             + E_tau[ f_t(psi(I, M) shifted by tau) ]
      M = upsample(m), m in [0, 1]^(28 x 28)

  f_t the softmax probability of the target; the L1 and TV sums on the
  28 x 28 grid, as the authors' released code (`mpert_regulariser`: the same
  at every image size). Adam, m starts
  at 1 (nothing deleted) and is clipped to [0, 1] after each step.

  Returns (M [N, H, W] in [0, 1] (1 = kept), objective [iterations, N]).
  """
  h, w = images.shape[1:3]
  optimizer = optax.adam(learning_rate)

  def one(x, t):
    bg = background_fn(background, x)

    def objective(m, k):
      k_bg, k_jit = jax.random.split(k)
      big = upsample_masks(m[None], (h, w))[0]
      xp = jitter_image(dre_perturbation.perturb(x[None], big[None], bg(k_bg)[None])[0],
                        k_jit, jitter)
      score = probability(classifier, xp[None], t)[0]
      return score + mpert_regulariser(m, l1_weight=l1_weight,
                                       tv_weight=tv_weight, tv_beta=tv_beta)

    def step(state, i):
      m, opt_state = state
      value, grad = jax.value_and_grad(objective)(m, jax.random.fold_in(key, i))
      updates, opt_state = optimizer.update(grad, opt_state, m)
      m = jnp.clip(optax.apply_updates(m, updates), 0.0, 1.0)
      return (m, opt_state), value

    m0 = jnp.ones((mask_size, mask_size), jnp.float32)
    (m, _), history = jax.lax.scan(step, (m0, optimizer.init(m0)),
                                   jnp.arange(iterations))
    return upsample_masks(m[None], (h, w))[0], history

  masks, history = map_images(one, images, target, 1, batch_size)
  return masks, history.T


def _mpert_passes(*, iterations: int, **_) -> float:
  return float(iterations)


# revision 3: the L1 and TV terms on the 28 x 28 grid, as the authors' code (`mpert_regulariser`).
@registry.register("mpert", passes=_mpert_passes, display="MPert",
                   table2=registry.Table2(3, "2", "300"),
                   paper=registry.PaperMeans(70.10, 73.07), output="mask",
                   quick=lambda samples, iterations: {"iterations": iterations},
                   reference="Fong & Vedaldi, ICCV 2017", revision=3)
def meaningful_perturbation(classifier: Classifier, images: jnp.ndarray,
                            target: jnp.ndarray, key=None, *, iterations: int = 300,
                            learning_rate: float = 0.1, l1_weight: float = 1e-4,
                            tv_weight: float = 1e-2, tv_beta: float = 3.0,
                            mask_size: int = 28, jitter: int = 4,
                            background: str = "blur", batch_size: int = 64
                            ) -> jnp.ndarray:
  """Meaningful Perturbation: saliency 1 - M of the smallest deletion mask (`optimize_mpert`).

  Settings (defaults and their sources):
    iterations: 300, the DRE paper's Table 2 (Fong & Vedaldi ran 500).
    learning_rate: 0.1 (Adam), l1_weight: lambda1 = 1e-4, tv_weight:
      lambda2 = 1e-2, tv_beta: beta = 3, mask_size: 28 (a 28 x 28 mask
      upsampled bilinearly), jitter: up to 4 pixels: Fong & Vedaldi Sec. 4.
    background: "blur" (their blur perturbation; here DRE's blur, see the
      module docstring) or "training".
    batch_size: classifier images per pass (memory bound).

  Returns [N, H, W] float32 in [0, 1]. `iterations` forward + backward passes
  per image.
  """
  key = registry.require_key("mpert", key)
  masks, _ = optimize_mpert(
      classifier, images, target, key, iterations=iterations,
      learning_rate=learning_rate, l1_weight=l1_weight, tv_weight=tv_weight,
      tv_beta=tv_beta, mask_size=mask_size, jitter=jitter, background=background,
      batch_size=batch_size)
  return 1.0 - masks


# ---------------------------------------------------------------------------
# Extremal Perturbation (Fong, Patrick & Vedaldi, ICCV 2019)

def smooth_masks(params: jnp.ndarray, size: tuple[int, int], step: int,
                 sigma: float, coldness: float = 20.0) -> jnp.ndarray:
  """Fong et al. Eq. 7: m(u) = smax_i k(u - u_i) p_i: params [A, h, w] -> [A, H, W].

  Parameter (i, j) sits at pixel (step * i, step * j); output pixel u takes the
  (2r + 1)^2 parameters around its block, r = 1 + ceil(sigma / step),
  weighted by k(d / sigma) = exp(-2 max(d / sigma - 1/2, 0)^2), d the
  distance to u (TorchRay's kernel, without its margin), and smax_T(v) =
  sum v softmax(T v) over them (T = coldness, 20 in TorchRay).
  """
  r = 1 + math.ceil(sigma / step)
  k = 2 * r + 1
  grid = (math.ceil(size[0] / step), math.ceil(size[1] / step))
  padded = jnp.pad(params, ((0, 0), (r, r), (r, r)))
  # The output pixels of one step x step block share their k x k neighbour
  # parameters, and a neighbour's weight depends only on the pixel's place in
  # the block: v[a, i, y, j, x, ky, kx] = p[a, i + ky, j + kx] w[y, x, ky, kx]
  # is a broadcast product of two small arrays, which XLA fuses with the
  # soft-max's reductions (no [A, H, K, W, K] copies of the parameters), in
  # the forward pass and in `_smooth_max`'s own backward pass.
  near = jnp.stack([jnp.stack([padded[:, ky:ky + grid[0], kx:kx + grid[1]]
                               for kx in range(k)], axis=-1)
                    for ky in range(k)], axis=-2)           # [A, h, w, K, K]
  offsets = step * (np.arange(k) - r)
  dy = np.arange(step)[:, None] - offsets[None, :]            # [step, K]
  d = np.sqrt(dy[:, None, :, None] ** 2 + dy[None, :, None, :] ** 2) / sigma
  weights = np.exp(-2.0 * np.maximum(d - 0.5, 0.0) ** 2)     # [step, step, K, K]
  out = _smooth_max(near, jnp.asarray(weights, params.dtype), float(coldness))
  out = out.reshape(params.shape[0], grid[0] * step, grid[1] * step)
  return out[:, :size[0], :size[1]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _smooth_max(near: jnp.ndarray, weights: jnp.ndarray, coldness: float
                ) -> jnp.ndarray:
  """smax_T over the last two axes of v = near [A, h, w, K, K] x weights
  [s, s, K, K] (broadcast to [A, h, s, w, s, K, K]): [A, h, s, w, s].

  A custom derivative: d smax / d v_k = softmax_k (1 + T (v_k - smax)), so
  the backward pass recomputes the soft-max once from `near` and the output
  and keeps nothing of size [.., K, K] (reverse mode of the soft-max as
  written would keep or recompute several such arrays). The weights are
  constants (no cotangent is computed for them).
  """
  return _smooth_max_fwd(near, weights, coldness)[0]


def _soft(near, weights, coldness):
  v = near[:, :, None, :, None] * weights[:, None]           # [A, h, s, w, s, K, K]
  e = jnp.exp(coldness * (v - jnp.max(v, axis=(-2, -1), keepdims=True)))
  return v, e / jnp.sum(e, axis=(-2, -1), keepdims=True)


def _smooth_max_fwd(near, weights, coldness):
  v, soft = _soft(near, weights, coldness)
  out = jnp.sum(v * soft, axis=(-2, -1))
  return out, (near, weights, out)


def _smooth_max_bwd(coldness, residuals, g):
  near, weights, out = residuals
  v, soft = _soft(near, weights, coldness)
  dv = (g[..., None, None] * soft) * (1.0 + coldness * (v - out[..., None, None]))
  dnear = jnp.sum(dv * weights[:, None], axis=(2, 4))       # [A, h, w, K, K]
  return dnear, jnp.zeros_like(weights)


_smooth_max.defvjp(_smooth_max_fwd, _smooth_max_bwd)


def area_ones(areas, num_pixels: int) -> np.ndarray:
  """The number of ones of each r_a (`area_reference`): |Omega| - int((1 - a) |Omega|): [A]."""
  return np.array([num_pixels - int(num_pixels * (1 - a)) for a in areas], np.int32)


def area_reference(areas, num_pixels: int) -> np.ndarray:
  """Fong et al. Eq. 5's r_a: (1 - a) * |Omega| zeros then ones, for each area: [A, HW]."""
  ones = area_ones(areas, num_pixels)
  return (np.arange(num_pixels)[None, :] >= num_pixels - ones[:, None]).astype(np.float32)


def _order_keys(x: jnp.ndarray) -> jnp.ndarray:
  """float32 -> uint32 keys in the floats' order (-inf < ... < -0 < +0 < ... < inf)."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(1 << 31))


def kth_largest(x: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
  """The k-th largest value of each row of x [A, P] (k [A], 1 <= k <= P): [A].

  Exact, without sorting: a bisection over the 2^32 order-preserving integer
  keys of float32 (32 halvings), each a count of the row's keys above the
  middle. XLA:CPU sorts with a comparator call per comparison: for XPert's
  four 70,756-pixel canvas rows the area term by a sort takes 57.0 ms
  forward + backward on one core, by this selection 2.7 ms
  (`benchmarks/bench_xpert.py`). Its gradient goes to the pixels that hold
  the value (`jnp.max`'s rule).
  """
  keys = _order_keys(x)
  k = jnp.asarray(k, jnp.int32)[:, None]

  def halve(_, bounds):  # invariant: count(keys >= lo) >= k, answer in [lo, hi]
    lo, hi = bounds
    mid = lo + (hi - lo) - (hi - lo) // 2          # the upper middle, no overflow
    enough = jnp.sum(keys >= mid, axis=1, keepdims=True, dtype=jnp.int32) >= k
    return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid - 1)

  lo = jnp.zeros(k.shape, jnp.uint32)
  lo, _ = jax.lax.fori_loop(0, 32, halve, (lo, jnp.full(k.shape, 2**32 - 1, jnp.uint32)))
  return jnp.max(jnp.where(keys <= lo, x, -jnp.inf), axis=1)


def area_error(masks: jnp.ndarray, areas) -> jnp.ndarray:
  """Fong et al. Eq. 5's area term ||vecsort(M_a) - r_a||^2 / |Omega| for masks
  [A, P] (flattened) and their areas a: [A].

  r_a (`area_reference`) is (1 - a) |Omega| zeros then k (`area_ones`)
  ones, so with tau the k-th largest value of M_a,

      ||vecsort(M_a) - r_a||^2 = sum M_a^2 - 2 (sum_{M > tau} M + (k - #{M > tau}) tau) + k,

  the same value as the sort's, without the sort (`kth_largest`). Its
  gradient is the sort's, 2 (M - r) / |Omega|, except that pixels tied at tau
  share the ones left, (k - #{M > tau}) / #{M = tau} each, where the sort
  gives them to the later pixels of the tie.
  """
  num_pixels = masks.shape[1]
  ones = jnp.asarray(area_ones(areas, num_pixels))
  tau = kth_largest(jax.lax.stop_gradient(masks), ones)[:, None]
  above = masks > tau
  at = masks == tau
  # The pixels at tau share the (k - #above) ones left: their sum weighted by
  # that share spreads the gradient evenly over them.
  share = (ones - jnp.sum(above, axis=1)) / jnp.maximum(jnp.sum(at, axis=1), 1)
  top = jnp.sum(jnp.where(above, masks, 0.0), axis=1) + share * jnp.sum(
      jnp.where(at, masks, 0.0), axis=1)
  return (jnp.sum(masks * masks, axis=1) - 2.0 * top + ones) / num_pixels


def xpert_smoothing(size: tuple[int, int], step: int | None = None,
                    sigma: float | None = None) -> tuple[int, float]:
  """(step, sigma) of the smooth-max parametrisation for an image of `size`.

  TorchRay's step 7 and sigma 21 px are for the papers' 224 x 224 images;
  None scales them with the image's shorter side (step 4 and sigma 12 at
  128 px, 3 and 9 at 96 px), so the masks can take the same shapes at every
  resolution (at 96 px a sigma of 21 px would be a fifth of the image, wider
  than the 2.5% area's whole mask). Explicit values are used as given.
  """
  side = min(size)
  if step is None:
    step = max(1, round(7 * side / REFERENCE_SIZE))
  if sigma is None:
    sigma = 21.0 * side / REFERENCE_SIZE
  if step < 1 or sigma <= 0:
    raise ValueError(f"xpert: step must be >= 1 and sigma > 0 (pixels), got "
                     f"step={step}, sigma={sigma}")
  return int(step), float(sigma)


def xpert_margin(step: int, sigma: float) -> int:
  """The mask canvas's margin beyond each image side, in parameter cells.

  TorchRay generates the mask on a canvas `sigma` pixels larger than the image
  on every side, crops the image's part for the perturbation and imposes the
  area constraint (Eq. 5) on the whole canvas. Without it the image's border
  pixels, which have fewer soft-max neighbours, start out a little higher
  than the interior and the vecsort constraint keeps them: a mask's area not
  claimed by the reward went to a frame along the image border. Here the
  margin is sigma rounded up to whole parameter cells (so the parameters stay
  on one grid): ceil(sigma / step) cells of `step` pixels; the margin's
  parameters are fixed at 0, as TorchRay's (its parameters cover the image).
  """
  return int(math.ceil(sigma / step))


def optimize_xpert(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                   key: jax.Array, *, areas: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2),
                   iterations: int = 300, learning_rate: float = 0.01,
                   momentum: float = 0.9, area_weight: float = 300.0,
                   area_weight_growth: float = 1.0035, step: int | None = None,
                   sigma: float | None = None, jitter: bool = True,
                   background: str = "blur", batch_size: int = 64):
  """Extremal perturbations of Fong et al. 2019 (preservation game), all areas and images at once.

      max_m  S_t(psi(I, M_a)) - lambda ||vecsort(M_a) - r_a||^2 / |Omega|     Eqs. 5-7
      M_a = smax-convolution of m_a (`smooth_masks`), m_a in [0, 1]

  S_t the target's logit (TorchRay's `simple_reward`); lambda starts at 300 and
  grows by 1.0035 per iteration; SGD with momentum 0.9 and dampening 0.9
  (optax.ema), m_a starts at 1 and is clipped to [0, 1]; every other iteration
  the perturbed image is flipped horizontally (jitter). As TorchRay, M_a is
  made on a canvas with a margin of ~sigma pixels around the image
  (`xpert_margin`), Omega and r_a are the canvas's, and the image's part of
  M_a perturbs it.

  Returns (masks [N, A, H, W] (the image's part), history) with history =
  {"reward": [T, N, A], "area_error": [T, N, A] (the mean squared vecsort
  deviation on the canvas), "area": [T, N, A] (the canvas mask's mean, which
  the constraint drives to `areas`), "weight": [T]}.
  """
  h, w = images.shape[1:3]
  num = len(areas)
  step, sigma = xpert_smoothing((h, w), step, sigma)
  cells = xpert_margin(step, sigma)
  margin = cells * step
  canvas = (h + 2 * margin, w + 2 * margin)
  grid = (math.ceil(h / step), math.ceil(w / step))
  optimizer = optax.chain(optax.ema(momentum, debias=False),
                          optax.scale(-learning_rate))
  weights = area_weight * area_weight_growth ** jnp.arange(iterations, dtype=jnp.float32)

  def canvas_masks(p):
    # `smooth_masks`' backward pass keeps only the parameters' neighbourhoods
    # [A, h, w, K, K] and the output, never the [A, H, W, K, K] soft-max.
    padded = jnp.pad(p, ((0, 0), (cells, cells), (cells, cells)))
    return smooth_masks(padded, canvas, step, sigma)

  def one(x, t):
    bg = background_fn(background, x)

    def energy(p, i):
      full = canvas_masks(p)
      masks = full[:, margin:margin + h, margin:margin + w]
      xb = jnp.broadcast_to(x, (num, h, w, 3))
      b = jnp.broadcast_to(bg(jax.random.fold_in(key, i)), (num, h, w, 3))
      xp = dre_perturbation.perturb(xb, masks, b)
      if jitter:
        xp = jnp.where(i % 2 == 0, xp[:, :, ::-1, :], xp)
      reward = classifier.logits(xp)[:, t]
      full = full.reshape(num, -1)
      error = area_error(full, areas)
      area = jnp.mean(full, axis=1)
      return jnp.sum(reward - weights[i] * error), (reward, error, area)

    def one_step(state, i):
      p, opt_state = state
      grad, aux = jax.grad(energy, has_aux=True)(p, i)
      updates, opt_state = optimizer.update(-grad, opt_state, p)  # ascend the energy
      p = jnp.clip(optax.apply_updates(p, updates), 0.0, 1.0)
      return (p, opt_state), aux

    p0 = jnp.ones((num, *grid), jnp.float32)
    (p, _), aux = jax.lax.scan(one_step, (p0, optimizer.init(p0)),
                               jnp.arange(iterations))
    return canvas_masks(p)[:, margin:margin + h, margin:margin + w], aux

  masks, (reward, error, area) = map_images(one, images, target, num, batch_size)
  history = {"reward": reward.transpose(1, 0, 2), "area_error": error.transpose(1, 0, 2),
             "area": area.transpose(1, 0, 2), "weight": weights}
  return masks, history


def torchray_smooth(maps: jnp.ndarray, smooth: float) -> jnp.ndarray:
  """TorchRay's final smoothing of a saliency map ([..., H, W]): a Gaussian of
  sigma = smooth x min(H, W) pixels, taps exp(-i^2 / (2 sigma^2)) for |i| <=
  ceil(4 sigma) summing to 1, zero padding (`torchray.utils.imsmooth` with
  padding_mode="constant"). smooth 0 returns the maps."""
  if smooth <= 0:
    return maps
  h, w = maps.shape[-2:]
  sigma = smooth * min(h, w)
  width = math.ceil(4 * sigma)
  taps = np.exp(-0.5 * (np.arange(-width, width + 1) / sigma) ** 2)
  taps /= taps.sum()

  def banded(n):  # out[i] = sum_j taps[j - i + width] in[j], zeros beyond the edge
    offset = np.arange(n)[None, :] - np.arange(n)[:, None] + width
    inside = (offset >= 0) & (offset <= 2 * width)
    return jnp.asarray(np.where(inside, taps[np.clip(offset, 0, 2 * width)], 0.0),
                       maps.dtype)

  return jnp.einsum("ij,...jk,lk->...il", banded(h), maps, banded(w))


def _xpert_passes(*, iterations: int, areas, **_) -> float:
  return float(iterations * len(areas))


# revision 2: the masks' canvas margin (`xpert_margin`, 2026-12-02).
# revision 3: TorchRay's final smoothing (`torchray_smooth`, 2026-12-03).
# revision 4: `smooth_masks` by blocks (the same function; float rounding).
# revision 5: `smooth_masks` with its own derivative (the same function; float
# rounding: Spearman 0.9998 with revision 4 on a 128-px photo, 100 iterations).
# revision 6: the area term by selection (`area_error`; the same value, tied
# pixels share the gradient: Spearman 0.9994 with revision 5, skimage's
# chelsea at 128 px, EfficientNet-Lite0, 100 iterations).
@registry.register("xpert", passes=_xpert_passes, display="XPert",
                   table2=registry.Table2(5, "-", "300"),
                   paper=registry.PaperMeans(60.87, 76.97),
                   quick=lambda samples, iterations: {"iterations": iterations},
                   reference="Fong, Patrick & Vedaldi, ICCV 2019", revision=6)
def extremal_perturbation(classifier: Classifier, images: jnp.ndarray,
                          target: jnp.ndarray, key=None, *,
                          areas: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2),
                          iterations: int = 300, learning_rate: float = 0.01,
                          momentum: float = 0.9, area_weight: float = 300.0,
                          area_weight_growth: float = 1.0035,
                          step: int | None = None, sigma: float | None = None,
                          jitter: bool = True, smooth: float = 0.09,
                          background: str = "blur", batch_size: int = 64
                          ) -> jnp.ndarray:
  """Extremal Perturbation: the sum over target areas of the masks M_a
  (`optimize_xpert`), smoothed as TorchRay's benchmark does (`torchray_smooth`).

  Settings (defaults and their sources):
    areas: (0.025, 0.05, 0.1, 0.2) and their masks summed into one saliency
      map: TorchRay's pointing-game setting (examples/attribution_benchmark.py),
      the authors' code.
    iterations: 300, the DRE paper's Table 2 (TorchRay: 800).
    learning_rate 0.01, momentum 0.9, area_weight 300 growing by 1.0035 per
      iteration, step 7, sigma 21, jitter (flip): TorchRay's
      `extremal_perturbation` defaults; step and sigma (pixels) are those at
      224 px and scale with the image side when None (`xpert_smoothing`).
    smooth: 0.09, the Gaussian smoothing of the final masks (sigma a fraction
      of the image's shorter side), TorchRay's attribution benchmark
      (examples/attribution_benchmark.py), whose areas these are; 0: none.
    background: "blur" (the papers' blur perturbation; DRE's blur here instead
      of TorchRay's blur pyramid) or "training".
    batch_size: classifier images per pass (an image costs len(areas)).

  Returns [N, H, W] float32 in [0, len(areas)]. iterations x len(areas)
  forward + backward passes per image.
  """
  if key is None:  # deterministic unless background="training"
    key = jax.random.key(0)
  masks, _ = optimize_xpert(
      classifier, images, target, key, areas=tuple(areas),
      iterations=iterations, learning_rate=learning_rate, momentum=momentum,
      area_weight=area_weight, area_weight_growth=area_weight_growth, step=step,
      sigma=sigma, jitter=jitter, background=background, batch_size=batch_size)
  return torchray_smooth(jnp.sum(masks, axis=1), smooth)
