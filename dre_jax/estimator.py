"""The differentiated relevance estimator: M = upsample(C(G(E(I), t))) and Eq. 9.

    t = argmax f(I)                     the classifier's own prediction
    X = G(E(I), t)                      `dre_jax.generator.MaskGenerator`
    Z = C(X)                            Eq. 5-7, `dre_jax.controller`
    M = upsample(Z)                     bilinear, half-pixel centres
    loss = CE(f(psi(I, M)), t)          Eq. 9, psi of Eq. 1

The classifier (encoder E and head f) is the frozen `dre_jax.classifier.Classifier`
that every explainer shares: it runs in inference mode and no gradient reaches
its parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dre_jax import controller
from dre_jax import perturbation
from dre_jax import validation
from dre_jax.classifier import Classifier
from dre_jax.generator import MaskGenerator, class_embeddings, embedding_loss
from dre_jax.models import registry
from dre_jax.resize import upsample_masks

Variables = Any


@dataclasses.dataclass(frozen=True)
class DRE:
  """The mask generator and controller of one classifier architecture.

  Build it with `DRE.create("resnet50", num_classes=1000)`. Every method is a pure
  function of the frozen classifier (`dre_jax.classifier.Classifier`, a pytree)
  and the generator variables passed in; jit them (`jax.jit(dre.explain)`).
  """

  spec: registry.ClassifierSpec
  generator: MaskGenerator
  eta: float = controller.ETA
  h: float = controller.H

  @classmethod
  def create(cls, spec: str | registry.ClassifierSpec, num_classes: int = 1000, *,
             upsample: str = "subpixel", widths=None, eta: float = controller.ETA,
             h: float = controller.H, dtype=jnp.float32) -> "DRE":
    spec = registry.get(spec) if isinstance(spec, str) else spec
    return cls(
        spec=spec,
        generator=MaskGenerator(
            num_classes=num_classes,
            widths=tuple(widths or spec.generator_widths),
            upsample=upsample, dtype=dtype),
        eta=eta, h=h)

  def check_images(self, images: jnp.ndarray) -> None:
    validation.as_images(images)
    if images.shape[1] % 32 or images.shape[2] % 32:
      raise ValueError(
          f"image sides must be multiples of 32 (the generator merges taps at "
          f"strides 4-32), got {images.shape[1]}x{images.shape[2]}; resize or crop "
          "the images")

  def init_generator(self, key: jax.Array, classifier: Classifier,
                     image_size: int | None = None) -> Variables:
    """Generator variables {"params", "batch_stats"} for taps of this classifier."""
    size = image_size or self.spec.input_size
    images = jnp.zeros((1, size, size, 3), jnp.float32)
    taps = jax.eval_shape(classifier.taps, images)
    taps = [jnp.zeros(t.shape, t.dtype) for t in taps]
    init = jax.jit(functools.partial(self.generator.init, train=False))
    return init(key, taps, jnp.zeros((1,), jnp.int32))  # compiled, as Classifier.init

  def masks_from_taps(self, generator_variables: Variables, taps, target,
                      size: tuple[int, int], train: bool = False):
    """M = upsample(C(G(taps, t))): [N, H, W] in (0, 1).

    With train=True returns (M, new batch_stats) and BatchNorm uses batch statistics.
    """
    return self._masks(
        lambda x: controller.distribution_controller(x, self.eta, self.h),
        generator_variables, taps, target, size, train)

  def mgnet_masks_from_taps(self, generator_variables: Variables, taps, target,
                            size: tuple[int, int], train: bool = False):
    """MGnet's mask on this generator: M = upsample(sigmoid(G(taps, t))).

    Dabkowski & Gal's mask (the paper's Eq. 2 baseline) with DRE's generator
    and no distribution controller; trained by
    `dre_jax.training.objectives.mgnet_objective`. [N, H, W] in (0, 1); with
    train=True (M, new batch_stats) as `masks_from_taps`.
    """
    return self._masks(jax.nn.sigmoid, generator_variables, taps, target, size,
                       train)

  def _masks(self, activation, generator_variables: Variables, taps, target,
             size: tuple[int, int], train: bool):
    """upsample(activation(G(taps, t))); with train=True also the new batch_stats."""
    if train:
      x, updates = self.generator.apply(generator_variables, taps, target,
                                        train=True, mutable=["batch_stats"])
    else:
      x = self.generator.apply(generator_variables, taps, target, train=False)
    masks = upsample_masks(activation(x), size)
    return (masks, updates["batch_stats"]) if train else masks

  def explain(self, classifier: Classifier, generator_variables: Variables,
              images: jnp.ndarray, target: jnp.ndarray | None = None):
    """One-pass explanation.

    Args:
      classifier: the frozen classifier the generator was trained for.
      images: [N, H, W, 3] float in [0, 1], or uint8 in 0..255 (taken as
        x / 255); H and W multiples of 32.
      target: the classes to explain: [N] ints (a list, tuple or integer
        array) or one int for all images; default the classifier's argmax t.

    Returns:
      (masks [N, H, W] float32 in (0, 1), target [N] int32)

    Wrong inputs raise one error naming the fix (`dre_jax.validation`): shapes
    and dtypes (a float target, a wrong length) at trace time, so also under
    `jax.jit`; values (NaN or inf pixels, floats outside [0, 1], classes outside
    0..K-1) when they are concrete, i.e. outside jit. To jit with the value
    checks, use `validation.checked(dre.explain)` (jit + checkify, raises the
    same ValueError); a plain `jax.jit(dre.explain)` skips them.
    """
    images = validation.check_images(images)
    self.check_images(images)
    if classifier.num_classes != self.generator.num_classes:
      raise ValueError(
          f"the generator was built for {self.generator.num_classes} classes, the "
          f"classifier has {classifier.num_classes}; pass the classifier it was "
          "trained for")
    if target is not None:
      target = validation.check_target(target, images.shape[0],
                                       classifier.num_classes)
    logits, taps = classifier.logits_and_taps(images)
    if target is None:
      target = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return self.masks_from_taps(generator_variables, taps, target,
                                images.shape[1:3]), target

  def loss(self, generator_params, generator_state, classifier: Classifier,
           images: jnp.ndarray, key: jax.Array,
           backgrounds: perturbation.BackgroundConfig = perturbation.BackgroundConfig()):
    """Eq. 9: CE(f(psi(I, M)), t) with t = argmax f(I), M from the generator in train mode.

    Differentiable in `generator_params` only; `generator_state` is its batch_stats.

    Returns:
      (loss, (new_batch_stats, aux)) with aux = {"accuracy": fraction of perturbed
      images still classified as t, "mask_mean": mean of M, "masks": M [N, H, W],
      "target": t [N]} (masks and target for added terms,
      `dre_jax.training.objectives`).
    """
    images = validation.as_images(images)
    self.check_images(images)
    logits, taps = classifier.logits_and_taps(images)
    target = jnp.argmax(logits, axis=-1)
    masks, new_state = self.masks_from_taps(
        {"params": generator_params, "batch_stats": generator_state}, taps, target,
        images.shape[1:3], train=True)
    perturbed = perturbation.training_perturbation(key, images, masks, backgrounds)
    logits_p = classifier.logits(perturbed)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits_p, target).mean()
    aux = {"accuracy": jnp.mean(jnp.argmax(logits_p, -1) == target),
           "mask_mean": jnp.mean(masks), "masks": masks, "target": target}
    return loss, (new_state, aux)

  def embedding_loss(self, generator_params, classifier: Classifier,
                     images: jnp.ndarray, key: jax.Array, fake_prob: float = 0.5):
    """Stage 1, Eq. 4: the spatial filter's embeddings with true and fake labels.

    Each image gets its predicted class t (true label) or, with probability
    `fake_prob`, a uniformly drawn other class (fake label).
    """
    logits, taps = classifier.logits_and_taps(images)
    t = jnp.argmax(logits, axis=-1)
    num_classes = logits.shape[-1]
    k_fake, k_shift = jax.random.split(key)
    is_fake = jax.random.bernoulli(k_fake, fake_prob, t.shape)
    shift = jax.random.randint(k_shift, t.shape, 1, num_classes)
    labels = jnp.where(is_fake, (t + shift) % num_classes, t)
    table = class_embeddings(generator_params)
    return embedding_loss(taps[-1], table[labels], ~is_fake)
