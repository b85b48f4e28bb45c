"""The mask generator G: spatial filter (Eq. 3-4), bottleneck cells, layouts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax import generator as gen

# Tap channels at strides (4, 8, 16, 32) and the paper's cell widths.
LAYOUTS = {
    "resnet50": ((256, 512, 1024, 2048), (64, 128, 256)),
    "vgg19": ((256, 512, 512, 512), (64, 128, 256)),
    "googlenet": ((192, 480, 832, 1024), (96, 240, 416)),
}


def _taps(channels, size, batch=1, key=0):
  keys = jax.random.split(jax.random.key(key), 4)
  return [jax.nn.relu(jax.random.normal(k, (batch, size // s, size // s, c)))
          for k, s, c in zip(keys, (4, 8, 16, 32), channels)]


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("arch,upsample",  # full-size backbones: slow
                         [pytest.param(a, "subpixel", marks=pytest.mark.slow)
                          for a in sorted(LAYOUTS)] + [("small", "transposed")])
def test_output_shape_per_backbone(arch, upsample):
  channels, widths = LAYOUTS.get(arch, ((8, 16, 32, 64), (8, 16, 32)))
  g = gen.MaskGenerator(num_classes=5, widths=widths, upsample=upsample)
  # 96 px: XLA's CPU 3x3 convolutions are ~50x slower on 2x2 maps than on 3x3.
  taps = _taps(channels, size=96, batch=2)
  # Compiled whole: op by op, every shape of every layer is compiled alone.
  variables = jax.jit(g.init)(jax.random.key(0), taps, jnp.array([0, 4]))
  x = jax.jit(g.apply)(variables, taps, jnp.array([1, 2]))
  assert x.shape == (2, 24, 24) and x.dtype == jnp.float32
  assert np.all(np.isfinite(x))
  cells = [variables["params"][f"cell{i}"]["follow_up"]["residual_transformer"]
           ["kernel"].shape[-1] for i in range(3)]
  assert cells == list(widths[::-1])


def test_resnet50_parameter_count_matches_released_code():
  channels, widths = LAYOUTS["resnet50"]
  g = gen.MaskGenerator(num_classes=1000, widths=widths)
  taps = [jnp.zeros((1, 56 // s, 56 // s, c)) for s, c in zip((1, 2, 4, 8), channels)]
  variables = jax.eval_shape(g.init, jax.random.key(0), taps, jnp.zeros((1,), jnp.int32))
  params = variables["params"]
  assert _count(params) == 20_962_369 + 1000 * 2048
  assert [_count(params[f"cell{i}"]) for i in range(3)] == [19_340_288, 1_296_896,
                                                             324_608]
  assert _count(params["to_saliency"]) == 577
  assert params["spatial_filter"]["embedding"].shape == (1000, 2048)


def test_embedding_initialisation_scale():
  taps = _taps((8, 8, 8, 256), size=96)
  variables = jax.jit(gen.MaskGenerator(num_classes=400, widths=(8, 8, 8)).init)(
      jax.random.key(1), taps, jnp.zeros((1,), jnp.int32))  # one program
  table = np.asarray(gen.class_embeddings(variables["params"]))
  assert table.std() == pytest.approx(1 / np.sqrt(256), rel=0.02)
  assert abs(table.mean()) < 1e-3


def test_spatial_filter_is_eq3():
  f = jax.random.normal(jax.random.key(2), (2, 3, 3, 6))
  layer = gen.SpatialFilter(num_classes=4)
  variables = layer.init(jax.random.key(3), f, jnp.array([0, 0]))
  table = np.asarray(variables["params"]["embedding"])
  out = np.asarray(layer.apply(variables, f, jnp.array([3, 1])))
  fn = np.asarray(f)
  for n, t in enumerate([3, 1]):
    scores = fn[n] @ table[t]
    np.testing.assert_allclose(out[n], fn[n] / (1 + np.exp(-scores))[..., None],
                               rtol=1e-5, atol=1e-6)


def test_embedding_loss_is_eq4():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(3, 2, 2, 5)).astype(np.float32)
  v = rng.normal(size=(3, 5)).astype(np.float32)
  is_true = np.array([True, False, True])
  sums = [np.sum(1 / (1 + np.exp(-(f[n] @ v[n])))) for n in range(3)]
  expected = np.mean([-sums[0], sums[1], -sums[2]])
  assert float(gen.embedding_loss(f, v, is_true)) == pytest.approx(expected, rel=1e-5)


def test_pixel_shuffle_matches_torch():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 12)).astype(np.float32)  # NHWC
  expected = torch.nn.functional.pixel_shuffle(
      torch.from_numpy(x.transpose(0, 3, 1, 2)), 2).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(np.asarray(gen.pixel_shuffle(jnp.asarray(x))), expected)


def test_train_mode_updates_batch_stats():
  channels, widths = (8, 16, 32, 64), (8, 16, 32)
  g = gen.MaskGenerator(num_classes=3, widths=widths)
  taps = _taps(channels, size=96, batch=2)
  variables = jax.jit(g.init)(jax.random.key(0), taps, jnp.zeros((2,), jnp.int32))
  _, updates = jax.jit(functools.partial(g.apply, train=True, mutable=["batch_stats"]))(
      variables, taps, jnp.zeros((2,), jnp.int32))
  before = jax.tree.leaves(variables["batch_stats"])
  after = jax.tree.leaves(updates["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_bad_taps():
  g = gen.MaskGenerator(num_classes=3, widths=(8, 16, 32))
  taps = _taps((8, 16, 32, 64), size=64)
  with pytest.raises(ValueError, match="4 taps"):
    g.init(jax.random.key(0), taps[:3], jnp.zeros((1,), jnp.int32))
  taps[1] = jnp.zeros((1, 9, 9, 16))
  with pytest.raises(ValueError, match="strides 4, 8, 16 and 32"):
    g.init(jax.random.key(0), taps, jnp.zeros((1,), jnp.int32))
  with pytest.raises(ValueError, match="upsample"):
    gen.MaskGenerator(3, (8, 16, 32), upsample="nearest").init(
        jax.random.key(0), _taps((8, 16, 32, 64), 64), jnp.zeros((1,), jnp.int32))
