"""The mask generator G (paper Sec. 3.2.2, Eqs. 3-4, and Sec. 4.1 "Implementation").

    F^l --spatial filter (Eq. 3)--> F_hat^l --cell--> @16 --cell--> @8 --cell--> @4
                                      (each cell: upsample x2, concat the tap
                                       of that stride, ResNet bottleneck block)
        --conv3x3 -> 1 channel--> X at a quarter of the input size.

Layout follows the authors' released code (REFERENCE_NOTES section 1): sub-pixel
upsampling by default (`upsample="transposed"` gives the paper text's transposed
convolution), BatchNorm with PyTorch's defaults (momentum 0.1, eps 1e-5).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _batch_norm(train: bool, dtype, name=None):
  """Training-mode statistics are over the global batch: the steps are jitted
  over a device mesh (`dre_jax.parallel`), so no axis name is needed."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, name=name)


def pixel_shuffle(x: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
  """NHWC equivalent of `torch.nn.functional.pixel_shuffle` (channel order C, r, r).

  x: [N, H, W, C * r * r] -> [N, H * r, W * r, C].
  """
  n, h, w, c = x.shape
  c_out = c // (factor * factor)
  x = x.reshape(n, h, w, c_out, factor, factor)
  return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * factor, w * factor, c_out)


def _embedding_init(key, shape, dtype=jnp.float32):
  """N(0, 1 / sqrt(C)) as the released code: std = 1 / sqrt(feature channels)."""
  return jax.random.normal(key, shape, dtype) / jnp.sqrt(shape[-1]).astype(dtype)


def spatial_scores(features: jnp.ndarray, embedding: jnp.ndarray) -> jnp.ndarray:
  """F_ij^T V_k for every location: features [N, h, w, C], embedding [N, C] -> [N, h, w]."""
  return jnp.einsum("nhwc,nc->nhw", features, embedding)


def embedding_loss(features: jnp.ndarray, embedding: jnp.ndarray,
                   is_true_label: jnp.ndarray) -> jnp.ndarray:
  """Eq. 4: -sum_ij sigmoid(F_ij^T V_k) for true labels, +sum_ij for fake ones.

  Args:
    features: [N, h, w, C] last feature maps F^l.
    embedding: [N, C] the embedding V_k of each sample's (true or fake) label k.
    is_true_label: [N] bool, k == t.

  Returns:
    The loss averaged over the batch (a sum over locations, as in Eq. 4).
  """
  similarity = jnp.sum(jax.nn.sigmoid(spatial_scores(features, embedding)), axis=(1, 2))
  sign = jnp.where(is_true_label, -1.0, 1.0)
  return jnp.mean(sign * similarity)


