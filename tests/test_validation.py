"""Wrong inputs to the Python API (`dre_jax.validation`) never give silent garbage.

Each probe runs eagerly and jit-compiled. Shape and dtype problems are caught at
trace time, so a plain `jax.jit(dre.explain)` raises them too; value problems
(NaN/inf pixels, floats outside [0, 1], classes out of range) are raised eagerly
and by `validation.checked(dre.explain)` (jit + checkify); a plain jit skips them,
as documented in `DRE.explain`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax import validation
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE

SIZE = 96  # not 64: XLA CPU convs on 2x2 maps are very slow
K = 10


@pytest.fixture(scope="module")
def setup():
  dre = DRE.create("tiny_cnn", K)
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=K, image_size=SIZE)
  gen_vars = dre.init_generator(jax.random.key(1), clf, SIZE)
  # uint8 photos and the same pixels as float32 in [0, 1], converted by numpy.
  photos = np.asarray(jax.random.randint(jax.random.key(2), (2, SIZE, SIZE, 3), 0, 256),
                      np.uint8)
  images = photos.astype(np.float32) / np.float32(255)
  runners = {"eager": dre.explain, "jit": jax.jit(dre.explain),
             "checked": validation.checked(dre.explain)}
  return dre, clf, gen_vars, photos, images, runners


def run(setup, how, *args):
  dre, clf, gen_vars, *_, runners = setup
  return runners[how](clf, gen_vars, *args)


# Value checks: raised eagerly and under jit by `checked`.
VALUES = ["eager", "checked"]
# Trace-time checks and correct results: every way of calling.
ALL = ["eager", "jit", "checked"]


# Item 1: uint8 images are 0..255, float images must be in [0, 1].

@pytest.mark.parametrize("how", ALL)
def test_uint8_images_are_read_as_0_to_255(setup, how):
  _, clf, _, photos, images, runners = setup
  masks, target = run(setup, how, photos)
  ref_masks, ref_target = runners["jit"](clf, setup[2], images)
  assert np.isfinite(np.asarray(masks)).all()
  np.testing.assert_array_equal(target, ref_target)
  np.testing.assert_allclose(masks, ref_masks, rtol=0, atol=1e-6)
  np.testing.assert_array_equal(clf.logits(photos), clf.logits(images))
  np.testing.assert_array_equal(validation.as_images(photos), images)  # exact


@pytest.mark.parametrize("how", VALUES)
@pytest.mark.parametrize("scale, low", [(255.0, 0.0), (2.0, -1.0), (1.5, 0.0)],
                         ids=["0..255", "-1..1", "0..1.5"])
def test_float_images_outside_0_1_are_refused(setup, how, scale, low):
  images = setup[4] * scale + low
  with pytest.raises(ValueError, match=r"must be in \[0, 1\], got values in .*rescale"):
    run(setup, how, images)


@pytest.mark.parametrize("how", ALL)
@pytest.mark.parametrize("dtype", [np.int32, np.uint16, bool])
def test_other_integer_images_are_refused_at_trace_time(setup, how, dtype):
  with pytest.raises(TypeError, match="float in \\[0, 1\\] or uint8 in 0..255"):
    run(setup, how, setup[3].astype(dtype))


@pytest.mark.parametrize("how", ALL)
def test_wrong_image_shapes_say_how_to_fix_them(setup, how):
  images = setup[4]
  with pytest.raises(ValueError, match=r"add the batch axis: images\[None\]"):
    run(setup, how, images[0])
  with pytest.raises(ValueError, match="transpose to NHWC"):
    run(setup, how, images.transpose(0, 3, 1, 2))


# Item 2: NaN or inf pixels.

@pytest.mark.parametrize("how", VALUES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nan_or_inf_pixel_is_refused(setup, how, bad):
  images = setup[4].copy()
  images[1, 5, 7, 2] = bad
  with pytest.raises(ValueError, match=r"NaN or inf \(the first in image 1\)"):
    run(setup, how, images)


# Item 3: the target.

@pytest.mark.parametrize("how", VALUES)
@pytest.mark.parametrize("target, bad, image", [(5000, 5000, 0), (-1, -1, 0),
                                                ([3, K], K, 1)])
def test_a_class_out_of_range_is_refused(setup, how, target, bad, image):
  with pytest.raises(ValueError, match=f"classes in 0..{K - 1} of this {K}-class "
                     f"classifier, got {bad} for image {image}"):
    run(setup, how, setup[4], target)


@pytest.mark.parametrize("how", ALL)
def test_target_as_list_tuple_numpy_or_one_int(setup, how):
  images = setup[4]
  expected, _ = setup[5]["jit"](setup[1], setup[2], images, jnp.array([3, 7]))
  for target in ([3, 7], (3, 7), np.array([3, 7], np.int64)):
    masks, t = run(setup, how, images, target)
    np.testing.assert_array_equal(t, [3, 7])
    assert t.dtype == jnp.int32
    np.testing.assert_allclose(masks, expected, rtol=0, atol=1e-6)
  _, t = run(setup, how, images, 4)
  np.testing.assert_array_equal(t, [4, 4])


@pytest.mark.parametrize("how", ALL)
@pytest.mark.parametrize("target, error, match", [
    (1.7, TypeError, "integer classes, got dtype float"),
    ([1.0, 2.0], TypeError, "integer classes, got dtype float"),
    (np.array([True, False]), TypeError, "integer classes, got dtype bool"),
    ([1, 2, 3], ValueError, r"one class per image, shape \(2,\).*got shape \(3,\)"),
    (np.zeros((2, 1), int), ValueError, r"got shape \(2, 1\)"),
], ids=["float", "float-list", "bool", "length-3", "column"])
def test_target_of_wrong_type_or_length_is_refused(setup, how, target, error, match):
  with pytest.raises(error, match=match):
    run(setup, how, setup[4], target)


def test_classifier_probability_checks_the_target(setup):
  clf, images = setup[1], setup[4]
  with pytest.raises(ValueError, match="got 10 for image 1"):
    clf.probability(images, [0, 10])
  p = clf.probability(images, [2, 9])
  np.testing.assert_allclose(
      p, np.asarray(jax.nn.softmax(clf.logits(images)))[[0, 1], [2, 9]], rtol=1e-6)


def test_a_generator_for_another_class_count_is_refused(setup):
  _, clf, _, _, images, _ = setup
  dre = DRE.create("tiny_cnn", 20)
  gen_vars = dre.init_generator(jax.random.key(1), clf, SIZE)
  with pytest.raises(ValueError, match="built for 20 classes, the classifier has 10"):
    jax.jit(dre.explain)(clf, gen_vars, images)


def test_value_checks_run_inside_an_eager_gradient():
  """Explainers differentiate with respect to the images: the checks still see values."""
  images = jnp.full((1, 4, 4, 3), 0.5)
  grad = jax.grad(lambda x: validation.check_images(x).sum())(images)
  np.testing.assert_array_equal(grad, np.ones(images.shape))
  with pytest.raises(ValueError, match=r"got values in \[1.5, 1.5\]"):
    jax.grad(lambda x: validation.check_images(x).sum())(images * 3)
