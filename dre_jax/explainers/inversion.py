"""Guided Feature Inversion (FInv): Du, Liu, Song & Hu, KDD 2018.

The mask is a non-negative combination of the channels of a feature map A
[h, w, K] of the image itself (their Sec. 3.4: "the integration of the
intermediate layer activations of the original input as the mask"),

    M(w) = normalise(upsample(sum_k w_k A^k)),   w >= 0,

optimised in two stages through the perturbed images of the DRE paper's Eq. 1,
psi(I, M) = I * M + B * (1 - M), with DRE's blur background (see
`dre_jax.explainers.mask_optimisation`):

    stage 1 (Sec. 3.2, guided feature inversion, the first `inversion_iterations`):
        ||A(psi(I, M)) - A(I)||^2 / ||A(I)||^2 + lambda_1 ||w||^2
    stage 2 (Sec. 3.3, class-discriminative, the remaining iterations):
        -f_t(psi(I, M)) + lambda_bg f_t(psi(I, 1 - M)) + lambda_2 ||w||^2

f_t the softmax probability of the target. The iteration split, the weights
(5, 1, 2), the initial w = 0.1, Adam 1e-2 halved every 10 iterations and w
clipped at 0 are the authors' released code (github.com/mndu/guided-feature-
inversion, main.py), which uses the last feature map (VGG19 pool5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dre_jax import perturbation as dre_perturbation
from dre_jax.classifier import Classifier
from dre_jax.explainers import registry
from dre_jax.explainers.mask_optimisation import background_fn, map_images, probability
from dre_jax.resize import upsample_masks


def normalise(m: jnp.ndarray) -> jnp.ndarray:
  """(m - min) / (max - min) over the map, 0 where the map is constant."""
  low, high = jnp.min(m), jnp.max(m)
  span = high - low
  return jnp.where(span > 0, (m - low) / jnp.where(span > 0, span, 1.0), 0.0)


def optimize_finv(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                  key=None, *, iterations: int = 80, inversion_iterations: int = 11,
                  inversion_weight: float = 5.0, norm_weight: float = 2.0,
                  deletion_weight: float = 1.0, learning_rate: float = 1e-2,
                  decay_every: int = 10, tap: str | None = None,
                  background: str = "blur", batch_size: int = 64):
  """Both stages of the module docstring for all images at once.

  Returns (M [N, H, W] in [0, 1], objective [iterations, N]); the objective of
  stage 1 for the first `inversion_iterations` rows, of stage 2 after.
  """
  key = jax.random.key(0) if key is None else key  # used by background="training"
  tap = tap or classifier.tap_names[-1]
  h, w = images.shape[1:3]
  schedule = optax.exponential_decay(learning_rate, decay_every, 0.5, staircase=True)
  optimizer = optax.adam(schedule)

  def one(x, t):
    bg = background_fn(background, x)(key)
    _, features = classifier.forward(x[None])
    if tap not in features:
      raise KeyError(f"{classifier.spec.name} has no tap {tap!r}; taps: "
                     f"{', '.join(features)}")
    ref = jax.lax.stop_gradient(features[tap][0]).astype(jnp.float32)
    ref_norm = jnp.maximum(jnp.sum(ref ** 2), 1e-12)

    def mask(weights):
      m = jnp.einsum("hwk,k->hw", ref, weights)
      return normalise(upsample_masks(m[None], (h, w))[0])

    def perturbed(m):
      return dre_perturbation.perturb(x[None], m[None], bg[None])

    def inversion(weights):
      a = classifier.forward(perturbed(mask(weights)))[1][tap][0]
      return (jnp.sum((a - ref) ** 2) / ref_norm
              + inversion_weight * jnp.sum(weights ** 2))

    def discrimination(weights):
      m = mask(weights)
      both = jnp.concatenate([perturbed(m), perturbed(1.0 - m)])
      p = probability(classifier, both, t)
      return -p[0] + deletion_weight * p[1] + norm_weight * jnp.sum(weights ** 2)

    def stage(objective):
      def one_step(state, _):
        weights, opt_state = state
        value, grad = jax.value_and_grad(objective)(weights)
        updates, opt_state = optimizer.update(grad, opt_state, weights)
        weights = jnp.maximum(optax.apply_updates(weights, updates), 0.0)
        return (weights, opt_state), value
      return one_step

    w0 = jnp.full((ref.shape[-1],), 0.1, jnp.float32)
    state = (w0, optimizer.init(w0))
    state, first = jax.lax.scan(stage(inversion), state, None,
                                length=inversion_iterations)
    state, second = jax.lax.scan(stage(discrimination), state, None,
                                 length=iterations - inversion_iterations)
    return mask(state[0]), jnp.concatenate([first, second])

  if not 0 <= inversion_iterations <= iterations:
    raise ValueError(f"finv needs 0 <= inversion_iterations <= iterations, got "
                     f"{inversion_iterations} and {iterations}")
  masks, history = map_images(one, images, target, 2, batch_size)
  return masks, history.T


def _finv_passes(*, iterations: int, inversion_iterations: int, **_) -> float:
  return float(inversion_iterations + 2 * (iterations - inversion_iterations))


def _finv_quick(samples: int, iterations: int) -> dict:
  del samples
  return {"iterations": iterations,
          "inversion_iterations": min(11, iterations // 2)}


@registry.register("finv", passes=_finv_passes, display="FInv",
                   table2=registry.Table2(4, "3", "80"),
                   paper=registry.PaperMeans(65.18, 74.39), output="mask",
                   quick=_finv_quick,
                   reference="Du, Liu, Song & Hu, KDD 2018")
def feature_inversion(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                      key=None, *, iterations: int = 80, inversion_iterations: int = 11,
                      inversion_weight: float = 5.0, norm_weight: float = 2.0,
                      deletion_weight: float = 1.0, learning_rate: float = 1e-2,
                      decay_every: int = 10, tap: str | None = None,
                      background: str = "blur", batch_size: int = 64) -> jnp.ndarray:
  """Guided Feature Inversion: the class-discriminative mask M (`optimize_finv`).

  Settings (defaults and their sources):
    iterations: 80, the DRE paper's Table 2 and the authors' code (--epochs 80).
    inversion_iterations 11 (stage 1), inversion_weight 5 (lambda_1),
      norm_weight 2 (lambda_2), deletion_weight 1 (lambda_bg), learning_rate
      1e-2 halved every decay_every = 10 iterations: the authors' main.py.
    tap: None = the classifier's last tap (the authors use VGG19's pool5).
    background: "blur" (the authors blur with radius 11; DRE's blur here).
    batch_size: classifier images per pass (an image costs 2 in stage 2).

  Returns [N, H, W] float32 in [0, 1]. inversion_iterations + 2 x the rest
  forward + backward passes per image.
  """
  masks, _ = optimize_finv(
      classifier, images, target, key, iterations=iterations,
      inversion_iterations=inversion_iterations, inversion_weight=inversion_weight,
      norm_weight=norm_weight, deletion_weight=deletion_weight,
      learning_rate=learning_rate, decay_every=decay_every, tap=tap,
      background=background, batch_size=batch_size)
  return masks
