"""The tiny TFDS datasets the tests write to disk: one builder, `TinyDataset`,
parametrised by a `TinySpec` per name (`TINY`).

Once prepared, TFDS reads a dataset from its files by name
(`tfds.builder(name, data_dir=...)`), so subprocesses running the CLIs need no
code from here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds

COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 40, 230],
                    [230, 230, 40]], np.uint8)
BOXES_SIZE = 64


def _shapes_features():
  return {"image": tfds.features.Image(shape=(32, 32, 3)),
          "label": tfds.features.ClassLabel(num_classes=len(COLOURS))}


def _shapes_example(rng, split, i):
  """tiny_shapes: a 14-px square on grey noise, label = its colour."""
  del split
  label = i % len(COLOURS)
  image = rng.integers(60, 160, (32, 32, 3), dtype=np.uint8)
  y, x = rng.integers(0, 16, 2)
  image[y:y + 14, x:x + 14] = COLOURS[label]
  return {"image": image, "label": label}


def _boxes_features():
  return {"image": tfds.features.Image(shape=(BOXES_SIZE, BOXES_SIZE, 3)),
          "label": tfds.features.ClassLabel(
              names=["red", "green", "blue", "yellow"]),
          "bbox": tfds.features.BBoxFeature()}


def _boxes_example(rng, split, i):
  """tiny_boxes: a coloured square with its box; label = colour (a fifth of
  the test images: the next colour)."""
  size = BOXES_SIZE
  colour = i % len(COLOURS)
  # Every fifth test image is labelled with the next colour, so a
  # classifier of colours gets those wrong (Fig. 11's misclassifications).
  label = (colour + 1) % len(COLOURS) if split == "test" and i % 5 == 4 else colour
  image = rng.integers(60, 160, (size, size, 3), dtype=np.uint8)
  side = int(rng.integers(16, 32))
  y, x = rng.integers(0, size - side, 2)
  image[y:y + side, x:x + side] = COLOURS[colour]
  box = tfds.features.BBox(y / size, x / size, (y + side) / size,
                           (x + side) / size)
  return {"image": image, "label": label, "bbox": box}


def _birds_features():
  return {"image": tfds.features.Image(shape=(None, None, 3)),
          "label": tfds.features.ClassLabel(num_classes=32),
          "bbox": tfds.features.BBoxFeature(),
          "segmentation_mask": tfds.features.Image(shape=(None, None, 1))}


def _birds_example(rng, split, i):
  """tiny_birds: CUB's features on a bright box on a noisy background,
  `label` = the example's index, so that examples can be told apart."""
  del split
  height, width = 40 + 4 * (i % 3), 48
  y0, x0 = rng.integers(0, 16, 2)
  y1, x1 = y0 + rng.integers(12, 24), x0 + rng.integers(12, 30)
  image = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
  image[y0:y1, x0:x1] = 220
  mask = np.zeros((height, width, 1), np.uint8)
  mask[y0:y1, x0:x1] = 255
  return {"image": image, "label": i, "segmentation_mask": mask,
          "bbox": tfds.features.BBox(y0 / height, x0 / width,
                                     y1 / height, x1 / width)}


@dataclasses.dataclass(frozen=True)
class TinySpec:
  """A tiny dataset: examples per split, its features, and example `i` of a
  split drawn from `rng` (seeded by the split)."""
  splits: dict[str, int]
  features: Callable[[], dict]
  example: Callable[[np.random.Generator, str, int], dict]


TINY = {
    # 32x32, 4 colour classes: the training tests.
    "tiny_shapes": TinySpec({"train": 48, "test": 16}, _shapes_features,
                            _shapes_example),
    # 64x64, 4 colour classes with boxes (M_E applies): the evaluation tests.
    "tiny_boxes": TinySpec({"train": 8, "test": 32}, _boxes_features,
                           _boxes_example),
    # Images of several sizes with CUB's features: the input pipelines.
    "tiny_birds": TinySpec({"train": 22, "test": 21}, _birds_features,
                           _birds_example),
}


class TinyDataset(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The builder of a `TinySpec`; `BUILDERS` has one subclass per name."""

  VERSION = tfds.core.Version("1.0.0")
  spec: TinySpec

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict(self.spec.features()))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, n)
            for split, n in self.spec.splits.items()}

  def _generate_examples(self, split, n):
    rng = np.random.default_rng(len(split))
    for i in range(n):
      yield i, self.spec.example(rng, split, i)


BUILDERS = {name: type(name, (TinyDataset,), {"name": name, "spec": spec})
            for name, spec in TINY.items()}


def prepare(name: str, data_dir: str) -> str:
  """Writes the tiny dataset `name` under `data_dir`; returns `data_dir`."""
  BUILDERS[name](data_dir=data_dir).download_and_prepare()
  return data_dir
