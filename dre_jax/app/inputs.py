"""What is explained: the inputs as a list of items with their classes, each cropped to S x S.

Inputs are paths (files, directories, glob patterns; `dre_jax.images`), Pillow
images, or arrays [H, W, 3] / [N, H, W, 3] (float in [0, 1] or uint8). Each is
resized and centre-cropped to S x S (`images.resize_and_crop`; an input that
is already S x S is used as it is). A file that cannot be read is an
`images.ImageError` (with `.path` and `.reason`), reported and skipped.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np

from dre_jax import images as images_lib
from dre_jax.app.loading import Model, resolve_target


def flatten(images_or_paths) -> list[Any]:
  """The inputs as a list of paths, Pillow images and [H, W, 3] arrays."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  if isinstance(images_or_paths, (str, os.PathLike, Image.Image)):
    images_or_paths = [images_or_paths]
  elif isinstance(images_or_paths, (np.ndarray, jax.Array)):
    a = np.asarray(images_or_paths)
    images_or_paths = [a] if a.ndim == 3 else list(a)
  items = []
  for item in images_or_paths:
    if isinstance(item, (np.ndarray, jax.Array)) and np.ndim(item) == 4:
      items += list(np.asarray(item))
    else:
      items.append(item)
  return items


def per_input_targets(target, n: int, model: Model) -> list[int | None]:
  """Per-input class indices (None: the prediction)."""
  if target is None or isinstance(target, (int, np.integer, str)):
    index = None if target is None else resolve_target(target, model)
    return [index] * n
  targets = list(target)
  if len(targets) != n:
    raise ValueError(f"target has {len(targets)} entries for {n} inputs; give "
                     "one class, or one per input")
  return [None if t is None else resolve_target(t, model) for t in targets]


def gather(images_or_paths, target, model: Model
           ) -> tuple[list[Any], list[int | None], list[images_lib.ImageError]]:
  """(items, their classes, problems): directories and patterns expanded.

  A directory's or pattern's files all take that input's class; a file is
  listed once per class however often it is given; a pattern that matches
  nothing is a problem.
  """
  inputs = flatten(images_or_paths)
  items, targets, problems, seen = [], [], [], set()
  for item, t in zip(inputs, per_input_targets(target, len(inputs), model)):
    if not isinstance(item, (str, os.PathLike)):
      items.append(item)
      targets.append(t)
      continue
    paths, bad = images_lib.expand([item])
    problems += bad
    for p in paths:
      if (os.path.abspath(p), t) not in seen:
        seen.add((os.path.abspath(p), t))
        items.append(p)
        targets.append(t)
  return items, targets, problems


def as_array(item) -> np.ndarray:
  """A Pillow image or an array -> [H, W, 3] float32 in [0, 1]."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  if isinstance(item, Image.Image):
    return images_lib.to_rgb(item)
  a = np.asarray(item)
  if a.ndim == 2:
    a = np.repeat(a[..., None], 3, axis=-1)
  if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
    raise ValueError(f"an image array must be [H, W, 3] (or [N, H, W, 3]), got "
                     f"shape {a.shape}")
  if a.dtype == np.uint8:
    a = a.astype(np.float32) / 255.0
  elif np.issubdtype(a.dtype, np.floating):
    a = a.astype(np.float32)
    if a.size and (a.min() < 0 or a.max() > 1):
      raise ValueError(f"float image arrays must be in [0, 1], got values in "
                       f"[{a.min():.3g}, {a.max():.3g}]")
  else:
    raise ValueError(f"image arrays must be uint8 or float in [0, 1], got "
                     f"{a.dtype}")
  if a.shape[-1] == 1:
    a = np.repeat(a, 3, axis=-1)
  elif a.shape[-1] == 4:  # straight alpha on white
    a = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])
  return a


def prepare(item, index: int, size: int, crop_fraction: float,
            background: Sequence[float]) -> tuple[str, np.ndarray]:
  """(source name, [S, S, 3] float32); ImageError for an unusable file."""
  if isinstance(item, (str, os.PathLike)):
    source = os.fspath(item)
    image = images_lib.load(source, background,
                            min_side=int(round(size / crop_fraction)))
  else:
    source = f"image {index}"
    image = as_array(item)
  if image.shape[:2] != (size, size):
    image = images_lib.resize_and_crop(image, size, crop_fraction)
  return source, image
