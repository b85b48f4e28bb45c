"""Training batches of this process, from the TFDS pipelines (`dre_jax.data`).

The training split is cut into `num_shards` shards (default: one per
process); process p of P reads shards p*S/P .. (p+1)*S/P - 1 and concatenates
their per-shard batches. With a fixed number of shards the global batch of
every step is the same whatever the number of processes, so a run can move
between 1 and S processes and two processes reproduce one process exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import jax
import numpy as np

from dre_jax.data import pipelines

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class TrainInput:
  """One stage's training data: (epoch, first batch) -> this process's batches.

  Attributes:
    batch_size: the global batch, over all processes.
    augment: random-resized crop + flip (classifier training); False gives
      the evaluation resize + centre crop (the DRE stages).
    num_shards: 0 for one shard per process.
  """

  name: str
  split: str
  batch_size: int
  image_size: int
  augment: bool
  seed: int = 0
  data_dir: str | None = None
  manual_dir: str | None = None
  shuffle_buffer: int = 10_000
  num_shards: int = 0

  @property
  def shards(self) -> range:
    """The shards this process reads."""
    count, process_count = self.shard_count, jax.process_count()
    per_process = count // process_count
    start = jax.process_index() * per_process
    return range(start, start + per_process)

  @property
  def shard_count(self) -> int:
    count = self.num_shards or jax.process_count()
    if count % jax.process_count():
      raise ValueError(
          f"dataset.num_shards={count} is not a multiple of the "
          f"{jax.process_count()} processes; use a multiple or 0 (one shard "
          "per process)")
    pipelines.local_batch_size(self.batch_size, count)
    return count

  def steps_per_epoch(self) -> int:
    return pipelines.steps_per_epoch(
        self.name, self.split, batch_size=self.batch_size, train=True,
        data_dir=self.data_dir, process_count=self.shard_count)

  def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[Batch]:
    """This process's rows of each global batch of `epoch`, from `skip_batches` on.

    Yields {"image": float32 [B_local, S, S, 3] in [0, 1], "label": int32 [B_local]}.
    """
    iterators = [
        pipelines.make_dataset(
            self.name, self.split, batch_size=self.batch_size, train=True,
            seed=self.seed, epoch=epoch, skip_batches=skip_batches,
            image_size=self.image_size, augment=self.augment,
            shuffle_buffer=self.shuffle_buffer, data_dir=self.data_dir,
            manual_dir=self.manual_dir, process_index=shard,
            process_count=self.shard_count)
        for shard in self.shards]
    for parts in zip(*iterators):
      yield {key: np.concatenate([p[key] for p in parts])
             for key in ("image", "label")}


def prepare(name: str, split: str, *, data_dir: str | None,
            manual_dir: str | None, download: bool) -> None:
  """Builds the dataset if needed (process 0 only), or says how to get it."""
  if jax.process_index() == 0:
    pipelines.make_tf_dataset(name, split, batch_size=1, train=False,
                              data_dir=data_dir, manual_dir=manual_dir,
                              download=download, process_index=0,
                              process_count=1)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(f"prepare {name}")


def eval_batches(name: str, split: str, *, batch_size: int, image_size: int,
                 data_dir: str | None) -> Iterator[Batch]:
  """This process's rows of the evaluation batches, padded (`valid`)."""
  for batch in pipelines.make_dataset(name, split, batch_size=batch_size,
                                      train=False, image_size=image_size,
                                      data_dir=data_dir):
    yield {key: batch[key] for key in ("image", "label", "valid")}
