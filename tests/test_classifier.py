"""The shared frozen classifier: logits, probabilities, taps and tap gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax.classifier import Classifier

SIZE = 64


@pytest.fixture(scope="module")
def clf():
  return Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10, image_size=SIZE)


@pytest.fixture(scope="module")
def images():
  return jax.random.uniform(jax.random.key(1), (3, SIZE, SIZE, 3))


def test_logits_probability_and_taps(clf, images):
  logits = clf.logits(images)
  assert logits.shape == (3, 10) and clf.num_classes == 10
  target = jnp.array([0, 4, 9])
  p = clf.probability(images, target)
  expected = jax.nn.softmax(logits)[jnp.arange(3), target]
  np.testing.assert_allclose(p, expected, rtol=1e-6)
  taps = clf.taps(images)
  assert [t.shape[1] for t in taps] == [SIZE // 4, SIZE // 8, SIZE // 16, SIZE // 32]
  # The same as the module applied by hand to the preprocessed images.
  ref_logits, ref_taps = clf.module.apply(clf.variables, clf.spec.preprocess(images))
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-6)
  np.testing.assert_allclose(taps[-1], ref_taps["stage4"], rtol=1e-6)


def test_it_is_a_pytree_that_jit_accepts(clf, images):
  leaves = jax.tree.leaves(clf)
  assert len(leaves) == len(jax.tree.leaves(clf.variables))
  np.testing.assert_allclose(jax.jit(lambda c, x: c.logits(x))(clf, images),
                             clf.logits(images), rtol=1e-5)


def test_frozen_no_gradient_reaches_the_variables(clf, images):
  def loss(c):
    return c.logits(images).sum() + c.probability(images, jnp.zeros(3, int)).sum()
  grads = jax.grad(loss)(clf)
  assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(grads))
  # ... while the image gradient exists.
  g_img = jax.grad(lambda x: clf.logits(x)[:, 3].sum())(images)
  assert np.abs(np.asarray(g_img)).max() > 0


@pytest.mark.parametrize("tap", ["stage4", "stage2"])
def test_tap_gradient_equals_a_finite_difference(clf, images, tap):
  value, head = clf.logits_from_tap(images, tap)
  np.testing.assert_allclose(head(value), clf.logits(images), rtol=1e-5, atol=1e-6)
  f = lambda a: head(a)[:, 2].sum()
  grad = np.asarray(jax.jit(jax.grad(f))(value), np.float64)
  rng = np.random.default_rng(0)
  for _ in range(3):
    direction = rng.standard_normal(value.shape).astype(np.float32)
    eps = 1e-4  # small: the ReLUs after the tap have kinks
    fd = (f(value + eps * direction) - f(value - eps * direction)) / (2 * eps)
    assert float(fd) == pytest.approx(float(np.sum(grad * direction)), rel=2e-2, abs=1e-4)


def test_unknown_tap_and_integer_images_are_clear_errors(clf, images):
  with pytest.raises(KeyError, match="no tap 'layer9'"):
    clf.logits_from_tap(images, "layer9")
  with pytest.raises(TypeError, match="float in"):  # uint8 is 0..255, other ints are not
    clf.logits((np.asarray(images) * 255).astype(np.int32))


def test_preprocessing_override(images):
  base = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10, image_size=SIZE)
  scaled = Classifier.create("tiny_cnn", base.variables, mean=(0.5,) * 3, std=(0.5,) * 3)
  np.testing.assert_allclose(scaled.preprocess(images), 2 * images - 1, atol=1e-6)
  assert scaled.num_classes == 10
