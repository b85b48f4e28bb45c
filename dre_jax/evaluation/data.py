"""The evaluated images from a TFDS dataset: the sample's shards, in order.

`tfds_source(name, split, ...)` returns a source for `protocol.run`: it reads
the split with `dre_jax.data.pipelines` (the evaluation transform: resize the
shorter side, centre crop; boxes rasterised into `box_mask`) in order, keeps
the sample's positions and yields them in shards. Every process reads the
whole split (`process_count=1`) and keeps the same images, so the shards are
identical everywhere; each process then feeds its rows of each global batch.
Reading the split once costs the decoding of every image of it (e.g. 50,000
for 10,000 sampled ImageNet validation images), small against the explainers.

Positions count the examples the pipeline yields in split order; with
`boxes_dir`, ImageNet examples without a box file are not yielded.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from dre_jax.data import pipelines
from dre_jax.evaluation.protocol import Sample

_READ_BATCH = 32


def split_size(name: str, split: str, data_dir: str | None = None) -> int:
  """The number of examples in the split (before any box filtering)."""
  return pipelines.num_examples(name, split, data_dir=data_dir)


def tfds_source(name: str, split: str, *, image_size: int,
                data_dir: str | None = None, manual_dir: str | None = None,
                boxes_dir: str | None = None):
  """A source of the sample's shards from TFDS (see the module docstring)."""

  def source(sample: Sample, shard_size: int) -> Iterator[dict[str, np.ndarray]]:
    keep = np.zeros(int(sample.positions.max()) + 1, bool)
    keep[sample.positions] = True
    keep_t = tf.constant(keep)
    ds = pipelines.make_tf_dataset(
        name, split, batch_size=_READ_BATCH, train=False, image_size=image_size,
        data_dir=data_dir, manual_dir=manual_dir, boxes_dir=boxes_dir,
        process_index=0, process_count=1).unbatch()

    def wanted(position, example):
      inside = position < len(keep)
      return example["valid"] & inside & tf.gather(
          keep_t, tf.minimum(position, len(keep) - 1))

    ds = ds.enumerate().filter(wanted).map(
        lambda position, example: {**example, "index": position})
    ds = ds.batch(shard_size).prefetch(1)
    expected = 0
    for shard in tfds.as_numpy(ds):
      shard.pop("valid", None)
      expected += len(shard["index"])
      yield shard
    if expected < len(sample):
      raise ValueError(
          f"{name} {split!r} yielded {expected} of the sample's {len(sample)} "
          "images (with boxes_dir, examples without a box file are skipped); "
          "choose a smaller config.eval.num_images")

  return source
