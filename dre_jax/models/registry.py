"""A registry of classifiers that DRE can explain.

Every classifier is a Flax Linen module whose call

    logits, taps = module.apply(variables, x, train=False)

takes preprocessed NHWC images `x: [N, H, W, 3]` and returns the logits `[N, K]`
and a dict of named feature maps. `ClassifierSpec.tap_names` names the four maps
that the mask generator consumes, at strides 4, 8, 16 and 32 (VGG19: 2 to 16),
the last output of each resolution group (the last one is the
main flow that goes through the spatial filter, Eq. 3), and
`ClassifierSpec.generator_widths` gives the widths of the three bottleneck
cells, fine to coarse, as in the paper's Sec. 4.1 ("Implementation").

A config says `model.name = "resnet50"` and gets everything through `get(name)`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import flax.linen as nn

# torchvision's ImageNet normalisation, in [0, 1] pixel units.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Named input scalings, (mean, std) in [0, 1] pixel units, for
# `Classifier.create(spec, variables, mean=..., std=...)`.
PREPROCESSING = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),    # torchvision's
    "minus_one_one": ((0.5,) * 3, (0.5,) * 3),    # 2 * images - 1: the released DRE code
}


def preprocessing(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) of a named preprocessing (`PREPROCESSING`)."""
  try:
    return PREPROCESSING[name]
  except KeyError:
    raise KeyError(f"unknown preprocessing {name!r}; named: "
                   f"{', '.join(sorted(PREPROCESSING))}") from None


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """How to build, feed and tap one classifier architecture.

  Attributes:
    name: registry key, e.g. "resnet50".
    make_module: `make_module(num_classes=..., dtype=...) -> nn.Module`.
    tap_names: names of the four feature taps, fine to coarse, each at twice
      the stride of the one before: (4, 8, 16, 32), or (2, 4, 8, 16) for
      VGG19's paper taps (`dre_jax.models.vgg`).
    generator_widths: bottleneck-cell widths at the three finer taps, paper
      order.
    mean, std: per-channel normalisation in [0, 1] pixel units:
      `preprocess(images) = (images - mean) / std`.
    input_size: the side the model was trained at.
    torch_key: maps a Flax variable path, e.g.
      `("params", "layer1.0", "conv1", "kernel")`, to the PyTorch state-dict key
      of the same tensor, e.g. `"layer1.0.conv1.weight"`; the default joins the
      module names with "." and renames the leaf (kernel/scale -> weight,
      mean -> running_mean, var -> running_var).
    head_name: the output Dense layer's module name (its bias size is the
      number of classes).
    torch_ignore: prefixes of PyTorch keys that have no Flax counterpart and
      are skipped on import (e.g. GoogLeNet's auxiliary heads).
  """

  name: str
  make_module: Callable[..., nn.Module]
  tap_names: tuple[str, str, str, str]
  generator_widths: tuple[int, int, int]
  mean: tuple[float, float, float] = IMAGENET_MEAN
  std: tuple[float, float, float] = IMAGENET_STD
  input_size: int = 224
  torch_key: Callable[[tuple[str, ...]], str] = None  # type: ignore[assignment]
  torch_ignore: tuple[str, ...] = ()
  head_name: str = "fc"

  def __post_init__(self):
    if self.torch_key is None:
      object.__setattr__(self, "torch_key", default_torch_key)

  def build(self, num_classes: int = 1000, dtype=jnp.float32) -> nn.Module:
    return self.make_module(num_classes=num_classes, dtype=dtype)

  def preprocess(self, images: jnp.ndarray) -> jnp.ndarray:
    """images: [N, H, W, 3] float in [0, 1] RGB -> the model's input space."""
    mean = jnp.asarray(self.mean, images.dtype)
    std = jnp.asarray(self.std, images.dtype)
    return (images - mean) / std


_LEAF_TO_TORCH = {"kernel": "weight", "scale": "weight", "bias": "bias",
                  "mean": "running_mean", "var": "running_var",
                  "embedding": "weight"}


def default_torch_key(path: tuple[str, ...]) -> str:
  """("params"|"batch_stats", *modules, leaf) -> "module.module.torch_leaf"."""
  *modules, leaf = path[1:]
  return ".".join([*modules, _LEAF_TO_TORCH.get(leaf, leaf)])


_REGISTRY: dict[str, ClassifierSpec] = {}


def register(spec: ClassifierSpec) -> ClassifierSpec:
  if spec.name in _REGISTRY:
    raise ValueError(f"classifier {spec.name!r} is registered twice")
  _REGISTRY[spec.name] = spec
  return spec


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str) -> ClassifierSpec:
  """Returns the spec of a registered classifier; a clear error otherwise."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(
        f"unknown classifier {name!r}; registered: {', '.join(names())}. "
        "Set model.name in the config to one of these.") from None
