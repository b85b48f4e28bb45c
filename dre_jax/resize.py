"""Resizing masks and saliency maps to the image size: [N, h, w] -> [N, H, W].

One bilinear resize with half-pixel centres (PyTorch's align_corners=False),
shared by the estimator (M = upsample(C(X)), `dre_jax.estimator`), MGnet's
mask, and the explainers whose maps are coarser than the image (Grad-CAM,
mask perturbation, feature inversion).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def upsample_masks(z: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """Bilinear upsampling [N, h, w] -> [N, H, W] (PyTorch align_corners=False)."""
  return jax.image.resize(z, (z.shape[0], *size), "bilinear")
