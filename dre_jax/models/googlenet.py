"""torchvision's GoogLeNet (Inception v1) in Flax, with feature taps.

As torchvision defines it, which differs from the paper of Szegedy et al.:
every conv is `BasicConv2d` (conv without bias, BN with eps 1e-3, ReLU), the
"5x5" branch uses a 3x3 conv (torchvision issue 906; the pretrained weights
have that shape), max pools use ceil mode, and with `transform_input` the
ImageNet-normalised input is rescaled to the [-1, 1] scaling the pretrained
weights were trained with. The auxiliary heads only exist for training; at
inference they are not built and their torch weights are skipped.

Names follow torchvision ("inception3a.branch2.1.conv.weight"), so the default
`torch_key` applies. Taps at 224 px: conv3 192@56, inception3b 480@28,
inception4e 832@14, inception5b 1024@7.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from dre_jax import validation
from dre_jax.models import layers
from dre_jax.models import registry

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) per inception block,
# grouped by stage; a stride-2 max pool follows every stage but the last.
_INCEPTION_STAGES = (
    {"inception3a": (64, 96, 128, 16, 32, 32),
     "inception3b": (128, 128, 192, 32, 96, 64)},
    {"inception4a": (192, 96, 208, 16, 48, 64),
     "inception4b": (160, 112, 224, 24, 64, 64),
     "inception4c": (128, 128, 256, 24, 64, 64),
     "inception4d": (112, 144, 288, 32, 64, 64),
     "inception4e": (256, 160, 320, 32, 128, 128)},
    {"inception5a": (256, 160, 320, 32, 128, 128),
     "inception5b": (384, 192, 384, 48, 128, 128)},
)
# Kernel of the max pool that ends each of the first two inception stages.
_STAGE_POOLS = (3, 2)


class BasicConv2d(nn.Module):
  """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, as `conv` / `bn`."""

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.conv(self.features, self.kernel_size, stride=self.stride,
                    padding=self.padding, dtype=self.dtype, name="conv")(x)
    x = layers.batch_norm(train=train, epsilon=1e-3, dtype=self.dtype,
                          name="bn")(x)
    return nn.relu(x)


class Inception(nn.Module):
  """Four parallel branches, concatenated on channels.

  branch1: 1x1; branch2: 1x1 -> 3x3; branch3: 1x1 -> 3x3 (torchvision's
  stand-in for the paper's 5x5); branch4: 3x3/1 max pool -> 1x1.
  """

  ch1x1: int
  ch3x3red: int
  ch3x3: int
  ch5x5red: int
  ch5x5: int
  pool_proj: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """x: [N, H, W, C] -> [N, H, W, ch1x1 + ch3x3 + ch5x5 + pool_proj]."""
    def block(features, kernel_size, name):
      return BasicConv2d(features, kernel_size, padding=kernel_size // 2,
                         dtype=self.dtype, name=name)

    branch1 = block(self.ch1x1, 1, "branch1")(x, train)
    branch2 = block(self.ch3x3red, 1, "branch2.0")(x, train)
    branch2 = block(self.ch3x3, 3, "branch2.1")(branch2, train)
    branch3 = block(self.ch5x5red, 1, "branch3.0")(x, train)
    branch3 = block(self.ch5x5, 3, "branch3.1")(branch3, train)
    branch4 = layers.max_pool(x, 3, stride=1, padding=1, ceil_mode=True)
    branch4 = block(self.pool_proj, 1, "branch4.1")(branch4, train)
    return jnp.concatenate([branch1, branch2, branch3, branch4], axis=-1)


class GoogLeNet(nn.Module):
  """torchvision's GoogLeNet: `logits, taps = module.apply(v, x, train=False)`.

  Attributes:
    num_classes: size of the final `fc` layer.
    transform_input: rescale ImageNet-normalised input to [-1, 1] first, as
      torchvision does for its pretrained weights (`transform_input=True`).
    dropout_rate: dropout before `fc` (train=True only; needs
      `rngs={"dropout": key}`).
    dtype: compute dtype; parameters stay float32, logits are float32.
  """

  num_classes: int = 1000
  transform_input: bool = True
  dropout_rate: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: [N, H, W, 3] preprocessed images (ImageNet mean/std).
      train: use batch statistics and dropout (no auxiliary heads).

    Returns:
      logits: [N, num_classes] float32.
      taps: {"conv3": [N, H/4, W/4, 192], "inception3b": [.., H/8, .., 480],
        "inception4e": [.., H/16, .., 832], "inception5b": [.., H/32, .., 1024]}
        in `dtype`, sides rounded up as ceil-mode pooling does.
    """
    validation.as_images(x, "GoogLeNet input")
    x = x.astype(self.dtype)
    if self.transform_input:
      mean = jnp.asarray(registry.IMAGENET_MEAN, self.dtype)
      std = jnp.asarray(registry.IMAGENET_STD, self.dtype)
      x = x * (std / 0.5) + (mean - 0.5) / 0.5

    def stem(features, kernel_size, name, stride=1):
      return BasicConv2d(features, kernel_size, stride=stride,
                         padding=kernel_size // 2, dtype=self.dtype,
                         name=name)

    x = stem(64, 7, "conv1", stride=2)(x, train)
    x = layers.max_pool(x, 3, stride=2, ceil_mode=True)
    x = stem(64, 1, "conv2")(x, train)
    x = stem(192, 3, "conv3")(x, train)
    taps = {}
    x = layers.tap(self, taps, "conv3", x)
    x = layers.max_pool(x, 3, stride=2, ceil_mode=True)
    for stage, blocks in enumerate(_INCEPTION_STAGES):
      for name, channels in blocks.items():
        x = Inception(*channels, dtype=self.dtype, name=name)(x, train)
      x = layers.tap(self, taps, name, x)
      if stage < len(_STAGE_POOLS):
        x = layers.max_pool(x, _STAGE_POOLS[stage], stride=2, ceil_mode=True)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x)
    return logits.astype(jnp.float32), taps


GOOGLENET = registry.register(registry.ClassifierSpec(
    name="googlenet",
    make_module=GoogLeNet,
    tap_names=("conv3", "inception3b", "inception4e", "inception5b"),
    generator_widths=(96, 240, 416),
    torch_ignore=("aux1.", "aux2."),
))
