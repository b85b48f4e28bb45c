"""Image perturbation (paper Eq. 1) and the alternative backgrounds B of Sec. 4.1.

    psi(I, M) = I * M + B * (1 - M)                                        Eq. 1

Images are float32 in [0, 1] RGB, NHWC. The authors' released code perturbs in
the classifier's [-1, 1] input space; every classifier here normalises with a
per-channel affine map, which commutes with Eq. 1, so the perturbation is done
in [0, 1] pixel space with the released code's magnitudes halved:

    released ([-1, 1])                 here ([0, 1])
    colour U(-0.33, 0.33)              0.5 + U(-0.165, 0.165)   (`color_range`)
    per-pixel noise N(0, 0.11)         N(0, 0.055)              (`noise_std`)
    noise on the kept image N(0, 0.03) N(0, 0.015)              (`image_noise_std`)
    blur kernel 55, sigma 11           the same                 (`blur_*`)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import validation


@dataclasses.dataclass(frozen=True)
class BackgroundConfig:
  """Training backgrounds: blurred image with probability `blur_prob`, else colour + noise."""

  blur_prob: float = 0.5
  blur_sigma: float = 11.0
  blur_kernel_size: int = 55
  color_range: float = 0.165
  noise_std: float = 0.055
  image_noise_std: float = 0.015


def _mask_channels(masks: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
  """[N, H, W] or [N, H, W, 1] masks -> [N, H, W, 1], checked against the images."""
  if masks.ndim == 4 and masks.shape[-1] == 1:
    masks = masks[..., 0]
  if masks.ndim != 3:
    raise ValueError(f"masks must be [N, H, W] or [N, H, W, 1], got shape "
                     f"{tuple(masks.shape)}")
  if masks.shape != images.shape[:3]:
    raise ValueError(
        f"masks {tuple(masks.shape)} and images {tuple(images.shape[:3])} differ in "
        "batch or spatial size; upsample the masks to the image size first "
        "(dre_jax.resize.upsample_masks)")
  return masks[..., None]


def perturb(images: jnp.ndarray, masks: jnp.ndarray,
            backgrounds: jnp.ndarray) -> jnp.ndarray:
  """Eq. 1: psi(I, M) = I * M + B * (1 - M).

  images, backgrounds: [N, H, W, 3]; masks: [N, H, W] or [N, H, W, 1].
  """
  validation.as_images(images)
  if backgrounds.shape != images.shape:
    raise ValueError(f"backgrounds {tuple(backgrounds.shape)} must have the images' "
                     f"shape {tuple(images.shape)}")
  m = _mask_channels(masks, images)
  return images * m + backgrounds * (1.0 - m)


def gaussian_kernel1d(sigma: float, size: int) -> np.ndarray:
  """Normalised 1-D Gaussian taps, [size], centred (size odd); numpy, so that
  it stays a constant under jit."""
  if size % 2 != 1 or sigma <= 0:
    raise ValueError(f"blur kernel size must be odd and sigma > 0, got size={size}, "
                     f"sigma={sigma}")
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2
  k = np.exp(-0.5 * np.square(x / sigma))
  return k / np.sum(k)


def _blur_matrix(size: int, taps: np.ndarray) -> np.ndarray:
  """[size, size] matrix of a 1-D blur with reflect padding: out = B @ x."""
  pad = len(taps) // 2
  src = np.arange(size)[:, None] + np.arange(len(taps))[None, :] - pad
  src = np.abs(src)                                  # reflect at the start
  src = np.where(src >= size, 2 * (size - 1) - src, src)  # and at the end
  matrix = np.zeros((size, size), np.float64)
  np.add.at(matrix, (np.repeat(np.arange(size), len(taps)), src.ravel()),
            np.tile(taps, size))
  return matrix


def gaussian_blur(images: jnp.ndarray, sigma: float = 10.0,
                  kernel_size: int = 55) -> jnp.ndarray:
  """Separable Gaussian blur with reflect padding (as torchvision's gaussian_blur).

  images: [N, H, W, C] -> [N, H, W, C]. A kernel wider than the image is clipped to
  the largest odd size that reflect padding allows. Each 1-D pass is a product
  with a banded [H, H] (or [W, W]) matrix that folds in the padding: the same
  sums as a convolution, but a matmul, which XLA runs far faster on CPUs than a
  55-tap depthwise convolution.
  """
  n, h, w, c = images.shape
  kernel_size = min(kernel_size, 2 * min(h, w) - 1)  # reflect pad < side
  taps = gaussian_kernel1d(sigma, kernel_size)
  rows = jnp.asarray(_blur_matrix(h, taps), images.dtype)
  cols = jnp.asarray(_blur_matrix(w, taps), images.dtype)
  x = jnp.einsum("ij,njwc->niwc", rows, images)
  return jnp.einsum("ij,nhjc->nhic", cols, x)


def sample_backgrounds(key: jax.Array, images: jnp.ndarray,
                       config: BackgroundConfig = BackgroundConfig()) -> jnp.ndarray:
  """The training backgrounds B of Sec. 4.1, one per image, reproducible from `key`.

  With probability `blur_prob` a Gaussian blur of the image, else a random colour
  per image and channel plus per-pixel Gaussian noise. images: [N, H, W, 3].
  """
  validation.as_images(images)
  n = images.shape[0]
  k_choice, k_color, k_noise = jax.random.split(key, 3)
  blurred = gaussian_blur(images, config.blur_sigma, config.blur_kernel_size)
  color = 0.5 + jax.random.uniform(k_color, (n, 1, 1, 3), images.dtype,
                                   -config.color_range, config.color_range)
  noisy = color + config.noise_std * jax.random.normal(k_noise, images.shape,
                                                       images.dtype)
  use_blur = jax.random.bernoulli(k_choice, config.blur_prob, (n, 1, 1, 1))
  return jnp.where(use_blur, blurred, noisy)


def training_perturbation(key: jax.Array, images: jnp.ndarray, masks: jnp.ndarray,
                          config: BackgroundConfig = BackgroundConfig()
                          ) -> jnp.ndarray:
  """psi(I + noise, M) with a fresh background B (the released code's training input)."""
  k_bg, k_noise = jax.random.split(key)
  backgrounds = sample_backgrounds(k_bg, images, config)
  noisy = images + config.image_noise_std * jax.random.normal(
      k_noise, images.shape, images.dtype)
  return perturb(noisy, masks, backgrounds)
