"""Class activation maps from the gradient at a feature tap: Grad-CAM, Grad-CAM++.

Both weight the channels of a feature map A [N, h, w, K] (default the
classifier's last tap, the main flow at stride 32, i.e. the last convolutional
block) by a function of g = dS_t/dA, the gradient of the target's class score
before the softmax, and upsample ReLU(sum_k w_k A^k) bilinearly to the image
size (half-pixel centres, `dre_jax.resize.upsample_masks`).

The gradient is taken with respect to a zero perturbation added at the tap
(`Classifier.forward(images, {tap: delta})`): one forward pass and a backward
pass through the layers after the tap only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dre_jax.classifier import Classifier
from dre_jax.explainers import registry
from dre_jax.resize import upsample_masks


def tap_gradient(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                 tap: str | None = None, score: str = "logit"):
  """(A [N, h, w, K], g = dS_t/dA [N, h, w, K], S_t [N]) at the tap (default the last)."""
  tap = tap or classifier.tap_names[-1]
  shape = jax.eval_shape(lambda x: classifier.forward(x)[1], images)
  if tap not in shape:
    raise KeyError(f"{classifier.spec.name} has no tap {tap!r}; taps: "
                   f"{', '.join(shape)}")
  delta = jnp.zeros(shape[tap].shape, shape[tap].dtype)

  def total_score(d):
    logits, features = classifier.forward(images, {tap: d})
    s = registry.target_scores(logits, target, score)
    return jnp.sum(s), (features[tap], s)

  g, (a, s) = jax.grad(total_score, has_aux=True)(delta)
  return a.astype(jnp.float32), g.astype(jnp.float32), s


def grad_cam_weights(a: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
  """Selvaraju et al. Eq. 1: w_k = (1/Z) sum_ij dS_t/dA^k_ij: [N, K]."""
  del a
  return jnp.mean(g, axis=(1, 2))


def grad_cam_pp_weights(a: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
  """Chattopadhay et al. Eqs. 10 and 19 with Y_t = exp(S_t): [N, K].

      alpha^k_ij = g_ij^2 / (2 g_ij^2 + sum_ab A^k_ab g_ij^3)          Eq. 19
      w_k = sum_ij alpha^k_ij ReLU(dY_t/dA^k_ij)                        Eq. 10

  The closed form of alpha holds for Y_t = exp(S_t) with S_t piecewise linear
  in A (ReLU networks; their Sec. 3.2): then the 2nd and 3rd derivatives of Y_t
  are exp(S_t) g^2 and exp(S_t) g^3, and exp(S_t) cancels in alpha. It also
  factors out of ReLU(dY_t/dA) = exp(S_t) ReLU(g), a positive constant per
  image that changes no ranking and overflows for large scores, so it is left
  out. alpha is 0 where its denominator is 0 (g = 0), as in the authors' code.
  The authors' code further normalises alpha by its spatial sum; the paper's
  formula, followed here, does not.
  """
  g2 = g * g
  denom = 2.0 * g2 + jnp.sum(a, axis=(1, 2), keepdims=True) * g2 * g
  ok = denom != 0
  alpha = jnp.where(ok, g2 / jnp.where(ok, denom, 1.0), 0.0)
  return jnp.sum(alpha * jax.nn.relu(g), axis=(1, 2))


def class_activation_map(a: jnp.ndarray, g: jnp.ndarray, weights_fn) -> jnp.ndarray:
  """ReLU(sum_k w_k A^k) with w = weights_fn(A, g): A, g [N, h, w, K] -> [N, h, w]."""
  return jax.nn.relu(jnp.einsum("nhwk,nk->nhw", a, weights_fn(a, g)))


def _cam(classifier, images, target, weights_fn, tap, upsample):
  a, g, _ = tap_gradient(classifier, images, target, tap)
  cam = class_activation_map(a, g, weights_fn)
  return upsample_masks(cam, images.shape[1:3]) if upsample else cam


def _cam_passes(**_) -> float:
  return 1.0


@registry.register("gcam", passes=_cam_passes, display="GCAM",
                   table2=registry.Table2(6, "-", "1"),
                   paper=registry.PaperMeans(67.51, 78.79),
                   reference="Selvaraju et al., ICCV 2017")
def grad_cam(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
             key=None, *, tap: str | None = None, upsample: bool = True
             ) -> jnp.ndarray:
  """Grad-CAM, Selvaraju et al. Eqs. 1-2: ReLU(sum_k w_k A^k), w_k the mean of dS_t/dA^k.

  Settings (defaults and their sources):
    tap: None = the classifier's last tap (the last convolutional block,
      Selvaraju et al. Sec. 3); any feature-map name of the model.
    upsample: True, bilinear to the image size (Selvaraju et al. Sec. 3).

  Returns [N, H, W] float32 >= 0 ([N, h, w] with upsample=False). One forward
  and a partial backward pass per image.
  """
  del key
  return _cam(classifier, images, target, grad_cam_weights, tap, upsample)


@registry.register("gcam++", passes=_cam_passes, display="GCAM++",
                   table2=registry.Table2(7, "-", "1"),
                   paper=registry.PaperMeans(66.94, 83.51),
                   reference="Chattopadhay, Sarkar, Howlader & Balasubramanian, WACV 2018")
def grad_cam_pp(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                key=None, *, tap: str | None = None, upsample: bool = True
                ) -> jnp.ndarray:
  """Grad-CAM++: ReLU(sum_k w_k A^k) with w_k of `grad_cam_pp_weights` (Eqs. 10, 19).

  Settings: as `gcam` (last tap, bilinear upsampling; Chattopadhay et al. Sec. 3).
  """
  del key
  return _cam(classifier, images, target, grad_cam_pp_weights, tap, upsample)
