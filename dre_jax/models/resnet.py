"""torchvision's ResNets (resnet18/34/50/101) in Flax, with feature taps.

The layout and names follow `torchvision.models.resnet`, so a torchvision
state dict converts with the default `torch_key` ("layer1.0.conv1.weight").
The bottleneck is v1.5 (stride on the 3x3 conv), as in torchvision. The taps
are the outputs of `layer1..layer4`; for resnet50 at 224 px they are 256@56,
512@28, 1024@14 and 2048@7, the encoder taps of the paper's ResNet50
generator (Sec. 4.1).
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dre_jax import validation
from dre_jax.models import layers
from dre_jax.models import registry

_BN_EPS = 1e-5


class ResidualBlock(nn.Module):
  """torchvision's `Bottleneck` (1x1, strided 3x3, 1x1 x4) or `BasicBlock`.

  Attributes:
    width: the block's inner width ("planes" in torchvision); the output has
      4 * width channels for a bottleneck and width otherwise.
    stride: stride of the block's 3x3 conv (its only 3x3 for a bottleneck, the
      first for a basic block) and of the projection shortcut.
    bottleneck: Bottleneck if True, BasicBlock if False.
  """

  width: int
  stride: int = 1
  bottleneck: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """x: [N, H, W, C] -> [N, H / stride, W / stride, out_features]."""
    if self.bottleneck:
      convs = ((1, 1, self.width), (3, self.stride, self.width),
               (1, 1, 4 * self.width))
    else:
      convs = ((3, self.stride, self.width), (3, 1, self.width))
    y = x
    for i, (kernel, stride, features) in enumerate(convs, start=1):
      y = layers.conv(features, kernel, stride=stride, padding=kernel // 2,
                      dtype=self.dtype, name=f"conv{i}")(y)
      y = layers.batch_norm(train=train, epsilon=_BN_EPS, dtype=self.dtype,
                            name=f"bn{i}")(y)
      if i < len(convs):
        y = nn.relu(y)
    out_features = convs[-1][2]
    if self.stride != 1 or x.shape[-1] != out_features:
      x = layers.conv(out_features, 1, stride=self.stride, dtype=self.dtype,
                      name="downsample.0")(x)
      x = layers.batch_norm(train=train, epsilon=_BN_EPS, dtype=self.dtype,
                            name="downsample.1")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """torchvision's ResNet: `logits, taps = module.apply(v, x, train=False)`.

  Attributes:
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for resnet50.
    bottleneck: Bottleneck blocks (resnet50/101) or BasicBlocks (18/34).
    num_classes: size of the final `fc` layer.
    dtype: compute dtype (e.g. bfloat16 on GPU/TPU); parameters stay float32
      and the logits are returned as float32.
  """

  stage_sizes: Sequence[int]
  bottleneck: bool = True
  num_classes: int = 1000
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: [N, H, W, 3] preprocessed images (ImageNet mean/std).
      train: use and update batch statistics instead of the running ones.

    Returns:
      logits: [N, num_classes] float32.
      taps: {"layer1": [N, H/4, W/4, C1], ..., "layer4": [N, H/32, W/32, C4]}
        in `dtype` (sides rounded as PyTorch rounds them).
    """
    validation.as_images(x, "ResNet input")
    x = x.astype(self.dtype)
    x = layers.conv(64, 7, stride=2, padding=3, dtype=self.dtype,
                    name="conv1")(x)
    x = layers.batch_norm(train=train, epsilon=_BN_EPS, dtype=self.dtype,
                          name="bn1")(x)
    x = layers.max_pool(nn.relu(x), 3, stride=2, padding=1)
    taps = {}
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = ResidualBlock(
            width=64 * 2**stage,
            stride=2 if stage > 0 and block == 0 else 1,
            bottleneck=self.bottleneck, dtype=self.dtype,
            name=f"layer{stage + 1}.{block}")(x, train)
      x = layers.tap(self, taps, f"layer{stage + 1}", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(
        jnp.mean(x, axis=(1, 2)))
    return logits.astype(jnp.float32), taps


def _register(name: str, stage_sizes: tuple[int, ...], bottleneck: bool
              ) -> registry.ClassifierSpec:
  return registry.register(registry.ClassifierSpec(
      name=name,
      make_module=functools.partial(ResNet, stage_sizes=stage_sizes,
                                    bottleneck=bottleneck),
      tap_names=("layer1", "layer2", "layer3", "layer4"),
      generator_widths=(64, 128, 256),
  ))


RESNET18 = _register("resnet18", (2, 2, 2, 2), bottleneck=False)
RESNET34 = _register("resnet34", (3, 4, 6, 3), bottleneck=False)
RESNET50 = _register("resnet50", (3, 4, 6, 3), bottleneck=True)
RESNET101 = _register("resnet101", (3, 4, 23, 3), bottleneck=True)
