"""Checks on the inputs that DRE and every explainer share: images and target classes.

Each wrong input ends in one error that names the problem and the fix:

    as_images(images)                  shape and dtype; uint8 -> float32 x / 255
    check_images(images)               as_images + values: finite and in [0, 1]
    check_target(target, n, k)         [N] int32 classes in 0..k-1 (or one int for all)
    checked(fn)                        jax.jit(fn) with the value checks raised

The image convention (Classifier, DRE, the explainers, the metrics): [N, H, W, 3]
RGB, float in [0, 1], or uint8 in 0..255, converted exactly to float32 x / 255
(photos load as uint8). Other integer dtypes are refused: their scale is unknown.

Shapes and dtypes are checked at trace time, so also under `jax.jit`. Values
(NaN or inf pixels, floats outside [0, 1], classes out of range) need the values:
where they are concrete (outside jit) a ValueError is raised at once; under a
trace they are `checkify.debug_check`s, free and silent in a plain `jax.jit`
and raised as the same ValueError by `checked`:

    explain = validation.checked(dre.explain)      # jit + value checks
    masks, target = explain(classifier, generator_variables, images)

A CLI or loop that jits its own step runs `check_images` on each batch first.
An explainer `(classifier, images, target, key) -> maps` starts with

    images = validation.check_images(images)
    if target is not None:
      target = validation.check_target(target, images.shape[0], classifier.num_classes)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

_CHECKIFY_SUFFIX = " (`check` failed)"
# x / 255 rounded once, as numpy computes it (XLA turns / 255 into * (1 / 255)).
_UINT8_TO_UNIT = np.arange(256, dtype=np.float32) / np.float32(255)


def as_images(images: Any, what: str = "images") -> jax.Array:
  """[N, H, W, 3] float images, checked at trace time; uint8 becomes float32 x / 255.

  Float images keep their dtype (float32, bfloat16, ...). Raises ValueError on a
  wrong shape and TypeError on a dtype other than float or uint8.
  """
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{what} must be [N, H, W, 3] (NHWC, RGB), got shape "
                     f"{tuple(images.shape)}{_shape_hint(images.shape)}")
  if images.dtype == jnp.uint8:
    return jnp.asarray(_UINT8_TO_UNIT)[images]
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise TypeError(
        f"{what} must be float in [0, 1] or uint8 in 0..255, got dtype "
        f"{images.dtype}; convert them, e.g. images.astype(np.float32) / 255 for "
        "values in 0..255")
  return images


def check_images(images: Any, what: str = "images") -> jax.Array:
  """`as_images`, then the values: every pixel finite and in [0, 1].

  Raises ValueError where the values are concrete; under a trace the checks are
  `checkify.debug_check`s (see `checked`). Returns the float images.
  """
  images = as_images(images, what)
  values = jax.lax.stop_gradient(images)  # concrete under an eager jax.grad
  finite = jnp.all(jnp.isfinite(values), axis=(1, 2, 3))
  _require(jnp.all(finite),
           f"{what} contain NaN or inf (the first in image {{i}}); drop or repair "
           "those images (e.g. np.nan_to_num) before explaining them",
           i=jnp.argmin(finite))
  low = jnp.min(values).astype(jnp.float32)
  high = jnp.max(values).astype(jnp.float32)
  _require((low >= 0) & (high <= 1),
           f"{what} must be in [0, 1], got values in [{{low:.4g}}, {{high:.4g}}]; "
           "rescale them (0..255 floats: images / 255, or pass uint8; [-1, 1]: "
           "(images + 1) / 2) or clip what resizing pushed out (np.clip(images, 0, 1))",
           low=low, high=high)
  return images


def check_target(target: Any, n: int, num_classes: int) -> jax.Array:
  """[N] int32 classes from an int, a list or tuple of ints or an integer array.

  One int is used for every image. Raises TypeError on non-integers (1.7 is not
  a class), ValueError on a length other than n and, where the values are
  concrete, on classes outside 0..num_classes-1 (a checkify check under a trace).
  """
  t = jnp.asarray(target)
  if not jnp.issubdtype(t.dtype, jnp.integer):
    raise TypeError(
        f"target must be integer classes, got dtype {t.dtype}; pass ints, e.g. "
        "np.asarray(target, np.int32) once they are whole numbers")
  if t.ndim == 0:
    t = jnp.broadcast_to(t, (n,))
  if t.shape != (n,):
    raise ValueError(f"target must hold one class per image, shape ({n},), or be "
                     f"one int for all, got shape {tuple(t.shape)}")
  valid = (t >= 0) & (t < num_classes)
  first = jnp.argmin(valid)
  _require(jnp.all(valid),
           f"target must be classes in 0..{num_classes - 1} of this "
           f"{num_classes}-class classifier, got {{bad}} for image {{i}}; pass "
           "classes the classifier has",
           bad=t[first], i=first)
  return t.astype(jnp.int32)


def checked(fn: Callable, **jit_kwargs) -> Callable:
  """jax.jit(fn) that raises ValueError when a value check inside fn fails.

  fn runs under `checkify.checkify` (user checks only), so the checks of
  `check_images` and `check_target` inside it see the values. Build it once and
  reuse it (each call of `checked` compiles anew). jit_kwargs go to `jax.jit`.
  """
  run = jax.jit(checkify.checkify(fn, errors=checkify.user_checks), **jit_kwargs)

  @functools.wraps(fn)
  def checked_fn(*args, **kwargs):
    error, out = run(*args, **kwargs)
    message = error.get()
    if message is not None:
      raise ValueError(message.removesuffix(_CHECKIFY_SUFFIX))
    return out

  return checked_fn


def _require(ok: jax.Array, message: str, **values) -> None:
  """ValueError(message.format(**values)) unless ok; under a trace a debug_check."""
  try:
    failed = not bool(ok)
  except jax.errors.ConcretizationTypeError:
    checkify.debug_check(ok, message, **values)
    return
  if failed:
    raise ValueError(message.format(**{k: np.asarray(v).item()
                                      for k, v in values.items()}))


def _shape_hint(shape: tuple[int, ...]) -> str:
  if len(shape) == 3 and shape[-1] == 3:
    return "; add the batch axis: images[None]"
  if len(shape) == 4 and shape[1] == 3:
    return "; NCHW? transpose to NHWC: images.transpose(0, 2, 3, 1)"
  return ""
