"""The baselines as their authors define them, checks that fail on the
near-copies they replace.

* MPert's regulariser in the units of a 224-px image at every image size: the
  TV term on the mask's own grid (the TV of the upsampled mask grows as
  (224 / H)^3); the masks of one image at 96, 128 and 224 px are alike with a
  stand-in classifier whose evidence is the same at every size.
* SmoothGrad and Integrated Gradients reduce the colour channels as PAIR
  saliency does (squared-gradient SmoothGrad, sum of |.| over channels),
  against a direct computation.
* XPert's map is smoothed as TorchRay's attribution benchmark does (a zero
  padded Gaussian of 0.09 x the image side, against scipy).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax.explainers import mask_optimisation


def _disc(k=28):
  yy, xx = np.mgrid[:k, :k] / k
  return jnp.asarray((((yy - 0.4) ** 2 + (xx - 0.55) ** 2) < 0.2 ** 2) * 0.8 + 0.1,
                     jnp.float32)


def test_mpert_regulariser_is_the_released_codes_sums_on_the_mask_grid():
  """lambda1 sum |1 - m| + lambda2 sum |dm|^beta over the 28 x 28 mask, as
  Fong & Vedaldi's optimize_mask.py: independent of the image size."""
  m = np.asarray(_disc(), np.float64)
  expected = (1e-4 * np.abs(1 - m).sum()
              + 1e-2 * ((np.abs(np.diff(m, axis=0)) ** 3).sum()
                        + (np.abs(np.diff(m, axis=1)) ** 3).sum()))
  got = mask_optimisation.mpert_regulariser(
      jnp.asarray(m, jnp.float32), l1_weight=1e-4, tv_weight=1e-2, tv_beta=3.0)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  # Deleting the whole image costs 784 x 1e-4: less than a class probability,
  # so the deletion game can remove what the class needs.
  empty = mask_optimisation.mpert_regulariser(
      jnp.zeros((28, 28)), l1_weight=1e-4, tv_weight=1e-2, tv_beta=3.0)
  np.testing.assert_allclose(float(empty), 0.0784, rtol=1e-5)


class _StandIn:
  """Class 0's logit: the energy of fine vertical stripes (2 px, the same at
  every size; blurring removes them) under a window at a relative position."""

  num_classes = 2

  def logits(self, x):
    n, h, w, _ = x.shape
    yy, xx = jnp.meshgrid((jnp.arange(h) + 0.5) / h, (jnp.arange(w) + 0.5) / w,
                          indexing="ij")
    window = jnp.exp(-((yy - 0.35) ** 2 + (xx - 0.6) ** 2) / (2 * 0.12 ** 2))
    d = jnp.pad(x[:, :, 1:, 0] - x[:, :, :-1, 0], ((0, 0), (0, 0), (0, 1)))
    texture = jnp.einsum("nhw,hw->n", d * d, window / window.sum())
    return jnp.stack([25 * texture - 2, jnp.zeros(n)], -1)


def _striped_disc(size):
  yy, _ = np.mgrid[:size, :size] / size
  xx = np.mgrid[:size, :size][1] / size
  x = np.full((1, size, size, 3), 0.45, np.float32)
  stripes = (np.arange(size) // 2 % 2)[None, :]
  disc = ((yy - 0.35) ** 2 + (xx - 0.6) ** 2) < 0.18 ** 2
  x[0, ..., 0] = np.where(disc, 0.2 + 0.6 * stripes, 0.45)
  return jnp.asarray(x)


def test_mpert_masks_look_alike_at_96_128_and_224_px():
  # A stronger TV weight than the default makes the size dependence plain.
  run = jax.jit(functools.partial(
      mask_optimisation.optimize_mpert, _StandIn(), iterations=150, jitter=0,
      tv_weight=0.1))
  masks, objective = {}, {}
  for size in (96, 128, 224):
    m, history = run(_striped_disc(size), jnp.zeros(1, int), jax.random.key(0))
    masks[size] = np.asarray(jax.image.resize(m[0], (28, 28), "linear"))
    objective[size] = float(history[-1, 0])
  assert masks[224].min() < 0.5  # something was deleted
  for size in (96, 128):
    assert np.abs(masks[size] - masks[224]).mean() < 0.004, size
    assert abs(objective[size] - objective[224]) < 0.01, size


# ---------------------------------------------------------------------------
# Gradient methods: each with its reference implementation's reduction.


def _tiny():
  from dre_jax.classifier import Classifier
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4, image_size=32)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  return clf, x, jnp.argmax(clf.logits(x), axis=-1)


def _input_gradient(clf, x, t):
  return jax.grad(lambda v: jnp.sum(jnp.take_along_axis(
      clf.logits(v), t[:, None], axis=1)))(x)


@pytest.mark.slow  # ~12 s
def test_smoothgrad_is_pair_saliency_magnitude_then_grayscale():
  """PAIR saliency: GetSmoothedMask(magnitude=True) averages squared gradients;
  VisualizeImageGrayscale sums |.| over the channels."""
  from dre_jax import explainers
  clf, x, t = _tiny()
  key = jax.random.key(3)
  got = explainers.get("smgrad")(clf, x, t, key, samples=3)
  sigma = 0.15 * (jnp.max(x, axis=(1, 2, 3)) - jnp.min(x, axis=(1, 2, 3)))
  squares = 0
  for s in range(3):
    eps = jax.random.normal(jax.random.fold_in(key, s), x.shape[1:], x.dtype)
    g = _input_gradient(clf, x + sigma[:, None, None, None] * eps, t)
    squares = squares + g * g / 3
  want = np.abs(np.asarray(squares)).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * want.max())
  assert explainers.method("smgrad").revision == 2


def test_integrated_gradients_map_is_pair_saliency_grayscale():
  from dre_jax import explainers
  clf, x, t = _tiny()
  got = explainers.get("itgrad")(clf, x, t, steps=4, method="riemann_right")
  path = sum(_input_gradient(clf, a * x, t) / 4 for a in (0.25, 0.5, 0.75, 1.0))
  want = np.abs(np.asarray(x * path)).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * want.max())
  assert explainers.method("itgrad").revision == 2


# ---------------------------------------------------------------------------
# XPert with TorchRay's final smoothing.


def test_torchray_smoothing_is_a_zero_padded_gaussian():
  import scipy.ndimage
  rng = np.random.default_rng(0)
  maps = rng.uniform(size=(2, 40, 56)).astype(np.float32)
  got = mask_optimisation.torchray_smooth(jnp.asarray(maps), 0.09)
  sigma = 0.09 * 40
  truncate = np.ceil(4 * sigma) / sigma  # TorchRay's half-width ceil(4 sigma)
  want = np.stack([scipy.ndimage.gaussian_filter(m.astype(np.float64), sigma,
                                                 mode="constant", truncate=truncate)
                   for m in maps])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(mask_optimisation.torchray_smooth(maps, 0.0), maps)


def test_xpert_map_is_smoothed_as_torchray_benchmark():
  from dre_jax import explainers
  clf, x, t = _tiny()
  run = functools.partial(explainers.get("xpert"), clf, x, t, jax.random.key(0),
                          iterations=3, areas=(0.1,))
  smoothed, raw = run(), run(smooth=0.0)
  np.testing.assert_allclose(smoothed, mask_optimisation.torchray_smooth(raw, 0.09),
                             rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(smoothed - raw).max()) > 1e-3
  assert explainers.method("xpert").revision >= 3  # cached maps from before the smoothing are not reused
