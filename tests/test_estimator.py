"""The estimator M = upsample(C(G(E(I), t))) and the objective of Eq. 9."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dre_jax import controller
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.resize import upsample_masks

SIZE = 96  # not 64: XLA CPU convs on 2x2 maps are very slow


@pytest.fixture(scope="module")
def setup():
  dre = DRE.create("tiny_cnn", num_classes=10)
  cls_vars = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                             image_size=SIZE)
  gen_vars = dre.init_generator(jax.random.key(1), cls_vars, SIZE)
  images = jax.random.uniform(jax.random.key(2), (4, SIZE, SIZE, 3))
  return dre, cls_vars, gen_vars, images


def test_explain_shapes_range_and_target(setup):
  dre, cls_vars, gen_vars, images = setup
  masks, target = jax.jit(dre.explain)(cls_vars, gen_vars, images)
  assert masks.shape == (4, SIZE, SIZE) and masks.dtype == jnp.float32
  assert float(masks.min()) > 0 and float(masks.max()) < 1
  logits, _ = cls_vars.logits_and_taps(images)
  np.testing.assert_array_equal(np.asarray(target), np.argmax(logits, -1))
  # An explicit target is used as given.
  _, t2 = dre.explain(cls_vars, gen_vars, images, jnp.array([1, 2, 3, 4]))
  np.testing.assert_array_equal(np.asarray(t2), [1, 2, 3, 4])


def test_explain_is_controller_then_bilinear_upsampling(setup):
  dre, cls_vars, gen_vars, images = setup
  masks, target = dre.explain(cls_vars, gen_vars, images)
  _, taps = cls_vars.logits_and_taps(images)
  x = dre.generator.apply(gen_vars, taps, target)
  assert x.shape == (4, SIZE // 4, SIZE // 4)
  z = controller.distribution_controller(x)
  np.testing.assert_allclose(np.asarray(masks),
                             np.asarray(upsample_masks(z, (SIZE, SIZE))), atol=1e-6)


def test_bilinear_upsampling_matches_torch_align_corners_false():
  torch = pytest.importorskip("torch")
  z = np.random.default_rng(0).random((2, 7, 5)).astype(np.float32)
  ref = torch.nn.functional.interpolate(torch.from_numpy(z)[:, None], size=(28, 20),
                                        mode="bilinear", align_corners=False)
  np.testing.assert_allclose(np.asarray(upsample_masks(jnp.asarray(z), (28, 20))),
                             ref[:, 0].numpy(), atol=1e-6)


def test_gradients_reach_every_generator_parameter_and_no_classifier_one(setup):
  dre, cls_vars, gen_vars, images = setup

  def loss(gen_params, classifier_variables):
    return dre.loss(gen_params, gen_vars["batch_stats"], classifier_variables, images,
                    jax.random.key(3))[0]

  g_gen, g_cls = jax.jit(jax.grad(loss, argnums=(0, 1)))(gen_vars["params"], cls_vars)
  flat = jax.tree_util.tree_leaves_with_path(g_gen)
  dead = [jax.tree_util.keystr(p) for p, g in flat if not np.any(np.asarray(g))]
  # The embedding table only gets gradient in the rows of the predicted classes.
  assert all("embedding" in p for p in dead), dead
  emb = np.asarray(g_gen["spatial_filter"]["embedding"])
  target = np.argmax(np.asarray(cls_vars.logits(images)), -1)
  assert np.any(emb[target], axis=1).all()
  assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(g_cls))


def test_eq9_is_cross_entropy_on_the_perturbed_image(setup):
  dre, cls_vars, gen_vars, images = setup
  from dre_jax import perturbation
  key = jax.random.key(5)
  loss, (_, aux) = dre.loss(gen_vars["params"], gen_vars["batch_stats"], cls_vars,
                            images, key)
  logits, taps = cls_vars.logits_and_taps(images)
  t = jnp.argmax(logits, -1)
  masks, _ = dre.masks_from_taps(gen_vars, taps, t, (SIZE, SIZE), train=True)
  perturbed = perturbation.training_perturbation(key, images, masks)
  logits_p, _ = cls_vars.logits_and_taps(perturbed)
  logp = jax.nn.log_softmax(logits_p)
  expected = -np.mean(np.asarray(logp)[np.arange(4), np.asarray(t)])
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert 0 <= float(aux["accuracy"]) <= 1


@pytest.mark.slow  # training steps
def test_training_steps_reduce_the_loss(setup):
  dre, cls_vars, gen_vars, images = setup
  opt = optax.adam(1e-2)
  params, state = gen_vars["params"], gen_vars["batch_stats"]
  opt_state = opt.init(params)
  key = jax.random.key(6)  # a fixed background: the same problem at each step

  @jax.jit
  def step(params, state, opt_state):
    (loss, (state, _)), grads = jax.value_and_grad(dre.loss, has_aux=True)(
        params, state, cls_vars, images, key)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), state, opt_state, loss

  losses = []
  for _ in range(15):
    params, state, opt_state, loss = step(params, state, opt_state)
    losses.append(float(loss))
  # A random tiny classifier is hard to sway; a clear drop is enough here.
  assert losses[-1] < 0.97 * losses[0], losses


def test_stage1_embedding_loss_trains_only_embeddings(setup):
  dre, cls_vars, gen_vars, images = setup
  grads = jax.grad(dre.embedding_loss)(gen_vars["params"], cls_vars, images,
                                       jax.random.key(7))
  nonzero = {jax.tree_util.keystr(p) for p, g in
             jax.tree_util.tree_leaves_with_path(grads) if np.any(np.asarray(g))}
  assert nonzero == {"['spatial_filter']['embedding']"}


def test_bad_images(setup):
  dre, cls_vars, gen_vars, images = setup
  with pytest.raises(ValueError, match="multiples of 32"):
    dre.explain(cls_vars, gen_vars, images[:, :48])
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    dre.explain(cls_vars, gen_vars, images[..., :1])
  with pytest.raises(KeyError, match="unknown classifier"):
    DRE.create("resnet5O")
