"""torchvision's VGG19 (without batch norm) in Flax, with feature taps.

Convolutions are named as in the VGG paper (`conv3_4` is the fourth conv of
the third stage) and the classifier's Linear layers `fc6..fc8`;
`vgg_torch_key` maps them to torchvision's `features.16` / `classifier.0`.
The taps are the last ReLU output of each stage (`conv1_2` ... `conv5_4`) and
`pool5`.

Which four feed the generator (Sec. 4.1, "Implementation"): the paper divides
a CNN's conv layers into groups by the resolution of their outputs and takes
the intermediate layers {256, 512, 1024} of ResNet50 (the last output of its
stages layer1-3, with layer4 as the main flow) and, "for VGG19 and GoogleNet
that contain the intermediate layers with {128, 256, 512} and {192, 480, 832}
channels", halves their channels for the cells: {64, 128, 256}. VGG19's only
layers with 128, 256 and 512 channels that end a resolution group are
conv2_2 128@112, conv3_4 256@56 and conv4_4 512@28 (224 px input); read the
same way as ResNet50 and GoogLeNet, the main flow is the next group's last
output, conv5_4 512@14. So the default `vgg19` taps are conv2_2, conv3_4,
conv4_4, conv5_4 at strides 2, 4, 8, 16: the coarse mask X is at stride 2
(112x112 for 224 px) instead of ResNet50's stride 4. `vgg19_stride4` keeps the
earlier reading, conv3_4 256@56, conv4_4 512@28, conv5_4 512@14 and pool5
512@7 (strides 4-32, the channels {256, 512, 512} of the cells' skips do not
match the paper's {128, 256, 512}), with the same cell widths.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dre_jax import validation
from dre_jax.models import layers
from dre_jax.models import registry

# Conv widths per stage; each stage ends with a 2x2 max pool.
VGG19_STAGES = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


class VGG(nn.Module):
  """torchvision's VGG: `logits, taps = module.apply(v, x, train=False)`.

  Attributes:
    stages: conv widths per stage, e.g. `VGG19_STAGES`.
    num_classes: size of the last Linear layer `fc8`.
    dropout_rate: dropout after fc6 and fc7 (only with train=True, which then
      needs `rngs={"dropout": key}`).
    dtype: compute dtype; parameters stay float32, logits are float32.
  """

  stages: Sequence[Sequence[int]] = VGG19_STAGES
  num_classes: int = 1000
  dropout_rate: float = 0.5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: [N, H, W, 3] preprocessed images (ImageNet mean/std), H, W >= 32.
      train: apply dropout.

    Returns:
      logits: [N, num_classes] float32.
      taps: {"conv1_2": [N, H, W, 64], ..., "conv5_4": [N, H/16, W/16, 512],
        "pool5": [N, H/32, W/32, 512]} in `dtype` (sides floored).
    """
    validation.as_images(x, "VGG input")
    x = x.astype(self.dtype)
    taps = {}
    for stage, widths in enumerate(self.stages, start=1):
      for i, width in enumerate(widths, start=1):
        x = layers.conv(width, 3, padding=1, use_bias=True, dtype=self.dtype,
                        name=f"conv{stage}_{i}")(x)
        x = nn.relu(x)
      x = layers.tap(self, taps, f"conv{stage}_{len(widths)}", x)
      x = layers.max_pool(x, 2, stride=2)
    x = layers.tap(self, taps, f"pool{len(self.stages)}", x)
    x = layers.adaptive_avg_pool(x, (7, 7))
    # torch flattens NCHW: the fc6 weight expects (C, H, W) order.
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
    for name in ("fc6", "fc7"):
      x = nn.relu(nn.Dense(4096, dtype=self.dtype, name=name)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)
    return logits.astype(jnp.float32), taps


def _torch_module_names(stages: Sequence[Sequence[int]]) -> dict[str, str]:
  """{"conv1_1": "features.0", ..., "fc8": "classifier.6"}."""
  names, index = {}, 0
  for stage, widths in enumerate(stages, start=1):
    for i in range(1, len(widths) + 1):
      names[f"conv{stage}_{i}"] = f"features.{index}"
      index += 2  # Conv2d, ReLU
    index += 1  # MaxPool2d
  # classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear.
  names.update(fc6="classifier.0", fc7="classifier.3", fc8="classifier.6")
  return names


def vgg_torch_key(path: tuple[str, ...], stages=VGG19_STAGES) -> str:
  """("params", "conv3_4", "kernel") -> "features.16.weight"."""
  collection, module, *rest = path
  return registry.default_torch_key(
      (collection, _torch_module_names(stages)[module], *rest))


VGG19 = registry.register(registry.ClassifierSpec(
    name="vgg19",
    make_module=functools.partial(VGG, stages=VGG19_STAGES),
    tap_names=("conv2_2", "conv3_4", "conv4_4", "conv5_4"),  # strides 2-16
    generator_widths=(64, 128, 256),
    torch_key=functools.partial(vgg_torch_key, stages=VGG19_STAGES),
    head_name="fc8",
))

# The same network tapped at strides 4-32 (this package's earlier default).
VGG19_STRIDE4 = registry.register(dataclasses.replace(
    VGG19, name="vgg19_stride4",
    tap_names=("conv3_4", "conv4_4", "conv5_4", "pool5")))
