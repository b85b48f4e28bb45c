"""Imports the authors' released DRE generator (`model-1.ckpt`, ResNet50).

The released code (github.com/fuweijie/DRE, `SaliencyModel.minimalistic_save`)
saves a dict of state_dicts, one per submodule except the encoder:

  up2, up1, up0        the bottleneck cells, coarse to fine (up2: 2048 -> 256
                       channels at stride 16, up0: -> 64 at stride 4); each
                       `upsampler.0.0` (3x3 conv), `upsampler.0.1` (its BN),
                       `follow_up.conv1-3`, `follow_up.bn1-3`,
                       `follow_up.residual_transformer` (biased 1x1 conv);
  to_saliency_chans    a module whose `conv56` is the 64 -> 1 3x3 conv giving
                       X (its `conv7/14/28` are never used);
  selector_module      the class embeddings V, `weight: [1000, 2048]`;
  batchnorm_op, relu   unused (relu has no tensors).

These land in `dre_jax.generator.MaskGenerator(num_classes, RELEASED_WIDTHS)`
as cell0 <- up2, cell1 <- up1, cell2 <- up0, to_saliency <- conv56 and
spatial_filter/embedding <- selector_module.

Note the released encoder and classifier saw images scaled to [-1, 1], not
torchvision's mean/std: the imported generator expects ResNet50 taps computed
from `2 * images - 1`.
"""

from __future__ import annotations

import os
from typing import Any

import flax
import jax
import jax.numpy as jnp

from dre_jax import generator
from dre_jax.io import pth
from dre_jax.io import torch_weights
from dre_jax.models import registry

RELEASED_WIDTHS = (64, 128, 256)
RESNET50_TAP_CHANNELS = (256, 512, 1024, 2048)
_UNUSED = ("batchnorm_op.", "to_saliency_chans.conv7.",
           "to_saliency_chans.conv14.", "to_saliency_chans.conv28.")
_MODULES = {"cell0": "up2", "cell1": "up1", "cell2": "up0",
            "upsampler_conv": "upsampler.0.0", "upsampler_bn": "upsampler.0.1",
            "to_saliency": "to_saliency_chans.conv56",
            "spatial_filter": "selector_module"}


def released_key(path: tuple[str, ...]) -> str:
  """Flax MaskGenerator path -> "<submodule>.<key>" in the released file.

  E.g. ("params", "cell0", "upsampler_conv", "kernel")
  -> "up2.upsampler.0.0.weight".
  """
  collection, *modules, leaf = path
  return registry.default_torch_key(
      (collection, *(_MODULES.get(m, m) for m in modules), leaf))


def import_released_dre(path: str | os.PathLike) -> dict[str, Any]:
  """Reads `model-1.ckpt` into `MaskGenerator(K, RELEASED_WIDTHS)` variables.

  Returns:
    `{"params": ..., "batch_stats": ...}` as numpy arrays; K, the number of
    classes, is the embedding table's first dimension (1000 when released).
  Raises:
    CheckpointFormatError: not a dict of state_dicts with the released
      entries.
    ValueError: keys or shapes that do not fit the ResNet50 generator.
  """
  checkpoint = pth.load_checkpoint(path)
  needed = ("up2", "up1", "up0", "to_saliency_chans", "selector_module")
  if not isinstance(checkpoint, dict) or not all(
      isinstance(checkpoint.get(name), dict) for name in needed):
    found = list(checkpoint) if isinstance(checkpoint, dict) else type(
        checkpoint).__name__
    raise pth.CheckpointFormatError(
        path, f"not a released DRE checkpoint: expected a dict of "
        f"state_dicts with entries {list(needed)}, found {found}")
  state_dict = {f"{name}.{key}": value
                for name, entries in checkpoint.items()
                for key, value in entries.items()}
  num_classes = int(state_dict["selector_module.weight"].shape[0])
  module = generator.MaskGenerator(num_classes, RELEASED_WIDTHS)
  taps = [jax.ShapeDtypeStruct((1, 64 // s, 64 // s, c), jnp.float32)
          for s, c in zip((4, 8, 16, 32), RESNET50_TAP_CHANNELS)]
  target = jax.ShapeDtypeStruct((1,), jnp.int32)
  shapes = jax.eval_shape(
      lambda taps, t: module.init(jax.random.key(0), taps, t), taps, target)
  return torch_weights.convert_state_dict(
      flax.traverse_util.flatten_dict(shapes), state_dict, released_key,
      _UNUSED, "the released ResNet50 DRE generator")