class SpatialFilter(nn.Module):
  """Eq. 3: F_hat_ij = F_ij * sigmoid(F_ij^T V_t), with one embedding V_k per class.

  The table `embedding: [num_classes, C]` is initialised N(0, 1/sqrt(C)).
  """

  num_classes: int

  @nn.compact
  def __call__(self, features: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """features: [N, h, w, C], target: [N] int -> F_hat: [N, h, w, C]."""
    table = self.param("embedding", _embedding_init,
                       (self.num_classes, features.shape[-1]))
    v = table[target].astype(features.dtype)
    gate = jax.nn.sigmoid(spatial_scores(features, v))
    return features * gate[..., None]


def class_embeddings(generator_params) -> jnp.ndarray:
  """The spatial filter's table V: [num_classes, C] inside MaskGenerator params."""
  return generator_params["spatial_filter"]["embedding"]


class BottleneckBlock(nn.Module):
  """ResNet bottleneck (1x1 -> 3x3 -> 1x1, inner width out/4) with a 1x1 biased residual conv."""

  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    inner = self.features // 4
    conv = lambda f, k, name: nn.Conv(f, (k, k), padding=k // 2, use_bias=False,
                                      dtype=self.dtype, name=name)
    y = x
    for i, (width, k) in enumerate([(inner, 1), (inner, 3), (self.features, 1)]):
      y = conv(width, k, f"conv{i + 1}")(y)
      y = _batch_norm(train, self.dtype, f"bn{i + 1}")(y)
      if i < 2:
        y = nn.relu(y)
    residual = nn.Conv(self.features, (1, 1), dtype=self.dtype,
                       name="residual_transformer")(x)
    return nn.relu(y + residual)


class BottleneckCell(nn.Module):
  """Upsample x2, concatenate the encoder tap of that resolution, bottleneck block.

  upsample="subpixel": Conv3x3(in -> 4 out, no bias) - BN - ReLU - PixelShuffle(2)
  (the released code); "transposed": ConvTranspose(4x4, stride 2) - BN - ReLU (the
  paper's text).
  """

  features: int
  upsample: str = "subpixel"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, skip, train: bool):
    if self.upsample == "subpixel":
      x = nn.Conv(4 * self.features, (3, 3), padding=1, use_bias=False,
                  dtype=self.dtype, name="upsampler_conv")(x)
    elif self.upsample == "transposed":
      x = nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME",
                           use_bias=False, dtype=self.dtype,
                           name="upsampler_conv")(x)
    else:
      raise ValueError(f"upsample must be 'subpixel' or 'transposed', got "
                       f"{self.upsample!r}")
    x = _batch_norm(train, self.dtype, "upsampler_bn")(x)
    x = nn.relu(x)
    if self.upsample == "subpixel":
      x = pixel_shuffle(x, 2)
    if x.shape[1:3] != skip.shape[1:3]:
      raise ValueError(
          f"upsampled map {x.shape[1:3]} and encoder tap {skip.shape[1:3]} differ "
          "in size; the classifier's taps must be at strides 4, 8, 16 and 32 of "
          "an input whose side is a multiple of 32")
    x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
    return BottleneckBlock(self.features, self.dtype,
                           name="follow_up")(x, train)


class MaskGenerator(nn.Module):
  """G: encoder taps + target class -> coarse map X (before the controller).

  Attributes:
    num_classes: size of the spatial filter's embedding table.
    widths: cell widths at strides (4, 8, 16), as the paper lists them
      (ResNet50 / VGG19 (64, 128, 256), GoogLeNet (96, 240, 416)).
    upsample: "subpixel" (released code) or "transposed" (paper text).
    dtype: compute dtype (bfloat16 on GPU/TPU); X is returned as float32.
  """

  num_classes: int
  widths: Sequence[int] = (64, 128, 256)
  upsample: str = "subpixel"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, taps: Sequence[jnp.ndarray], target: jnp.ndarray,
               train: bool = False) -> jnp.ndarray:
    """taps: 4 maps, fine to coarse, each at twice the stride of the one before
    (strides 4, 8, 16, 32 for ResNet50; 2-16 for VGG19), [N, h, w, C];
    target: [N] int.

    Returns X: [N, h1, w1] float32 at the finest tap's resolution (H/4, W/4
    for ResNet50).
    """
    if len(taps) != 4:
      raise ValueError(f"the generator needs 4 taps (strides 4, 8, 16, 32), got "
                       f"{len(taps)}")
    if len(self.widths) != 3:
      raise ValueError(f"widths must give 3 cell widths, got {self.widths}")
    f4, f8, f16, f32 = (t.astype(self.dtype) for t in taps)
    x = SpatialFilter(self.num_classes, name="spatial_filter")(f32, target)
    for i, (skip, width) in enumerate(zip((f16, f8, f4), self.widths[::-1])):
      x = BottleneckCell(width, self.upsample, self.dtype,
                         name=f"cell{i}")(x, skip, train)
    x = nn.Conv(1, (3, 3), padding=1, dtype=self.dtype, name="to_saliency")(x)
    return x[..., 0].astype(jnp.float32)
