"""A small CNN with taps at strides 4/8/16/32, for tests and CPU smoke runs.

It has the same interface as the full-size ports (`(logits, taps)`), so every
part of DRE can be exercised in seconds. Not a model of the paper.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dre_jax.models import layers
from dre_jax.models import registry


class TinyCNN(nn.Module):
  """Four conv-BN-ReLU stages, each halving resolution (stem halves twice)."""

  num_classes: int = 10
  widths: Sequence[int] = (16, 32, 64, 128)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    taps = {}
    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      stride = 4 if i == 0 else 2
      x = layers.conv(width, 3, stride=stride, padding=1, dtype=self.dtype,
                      name=f"conv{i + 1}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=1e-5, dtype=self.dtype, name=f"bn{i + 1}")(x)
      x = nn.relu(x)
      x = layers.tap(self, taps, f"stage{i + 1}", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(
        jnp.mean(x, axis=(1, 2)))
    return logits.astype(jnp.float32), taps


TINY = registry.register(registry.ClassifierSpec(
    name="tiny_cnn",
    make_module=TinyCNN,
    tap_names=("stage1", "stage2", "stage3", "stage4"),
    generator_widths=(8, 16, 32),
    input_size=64,
))
